//! The UDP query loop: blocking worker threads that receive a datagram, answer it through the
//! `Responder` and send the answer, with no async runtime between the socket and the answer
//! (readiness polling and task wake-ups cost more than the answer itself).
//!
//! Idle, a worker blocks in the kernel and wakes every [`POLL`] to notice shutdown. Receiving
//! in batches (`recvmmsg`) would save more system calls, but needs `unsafe`, which this crate
//! forbids.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::serve::{Responder, Role, Transport};

/// Largest request read; a longer datagram is dropped (no DNS query needs more).
const REQUEST_MAX: usize = 16 * 1024;

/// How often an idle worker checks for shutdown.
const POLL: Duration = Duration::from_millis(200);

/// Binds a UDP socket for the query loop (blocking, with the shutdown poll as read timeout).
pub fn bind(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(address)?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Answers datagrams on `socket` until `cancel` fires. Several workers may share a socket.
pub fn worker(
    socket: Arc<UdpSocket>,
    role: Role,
    responder: Arc<Responder>,
    cancel: CancellationToken,
) {
    let mut request = vec![0u8; REQUEST_MAX];
    let mut answer = Vec::with_capacity(4096);
    while !cancel.is_cancelled() {
        let (length, peer) = match socket.recv_from(&mut request) {
            Ok(received) => received,
            Err(error) => {
                if !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) {
                    // ICMP errors from earlier sends surface here on some systems.
                    debug!(%error, "UDP receive error");
                }
                continue;
            }
        };
        let request = &request[..length];
        // Plain queries (nearly all traffic) are answered into a reused buffer; the rest take
        // the general path.
        let sent = if responder.answer_plain(request, Transport::Udp, role, &mut answer) {
            socket.send_to(&answer, peer)
        } else if let Some(reply) = responder.respond(request, peer.ip(), Transport::Udp, role) {
            socket.send_to(&reply, peer)
        } else {
            continue;
        };
        if let Err(error) = sent {
            debug!(%peer, %error, "UDP send error");
        }
    }
}
