//! The encrypted listeners: XFR-over-TLS (RFC 9103; TCP, ALPN "dot", which answers queries too)
//! and XFR-over-QUIC (RFC 9250; ALPN "doq", mutual TLS with the cluster CA).
//!
//! Owns handshakes and, for QUIC, the stream rules of RFC 9250 (one query per client-initiated
//! bidirectional stream, message ID 0, the client's FIN after its query, error codes). Answers
//! come from `serve::answer_on`, the same code plain TCP uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ServerConfig;
use crate::serve::responder::{
    Client, Responder, Role, ServeError, Transport, answer_on, serve_connection,
};
use crate::tls;
use crate::xfr::connect::Transports;
use crate::xfr::framing::read_framed;

/// RFC 9250 4.3 error codes.
const DOQ_NO_ERROR: u32 = 0x0;
const DOQ_INTERNAL_ERROR: u32 = 0x1;
const DOQ_PROTOCOL_ERROR: u32 = 0x2;

/// Bound XoT and XoQ listeners.
pub(crate) struct Listeners {
    xot: Vec<(TcpListener, TlsAcceptor, bool)>,
    xoq: Vec<quinn::Endpoint>,
}

impl Listeners {
    /// Binds every XoT and XoQ address with this node's certificate.
    pub(crate) async fn bind(
        config: &ServerConfig,
        transports: &Transports,
    ) -> Result<Listeners, ServeError> {
        let mut listeners = Listeners {
            xot: Vec::new(),
            xoq: Vec::new(),
        };
        let (identity, ca) = transports.server_material();
        if !config.xot_listen.is_empty() {
            let identity = identity.ok_or(ServeError::NoIdentity("server.xot_listen"))?;
            let client_ca = if config.xot_require_client_cert {
                Some(ca.ok_or(ServeError::NoIdentity("server.xot_require_client_cert"))?)
            } else {
                None
            };
            let acceptor = TlsAcceptor::from(tls::xot_server_config(identity, client_ca)?);
            for &address in &config.xot_listen {
                let listener =
                    TcpListener::bind(address)
                        .await
                        .map_err(|source| ServeError::Bind {
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
            let (Some(identity), Some(ca)) = (identity, ca) else {
                return Err(ServeError::NoIdentity("server.xoq_listen"));
            };
            let mut server = tls::quic_server_config(identity, ca)?;
            // Handshakes in progress are bounded like TCP connections: before its certificate is
            // checked a client is anonymous.
            server.max_incoming(config.tcp_connections_max);
            for &address in &config.xoq_listen {
                let endpoint =
                    quinn::Endpoint::server(server.clone(), address).map_err(|source| {
                        ServeError::Bind {
                            address,
                            protocol: "UDP (XoQ)",
                            source,
                        }
                    })?;
                info!(%address, "listening for XFR-over-QUIC (mutual TLS)");
                listeners.xoq.push(endpoint);
            }
        }
        Ok(listeners)
    }

    /// Starts serving; tasks end when `cancel` fires.
    pub(crate) fn spawn(
        self,
        tasks: &mut JoinSet<()>,
        responder: &Arc<Responder>,
        config: &ServerConfig,
        connections: Arc<Semaphore>,
        cancel: &CancellationToken,
    ) {
        for (listener, acceptor, cluster_only) in self.xot {
            tasks.spawn(serve_xot(
                listener,
                acceptor,
                cluster_only,
                responder.clone(),
                connections.clone(),
                config.tcp_idle_timeout,
                cancel.clone(),
            ));
        }
        for endpoint in self.xoq {
            tasks.spawn(serve_xoq(
                endpoint,
                responder.clone(),
                config.tcp_idle_timeout,
                cancel.clone(),
            ));
        }
    }
}

async fn serve_xot(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    cluster_only: bool,
    responder: Arc<Responder>,
    connections: Arc<Semaphore>,
    idle_timeout: Duration,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, "too many connections; closing the new XoT connection");
            continue;
        };
        let (acceptor, responder, cancel) = (acceptor.clone(), responder.clone(), cancel.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(idle_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    warn!(%peer, %error, "XoT handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "XoT handshake timed out");
                    return;
                }
            };
            // With client certificates required, the handshake itself proved membership of the
            // cluster (the verifier accepts only certificates from the cluster CA).
            let client = Client {
                cluster_member: cluster_only,
                ..Client::anonymous(peer.ip(), Transport::Tcp)
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = serve_connection(stream, client, Role::All, responder, idle_timeout) => {}
            }
        });
    }
}

async fn serve_xoq(
    endpoint: quinn::Endpoint,
    responder: Arc<Responder>,
    idle_timeout: Duration,
    cancel: CancellationToken,
) {
    loop {
        let incoming = tokio::select! {
            _ = cancel.cancelled() => {
                endpoint.close(quinn::VarInt::from_u32(DOQ_NO_ERROR), b"shutting down");
                return;
            }
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else {
            return;
        };
        let (responder, cancel) = (responder.clone(), cancel.clone());
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let connection = match incoming.await {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(%peer, %error, "XoQ handshake failed");
                    return;
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => connection.close(quinn::VarInt::from_u32(DOQ_NO_ERROR), b"shutting down"),
                _ = serve_quic_connection(connection.clone(), peer, responder, idle_timeout) => {}
            }
        });
    }
}

async fn serve_quic_connection(
    connection: quinn::Connection,
    peer: SocketAddr,
    responder: Arc<Responder>,
    idle_timeout: Duration,
) {
    loop {
        tokio::select! {
            bidi = connection.accept_bi() => {
                let Ok((send, receive)) = bidi else {
                    return;
                };
                let (connection, responder) = (connection.clone(), responder.clone());
                tokio::spawn(async move {
                    serve_quic_stream(connection, send, receive, peer, &responder, idle_timeout).await;
                });
            }
            uni = connection.accept_uni() => {
                if uni.is_ok() {
                    // Clients may only open bidirectional streams (RFC 9250 4.2).
                    connection.close(quinn::VarInt::from_u32(DOQ_PROTOCOL_ERROR), b"unidirectional stream");
                }
                return;
            }
        }
    }
}

/// One request on one stream: read the query and the client's FIN, answer on the same stream
/// (all messages of a transfer), then finish.
async fn serve_quic_stream(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut receive: quinn::RecvStream,
    peer: SocketAddr,
    responder: &Responder,
    idle_timeout: Duration,
) {
    let protocol_error = |reason: &'static [u8]| {
        debug!(%peer, reason = %String::from_utf8_lossy(reason), "DoQ protocol error; closing the connection");
        connection.close(quinn::VarInt::from_u32(DOQ_PROTOCOL_ERROR), reason);
    };
    let request = match tokio::time::timeout(idle_timeout, read_framed(&mut receive)).await {
        Ok(Ok(Some(request))) => request,
        _ => return,
    };
    // The client's FIN must follow its one query; more data is a second query.
    let mut extra = [0u8; 1];
    match tokio::time::timeout(idle_timeout, receive.read(&mut extra)).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(_))) => return protocol_error(b"more than one query on a stream"),
        _ => return,
    }
    if request.len() < 2 || request[0] != 0 || request[1] != 0 {
        return protocol_error(b"message ID is not 0");
    }
    // Mutual TLS with the cluster CA was required for the handshake: this is a cluster member.
    let client = Client {
        cluster_member: true,
        ..Client::anonymous(peer.ip(), Transport::Tcp)
    };
    match answer_on(
        &mut send,
        &request,
        &client,
        Role::All,
        responder,
        idle_timeout,
    )
    .await
    {
        Ok(()) => {
            let _ = send.finish();
            // Wait for the peer to read everything before the stream is dropped.
            let _ = tokio::time::timeout(idle_timeout, send.stopped()).await;
        }
        // The answer could not be completed: reset this stream only (RFC 9250 4.3).
        Err(()) => {
            let _ = send.reset(quinn::VarInt::from_u32(DOQ_INTERNAL_ERROR));
        }
    }
}
