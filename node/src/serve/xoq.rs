//! The XFR-over-QUIC listener (RFC 9250; ALPN "doq", mutual TLS with the cluster CA): the
//! stream rules (one query per client-initiated bidirectional stream, message ID 0, the
//! client's FIN after its query) and their error codes. Answers come from
//! `stream::answer_on`, the same code TCP uses.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::serve::request::{Client, Role, Transport};
use crate::serve::stream::{StreamContext, answer_on};
use crate::xfr::framing::read_framed;

/// RFC 9250 4.3 error codes.
const DOQ_NO_ERROR: u32 = 0x0;
const DOQ_INTERNAL_ERROR: u32 = 0x1;
const DOQ_PROTOCOL_ERROR: u32 = 0x2;

/// Accepts QUIC connections until `cancel` fires, then closes the endpoint and waits for its
/// connections.
pub(super) async fn serve(
    endpoint: quinn::Endpoint,
    context: Arc<StreamContext>,
    cancel: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = cancel.cancelled() => {
                endpoint.close(quinn::VarInt::from_u32(DOQ_NO_ERROR), b"shutting down");
                break;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else {
            break;
        };
        let (context, cancel) = (context.clone(), cancel.clone());
        tasks.spawn(async move {
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
                _ = serve_connection(connection.clone(), peer, context) => {}
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Serves the streams of one connection; each stream's task ends with the connection.
async fn serve_connection(
    connection: quinn::Connection,
    peer: SocketAddr,
    context: Arc<StreamContext>,
) {
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            bidi = connection.accept_bi() => {
                let Ok((send, receive)) = bidi else {
                    break;
                };
                let (connection, context) = (connection.clone(), context.clone());
                streams.spawn(async move {
                    serve_stream(connection, send, receive, peer, &context).await;
                });
            }
            uni = connection.accept_uni() => {
                if uni.is_ok() {
                    // Clients may only open bidirectional streams (RFC 9250 4.2).
                    connection.close(quinn::VarInt::from_u32(DOQ_PROTOCOL_ERROR), b"unidirectional stream");
                }
                break;
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    streams.abort_all();
    while streams.join_next().await.is_some() {}
}

/// One request on one stream: read the query and the client's FIN, answer on the same stream
/// (all messages of a transfer), then finish.
async fn serve_stream(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut receive: quinn::RecvStream,
    peer: SocketAddr,
    context: &StreamContext,
) {
    let idle_timeout = context.idle_timeout;
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
    match answer_on(&mut send, &request, &client, Role::All, context).await {
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
