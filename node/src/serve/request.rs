//! Who sent a request and over what: the facts every answering layer (queries, NOTIFY in,
//! transfers out) decides on, and the response skeletons they share.
//!
//! No I/O: listeners fill these in; the responder and its layers read them.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, Query, ResponseCode};

use crate::dns::tsig::TsigKey;

/// The transport a request came over, as far as answering it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: answers are limited in size; transfers are never streamed.
    Udp,
    /// A stream: TCP, TLS or a QUIC stream.
    Tcp,
}

/// Who sent a request.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The source address (IPv4-mapped addresses already folded to IPv4).
    pub ip: IpAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// True when the client proved with a certificate from the cluster CA that it is a member
    /// of this cluster (XoQ, or XoT with client certificates): members may transfer every zone.
    pub cluster_member: bool,
}

impl Client {
    /// A client known only by its address.
    pub fn anonymous(ip: IpAddr, transport: Transport) -> Client {
        Client {
            ip: ip.to_canonical(),
            transport,
            cluster_member: false,
        }
    }
}

/// What a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Queries and NOTIFY.
    All,
    /// NOTIFY only.
    NotifyOnly,
}

/// The key and request MAC that the answer to a signed request is signed with.
pub type Signer = (Arc<TsigKey>, Vec<u8>);

/// A response carrying the request's question, ID, opcode and RD/CD flags.
pub fn base_response(request: &Message, rcode: ResponseCode) -> Message {
    let mut answer = Message::response(request.metadata.id, request.metadata.op_code);
    answer.metadata.recursion_desired = request.metadata.recursion_desired;
    answer.metadata.checking_disabled = request.metadata.checking_disabled;
    answer.metadata.response_code = rcode;
    if let Some(query) = request.queries.first() {
        let mut echo = Query::query(query.name.clone(), query.query_type);
        echo.query_class = query.query_class;
        answer.add_query(echo);
    }
    answer
}
