//! Connectors for zone transfers: connecting to a source over TCP, TLS (XoT, RFC 9103) or QUIC
//! (XoQ, RFC 9250), with the TLS material built once from `[tls]`.
//!
//! Owns connections and handshakes only: framing is `wire`, the meaning of streams is `xfr`,
//! and what to ask is `transfer`. QUIC connections to a peer are reused; every request gets its
//! own bidirectional stream, and the client finishes its side after the query (RFC 9250 4.2).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{Config, Primary, SourceProtocol, TlsTrust};
use crate::tls::{self, Identity, ServerTrust};

/// A byte stream a DNS exchange runs over.
pub trait DnsStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DnsStream for T {}

/// Why a connection could not be opened or set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection failed.
    #[error("connecting over TCP: {0}")]
    Tcp(std::io::Error),
    /// The TLS handshake failed (wrong CA, name, pin, or no ALPN "dot").
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// The QUIC connection failed (handshake, certificate, ALPN "doq").
    #[error("QUIC: {0}")]
    Quic(String),
    /// The TLS material could not be loaded or configured.
    #[error("{0}")]
    Certificates(#[from] tls::CertError),
    /// A TLS or QUIC source needs `[tls]`, which is missing.
    #[error("{0} needs this node's certificate in [tls]")]
    NoIdentity(&'static str),
}

impl ConnectError {
    /// A short, stable name of the cause, for status and as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::Tcp(_) => "network",
            ConnectError::Tls(_) | ConnectError::Quic(_) => "tls",
            ConnectError::Certificates(_) | ConnectError::NoIdentity(_) => "config",
        }
    }
}

/// TLS material shared by every connector.
pub struct Connectors {
    identity: Option<Identity>,
    cluster_ca: Option<RootCertStore>,
    quic: Mutex<Option<Arc<QuicClient>>>,
}

impl Connectors {
    /// Loads `[tls]` (already checked by the config).
    pub fn new(config: &Config) -> Result<Connectors, ConnectError> {
        let (identity, cluster_ca) = match &config.tls {
            Some(tls) => (
                Some(tls::load_identity(&tls.certificate, &tls.private_key)?),
                tls.ca.as_deref().map(tls::load_ca).transpose()?,
            ),
            None => (None, None),
        };
        Ok(Connectors {
            identity,
            cluster_ca,
            quic: Mutex::new(None),
        })
    }

    /// This node's identity and the cluster CA, for the XoT and XoQ listeners.
    pub fn server_material(&self) -> (Option<&Identity>, Option<&RootCertStore>) {
        (self.identity.as_ref(), self.cluster_ca.as_ref())
    }

    /// The connector for one source.
    pub fn connector(&self, source: &Primary) -> Result<Connector, ConnectError> {
        match &source.transport {
            SourceProtocol::Tcp => Ok(Connector::Tcp),
            SourceProtocol::Tls {
                name,
                trust,
                client_certificate,
            } => {
                let trust = match trust {
                    TlsTrust::Ca(path) => ServerTrust::Ca {
                        roots: tls::load_ca(path)?,
                        name: name.clone(),
                    },
                    TlsTrust::Pin(pins) => ServerTrust::Pin {
                        pins: pins.clone(),
                        name: name.clone(),
                    },
                    TlsTrust::Opportunistic => ServerTrust::Opportunistic { name: name.clone() },
                };
                let client = match (client_certificate, &self.identity) {
                    (false, _) => None,
                    (true, Some(identity)) => Some(identity),
                    (true, None) => {
                        return Err(ConnectError::NoIdentity("tls_client_certificate"));
                    }
                };
                Ok(Connector::Tls {
                    connector: TlsConnector::from(tls::xot_client_config(&trust, client)?),
                    name: tls::server_name(name)?,
                })
            }
            SourceProtocol::Quic { name } => Ok(Connector::Quic {
                client: self.quic_client()?,
                name: name.clone(),
            }),
        }
    }

    fn quic_client(&self) -> Result<Arc<QuicClient>, ConnectError> {
        let mut quic = self
            .quic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = quic.as_ref() {
            return Ok(client.clone());
        }
        let (Some(identity), Some(ca)) = (&self.identity, &self.cluster_ca) else {
            return Err(ConnectError::NoIdentity("a QUIC peer"));
        };
        let client = Arc::new(QuicClient {
            config: tls::quic_client_config(identity, ca)?,
            endpoints: Mutex::new(HashMap::new()),
            connections: tokio::sync::Mutex::new(HashMap::new()),
        });
        *quic = Some(client.clone());
        Ok(client)
    }
}

/// How to reach one source.
#[derive(Clone)]
pub enum Connector {
    /// Plain TCP (SOA checks may use UDP first).
    Tcp,
    /// XFR-over-TLS.
    Tls {
        /// The client configuration (TLS 1.3, ALPN "dot", the source's trust).
        connector: TlsConnector,
        /// The name the certificate must carry.
        name: ServerName<'static>,
    },
    /// XFR-over-QUIC to a cluster peer.
    Quic {
        /// The shared QUIC client.
        client: Arc<QuicClient>,
        /// The peer's name in its cluster certificate.
        name: String,
    },
}

impl Connector {
    /// True for plain TCP, where an SOA check may try UDP first.
    pub fn allows_udp(&self) -> bool {
        matches!(self, Connector::Tcp)
    }

    /// A label for logs and errors.
    pub fn label(&self) -> &'static str {
        match self {
            Connector::Tcp => "TCP",
            Connector::Tls { .. } => "TLS",
            Connector::Quic { .. } => "QUIC",
        }
    }

    /// Opens a stream for one exchange. `finish_after_query` says the client must close its
    /// sending side after the query (QUIC: one request per stream).
    pub async fn open(
        &self,
        address: SocketAddr,
    ) -> Result<(Box<dyn DnsStream>, bool), ConnectError> {
        match self {
            Connector::Tcp => {
                let stream = TcpStream::connect(address)
                    .await
                    .map_err(ConnectError::Tcp)?;
                Ok((Box::new(stream), false))
            }
            Connector::Tls { connector, name } => {
                let stream = TcpStream::connect(address)
                    .await
                    .map_err(ConnectError::Tcp)?;
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(ConnectError::Tls)?;
                // RFC 9103 requires ALPN "dot"; a server that did not agree is not an XoT server.
                if stream.get_ref().1.alpn_protocol() != Some(b"dot".as_slice()) {
                    return Err(ConnectError::Tls(std::io::Error::other(
                        "the server did not negotiate ALPN \"dot\" (RFC 9103)",
                    )));
                }
                Ok((Box::new(stream), false))
            }
            Connector::Quic { client, name } => {
                let (send, receive) = client.open_stream(address, name).await?;
                Ok((Box::new(tokio::io::join(receive, send)), true))
            }
        }
    }
}

/// A QUIC client with one endpoint per address family and one connection per peer, reused
/// across transfers.
pub struct QuicClient {
    config: quinn::ClientConfig,
    endpoints: Mutex<HashMap<bool, quinn::Endpoint>>,
    connections: tokio::sync::Mutex<HashMap<(SocketAddr, String), quinn::Connection>>,
}

impl QuicClient {
    async fn open_stream(
        &self,
        address: SocketAddr,
        name: &str,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), ConnectError> {
        let mut connections = self.connections.lock().await;
        let key = (address, name.to_string());
        if let Some(connection) = connections.get(&key)
            && connection.close_reason().is_none()
            && let Ok(streams) = connection.open_bi().await
        {
            return Ok(streams);
        }
        let endpoint = self.endpoint(address.is_ipv4())?;
        let connection = endpoint
            .connect_with(self.config.clone(), address, name)
            .map_err(|error| ConnectError::Quic(error.to_string()))?
            .await
            .map_err(|error| ConnectError::Quic(error.to_string()))?;
        let streams = connection
            .open_bi()
            .await
            .map_err(|error| ConnectError::Quic(error.to_string()))?;
        connections.insert(key, connection);
        Ok(streams)
    }

    fn endpoint(&self, ipv4: bool) -> Result<quinn::Endpoint, ConnectError> {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(endpoint) = endpoints.get(&ipv4) {
            return Ok(endpoint.clone());
        }
        let bind: SocketAddr = if ipv4 {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let endpoint =
            quinn::Endpoint::client(bind).map_err(|error| ConnectError::Quic(error.to_string()))?;
        endpoints.insert(ipv4, endpoint.clone());
        Ok(endpoint)
    }
}
