//! The Settings page: the authentication chain and the global options most
//! often changed, edited in the configuration file (comments kept),
//! validated as `check-config` does, with each problem shown next to its
//! field, then applied by reloading the server.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use toml_edit::{value, Array, DocumentMut, Item, Table};

use super::html::{csrf_field, esc, notice, page};
use super::{config_file, AdminSession, AdminState, Posted, Viewer};
use crate::config::Config;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string; empty removes the key (its default applies).
    Text,
    /// A whole number.
    Number,
    /// A comma-separated list of strings.
    List,
    /// `FIRST-LAST` ports.
    Range,
    Bool,
}

struct Field {
    key: &'static str,
    label: &'static str,
    kind: Kind,
    hint: &'static str,
}

const FIELDS: &[Field] = &[
    Field {
        key: "auth.chain",
        label: "Authentication chain",
        kind: Kind::List,
        hint: "modules asked in order: anonymous, userdb, pam",
    },
    Field {
        key: "server.listen",
        label: "Listen addresses",
        kind: Kind::List,
        hint: "comma separated; takes effect at restart",
    },
    Field { key: "server.banner", label: "Banner", kind: Kind::Text, hint: "the 220 greeting" },
    Field {
        key: "passive.port_range",
        label: "Passive ports",
        kind: Kind::Range,
        hint: "FIRST-LAST, or 0-0 for any free port",
    },
    Field {
        key: "passive.advertised_address",
        label: "Advertised address",
        kind: Kind::Text,
        hint: "the address PASV announces (behind NAT); empty: the control connection's",
    },
    Field {
        key: "limits.max_clients",
        label: "Max clients",
        kind: Kind::Number,
        hint: "all addresses together",
    },
    Field {
        key: "limits.max_clients_per_ip",
        label: "Max clients per address",
        kind: Kind::Number,
        hint: "",
    },
    Field {
        key: "limits.max_sessions_per_user",
        label: "Max sessions per user",
        kind: Kind::Number,
        hint: "0: no limit",
    },
    Field { key: "timeouts.login", label: "Login timeout (s)", kind: Kind::Number, hint: "" },
    Field { key: "timeouts.idle", label: "Idle timeout (s)", kind: Kind::Number, hint: "" },
    Field { key: "timeouts.data", label: "Data timeout (s)", kind: Kind::Number, hint: "" },
    Field {
        key: "tls.certificate",
        label: "TLS certificate",
        kind: Kind::Text,
        hint: "PEM file; empty: no FTPS",
    },
    Field { key: "tls.key", label: "TLS key", kind: Kind::Text, hint: "PEM file" },
    Field { key: "tls.require_login", label: "Require TLS for logins", kind: Kind::Bool, hint: "" },
];

/// A field's value in the running configuration, as the form shows it.
fn current(c: &Config, key: &str) -> String {
    let join = |v: Vec<String>| v.join(", ");
    match key {
        "auth.chain" => join(c.auth.chain.clone()),
        "server.listen" => join(c.server.listen.iter().map(|a| a.to_string()).collect()),
        "server.banner" => c.server.banner.clone(),
        "passive.port_range" => format!("{}-{}", c.passive.port_range[0], c.passive.port_range[1]),
        "passive.advertised_address" => {
            c.passive.advertised_address.map(|a| a.to_string()).unwrap_or_default()
        }
        "limits.max_clients" => c.limits.max_clients.to_string(),
        "limits.max_clients_per_ip" => c.limits.max_clients_per_ip.to_string(),
        "limits.max_sessions_per_user" => c.limits.max_sessions_per_user.to_string(),
        "timeouts.login" => c.timeouts.login.to_string(),
        "timeouts.idle" => c.timeouts.idle.to_string(),
        "timeouts.data" => c.timeouts.data.to_string(),
        "tls.certificate" => c.tls.certificate.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "tls.key" => c.tls.key.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "tls.require_login" => {
            if c.tls.require_login {
                "on".into()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

fn form_html(
    admin: &AdminSession,
    values: &HashMap<String, String>,
    errors: &HashMap<&str, Vec<String>>,
    general: &[String],
    note: &str,
) -> String {
    let mut body = String::new();
    body.push_str(note);
    for g in general {
        body.push_str(&notice("error", g));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/settings\" class=\"card\">{}<div class=\"grid\">",
        csrf_field(&admin.csrf)
    );
    for f in FIELDS {
        let id = f.key.replace('.', "-");
        let v = values.get(f.key).map(String::as_str).unwrap_or("");
        let errs = errors.get(f.key);
        let class = if errs.is_some() { " class=\"invalid\"" } else { "" };
        let input = match f.kind {
            // The hidden "off" is sent when the box is unchecked; a checked
            // box's "on" comes after it and wins.
            Kind::Bool => format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"off\"><input type=\"checkbox\" id=\"{id}\" name=\"{k}\"{checked}{class}>",
                k = f.key,
                checked = if v == "on" { " checked" } else { "" }
            ),
            _ => format!("<input type=\"text\" id=\"{id}\" name=\"{}\" value=\"{}\"{class}>", f.key, esc(v)),
        };
        let hint = if f.hint.is_empty() {
            String::new()
        } else {
            format!("<div class=\"hint\">{}</div>", esc(f.hint))
        };
        let err = errs.map_or(String::new(), |e| {
            e.iter().map(|m| format!("<div class=\"field-error\">{}</div>", esc(m))).collect::<String>()
        });
        let _ = write!(body, "<label for=\"{id}\">{}</label><div>{input}{hint}{err}</div>", esc(f.label));
    }
    body.push_str(
        "</div><div class=\"actions\"><button type=\"submit\">Save and reload</button></div></form>",
    );
    body.push_str("<p class=\"hint\">Saving checks the file exactly as <code>ferroftpd check-config</code> does; nothing is written if it finds a problem.</p>");
    body
}

pub async fn page_get(
    state: &AdminState,
    admin: &AdminSession,
    params: &HashMap<String, String>,
) -> Response {
    let live = state.shared.live();
    let values: HashMap<String, String> =
        FIELDS.iter().map(|f| (f.key.to_string(), current(&live.config, f.key))).collect();
    let mut note = String::new();
    match config_file::path(&state.shared) {
        Some(p) => {
            let _ = write!(note, "<p class=\"muted\">File: <code>{}</code></p>", esc(&p.display().to_string()));
        }
        None => note.push_str(&notice("error", "The server runs without a configuration file (demo setup): settings cannot be saved. Start it with --config FILE.")),
    }
    if let Some(m) = params.get("ok") {
        note.push_str(&notice("ok", m));
    }
    let body = form_html(admin, &values, &HashMap::new(), &[], &note);
    Html(page("Settings", "/settings", Some((&admin.name, &admin.csrf)), &body)).into_response()
}

pub async fn show(
    State(state): State<Arc<AdminState>>,
    Viewer(admin): Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    page_get(&state, &admin, &params).await
}

/// Writes one field into the document.
fn set(doc: &mut DocumentMut, f: &Field, raw: &str) -> Result<(), String> {
    let (section, key) = f.key.split_once('.').ok_or("bad key")?;
    let table = doc.entry(section).or_insert_with(|| Item::Table(Table::new()));
    let table = table.as_table_mut().ok_or_else(|| format!("`{section}` is not a table"))?;
    let raw = raw.trim();
    let list = |s: &str| s.split(',').map(str::trim).filter(|x| !x.is_empty()).collect::<Array>();
    let item = match f.kind {
        Kind::Text if raw.is_empty() => {
            table.remove(key);
            return Ok(());
        }
        Kind::Text => value(raw),
        Kind::Number => {
            value(raw.parse::<i64>().map_err(|_| format!("{}: `{raw}` is not a whole number", f.key))?)
        }
        Kind::List => value(list(raw)),
        Kind::Bool => value(raw == "on"),
        Kind::Range => {
            let (a, b) = raw
                .split_once('-')
                .ok_or_else(|| format!("{}: write FIRST-LAST, e.g. 40000-40100", f.key))?;
            let port = |p: &str| {
                p.trim().parse::<i64>().map_err(|_| format!("{}: `{}` is not a port", f.key, p.trim()))
            };
            let mut arr = Array::new();
            arr.push(port(a)?);
            arr.push(port(b)?);
            value(arr)
        }
    };
    // Keep the comment that follows an existing value.
    match table.get_mut(key) {
        Some(existing) if existing.is_value() => {
            let decor = existing.as_value().map(|v| v.decor().clone());
            *existing = item;
            if let (Some(decor), Some(v)) = (decor, existing.as_value_mut()) {
                *v.decor_mut() = decor;
            }
        }
        _ => {
            table.insert(key, item);
        }
    }
    Ok(())
}

pub async fn save(State(state): State<Arc<AdminState>>, Posted { admin, form }: Posted) -> Response {
    // A field left out of the form keeps its value.
    let live = state.shared.live();
    let submitted: HashMap<String, String> = FIELDS
        .iter()
        .map(|f| {
            let v = form.get(f.key).cloned().unwrap_or_else(|| current(&live.config, f.key));
            let v = if f.kind == Kind::Bool && v == "off" { String::new() } else { v };
            (f.key.to_string(), v)
        })
        .collect();
    // Only what changed is written, so the file keeps its own layout.
    let changed: Vec<(&'static Field, String)> = FIELDS
        .iter()
        .filter_map(|f| {
            let v = submitted.get(f.key).cloned().unwrap_or_default();
            (v.trim() != current(&live.config, f.key)).then_some((f, v))
        })
        .collect();
    if changed.is_empty() {
        return Redirect::to("/settings?ok=Nothing%20changed.").into_response();
    }
    let what = changed.iter().map(|(f, _)| f.key).collect::<Vec<_>>().join(", ");
    let result = config_file::change(&state.shared, &admin.name, &what, move |doc| {
        changed.iter().try_for_each(|(f, v)| set(doc, f, v))
    })
    .await;
    match result {
        Ok(()) => Redirect::to("/settings?ok=Saved%3B%20the%20server%20has%20reloaded.").into_response(),
        Err(rejected) => {
            // Each problem goes next to the field it names.
            let mut by_field: HashMap<&str, Vec<String>> = HashMap::new();
            let mut general = Vec::new();
            for problem in rejected.0 {
                match FIELDS.iter().find(|f| {
                    problem.contains(&format!("{}:", f.key)) || problem.starts_with(&format!("{}:", f.key))
                }) {
                    Some(f) => by_field.entry(f.key).or_default().push(problem),
                    None => general.push(problem),
                }
            }
            if general.is_empty() {
                general.push("Not saved: fix the fields marked below.".into());
            }
            let body = form_html(&admin, &submitted, &by_field, &general, "");
            let mut r =
                Html(page("Settings", "/settings", Some((&admin.name, &admin.csrf)), &body)).into_response();
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}
