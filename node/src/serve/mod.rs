//! Answering: the responder (queries, NOTIFY in, transfers out) and the listeners that feed it.
//!
//! Layout: `request` (who asked, over what), `responder` (the whole request-to-answer decision,
//! no I/O) with its layers `notify` (NOTIFY in) and `transfer` (transfers out); the listeners
//! `udp` (blocking workers), `stream` (one accept loop for TCP and XoT, and the connection loop)
//! and `xoq` (QUIC). Listeners import only the responder and `stream`; nothing here imports a
//! listener but this file, which binds and starts them.

pub mod notify;
pub mod request;
pub mod responder;
pub mod stream;
pub mod transfer;
pub mod udp;
pub mod xoq;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::RootCertStore;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ServerConfig;
use crate::serve::request::Role;
use crate::serve::stream::{StreamContext, StreamKind, accept_loop};
use crate::tls::{self, CertError, Identity};

/// Pending connections the kernel queues for each stream listener.
const LISTEN_BACKLOG: i32 = 1024;

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The XoT or XoQ listener could not be configured.
    #[error("{0}")]
    Tls(#[from] CertError),
    /// XoT or XoQ listeners are configured without the certificate they need.
    #[error("{0} needs [tls] with certificate, private_key and ca")]
    NoIdentity(&'static str),
    /// A listen address could not be bound.
    #[error("cannot listen on {address} ({protocol}): {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// UDP or TCP.
        protocol: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// This node's TLS material, for the XoT and XoQ listeners.
#[derive(Clone, Copy, Default)]
pub struct ServerTls<'a> {
    /// The node's certificate and key.
    pub identity: Option<&'a Identity>,
    /// The cluster CA that client certificates must chain to.
    pub ca: Option<&'a RootCertStore>,
}

/// Bound sockets, ready to serve.
pub struct Listeners {
    udp: Vec<(Arc<std::net::UdpSocket>, Role)>,
    tcp: Vec<(TcpListener, Role)>,
    /// XoT listeners and whether each requires a client certificate from the cluster CA.
    xot: Vec<(TcpListener, TlsAcceptor, bool)>,
    xoq: Vec<quinn::Endpoint>,
}

impl Listeners {
    /// Binds every configured address (UDP and TCP, XoT, XoQ), failing with the address that
    /// could not be bound. IPv6 sockets are IPv6-only, so `0.0.0.0` and `[::]` on one port
    /// bind side by side, as BIND, NSD and Knot allow.
    pub async fn bind(config: &ServerConfig, tls: ServerTls<'_>) -> Result<Listeners, ServeError> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
            xot: Vec::new(),
            xoq: Vec::new(),
        };
        let addresses = config
            .listen
            .iter()
            .map(|a| (*a, Role::All))
            .chain(config.notify_listen.iter().map(|a| (*a, Role::NotifyOnly)));
        // One UDP socket and worker per core on every address.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for (address, role) in addresses {
            let bind_error = |protocol| {
                move |source| ServeError::Bind {
                    address,
                    protocol,
                    source,
                }
            };
            let udp = udp::bind(address, workers).map_err(bind_error("UDP"))?;
            let tcp = bind_tcp(address).map_err(bind_error("TCP"))?;
            info!(%address, ?role, udp_sockets = udp.len(), "listening for DNS on UDP and TCP");
            listeners
                .udp
                .extend(udp.into_iter().map(|socket| (Arc::new(socket), role)));
            listeners.tcp.push((tcp, role));
        }
        if !config.xot_listen.is_empty() {
            let identity = tls
                .identity
                .ok_or(ServeError::NoIdentity("server.xot_listen"))?;
            let client_ca = if config.xot_require_client_cert {
                Some(
                    tls.ca
                        .ok_or(ServeError::NoIdentity("server.xot_require_client_cert"))?,
                )
            } else {
                None
            };
            let acceptor = TlsAcceptor::from(tls::xot_server_config(identity, client_ca)?);
            for &address in &config.xot_listen {
                let listener = bind_tcp(address).map_err(|source| ServeError::Bind {
                    address,
                    protocol: "TCP (XoT)",
                    source,
                })?;
                info!(%address, client_certificates = config.xot_require_client_cert, "listening for XFR-over-TLS");
                listeners
                    .xot
                    .push((listener, acceptor.clone(), config.xot_require_client_cert));
            }
        }
        if !config.xoq_listen.is_empty() {
            let (Some(identity), Some(ca)) = (tls.identity, tls.ca) else {
                return Err(ServeError::NoIdentity("server.xoq_listen"));
            };
            let mut server = tls::quic_server_config(identity, ca)?;
            // Handshakes in progress are bounded like TCP connections: before its certificate is
            // checked a client is anonymous.
            server.max_incoming(config.tcp_connections_max);
            for &address in &config.xoq_listen {
                let bind_error = |source| ServeError::Bind {
                    address,
                    protocol: "UDP (XoQ)",
                    source,
                };
                let socket = bind_udp(address).map_err(bind_error)?;
                let endpoint = quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some(server.clone()),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(bind_error)?;
                info!(%address, "listening for XFR-over-QUIC (mutual TLS)");
                listeners.xoq.push(endpoint);
            }
        }
        Ok(listeners)
    }

    /// Serves until `cancel` fires, then waits for every listener and connection to stop.
    pub async fn serve(
        self,
        context: Arc<StreamContext>,
        config: ServerConfig,
        cancel: CancellationToken,
    ) {
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Semaphore::new(config.tcp_connections_max));
        // One blocking worker thread per UDP socket (threads of their own, not the blocking
        // pool: they never end until shutdown, when their socket is shut to wake them).
        for (index, (socket, role)) in self.udp.into_iter().enumerate() {
            let waker = socket.clone();
            let stop = cancel.clone();
            tasks.spawn(async move {
                stop.cancelled().await;
                udp::wake(&waker);
            });
            let (responder, cancel) = (context.responder.clone(), cancel.clone());
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name(format!("udp-{index}"))
                .spawn(move || {
                    udp::worker(socket, role, responder, cancel);
                    let _ = done.send(());
                });
            match spawned {
                Ok(_) => {
                    tasks.spawn(async move {
                        let _ = finished.await;
                    });
                }
                Err(error) => warn!(%error, "cannot start a UDP worker thread"),
            }
        }
        for (listener, role) in self.tcp {
            let kind = StreamKind {
                label: "TCP",
                role,
                cluster_member: false,
                handshake: |stream| std::future::ready(Ok(stream)),
            };
            tasks.spawn(accept_loop(
                listener,
                kind,
                context.clone(),
                connections.clone(),
                cancel.clone(),
            ));
        }
        for (listener, acceptor, cluster_member) in self.xot {
            // With client certificates required, the handshake itself proves membership of the
            // cluster (the verifier accepts only certificates from the cluster CA).
            let kind = StreamKind {
                label: "XoT",
                role: Role::All,
                cluster_member,
                handshake: move |stream| acceptor.accept(stream),
            };
            tasks.spawn(accept_loop(
                listener,
                kind,
                context.clone(),
                connections.clone(),
                cancel.clone(),
            ));
        }
        for endpoint in self.xoq {
            tasks.spawn(xoq::serve(endpoint, context.clone(), cancel.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// A socket for `address`, IPv6-only when the address is IPv6.
fn socket_for(address: SocketAddr, kind: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// A TCP listener on `address` (address reuse on, as for any server socket).
fn bind_tcp(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket_for(address, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A UDP socket on `address`, for a QUIC endpoint.
fn bind_udp(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket_for(address, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}
