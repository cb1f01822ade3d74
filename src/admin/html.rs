//! HTML for the admin pages: escaping and the common layout. Pages are
//! plain server-rendered HTML (no script needed), styled by one small
//! stylesheet compiled into the binary.

use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = include_str!("style.css");

/// The navigation entries: path and label.
const NAV: &[(&str, &str)] =
    &[("/", "Dashboard"), ("/users", "Users"), ("/permissions", "Permissions"), ("/settings", "Settings")];

/// A whole page. `admin` is the logged-in admin (none on the login page),
/// `csrf` the token the logout form needs.
pub fn page(title: &str, active: &str, admin: Option<(&str, &str)>, body: &str) -> String {
    let mut nav = String::new();
    if let Some((name, csrf)) = admin {
        nav.push_str("<nav>");
        for (path, label) in NAV {
            let class = if *path == active { " class=\"active\"" } else { "" };
            let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
        }
        let _ = write!(
            nav,
            "<form method=\"post\" action=\"/logout\" class=\"logout\">{}<span>{}</span>\
             <button type=\"submit\">Log out</button></form></nav>",
            csrf_field(csrf),
            esc(name)
        );
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · ferroftpd admin</title><style>{STYLE}</style></head>\
         <body><header><span class=\"brand\">ferroftpd</span>{nav}</header><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

/// The hidden CSRF field every form that changes something carries.
pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(token))
}

/// A notice box: `kind` is "ok" or "error".
pub fn notice(kind: &str, text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    format!("<div class=\"notice {kind}\" role=\"status\">{}</div>", esc(text))
}

/// A small form with one button posting `fields` to `action`.
pub fn button_form(action: &str, csrf: &str, fields: &[(&str, &str)], label: &str, class: &str) -> String {
    let mut hidden = csrf_field(csrf);
    for (k, v) in fields {
        let _ = write!(hidden, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v));
    }
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"inline\">{hidden}<button type=\"submit\" class=\"{class}\">{}</button></form>",
        esc(label)
    )
}

/// Bytes as a short human figure.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url("a b&c/d"), "a%20b%26c/d");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
