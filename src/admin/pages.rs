//! Dashboard (live sessions, bans, totals), users and permission rules.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use toml_edit::{value, Array, ArrayOfTables, Item, Table};

use super::html::{button_form, bytes, csrf_field, esc, notice, page, url};
use super::{config_file, AdminSession, AdminState, Posted, Viewer};
use crate::auth::password::hash_password;
use crate::auth::userdb::{Location, UserRecord, UserStore};
use crate::perm::explain::{explain, PathKind};
use crate::perm::Operation;
use crate::vfs::{normalize, MountSpec};

type Params = Query<HashMap<String, String>>;

fn render(admin: &AdminSession, title: &str, active: &str, body: &str) -> Response {
    Html(page(title, active, Some((&admin.name, &admin.csrf)), body)).into_response()
}

fn field<'a>(form: &'a HashMap<String, String>, key: &str) -> &'a str {
    form.get(key).map(|s| s.trim()).unwrap_or("")
}

/// Redirect after a change, with a message for the next page.
fn back(to: &str, kind: &str, message: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}{kind}={}", url(message))).into_response()
}

fn flash(params: &HashMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(m) = params.get("ok") {
        out.push_str(&notice("ok", m));
    }
    if let Some(m) = params.get("error") {
        out.push_str(&notice("error", m));
    }
    out
}

// ---- Dashboard -------------------------------------------------------------

pub async fn dashboard(
    State(state): State<Arc<AdminState>>,
    Viewer(admin): Viewer,
    Query(params): Params,
) -> Response {
    let shared = &state.shared;
    let totals = &shared.registry.totals;
    let sessions = shared.registry.snapshot();
    let mut bans = shared.bans.banned_list();
    if let Some(cluster) = &shared.cluster {
        // Bans made on other nodes too (an address banned here is listed once).
        for (ip, left) in cluster.banned_list() {
            if !bans.iter().any(|(b, _)| *b == ip) {
                bans.push((ip, left));
            }
        }
        bans.sort_by_key(|e| std::cmp::Reverse(e.1));
    }
    let mut body = flash(&params);
    body.push_str("<meta http-equiv=\"refresh\" content=\"5\"><div class=\"stats\">");
    for (value, label) in [
        (sessions.len().to_string(), "sessions now"),
        (totals.connections.load(Ordering::Relaxed).to_string(), "connections since start"),
        (totals.logins.load(Ordering::Relaxed).to_string(), "logins"),
        (totals.downloads.load(Ordering::Relaxed).to_string(), "downloads"),
        (bytes(totals.bytes_sent.load(Ordering::Relaxed)), "sent"),
        (totals.uploads.load(Ordering::Relaxed).to_string(), "uploads"),
        (bytes(totals.bytes_received.load(Ordering::Relaxed)), "received"),
        (bans.len().to_string(), "banned addresses"),
    ] {
        let _ = write!(body, "<div class=\"stat\"><b>{}</b><span>{label}</span></div>", esc(&value));
    }
    body.push_str("</div><h2>Live sessions</h2>");
    if sessions.is_empty() {
        body.push_str("<p class=\"muted\">Nobody is connected.</p>");
    } else {
        body.push_str(
            "<table id=\"sessions\"><tr><th>#</th><th>User</th><th>Address</th><th>Directory</th>\
             <th>Transfer</th><th>Connected</th><th></th></tr>",
        );
        for s in &sessions {
            let user =
                s.user.as_deref().map_or("<span class=\"muted\">(not logged in)</span>".to_string(), esc);
            let transfer = match &s.transfer {
                None => "<span class=\"muted\">idle</span>".to_string(),
                Some(t) => {
                    let done = t.progress.bytes();
                    let secs = t.started.elapsed().as_secs_f64().max(0.001);
                    let speed = bytes((done as f64 / secs) as u64);
                    let bar = t.size.filter(|&n| n > 0).map_or(String::new(), |n| {
                        let pct = (done as f64 * 100.0 / n as f64).min(100.0);
                        format!(
                            "<div class=\"bar\"><i style=\"width:{pct:.0}%\"></i></div>{pct:.0}% of {}",
                            bytes(n)
                        )
                    });
                    format!(
                        "{} <code>{}</code><br>{} at {speed}/s{bar}",
                        t.command,
                        esc(&t.path),
                        bytes(done)
                    )
                }
            };
            let since = s.since.elapsed().map_or(0, |d| d.as_secs());
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{user}</td><td>{}</td><td><code>{}</code></td><td>{transfer}</td>\
                 <td>{} s ago</td><td>{}</td></tr>",
                s.id,
                esc(&s.peer.to_string()),
                esc(s.cwd.as_deref().unwrap_or("")),
                since,
                button_form(
                    "/sessions/disconnect",
                    &admin.csrf,
                    &[("id", &s.id.to_string())],
                    "Disconnect",
                    "danger"
                )
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Banned addresses</h2>");
    if bans.is_empty() {
        body.push_str("<p class=\"muted\">No address is banned.</p>");
    } else {
        body.push_str("<table id=\"bans\"><tr><th>Address</th><th>Ban ends in</th><th></th></tr>");
        for (ip, left) in &bans {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{} s</td><td>{}</td></tr>",
                esc(&ip.to_string()),
                left.as_secs(),
                button_form("/bans/unban", &admin.csrf, &[("ip", &ip.to_string())], "Unban", "secondary")
            );
        }
        body.push_str("</table>");
    }
    render(&admin, "Dashboard", "/", &body)
}

pub async fn disconnect(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let Ok(id) = field(&form, "id").parse::<u64>() else {
        return back("/", "error", "No such session.");
    };
    if state.shared.registry.disconnect(id) {
        tracing::warn!(admin = %admin.name, session = id, "session disconnected by an admin");
        back("/", "ok", &format!("Session {id} disconnected."))
    } else {
        back("/", "error", &format!("Session {id} has already ended."))
    }
}

pub async fn unban(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let Ok(ip) = field(&form, "ip").parse::<std::net::IpAddr>() else {
        return back("/", "error", "Not an address.");
    };
    let mut lifted = state.shared.bans.unban(ip);
    if let Some(cluster) = &state.shared.cluster {
        match cluster.unban(ip).await {
            Ok(shared) => lifted |= shared,
            Err(e) => return back("/", "error", &format!("The shared ban list is unavailable: {e}")),
        }
    }
    if lifted {
        tracing::info!(admin = %admin.name, address = %ip, "ban lifted by an admin");
        back("/", "ok", &format!("{ip} unbanned."))
    } else {
        back("/", "error", &format!("{ip} was not banned."))
    }
}

// ---- Users -----------------------------------------------------------------

fn store(state: &AdminState) -> Result<Arc<dyn UserStore>, String> {
    Location::from_config(&state.shared.live().config.userdb).open().map_err(|e| e.to_string())
}

pub async fn users(
    State(state): State<Arc<AdminState>>,
    Viewer(admin): Viewer,
    Query(params): Params,
) -> Response {
    let q = params.get("q").map(|s| s.trim().to_lowercase()).unwrap_or_default();
    let mut body = flash(&params);
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/users\" class=\"card\" style=\"display:flex;gap:8px\">\
         <input type=\"text\" name=\"q\" placeholder=\"Search by name, group or directory\" value=\"{}\">\
         <button type=\"submit\" class=\"secondary\">Search</button>\
         <a href=\"/users/edit\"><button type=\"button\">Add a user</button></a></form>",
        esc(&q)
    );
    let listed = store(&state).and_then(|s| s.list().map_err(|e| e.to_string()));
    match listed {
        Err(e) => body.push_str(&notice("error", &e)),
        Ok(list) => {
            body.push_str(
                "<table id=\"users\"><tr><th>Name</th><th>Enabled</th><th>Root</th><th>Groups</th>\
                 <th>Mounts</th><th>Own rules</th><th></th></tr>",
            );
            let matches = |u: &UserRecord| {
                q.is_empty()
                    || u.name.to_lowercase().contains(&q)
                    || u.groups.iter().any(|g| g.to_lowercase().contains(&q))
                    || u.root.to_string_lossy().to_lowercase().contains(&q)
            };
            for u in list.iter().filter(|u| matches(u)) {
                let mounts: Vec<String> = u.mounts.iter().map(mount_text).collect();
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/users/edit?name={}\">{}</a></td><td>{}</td><td><code>{}</code></td>\
                     <td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>",
                    url(&u.name),
                    esc(&u.name),
                    if u.enabled { "yes" } else { "no" },
                    esc(&u.root.to_string_lossy()),
                    esc(&u.groups.join(", ")),
                    esc(&mounts.join(" ")),
                    u.rules.len(),
                    button_form("/users/delete", &admin.csrf, &[("name", &u.name)], "Delete", "danger"),
                );
            }
            body.push_str("</table>");
        }
    }
    render(&admin, "Users", "/users", &body)
}

fn mount_text(m: &MountSpec) -> String {
    format!("{}={}{}", m.virtual_path, m.real_path.display(), if m.read_only { ":ro" } else { "" })
}

/// The add/edit form; `error` is shown above it, `values` refill it.
fn user_form_body(
    admin: &AdminSession,
    existing: Option<&str>,
    values: &HashMap<String, String>,
    error: &str,
) -> String {
    let v = |k: &str| esc(values.get(k).map(String::as_str).unwrap_or(""));
    let checked = |k: &str| if values.get(k).is_some_and(|x| x == "on") { " checked" } else { "" };
    let password_hint =
        if existing.is_some() { "leave empty to keep the current password" } else { "required" };
    format!(
        "{}<form method=\"post\" action=\"/users/save\" class=\"card\">{}\
         <input type=\"hidden\" name=\"original\" value=\"{}\"><div class=\"grid\">\
         <label for=\"name\">Name</label><div><input type=\"text\" id=\"name\" name=\"name\" value=\"{}\" required></div>\
         <label for=\"password\">Password</label><div><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\"><div class=\"hint\">{password_hint}</div></div>\
         <label for=\"enabled\">Enabled</label><div><input type=\"checkbox\" id=\"enabled\" name=\"enabled\"{}></div>\
         <label for=\"root\">Root directory</label><div><input type=\"text\" id=\"root\" name=\"root\" value=\"{}\" required><div class=\"hint\">absolute real path shown as /</div></div>\
         <label for=\"initial_dir\">Initial directory</label><div><input type=\"text\" id=\"initial_dir\" name=\"initial_dir\" value=\"{}\"></div>\
         <label for=\"mounts\">Mounts</label><div><textarea id=\"mounts\" name=\"mounts\">{}</textarea><div class=\"hint\">one per line: /VIRT=/REAL or /VIRT=/REAL:ro</div></div>\
         <label for=\"groups\">Groups</label><div><input type=\"text\" id=\"groups\" name=\"groups\" value=\"{}\"><div class=\"hint\">comma separated</div></div>\
         <label for=\"read_only\">Read-only</label><div><input type=\"checkbox\" id=\"read_only\" name=\"read_only\"{}></div>\
         <label for=\"max_sessions\">Max sessions</label><div><input type=\"number\" min=\"0\" id=\"max_sessions\" name=\"max_sessions\" value=\"{}\"><div class=\"hint\">empty: the server's default</div></div>\
         <label for=\"rules\">Own rules</label><div><textarea id=\"rules\" name=\"rules\">{}</textarea><div class=\"hint\">one per line, e.g. <code>tree = \"/srv/ftp/alice/in\", deny = [\"delete\"]</code></div></div>\
         </div><div class=\"actions\"><button type=\"submit\">Save</button><a href=\"/users\"><button type=\"button\" class=\"secondary\">Cancel</button></a></div></form>",
        notice("error", error),
        csrf_field(&admin.csrf),
        esc(existing.unwrap_or("")),
        v("name"),
        checked("enabled"),
        v("root"),
        v("initial_dir"),
        v("mounts"),
        v("groups"),
        checked("read_only"),
        v("max_sessions"),
        v("rules"),
    )
}

fn record_values(u: &UserRecord) -> HashMap<String, String> {
    let mut v = HashMap::new();
    v.insert("name".into(), u.name.clone());
    if u.enabled {
        v.insert("enabled".into(), "on".into());
    }
    if u.read_only {
        v.insert("read_only".into(), "on".into());
    }
    v.insert("root".into(), u.root.to_string_lossy().into_owned());
    v.insert("initial_dir".into(), u.initial_dir.clone());
    v.insert("mounts".into(), u.mounts.iter().map(mount_text).collect::<Vec<_>>().join("\n"));
    v.insert("groups".into(), u.groups.join(", "));
    v.insert("max_sessions".into(), u.max_sessions.map(|n| n.to_string()).unwrap_or_default());
    v.insert("rules".into(), u.rules.join("\n"));
    v
}

pub async fn user_form(
    State(state): State<Arc<AdminState>>,
    Viewer(admin): Viewer,
    Query(params): Params,
) -> Response {
    let name = params.get("name").cloned().unwrap_or_default();
    if name.is_empty() {
        let mut values = HashMap::new();
        values.insert("enabled".into(), "on".into());
        values.insert("initial_dir".into(), "/".into());
        return render(&admin, "Add a user", "/users", &user_form_body(&admin, None, &values, ""));
    }
    match store(&state).and_then(|s| s.get(&name).map_err(|e| e.to_string())) {
        Ok(Some(u)) => render(
            &admin,
            &format!("User {}", u.name),
            "/users",
            &user_form_body(&admin, Some(&u.name), &record_values(&u), ""),
        ),
        Ok(None) => back("/users", "error", &format!("No user `{name}`.")),
        Err(e) => back("/users", "error", &e),
    }
}

/// Builds the record a form describes (starting from the stored one when
/// editing), or says what is wrong.
fn record_from_form(
    form: &HashMap<String, String>,
    existing: Option<UserRecord>,
) -> Result<UserRecord, String> {
    let name = field(form, "name").to_string();
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let hash = match (&existing, password.is_empty()) {
        (Some(u), true) => u.password_hash.clone(),
        (None, true) => return Err("A new user needs a password.".into()),
        (_, false) => hash_password(password).map_err(|e| e.to_string())?,
    };
    let root = PathBuf::from(field(form, "root"));
    if !root.is_dir() {
        return Err(format!("Root directory `{}` does not exist.", root.display()));
    }
    let mut record = existing.unwrap_or_else(|| UserRecord::new(name.clone(), hash.clone(), root.clone()));
    record.name = name;
    record.password_hash = hash;
    record.root = root;
    record.enabled = form.get("enabled").is_some_and(|v| v == "on");
    record.read_only = form.get("read_only").is_some_and(|v| v == "on");
    let initial = field(form, "initial_dir");
    record.initial_dir = normalize("/", if initial.is_empty() { "/" } else { initial })
        .map_err(|e| format!("Initial directory: {e}"))?;
    record.groups =
        field(form, "groups").split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect();
    record.mounts = field(form, "mounts")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let m = MountSpec::parse(l).map_err(|e| format!("Mount `{l}`: {e}"))?;
            if !m.real_path.is_absolute() || !m.real_path.is_dir() {
                return Err(format!(
                    "Mount `{l}`: `{}` is not an existing absolute directory",
                    m.real_path.display()
                ));
            }
            Ok(m)
        })
        .collect::<Result<_, String>>()?;
    let max = field(form, "max_sessions");
    record.max_sessions = if max.is_empty() {
        None
    } else {
        Some(max.parse().map_err(|_| "Max sessions: a whole number".to_string())?)
    };
    record.rules = field(form, "rules")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| if l.starts_with('{') { l.to_string() } else { format!("{{ {l} }}") })
        .collect();
    record.validate().map_err(|e| e.to_string())?;
    Ok(record)
}

pub async fn user_save(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let original = field(&form, "original").to_string();
    let outcome = tokio::task::spawn_blocking({
        let state = state.clone();
        let form = form.clone();
        let original = original.clone();
        move || -> Result<String, String> {
            let store = store(&state)?;
            let existing =
                if original.is_empty() { None } else { store.get(&original).map_err(|e| e.to_string())? };
            if !original.is_empty() && existing.is_none() {
                return Err(format!("No user `{original}` any more."));
            }
            let record = record_from_form(&form, existing)?;
            if record.name != original && store.get(&record.name).map_err(|e| e.to_string())?.is_some() {
                return Err(format!("A user `{}` exists already.", record.name));
            }
            store.put(&record).map_err(|e| e.to_string())?;
            if !original.is_empty() && record.name != original {
                store.delete(&original).map_err(|e| e.to_string())?;
            }
            Ok(record.name)
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match outcome {
        Ok(name) => {
            let verb = if original.is_empty() { "added" } else { "changed" };
            tracing::info!(admin = %admin.name, user = %name, "user {verb} by an admin");
            back("/users", "ok", &format!("User {name} {verb}."))
        }
        Err(e) => {
            let title =
                if original.is_empty() { "Add a user".to_string() } else { format!("User {original}") };
            let existing = (!original.is_empty()).then_some(original.as_str());
            let mut r = render(&admin, &title, "/users", &user_form_body(&admin, existing, &form, &e));
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}

pub async fn user_delete(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let name = field(&form, "name").to_string();
    let deleted = store(&state).and_then(|s| s.delete(&name).map_err(|e| e.to_string()));
    match deleted {
        Ok(true) => {
            tracing::info!(admin = %admin.name, user = %name, "user deleted by an admin");
            back("/users", "ok", &format!("User {name} deleted."))
        }
        Ok(false) => back("/users", "error", &format!("No user `{name}`.")),
        Err(e) => back("/users", "error", &e),
    }
}

// ---- Permissions -----------------------------------------------------------

pub async fn permissions(
    State(state): State<Arc<AdminState>>,
    Viewer(admin): Viewer,
    Query(params): Params,
) -> Response {
    let live = state.shared.live();
    let mut body = flash(&params);
    body.push_str("<h2>Rules</h2>");
    if live.config.acl.rule.is_empty() {
        body.push_str("<p class=\"muted\">No rule: the permission defaults decide.</p>");
    } else {
        body.push_str("<table id=\"rules\"><tr><th>#</th><th>Who</th><th>Where</th><th>Allow</th><th>Deny</th><th>Only</th><th></th></tr>");
        for (i, r) in live.config.acl.rule.iter().enumerate() {
            let place = [("path", &r.path), ("tree", &r.tree), ("pattern", &r.pattern)]
                .iter()
                .find_map(|(k, v)| v.as_ref().map(|v| format!("{k} <code>{}</code>", esc(v))))
                .unwrap_or_default();
            let index = i.to_string();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{place}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
                i + 1,
                esc(&r.who.join(", ")),
                esc(&r.allow.join(", ")),
                esc(&r.deny.join(", ")),
                esc(&r.only.join(", ")),
                if i > 0 { button_form("/permissions/up", &admin.csrf, &[("index", &index)], "Up", "secondary") } else { String::new() },
                button_form("/permissions/delete", &admin.csrf, &[("index", &index)], "Delete", "danger"),
            );
        }
        body.push_str("</table>");
    }
    let ops: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
    let _ = write!(
        body,
        "<h2>Add a rule</h2><form method=\"post\" action=\"/permissions/add\" class=\"card\">{}<div class=\"grid\">\
         <label for=\"who\">Who</label><div><input type=\"text\" id=\"who\" name=\"who\" placeholder=\"alice, @staff, anonymous, *\" required></div>\
         <label for=\"kind\">Where</label><div style=\"display:flex;gap:8px\"><select id=\"kind\" name=\"kind\" style=\"width:auto;flex:none\">\
         <option value=\"tree\">tree (and below)</option><option value=\"path\">path (itself)</option><option value=\"pattern\">pattern</option></select>\
         <input type=\"text\" id=\"place\" name=\"place\" placeholder=\"/srv/ftp/pub\" required></div>\
         <label for=\"allow\">Allow</label><div><input type=\"text\" id=\"allow\" name=\"allow\" placeholder=\"read, list\"></div>\
         <label for=\"deny\">Deny</label><div><input type=\"text\" id=\"deny\" name=\"deny\" placeholder=\"delete\"><div class=\"hint\">operations: {} (or shorthands such as read, write, all)</div></div>\
         </div><div class=\"actions\"><button type=\"submit\">Add rule</button></div></form>",
        csrf_field(&admin.csrf),
        esc(&ops.join(", ")),
    );
    let (user, path, op) = (
        params.get("user").cloned().unwrap_or_default(),
        params.get("path").cloned().unwrap_or_default(),
        params.get("op").cloned().unwrap_or_else(|| "read".into()),
    );
    let mut options = String::new();
    for o in &ops {
        let sel = if *o == op { " selected" } else { "" };
        let _ = write!(options, "<option{sel}>{o}</option>");
    }
    let _ = write!(
        body,
        "<h2>Explain</h2><form method=\"get\" action=\"/permissions\" class=\"card\" style=\"display:flex;gap:8px\">\
         <input type=\"text\" name=\"user\" placeholder=\"user\" value=\"{}\" style=\"width:160px\">\
         <input type=\"text\" name=\"path\" placeholder=\"/pub/file or a real path\" value=\"{}\">\
         <select name=\"op\" style=\"width:150px\">{options}</select><button type=\"submit\" class=\"secondary\">Explain</button></form>",
        esc(&user),
        esc(&path)
    );
    if !user.is_empty() && !path.is_empty() {
        let config = live.config.clone();
        let answer =
            tokio::task::spawn_blocking(move || explain(&config, &user, &path, &op, PathKind::Guess))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        match answer {
            Ok(text) => {
                let _ = write!(body, "<pre id=\"explanation\">{}</pre>", esc(&text));
            }
            Err(e) => body.push_str(&notice("error", &e)),
        }
    }
    render(&admin, "Permissions", "/permissions", &body)
}

fn names(text: &str) -> Array {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

fn rules_mut(doc: &mut toml_edit::DocumentMut) -> Result<&mut ArrayOfTables, String> {
    let acl = doc.entry("acl").or_insert_with(|| Item::Table(Table::new()));
    let acl = acl.as_table_mut().ok_or("`acl` is not a table")?;
    acl.set_implicit(true);
    let rules = acl.entry("rule").or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    rules
        .as_array_of_tables_mut()
        .ok_or_else(|| "`acl.rule` is not a list of [[acl.rule]] tables".to_string())
}

async fn change_rules(
    state: &Arc<AdminState>,
    admin: &AdminSession,
    what: &str,
    edit: impl FnOnce(&mut ArrayOfTables) -> Result<(), String>,
) -> Response {
    match config_file::change(&state.shared, &admin.name, what, |doc| edit(rules_mut(doc)?)).await {
        Ok(()) => back("/permissions", "ok", &format!("Rule {what}; the server has reloaded.")),
        Err(e) => back("/permissions", "error", &e.0.join("\n\n")),
    }
}

pub async fn rule_add(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let kind = match field(&form, "kind") {
        k @ ("tree" | "path" | "pattern") => k.to_string(),
        _ => return back("/permissions", "error", "Where: choose tree, path or pattern."),
    };
    let mut table = Table::new();
    table.insert("who", value(names(field(&form, "who"))));
    table.insert(&kind, value(field(&form, "place")));
    for key in ["allow", "deny"] {
        let list = names(field(&form, key));
        if !list.is_empty() {
            table.insert(key, value(list));
        }
    }
    change_rules(&state, &admin, "added", move |rules| {
        rules.push(table);
        Ok(())
    })
    .await
}

fn index(form: &HashMap<String, String>) -> Option<usize> {
    field(form, "index").parse().ok()
}

pub async fn rule_delete(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let Some(i) = index(&form) else { return back("/permissions", "error", "No such rule.") };
    change_rules(&state, &admin, "deleted", move |rules| {
        if i >= rules.len() {
            return Err("No such rule (the file changed meanwhile?).".into());
        }
        rules.remove(i);
        Ok(())
    })
    .await
}

pub async fn rule_up(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    let Some(i) = index(&form) else { return back("/permissions", "error", "No such rule.") };
    change_rules(&state, &admin, "moved up", move |rules| {
        if i == 0 || i >= rules.len() {
            return Err("No such rule (the file changed meanwhile?).".into());
        }
        let mut tables: Vec<Table> = rules.iter().cloned().collect();
        tables.swap(i - 1, i);
        rules.clear();
        for t in tables {
            rules.push(t);
        }
        Ok(())
    })
    .await
}
