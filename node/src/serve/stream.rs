//! Stream listeners: one accept loop for TCP and XFR-over-TLS (`accept_loop`, with the TLS
//! handshake as its only difference), and the request loop of one connection, shared with the
//! QUIC listener (`answer_on`).
//!
//! Every connection task belongs to its listener's `JoinSet`: when the listener's token fires
//! it stops accepting, cancels its connections and waits for them, so nothing outlives the
//! shutdown tree.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::serve::request::{Client, Role, Transport};
use crate::serve::responder::{Reply, Responder};
use crate::serve::transfer;
use crate::store::Store;
use crate::xfr::framing::{read_framed, write_framed};

/// What every stream connection needs besides its socket.
pub struct StreamContext {
    /// Answers requests.
    pub responder: Arc<Responder>,
    /// The journal that IXFR answers come from (None: every IXFR is answered AXFR-style).
    /// Only streams hold it: the UDP path cannot read the store.
    pub store: Option<Store>,
    /// Longest time one transfer out may take (`limits.transfer_timeout`).
    pub transfer_timeout: Duration,
    /// A connection idle this long is closed (`server.tcp_idle_timeout`).
    pub idle_timeout: Duration,
}

/// How a stream listener turns an accepted TCP connection into a DNS stream.
pub(super) struct StreamKind<H> {
    /// For logs: `TCP` or `XoT`.
    pub(super) label: &'static str,
    /// What the listener accepts.
    pub(super) role: Role,
    /// True when the handshake proves cluster membership (XoT with client certificates).
    pub(super) cluster_member: bool,
    /// The handshake (identity for TCP, TLS for XoT), bounded by the idle timeout.
    pub(super) handshake: H,
}

/// Accepts connections until `cancel` fires, at most `connections` at once across listeners,
/// then cancels and waits for its connections.
pub(super) async fn accept_loop<H, F, S>(
    listener: TcpListener,
    kind: StreamKind<H>,
    context: Arc<StreamContext>,
    connections: Arc<Semaphore>,
    cancel: CancellationToken,
) where
    H: Fn(TcpStream) -> F,
    F: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, listener = kind.label, "accept error");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, listener = kind.label, "too many connections; closing the new one");
            continue;
        };
        let handshake = (kind.handshake)(stream);
        let client = Client {
            cluster_member: kind.cluster_member,
            ..Client::anonymous(peer.ip(), Transport::Tcp)
        };
        let (context, cancel, role, label) =
            (context.clone(), cancel.clone(), kind.role, kind.label);
        tasks.spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(context.idle_timeout, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    warn!(%peer, %error, listener = label, "handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, listener = label, "handshake timed out");
                    return;
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = serve_connection(stream, client, role, &context) => {}
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Answers requests on one connection until it closes, errs or idles out.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client: Client,
    role: Role,
    context: &StreamContext,
) {
    loop {
        let request =
            match tokio::time::timeout(context.idle_timeout, read_framed(&mut stream)).await {
                Ok(Ok(Some(request))) => request,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(error)) => {
                    debug!(peer = %client.ip, %error, "stream read error");
                    return;
                }
            };
        if answer_on(&mut stream, &request, &client, role, context)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Answers one request on a stream (TCP, TLS or a QUIC stream): one message, or every
/// message of a transfer. An error means the stream is unusable and must be closed.
pub(super) async fn answer_on<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    client: &Client,
    role: Role,
    context: &StreamContext,
) -> Result<(), ()> {
    let answer = match context.responder.reply_to(request, client, role) {
        None => return Err(()),
        Some(Reply::Message(answer)) => answer,
        Some(Reply::Transfer(job)) => {
            let requested = job.requested_kind();
            let started = Instant::now();
            // A bound on the whole transfer, as for transfers in: a client that reads slowly but
            // steadily must not hold a transfer slot forever.
            let result = tokio::time::timeout(
                context.transfer_timeout,
                transfer::stream(stream, *job, context.store.as_ref(), context.idle_timeout),
            )
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the transfer took longer than limits.transfer_timeout",
                ))
            });
            return match result {
                Ok(served) => {
                    context.responder.metrics.transfer_out(served.kind, true);
                    info!(
                        peer = %client.ip,
                        kind = served.kind,
                        messages = served.messages,
                        bytes = served.bytes,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "transfer served"
                    );
                    Ok(())
                }
                Err(error) => {
                    context.responder.metrics.transfer_out(requested, false);
                    warn!(peer = %client.ip, kind = requested, %error, "transfer out failed");
                    Err(())
                }
            };
        }
    };
    // A client that never reads must not hold its connection slot forever.
    match tokio::time::timeout(context.idle_timeout, write_framed(stream, &answer)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}
