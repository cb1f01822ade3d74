//! The web admin: a small HTTP server inside the daemon with pages to watch
//! and end live sessions, lift bans, edit virtual users, permission rules
//! and settings. Server-rendered HTML, no build step, everything in the
//! binary.
//!
//! Security: admins are separate accounts (argon2id, [`accounts`]); a login
//! gets a random session cookie (HttpOnly, SameSite=Strict, Secure over
//! HTTPS) and a CSRF token that every form which changes something must
//! carry; failed logins are throttled per address; every change is logged
//! with the admin's name. Loopback only unless `allow_remote` is set.

pub mod accounts;
mod config_file;
mod html;
mod pages;
mod settings;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

use crate::config::AdminConfig;
use crate::server::Shared;
use accounts::AdminAccounts;

/// Name of the session cookie.
const COOKIE: &str = "ferroftpd_admin";
/// Failed admin logins from one address within [`THROTTLE_WINDOW`] before
/// further attempts are refused.
const THROTTLE_FAILURES: u32 = 5;
const THROTTLE_WINDOW: Duration = Duration::from_secs(300);

/// What every handler shares.
pub struct AdminState {
    pub shared: Arc<Shared>,
    pub accounts: AdminAccounts,
    sessions: Mutex<HashMap<String, AdminSession>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    secure: bool,
    idle: Duration,
}

/// A logged-in admin.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub name: String,
    pub csrf: String,
    last_seen: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn token() -> String {
    Alphanumeric.sample_string(&mut OsRng, 32)
}

/// Binds the admin's listener and serves it in the background; returns the
/// address it listens on.
pub fn start(shared: Arc<Shared>, config: &AdminConfig) -> anyhow::Result<SocketAddr> {
    let accounts = AdminAccounts::open(&config.users)?;
    let tls = if config.tls {
        let setup = shared
            .live()
            .tls
            .clone()
            .ok_or_else(|| anyhow::anyhow!("admin.tls needs tls.certificate and tls.key"))?;
        Some(setup)
    } else {
        None
    };
    let state = Arc::new(AdminState {
        shared,
        accounts,
        sessions: Mutex::default(),
        failures: Mutex::default(),
        secure: tls.is_some(),
        idle: Duration::from_secs(config.session_minutes.max(1) * 60),
    });
    let std_listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| anyhow::anyhow!("admin: cannot listen on {}: {e}", config.listen))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let app = router(state).into_make_service_with_connect_info::<Peer>();
    match tls {
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "admin server stopped");
                }
            });
        }
        Some(setup) => {
            let listener = tls_listener::TlsListener { tcp: listener, acceptor: setup.http_acceptor() };
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "admin server stopped");
                }
            });
        }
    }
    let scheme = if config.tls { "https" } else { "http" };
    tracing::info!(url = %format!("{scheme}://{addr}/"), "admin listening");
    Ok(addr)
}

fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(pages::dashboard))
        .route("/sessions/disconnect", post(pages::disconnect))
        .route("/bans/unban", post(pages::unban))
        .route("/users", get(pages::users))
        .route("/users/edit", get(pages::user_form))
        .route("/users/save", post(pages::user_save))
        .route("/users/delete", post(pages::user_delete))
        .route("/permissions", get(pages::permissions))
        .route("/permissions/add", post(pages::rule_add))
        .route("/permissions/delete", post(pages::rule_delete))
        .route("/permissions/up", post(pages::rule_up))
        .route("/settings", get(settings::show).post(settings::save))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, Html(html::page("Not found", "", None, "<p>No such page.</p>")))
        })
        .with_state(state)
}

impl AdminState {
    /// The admin behind the request's cookie, refreshing its idle timer.
    fn admin(&self, headers: &HeaderMap) -> Option<AdminSession> {
        let cookie = cookie_value(headers)?;
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < self.idle);
        let s = sessions.get_mut(cookie)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// The admin of a form post whose CSRF token matches, or the response
    /// refusing it (login page or 403).
    fn authorize_post(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<AdminSession, Box<Response>> {
        let Some(admin) = self.admin(headers) else {
            return Err(Box::new(Redirect::to("/login").into_response()));
        };
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), admin.csrf.as_bytes()) {
            tracing::warn!(admin = %admin.name, "admin request refused: missing or wrong CSRF token");
            let page = html::page(
                "Refused",
                "",
                None,
                "<p>The form's CSRF token is missing or wrong. Reload the page and try again.</p>",
            );
            return Err(Box::new((StatusCode::FORBIDDEN, Html(page)).into_response()));
        }
        Ok(admin)
    }

    fn throttled(&self, ip: IpAddr) -> bool {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        failures.retain(|_, (_, since)| now.duration_since(*since) < THROTTLE_WINDOW);
        failures.get(&ip).is_some_and(|(n, _)| *n >= THROTTLE_FAILURES)
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = lock(&self.failures);
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    fn cookie(&self, value: &str, max_age: Option<u64>) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let age = max_age.map_or(String::new(), |a| format!("; Max-Age={a}"));
        let text = format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/{secure}{age}");
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("ferroftpd_admin=; Path=/"))
    }
}

/// The client's address, for throttling and logs, over HTTP or HTTPS.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls_listener::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls_listener::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then_some(v)
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The logged-in admin viewing a page; without a session the request is
/// sent to the login page before the handler runs.
pub struct Viewer(pub AdminSession);

impl axum::extract::FromRequestParts<Arc<AdminState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AdminState>,
    ) -> Result<Viewer, Response> {
        state.admin(&parts.headers).map(Viewer).ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// A form post from a logged-in admin whose CSRF token matches; anything
/// else is answered before the handler runs (login page or 403).
pub struct Posted {
    pub admin: AdminSession,
    pub form: HashMap<String, String>,
}

impl axum::extract::FromRequest<Arc<AdminState>> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &Arc<AdminState>) -> Result<Posted, Response> {
        let headers = req.headers().clone();
        let Form(form) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let admin = state.authorize_post(&headers, &form).map_err(|r| *r)?;
        Ok(Posted { admin, form })
    }
}

fn login_form(error: &str) -> String {
    format!(
        "<div class=\"login\">{}<form method=\"post\" action=\"/login\" class=\"card\">\
         <div class=\"grid\" style=\"grid-template-columns: 90px 1fr\">\
         <label for=\"name\">Admin</label><input type=\"text\" id=\"name\" name=\"name\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         </div><div class=\"actions\"><button type=\"submit\">Log in</button></div></form></div>",
        html::notice("error", error)
    )
}

async fn login_page(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if state.admin(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    Html(html::page("Log in", "", None, &login_form(""))).into_response()
}

async fn login(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ip = peer.ip();
    if state.throttled(ip) {
        tracing::warn!(%peer, "admin login refused: too many failures from this address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Html(html::page(
                "Log in",
                "",
                None,
                &login_form("Too many failed logins from your address; wait a few minutes."),
            )),
        )
            .into_response();
    }
    let name = form.get("name").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    if !state.accounts.verify(name, password).await {
        state.failed(ip);
        tracing::warn!(%peer, admin = %name, "admin login failed");
        return (
            StatusCode::UNAUTHORIZED,
            Html(html::page("Log in", "", None, &login_form("Wrong name or password."))),
        )
            .into_response();
    }
    let session = token();
    lock(&state.sessions).insert(
        session.clone(),
        AdminSession { name: name.to_string(), csrf: token(), last_seen: Instant::now() },
    );
    tracing::info!(%peer, admin = %name, "admin logged in");
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.cookie(&session, None));
    response
}

async fn logout(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Posted { admin, .. }: Posted,
) -> Response {
    if let Some(cookie) = cookie_value(&headers) {
        lock(&state.sessions).remove(cookie);
    }
    tracing::info!(admin = %admin.name, "admin logged out");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.cookie("", Some(0)));
    response
}

/// HTTPS for the admin with the FTPS certificate.
mod tls_listener {
    use std::net::SocketAddr;

    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::server::TlsStream;
    use tokio_rustls::TlsAcceptor;

    pub struct TlsListener {
        pub tcp: TcpListener,
        pub acceptor: TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let (tcp, peer) = match self.tcp.accept().await {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let handshake =
                    tokio::time::timeout(std::time::Duration::from_secs(10), self.acceptor.accept(tcp)).await;
                match handshake {
                    Ok(Ok(stream)) => return (stream, peer),
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin: TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "admin: TLS handshake timed out"),
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }
}
