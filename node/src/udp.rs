//! The UDP query loop: blocking worker threads that take datagrams in batches (`recvmmsg`),
//! answer each through the `Responder`, and send the answers in one batch (`sendmmsg`), with
//! no async runtime between the socket and the answer (readiness polling and task wake-ups
//! cost more than the answer itself).
//!
//! Under load one pair of system calls moves up to [`BATCH`] queries. Idle, a worker blocks in
//! the kernel until a datagram comes; at shutdown [`wake`] sends each worker an empty one.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::serve::{Responder, Role, Transport};

/// Datagrams taken or sent by one system call at most.
const BATCH: usize = 32;

/// Largest request read; a longer datagram is dropped (no DNS query needs more).
const REQUEST_MAX: usize = 16 * 1024;

/// Binds a UDP socket for the query loop (blocking, no read timeout: a timer armed for every
/// wait costs more than the answer at low rates).
pub fn bind(address: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(address)
}

/// Wakes `workers` workers blocked on `socket` (after `cancel` fired) with empty datagrams,
/// which they skip before seeing the cancellation.
pub fn wake(socket: &UdpSocket, workers: usize) {
    let Ok(mut target) = socket.local_addr() else {
        return;
    };
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let Ok(poker) = UdpSocket::bind(local) else {
        return;
    };
    // Twice as many as workers: a datagram one worker takes in a batch wakes nobody else.
    for _ in 0..workers * 2 {
        let _ = poker.send_to(&[], target);
    }
}

/// Answers datagrams on `socket` until `cancel` fires. Several workers may share a socket.
pub fn worker(
    socket: Arc<UdpSocket>,
    role: Role,
    responder: Arc<Responder>,
    cancel: CancellationToken,
) {
    let fd = socket.as_raw_fd();
    let mut requests: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; REQUEST_MAX]).collect();
    let mut answers: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut receive_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut outgoing: Vec<usize> = Vec::with_capacity(BATCH);
    let mut destinations: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    while !cancel.is_cancelled() {
        received.clear();
        {
            // An array, not a collection with a destructor: the kernel-facing headers borrow it
            // for as long as it lives.
            let mut buffers = requests.iter_mut();
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    buffers.next().expect("one buffer per batch slot"),
                )]
            });
            // Blocks for the first datagram, then takes whatever else is queued.
            match recvmmsg(
                fd,
                &mut receive_headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => {
                    for message in messages {
                        // A datagram longer than the buffer is no query of ours: dropped.
                        if !message.flags.contains(MsgFlags::MSG_TRUNC) {
                            received.push((message.bytes, message.address));
                        } else {
                            received.push((0, None));
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems.
                    debug!(%error, "UDP receive error");
                    continue;
                }
            }
        }
        outgoing.clear();
        destinations.clear();
        for (index, (length, address)) in received.iter().enumerate() {
            let Some(address) = address.filter(|_| *length > 0) else {
                continue;
            };
            let request = &requests[index][..*length];
            let answer = &mut answers[index];
            // Plain queries (nearly all traffic) are answered into a reused buffer; the rest
            // take the general path, which needs the sender's address.
            let answered = responder.answer_plain(request, Transport::Udp, role, answer)
                || match source_ip(&address)
                    .and_then(|ip| responder.respond(request, ip, Transport::Udp, role))
                {
                    Some(reply) => {
                        *answer = reply;
                        true
                    }
                    None => false,
                };
            if answered {
                outgoing.push(index);
                destinations.push(Some(address));
            }
        }
        if outgoing.is_empty() {
            continue;
        }
        let slices: SmallVec<[[IoSlice<'_>; 1]; BATCH]> = outgoing
            .iter()
            .map(|&index| [IoSlice::new(&answers[index])])
            .collect();
        let sent = sendmmsg(
            fd,
            &mut send_headers,
            slices.iter(),
            &destinations,
            [],
            MsgFlags::empty(),
        )
        .map(|results| results.count());
        let sent = match sent {
            Ok(sent) => sent,
            Err(error) => {
                debug!(%error, "UDP send error");
                0
            }
        };
        // Whatever the batch did not take goes one by one, skipping a datagram that fails.
        for (&index, destination) in outgoing.iter().zip(&destinations).skip(sent.max(1)) {
            if let Some(peer) = destination.and_then(|d| socket_address(&d))
                && let Err(error) = socket.send_to(&answers[index], peer)
            {
                debug!(%peer, %error, "UDP send error");
            }
        }
    }
    // One worker may have taken every wake-up datagram in one batch: pass one on, so that
    // the others sharing the socket see the cancellation too.
    wake(&socket, 1);
}

/// The IP address of a datagram's sender.
fn source_ip(address: &SockaddrStorage) -> Option<IpAddr> {
    socket_address(address).map(|address| address.ip())
}

fn socket_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}
