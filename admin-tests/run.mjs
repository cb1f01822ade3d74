// Browser test of the ferroftpd web admin, driven by tests/admin_browser.rs:
// the Rust test starts the server (and holds one FTP session open), this
// script clicks through the admin in Debian's Chromium, then the Rust test
// checks with a real FTP client that what was clicked holds.
//
// Environment: ADMIN_URL, ADMIN_USER, ADMIN_PASSWORD, USER_ROOT (root of the
// user to add), SECRET_DIR (a directory the rule denies), PASSIVE_PORT (the
// new one-port passive range), OUT_DIR (screenshots), CHROMIUM (optional).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing ${name}`);
  return v;
};
const url = env('ADMIN_URL').replace(/\/$/, '');
const out = env('OUT_DIR');
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const fail = async (msg) => { await browser.close(); console.error(msg); process.exit(1); };
const timeout = setTimeout(() => fail('browser test took over 120 s'), 120_000);

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20_000);
  const shot = (name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
  const expectNotice = async (text) => {
    const notice = page.locator('.notice.ok');
    await notice.waitFor();
    const got = await notice.innerText();
    if (!got.includes(text)) await fail(`expected "${text}", got "${got}"`);
  };

  // Log in.
  await page.goto(`${url}/login`);
  await shot('login');
  await page.fill('#name', env('ADMIN_USER'));
  await page.fill('#password', env('ADMIN_PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL(`${url}/`);
  if ((await page.locator('#sessions tr').count()) < 2) await fail('the held FTP session is not on the dashboard');
  await shot('dashboard');

  // Add a user with a root.
  await page.click('text=Users');
  await page.click('text=Add a user');
  await page.fill('#name', 'bob');
  await page.fill('#password', 'bob-pw-1');
  await page.fill('#root', env('USER_ROOT'));
  await page.fill('#groups', 'staff');
  await shot('user-form');
  await page.click('button:has-text("Save")');
  await expectNotice('User bob added');
  await shot('users');

  // A rule denying bob reads below SECRET_DIR; then explain it.
  await page.click('nav >> text=Permissions');
  await page.fill('#who', 'bob');
  await page.selectOption('#kind', 'tree');
  await page.fill('#place', env('SECRET_DIR'));
  await page.fill('#deny', 'read');
  await page.click('button:has-text("Add rule")');
  await expectNotice('Rule added');
  await page.fill('input[name=user]', 'bob');
  await page.fill('input[name=path]', '/secret/plan.txt');
  await page.selectOption('select[name=op]', 'read');
  await page.click('button:has-text("Explain")');
  const explanation = await page.locator('#explanation').innerText();
  if (!explanation.includes('DENIED')) await fail(`explain: ${explanation}`);
  await shot('permissions');

  // A new passive range.
  await page.click('nav >> text=Settings');
  const port = env('PASSIVE_PORT');
  await page.fill('#passive-port_range', `${port}-${port}`);
  await page.click('button:has-text("Save and reload")');
  await expectNotice('Saved');
  // A bad value is shown next to its field and not saved.
  await page.fill('#timeouts-idle', 'soon');
  await page.click('button:has-text("Save and reload")');
  const fieldError = await page.locator('.field-error').first().innerText();
  if (!fieldError.includes('timeouts.idle')) await fail(`field error: ${fieldError}`);
  await shot('settings');

  // Disconnect the held FTP session.
  await page.click('nav >> text=Dashboard');
  await page.locator('#sessions button:has-text("Disconnect")').first().click();
  await expectNotice('disconnected');
  await shot('dashboard-after');
  console.log('admin browser test: all steps passed');
} catch (e) {
  await fail(`admin browser test failed: ${e.stack || e}`);
}
clearTimeout(timeout);
await browser.close();
