//! The UDP query loop: blocking worker threads that take datagrams in batches (`recvmmsg`),
//! answer each through the `Responder`, and send the answers in one batch (`sendmmsg`), with
//! no async runtime between the socket and the answer (readiness polling and task wake-ups
//! cost more than the answer itself).
//!
//! Under load one pair of system calls moves up to [`BATCH`] queries. Each worker has a socket
//! of its own (`SO_REUSEPORT`). Idle, a worker blocks in the kernel until a datagram comes; at
//! shutdown [`wake`] shuts the socket's reading side, which returns the blocked receive.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, MultiHeaders, Shutdown, SockFlag, SockType, SockaddrStorage,
    bind as bind_address, recvmmsg, sendmmsg, setsockopt, shutdown, socket, sockopt,
};
use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::serve::request::{Role, Transport};
use crate::serve::responder::Responder;
use crate::store::query_path;

/// Datagrams taken or sent by one system call at most.
const BATCH: usize = 32;

/// Largest request read; a longer datagram is dropped (no DNS query needs more).
const REQUEST_MAX: usize = 16 * 1024;

/// Binds `count` UDP sockets to `address` with `SO_REUSEPORT`, one per worker: the kernel
/// spreads datagrams over them by flow, so workers on different cores never contend for one
/// receive queue. Blocking, with no read timeout (a timer armed for every wait costs more than
/// the answer at low rates). With port 0, all take the port the first one got.
///
/// A second process can join the group on the same address; the TCP listener bound beside
/// (without `SO_REUSEPORT`) is what refuses a second node on one address.
pub fn bind(address: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    let first = bind_one(address)?;
    let address = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(address)?);
    }
    Ok(sockets)
}

fn bind_one(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    if address.is_ipv6() {
        // IPv6 only, so that 0.0.0.0 and [::] on one port are two separate listeners.
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind_address(fd.as_raw_fd(), &SockaddrStorage::from(address))?;
    Ok(UdpSocket::from(fd))
}

/// Wakes the worker blocked on `socket` (after `cancel` fired): shutting down the reading side
/// makes a blocked receive return at once, even on an unconnected UDP socket (Linux reports
/// ENOTCONN for it but still wakes the readers).
pub fn wake(socket: &UdpSocket) {
    let _ = shutdown(socket.as_raw_fd(), Shutdown::Read);
}

/// Answers datagrams on `socket` until `cancel` fires.
pub fn worker(
    socket: Arc<UdpSocket>,
    role: Role,
    responder: Arc<Responder>,
    cancel: CancellationToken,
) {
    // This thread answers queries: the store and status locks must never be reached from it.
    query_path::enter();
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
