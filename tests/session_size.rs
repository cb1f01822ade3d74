//! The memory an idle client costs is mostly its session's future: a state
//! machine as large as the largest state any command handler keeps across
//! an `await`. Handlers with big states (TLS handshakes, the cluster
//! round trips, an object store's listing walk) box them, so this stays
//! small. This test reads the size, so a handler that forgets to box shows
//! up here instead of only in the benchmark's per-client figure.

mod common;

use std::net::SocketAddr;

use common::*;
use ferroftpd::server::limits::Admission;
use ferroftpd::server::ListenerInfo;

/// Measured: 904 bytes (debug build, x86_64), with a little room: a new
/// unboxed state of a few hundred bytes fails here.
const MOST_BYTES: usize = 1024;

#[test]
fn the_session_future_stays_small() {
    let server = TestServer::start();
    let shared = server.shared();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let size = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let peer: SocketAddr = stream.local_addr().unwrap();
        let Admission::Admitted(guard) = shared.limits.admit(peer.ip(), &shared.live().config.limits) else {
            panic!("not admitted");
        };
        let info = ListenerInfo { configured: addr, implicit_tls: false };
        let session = ferroftpd::session::run(stream, peer, info, shared.clone(), guard);
        std::mem::size_of_val(&session)
    });
    println!("session future: {size} bytes");
    assert!(size <= MOST_BYTES, "the session future grew to {size} bytes: box the new large await state");
}
