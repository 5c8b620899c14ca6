//! TSIG keys for the test peers, and RFC 8945 signing of single DNS messages.
//!
//! The signer serves the hostile primary test double (which must produce both correct and
//! deliberately wrong signatures) and the test client. It signs whole, single-message responses
//! and requests only: multi-message streams are out of scope because the test double sends each
//! transfer in one message. It does no I/O.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, make_tsig_record};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hmac::{Hmac, Mac};

use crate::util::{random_u64, unix_now};

/// The fudge (allowed clock skew, seconds) put into every signature; RFC 8945 recommends 300.
const FUDGE_S: u16 = 300;

/// A TSIG key as BIND and zonecast configure it: a name, an algorithm name such as
/// `hmac-sha256`, and a base64 secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Key name, e.g. `xfr-key`.
    pub name: String,
    /// Algorithm name as BIND spells it: `hmac-sha1`, `hmac-sha256`, `hmac-sha512`, ...
    pub algorithm: String,
    /// Base64 encoding of the secret.
    pub secret: String,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets are test values, but printing them in every panic message is noise.
        formatter
            .debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// A key with a freshly generated random 32-byte secret.
    pub fn generate(name: &str, algorithm: &str) -> TsigKey {
        let mut secret = Vec::with_capacity(32);
        for _ in 0..4 {
            secret.extend_from_slice(&random_u64().to_be_bytes());
        }
        TsigKey::from_bytes(name, algorithm, &secret)
    }

    /// A key with the given secret bytes.
    pub fn from_bytes(name: &str, algorithm: &str, secret: &[u8]) -> TsigKey {
        TsigKey {
            name: name.to_owned(),
            algorithm: algorithm.to_owned(),
            secret: BASE64.encode(secret),
        }
    }

    /// The same key name and algorithm with a different random secret: what a peer with a
    /// stale or mistyped secret holds.
    pub fn with_other_secret(&self) -> TsigKey {
        let mut other = TsigKey::generate(&self.name, &self.algorithm);
        while other.secret == self.secret {
            other = TsigKey::generate(&self.name, &self.algorithm);
        }
        other
    }

    /// The decoded secret.
    pub fn secret_bytes(&self) -> Vec<u8> {
        BASE64
            .decode(&self.secret)
            .unwrap_or_else(|error| panic!("TSIG key {} has invalid base64: {error}", self.name))
    }

    /// The key's name as a DNS name.
    pub fn dns_name(&self) -> Name {
        Name::from_ascii(format!("{}.", self.name.trim_end_matches('.')))
            .unwrap_or_else(|error| panic!("invalid TSIG key name {}: {error}", self.name))
    }

    /// The `-y` argument for `dig` and `nsupdate`: `algorithm:name:secret`.
    pub fn dig_argument(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name, self.secret)
    }

    /// The BIND `key` statement for this key.
    pub fn bind_statement(&self) -> String {
        format!(
            "key \"{}\" {{ algorithm {}; secret \"{}\"; }};\n",
            self.name, self.algorithm, self.secret
        )
    }

    fn tsig_algorithm(&self) -> TsigAlgorithm {
        match self.algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha1" => TsigAlgorithm::HmacSha1,
            "hmac-sha224" => TsigAlgorithm::HmacSha224,
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => panic!("TSIG algorithm {other} is not supported by the test signer"),
        }
    }
}

/// Signs `message` with `key` and attaches the TSIG record; returns the MAC so a caller can
/// chain it (a request's MAC is needed to verify or sign its response).
///
/// `request_mac` is `Some` when signing a response: RFC 8945 section 4.3.1 puts the request's
/// MAC (with its length) in front of the response in the digest.
pub fn sign(message: &mut Message, key: &TsigKey, request_mac: Option<&[u8]>) -> Vec<u8> {
    sign_at(message, key, request_mac, unix_now())
}

/// `sign` with an explicit signing time.
pub fn sign_at(
    message: &mut Message,
    key: &TsigKey,
    request_mac: Option<&[u8]>,
    time_signed: u64,
) -> Vec<u8> {
    message.signature = None;
    message
        .additionals
        .retain(|record| record.record_type() != RecordType::TSIG);
    let unsigned = message
        .to_vec()
        .unwrap_or_else(|error| panic!("cannot encode message to sign: {error}"));
    let pre_tsig = TSIG::new(
        key.tsig_algorithm(),
        time_signed,
        FUDGE_S,
        Vec::new(),
        message.metadata.id,
        None,
        Vec::new(),
    );
    let mut digest_input = Vec::with_capacity(unsigned.len() + 128);
    if let Some(request_mac) = request_mac {
        let length = u16::try_from(request_mac.len()).expect("a MAC is shorter than 64 KiB");
        digest_input.extend_from_slice(&length.to_be_bytes());
        digest_input.extend_from_slice(request_mac);
    }
    digest_input.extend_from_slice(&unsigned);
    // A `BinEncoder` writes from offset 0 of the vector it is given, overwriting what is there:
    // encode the TSIG variables separately and append them.
    let mut variables = Vec::with_capacity(64);
    pre_tsig
        .emit_tsig_for_mac(&mut BinEncoder::new(&mut variables), &key.dns_name())
        .unwrap_or_else(|error| panic!("cannot encode TSIG variables: {error}"));
    digest_input.extend_from_slice(&variables);
    let mac = hmac(&key.algorithm, &key.secret_bytes(), &digest_input);
    let record: Record<TSIG> = make_tsig_record(key.dns_name(), pre_tsig.set_mac(mac.clone()));
    message.signature = Some(Box::new(record));
    mac
}

/// The TSIG record data of a received message, if it has one.
///
/// Without one of hickory's `dnssec-*` features (this workspace has none) a decoded TSIG record
/// stays the last record of the additional section instead of moving to `Message::signature`,
/// so both places are looked at.
pub fn message_tsig(message: &Message) -> Option<TSIG> {
    if let Some(record) = &message.signature {
        return Some(record.data.clone());
    }
    match message.additionals.last().map(|record| &record.data) {
        Some(RData::TSIG(tsig)) => Some(tsig.clone()),
        _ => None,
    }
}

/// The MAC of a received message's TSIG record, if it has one.
pub fn message_mac(message: &Message) -> Option<Vec<u8>> {
    message_tsig(message).map(|tsig| tsig.mac)
}

/// HMAC of `data` under `secret` with the named algorithm.
fn hmac(algorithm: &str, secret: &[u8], data: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|error| panic!("HMAC accepts keys of any length: {error}"));
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm.to_ascii_lowercase().as_str() {
        "hmac-sha1" => run::<Hmac<sha1::Sha1>>(secret, data),
        "hmac-sha224" => run::<Hmac<sha2::Sha224>>(secret, data),
        "hmac-sha256" => run::<Hmac<sha2::Sha256>>(secret, data),
        "hmac-sha384" => run::<Hmac<sha2::Sha384>>(secret, data),
        "hmac-sha512" => run::<Hmac<sha2::Sha512>>(secret, data),
        other => panic!("TSIG algorithm {other} is not supported by the test signer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let mac = hmac("hmac-sha256", b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn other_secret_differs() {
        let key = TsigKey::generate("k", "hmac-sha256");
        assert_ne!(key.with_other_secret().secret, key.secret);
        assert_eq!(key.secret_bytes().len(), 32);
    }

    #[test]
    fn signing_attaches_a_tsig_record() {
        let key = TsigKey::generate("xfr-key", "hmac-sha512");
        let mut message = Message::query();
        let mac = sign(&mut message, &key, None);
        assert_eq!(mac.len(), 64);
        let decoded = Message::from_vec(&message.to_vec().expect("encodes")).expect("decodes");
        assert_eq!(message_mac(&decoded), Some(mac));
    }
}
