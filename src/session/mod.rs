//! One client's control connection: the state machine (login, cwd, TYPE,
//! REST, RNFR, data setup) and the loop that reads commands while a transfer
//! runs beside it, so ABOR, STAT and NOOP are answered during transfers.
//!
//! Handlers are grouped by concern: [`login`], [`navigation`], [`files`],
//! [`transfer`] (data commands), [`info`] (FEAT, HELP, STAT, SYST …),
//! [`security`] (AUTH, PBSZ, PROT, CCC and the TLS policy).

mod control;
mod errors;
mod facts;
mod files;
mod info;
mod login;
mod navigation;
mod rate;
mod security;
mod transfer;
mod user;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::data::{DataSetup, Progress};
use crate::proto::{self, Command, Reply, TransferType};
use crate::server::limits::ConnectionGuard;
use crate::server::registry::{Registration, TransferView};
use crate::server::{ListenerInfo, Shared};
use control::{Control, Incoming};
use security::TlsState;
use transfer::{Finished, Transfer};
use user::LoggedIn;

/// Serves one control connection until it ends: the future to spawn.
///
/// Not an `async fn`, and neither is [`serve_control`]: an async function's
/// future keeps its arguments beside the values moved out of them, which
/// would hold the connection's state twice for the whole session. A plain
/// connection's future is the session itself; an implicit-TLS one is boxed
/// with its handshake, whose state is large and lives only until it ends.
pub fn run(
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerInfo,
    shared: Arc<Shared>,
    guard: ConnectionGuard,
) -> impl Future<Output = ()> + Send {
    use futures_util::future::Either;
    let local = match stream.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "connection lost before the greeting");
            return Either::Left(Box::pin(std::future::ready(())) as Pin<Box<dyn Future<Output = ()> + Send>>);
        }
    };
    let _ = stream.set_nodelay(true);
    let write_timeout = Duration::from_secs(shared.live().config.timeouts.data.max(1));
    if listener.implicit_tls {
        return Either::Left(Box::pin(async move {
            let handshake = security::implicit_handshake(stream, &shared)
                .instrument(tracing::info_span!("session", %peer));
            if let Some((stream, tls)) = handshake.await {
                let control = Control::new_tls(stream, write_timeout);
                serve_control(control, Some(tls), peer, local, listener, shared, guard).await;
            }
        }));
    }
    Either::Right(serve_control(
        Control::new(stream, write_timeout),
        None,
        peer,
        local,
        listener,
        shared,
        guard,
    ))
}

/// Serves one control connection over a Unix-domain socket (inetd mode on
/// a socketpair): taken for a loopback client at `peer`, with passive data
/// connections on `local`'s address. No TLS on such a connection.
#[cfg(unix)]
pub fn run_unix(
    stream: tokio::net::UnixStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    guard: ConnectionGuard,
) -> impl Future<Output = ()> + Send {
    let write_timeout = Duration::from_secs(shared.live().config.timeouts.data.max(1));
    let control = Control::new_unix(stream, write_timeout);
    let listener = ListenerInfo { configured: local, implicit_tls: false };
    serve_control(control, None, peer, local, listener, shared, guard)
}

/// Not an `async fn`: the arguments of one are kept in its future beside
/// the values moved out of them, so the session would be held twice.
fn serve_control(
    control: Control,
    tls: Option<Box<TlsState>>,
    peer: SocketAddr,
    local: SocketAddr,
    listener: ListenerInfo,
    shared: Arc<Shared>,
    guard: ConnectionGuard,
) -> impl Future<Output = ()> + Send {
    let span = tracing::info_span!("session", %peer);
    let rate = rate::CommandRate::new(&shared.live().config.limits);
    // Only a server with the web admin keeps a registry of its sessions, so
    // idle clients pay nothing for a dashboard nobody looks at.
    let registration = shared.live().config.admin.is_some().then(|| shared.registry.register(peer));
    let mut session = Session {
        control,
        rate,
        shared,
        peer,
        local,
        listener,
        tls,
        user: None,
        pending_user: None,
        failures: 0,
        params: Params::default(),
        transfer: None,
        deferred: None,
        registration,
        _guard: guard,
    };
    async move { session.serve().await }.instrument(span)
}

/// Transfer parameters set by TYPE, REST, PASV/PORT …; reset by REIN.
#[derive(Debug)]
struct Params {
    ty: TransferType,
    rest: u64,
    data: DataSetup,
    /// After `EPSV ALL`, only EPSV may set up data connections.
    epsv_all: bool,
}

impl Default for Params {
    fn default() -> Self {
        // Binary by default: what every modern client wants and what
        // protects files from accidental conversion.
        Params { ty: TransferType::Image, rest: 0, data: DataSetup::None, epsv_all: false }
    }
}

/// What a handler wants the loop to do next.
enum Outcome {
    Reply(Reply),
    /// Send the preliminary reply (150) and run the transfer (boxed here
    /// already: the session keeps it boxed).
    Transfer(Reply, Box<Transfer>),
    /// Send the reply and close the connection.
    Close(Reply),
    /// Send the reply (234) and start TLS on the control connection.
    StartTls(Reply),
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome::Reply(reply)
    }
}

struct Session {
    control: Control,
    /// The command rate limit's bucket.
    rate: rate::CommandRate,
    shared: Arc<Shared>,
    peer: SocketAddr,
    local: SocketAddr,
    /// The listener that accepted the connection (TLS policy).
    listener: ListenerInfo,
    /// Present once the control connection is in TLS.
    tls: Option<Box<TlsState>>,
    user: Option<Box<LoggedIn>>,
    /// Name given by USER, waiting for PASS.
    pending_user: Option<String>,
    failures: u32,
    params: Params,
    /// Boxed, like everything that exists only while something happens, so
    /// an idle session stays small.
    transfer: Option<Box<Transfer>>,
    /// A command that arrived during a transfer and waits for its end.
    deferred: Option<Box<Command>>,
    /// The session's entry in the live-session registry (when the web
    /// admin is on).
    registration: Option<Registration>,
    _guard: ConnectionGuard,
}

enum Event {
    Input(std::io::Result<Incoming>),
    TransferDone(Finished),
    Timeout,
    /// An administrator ended the session.
    Kicked,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Resolves when an administrator disconnects the session; never without
/// a registry. The wait is boxed so the idle session's own state does not
/// grow by it.
async fn kicked(registration: &Option<Registration>) {
    match registration {
        Some(r) => Box::pin(r.kicked()).await,
        None => std::future::pending().await,
    }
}

impl Session {
    async fn serve(&mut self) {
        tracing::info!("connected");
        let banner = Reply::new(220, self.shared.live().config.server.banner.clone());
        // Straight to the connection: a 220 is never counted, and the idle
        // session's future stays as it was.
        if self.control.send(&banner).await.is_err() {
            return;
        }
        let started = Instant::now();
        loop {
            // Read at every turn so a reload applies to running sessions.
            let (timeouts, max_line) = {
                let live = self.shared.live();
                (live.config.timeouts.clone(), live.config.limits.max_line_length)
            };
            if self.transfer.is_none() {
                if let Some(cmd) = self.deferred.take() {
                    if !Box::pin(self.execute(*cmd)).await {
                        break;
                    }
                    continue;
                }
            }
            let event = match &mut self.transfer {
                Some(t) if self.deferred.is_some() => Event::TransferDone(t.future.as_mut().await),
                Some(t) => tokio::select! {
                    done = t.future.as_mut() => Event::TransferDone(done),
                    input = self.control.next(max_line) => Event::Input(input),
                    _ = kicked(&self.registration) => Event::Kicked,
                },
                None => {
                    let deadline = if self.user.is_some() {
                        Instant::now() + Duration::from_secs(timeouts.idle)
                    } else {
                        (started + Duration::from_secs(timeouts.login))
                            .min(Instant::now() + Duration::from_secs(timeouts.idle))
                    };
                    tokio::select! {
                        input = self.control.next(max_line) => Event::Input(input),
                        _ = tokio::time::sleep_until(deadline) => Event::Timeout,
                        _ = kicked(&self.registration) => Event::Kicked,
                    }
                }
            };
            // Boxed: handling an event needs far more state than waiting for one.
            let keep_going = Box::pin(self.on_event(event)).await;
            if !keep_going {
                break;
            }
        }
        if let Some(t) = self.transfer.take() {
            tracing::info!(command = t.command, path = %t.path, bytes = t.progress.bytes(), "transfer aborted by disconnect");
        }
        self.control.shutdown().await;
        tracing::info!(user = self.user.as_ref().map(|u| u.account.name.as_str()), "disconnected");
    }

    /// Acts on one event of the loop; false ends the session.
    async fn on_event(&mut self, event: Event) -> bool {
        if matches!(event, Event::Input(Ok(Incoming::Line(_) | Incoming::TooLong))) && !self.pace().await {
            return false;
        }
        match event {
            Event::Input(Ok(Incoming::Line(line))) => self.on_line(&line).await,
            Event::Input(Ok(Incoming::TooLong)) => {
                tracing::warn!("command line too long");
                self.reply(Reply::new(500, "Command line too long.")).await
            }
            Event::Input(Ok(Incoming::Closed)) => {
                tracing::debug!("client closed the control connection");
                false
            }
            Event::Input(Err(e)) => {
                tracing::debug!(error = %e, "control connection failed");
                false
            }
            Event::TransferDone(done) => match self.transfer.take() {
                Some(t) => {
                    if let Some(r) = &self.registration {
                        r.transfer_ended(t.command, t.progress.bytes());
                    }
                    let reply = Box::pin(self.finish_transfer(*t, done)).await;
                    self.reply(reply).await && !self.closed_for_shutdown().await
                }
                None => true,
            },
            Event::Kicked => {
                tracing::warn!("disconnected by an administrator");
                let _ = self.send(&Reply::new(421, "Disconnected by the administrator.")).await;
                false
            }
            Event::Timeout => {
                let what = if self.user.is_some() { "idle" } else { "login" };
                tracing::info!(timeout = what, "closing inactive session");
                let _ = self.send(&Reply::new(421, "Timeout: closing control connection.")).await;
                false
            }
        }
    }

    /// Applies the command rate limit to the command just read: waits for
    /// its turn, or closes a session that has flooded too long (false).
    async fn pace(&mut self) -> bool {
        let limits = self.shared.live().config.limits.clone();
        match self.rate.take(Instant::now(), &limits) {
            rate::Pace::Go => true,
            rate::Pace::Wait(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            rate::Pace::Close => {
                tracing::warn!(
                    rate = limits.commands_per_second,
                    secs = limits.max_throttled_seconds,
                    "command flood: closing"
                );
                let _ = self.send(&Reply::new(421, "Too many commands, closing connection.")).await;
                false
            }
        }
    }

    /// During a graceful shutdown, tells the client and returns true: the
    /// session must end (commands are refused, logins above all).
    async fn closed_for_shutdown(&mut self) -> bool {
        if !self.shared.drain.is_draining() {
            return false;
        }
        tracing::info!("closing for shutdown");
        // Boxed: runs once per session at most, so the write's state must
        // not enlarge every idle session.
        let reply = Reply::new(421, "Server shutting down, closing control connection.");
        let _ = Box::pin(self.send(&reply)).await;
        true
    }

    /// Sends a reply, counting it for the metrics if it is an error. Every
    /// reply of the session but the greeting goes through here.
    async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        if let Some(m) = &self.shared.metrics {
            m.reply(reply.code);
        }
        self.control.send(reply).await
    }

    /// Sends a reply; false if the connection is gone.
    async fn reply(&mut self, reply: Reply) -> bool {
        match self.send(&reply).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "cannot send reply");
                false
            }
        }
    }

    async fn on_line(&mut self, line: &[u8]) -> bool {
        let cmd = match proto::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::info!(error = %e, "bad command");
                return self.reply(Reply::new(e.code(), e.to_string())).await;
            }
        };
        match &cmd {
            Command::Pass(_) => tracing::debug!("PASS ****"),
            other => tracing::debug!(command = ?other, "command"),
        }
        if self.transfer.is_some() {
            match cmd {
                Command::Abor => return self.abort_transfer().await,
                Command::Stat(None) => {
                    let reply = self.transfer_status();
                    return self.reply(reply).await;
                }
                Command::Noop => return self.reply(Reply::new(200, "NOOP ok; transfer in progress.")).await,
                other => {
                    // Answered in order once the transfer ends.
                    self.deferred = Some(Box::new(other));
                    return true;
                }
            }
        }
        self.execute(cmd).await
    }

    /// Runs one command outside a transfer; false ends the session.
    async fn execute(&mut self, cmd: Command) -> bool {
        if self.closed_for_shutdown().await {
            return false;
        }
        // Boxed: the handlers' futures are large and only live while a
        // command runs, so an idle session's task stays small.
        match Box::pin(self.dispatch(cmd)).await {
            Outcome::Reply(reply) => self.reply(reply).await,
            Outcome::Close(reply) => {
                let _ = self.send(&reply).await;
                false
            }
            Outcome::Transfer(preliminary, transfer) => {
                if let Some(r) = &self.registration {
                    r.transfer_started(TransferView {
                        command: transfer.command,
                        path: transfer.path.clone(),
                        progress: transfer.progress.clone(),
                        started: transfer.started.into_std(),
                        size: transfer.size,
                    });
                }
                self.transfer = Some(transfer);
                self.reply(preliminary).await
            }
            Outcome::StartTls(reply) => {
                // Plain bytes read after AUTH must not pass for protected ones.
                let discarded = self.control.discard_pending();
                if discarded > 0 {
                    tracing::warn!(
                        bytes = discarded,
                        "discarded clear text sent after AUTH TLS (command injection?)"
                    );
                }
                self.reply(reply).await && self.start_tls().await
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Outcome {
        // RNTO must follow RNFR immediately: any other command forgets it.
        let rename_from = self.user.as_mut().and_then(|u| u.rename_from.take());
        match cmd {
            Command::User(name) => self.cmd_user(name),
            Command::Pass(password) => self.cmd_pass(password).await,
            Command::Acct(_) => Reply::new(202, "ACCT not needed.").into(),
            Command::Quit => Outcome::Close(Reply::new(221, "Goodbye.")),
            Command::Rein => self.cmd_rein(),
            Command::Noop => Reply::new(200, "NOOP ok.").into(),
            Command::Syst => Reply::new(215, "UNIX Type: L8").into(),
            Command::Feat => self.cmd_feat().into(),
            Command::Help(topic) => info::help(topic.as_deref()).into(),
            Command::Opts(args) => info::opts(&args).into(),
            Command::Host(_) if self.user.is_some() => Reply::new(503, "HOST must come before login.").into(),
            Command::Host(_) => Reply::new(220, "Host accepted.").into(),
            Command::Auth(mechanism) => self.cmd_auth(&mechanism),
            Command::Pbsz(size) => self.cmd_pbsz(&size).into(),
            Command::Prot(level) => self.cmd_prot(&level).into(),
            Command::Ccc => self.cmd_ccc().into(),
            Command::Abor => {
                // A passive port waiting for a connection is released too.
                self.params.data = DataSetup::None;
                Reply::new(225, "No transfer to abort.").into()
            }
            Command::Type(ty) => self.cmd_type(ty).into(),
            Command::Mode => Reply::new(200, "Mode set to S.").into(),
            Command::Stru => Reply::new(200, "Structure set to F.").into(),
            Command::Stat(None) => self.server_status().into(),
            cmd => match self.user.as_deref_mut() {
                None => Reply::new(530, "Please login with USER and PASS.").into(),
                Some(user) => {
                    let live = self.shared.live();
                    let data_tls =
                        security::data_policy(&live, self.listener, self.tls.as_deref(), &user.account);
                    let mut ctx = user::Ctx {
                        shared: &self.shared,
                        live: &live,
                        user,
                        params: &mut self.params,
                        peer: self.peer,
                        local: self.local,
                        data_tls,
                        registration: self.registration.as_ref(),
                    };
                    ctx.dispatch(cmd, rename_from).await
                }
            },
        }
    }

    fn cmd_type(&mut self, ty: TransferType) -> Reply {
        self.params.ty = ty;
        match ty {
            TransferType::Ascii => Reply::new(200, "Switching to ASCII mode."),
            TransferType::Image => Reply::new(200, "Switching to Binary mode."),
        }
    }

    async fn abort_transfer(&mut self) -> bool {
        if let Some(t) = self.transfer.take() {
            if let Some(r) = &self.registration {
                r.transfer_ended(t.command, t.progress.bytes());
            }
            // Dropping the future closes the data connection and discards an
            // unfinished replacement upload.
            tracing::info!(
                user = self.user.as_ref().map(|u| u.account.name.as_str()),
                command = t.command,
                path = %t.path,
                bytes = t.progress.bytes(),
                "transfer aborted by ABOR"
            );
            drop(t);
            if !self.reply(Reply::new(426, "Connection closed; transfer aborted.")).await {
                return false;
            }
        }
        self.reply(Reply::new(226, "ABOR successful.")).await
    }

    fn transfer_status(&self) -> Reply {
        match &self.transfer {
            Some(t) => Reply::new(
                213,
                format!("Status: {} {}, {} bytes transferred so far.", t.command, t.path, t.progress.bytes()),
            ),
            None => Reply::new(213, "No transfer in progress."),
        }
    }
}

/// Shared progress handle for a new transfer.
fn new_progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}
