//! Zone data and query lists used by the scenarios, as plain data.
//!
//! `rich_zone` exercises every common record type and the lookup corner cases of RFC 1034
//! section 4.3.2 and RFC 4592 (CNAME chains, a delegation with glue and DS, wildcards, empty
//! non-terminals). `COMPARE_QUERIES` is the list of questions that reference servers and zonecast
//! must answer identically. Names are lowercase in the zone text so that case handling is tested
//! only through the queries.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::client::QueryOptions;

/// The origin of the rich test zone.
pub const RICH_ZONE: &str = "example.test";

/// A minimal zone: SOA with the given timers, two NS with addresses, a `www` A record and a TXT
/// record carrying the serial (so every version differs in data, not only in the SOA).
pub fn simple_zone(origin: &str, serial: u32, refresh: u32, retry: u32, expire: u32) -> String {
    format!(
        "$ORIGIN {origin}.\n\
         $TTL 300\n\
         @ 300 IN SOA ns1.{origin}. hostmaster.{origin}. {serial} {refresh} {retry} {expire} 60\n\
         @ NS ns1\n\
         @ NS ns2\n\
         ns1 A 192.0.2.53\n\
         ns2 A 192.0.2.54\n\
         www A 192.0.2.80\n\
         version TXT \"serial {serial}\"\n"
    )
}

/// The rich zone `example.test` with the given serial and long SOA timers.
pub fn rich_zone(serial: u32) -> String {
    let long_first = "a".repeat(255);
    let long_second = "b".repeat(45);
    // Eight TXT records of 124-byte strings make an answer of about 1.1 KB: over 512 bytes,
    // under 1232.
    let big: String = (0..8)
        .map(|index| format!("big TXT \"{index:02}-{}\"\n", "x".repeat(120)))
        .collect();
    format!(
        r#"$ORIGIN example.test.
$TTL 3600
@ 3600 IN SOA ns1.example.test. hostmaster.example.test. {serial} 3600 600 86400 300
@ NS ns1
@ NS ns2
@ MX 10 mail
@ MX 20 mail.other.test.
@ A 192.0.2.1
@ AAAA 2001:db8::1
@ TXT "v=spf1 -all"
@ CAA 0 issue "ca.example.net"
@ CAA 0 iodef "mailto:security@example.test"
ns1 A 192.0.2.53
ns1 AAAA 2001:db8::53
ns2 A 192.0.2.54
mail A 192.0.2.25
www A 192.0.2.80
www AAAA 2001:db8::80
www 600 TXT "a record set with its own ttl"
alias CNAME www
chain1 CNAME chain2
chain2 CNAME www
external CNAME www.other.test.
multi TXT "first string" "second string" "third"
long TXT "{long_first}" "{long_second}"
{big}_sip._tcp SRV 10 60 5060 sip
sip A 192.0.2.60
ptr PTR www.example.test.
naptr NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.example.test.
sshfp SSHFP 1 1 0123456789abcdef0123456789abcdef01234567
sshfp SSHFP 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_443._tcp.www TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
hinfo HINFO "PC" "Linux"
sub NS ns.sub
sub NS ns.other.test.
sub DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.sub A 192.0.2.99
ns.sub AAAA 2001:db8::99
host.ent A 192.0.2.7
*.wild A 192.0.2.200
*.wild TXT "wildcard"
host.ent.wild A 192.0.2.201
"#
    )
}

/// One question for the answer comparison, with the header it must get.
#[derive(Clone, Debug)]
pub struct CompareQuery {
    /// What the query checks, for messages.
    pub purpose: &'static str,
    /// The QNAME exactly as sent (case included).
    pub name: &'static str,
    /// The QTYPE.
    pub rtype: RecordType,
    /// EDNS and DO settings.
    pub edns: EdnsChoice,
    /// The expected rcode.
    pub rcode: ResponseCode,
    /// The expected AA flag (false for referrals and REFUSED).
    pub authoritative: bool,
    /// The expected TC flag.
    pub truncated: bool,
}

/// The EDNS setting of a `CompareQuery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdnsChoice {
    /// EDNS with a 1232-byte payload (the default).
    Default,
    /// EDNS with a 512-byte payload.
    Small,
    /// No OPT record.
    None,
    /// EDNS with the DO bit set (the zone is unsigned: the answer must not change).
    DnssecOk,
}

impl CompareQuery {
    /// The client options for this query.
    pub fn options(&self) -> QueryOptions {
        match self.edns {
            EdnsChoice::Default => QueryOptions::default(),
            EdnsChoice::Small => QueryOptions::edns(512),
            EdnsChoice::None => QueryOptions::no_edns(),
            EdnsChoice::DnssecOk => QueryOptions::default().with_dnssec_ok(),
        }
    }

    /// Checks the header of `response` against the expectation; `Err` says what differs.
    pub fn check_header(&self, response: &Message) -> Result<(), String> {
        let metadata = &response.metadata;
        let got = (
            metadata.response_code,
            metadata.authoritative,
            metadata.truncation,
        );
        let wanted = (self.rcode, self.authoritative, self.truncated);
        if got == wanted {
            Ok(())
        } else {
            Err(format!(
                "{} {} ({}): expected rcode/AA/TC {wanted:?}, got {got:?}",
                self.name, self.rtype, self.purpose
            ))
        }
    }

    const fn nxdomain(mut self) -> CompareQuery {
        self.rcode = ResponseCode::NXDomain;
        self
    }

    const fn refused(mut self) -> CompareQuery {
        self.rcode = ResponseCode::Refused;
        self.authoritative = false;
        self
    }

    const fn referral(mut self) -> CompareQuery {
        self.authoritative = false;
        self
    }

    const fn truncated(mut self) -> CompareQuery {
        self.truncated = true;
        self
    }

    const fn edns(mut self, edns: EdnsChoice) -> CompareQuery {
        self.edns = edns;
        self
    }
}

/// A query expected to get an authoritative NOERROR answer with EDNS at 1232 bytes.
const fn query(purpose: &'static str, name: &'static str, rtype: RecordType) -> CompareQuery {
    CompareQuery {
        purpose,
        name,
        rtype,
        edns: EdnsChoice::Default,
        rcode: ResponseCode::NoError,
        authoritative: true,
        truncated: false,
    }
}

/// Questions against `rich_zone` whose answers zonecast must give exactly like NSD and Knot.
///
/// Deliberately absent: QTYPE ANY (RFC 8482 lets servers answer with any subset or a synthesized
/// HINFO; NSD answers with the SOA and Knot with the apex A here), and AXFR/IXFR (zonecast
/// refuses them while the reference servers allow them).
pub const COMPARE_QUERIES: &[CompareQuery] = &[
    query("apex SOA", "example.test", RecordType::SOA),
    query("apex NS", "example.test", RecordType::NS),
    query("apex MX", "example.test", RecordType::MX),
    query("apex A", "example.test", RecordType::A),
    query("apex AAAA", "example.test", RecordType::AAAA),
    query("apex TXT", "example.test", RecordType::TXT),
    query("apex CAA", "example.test", RecordType::CAA),
    query("plain A", "www.example.test", RecordType::A),
    query("plain AAAA", "www.example.test", RecordType::AAAA),
    query("TXT with its own TTL", "www.example.test", RecordType::TXT),
    query(
        "NODATA at a name with data",
        "www.example.test",
        RecordType::MX,
    ),
    query("NXDOMAIN", "nonexistent.example.test", RecordType::A).nxdomain(),
    query(
        "NXDOMAIN two labels down",
        "a.b.nonexistent.example.test",
        RecordType::A,
    )
    .nxdomain(),
    query("CNAME followed to A", "alias.example.test", RecordType::A),
    query(
        "CNAME asked for itself",
        "alias.example.test",
        RecordType::CNAME,
    ),
    query(
        "CNAME to a type the target lacks",
        "alias.example.test",
        RecordType::MX,
    ),
    query(
        "CNAME chain inside the zone",
        "chain1.example.test",
        RecordType::A,
    ),
    query(
        "CNAME leaving the zone",
        "external.example.test",
        RecordType::A,
    ),
    query(
        "TXT with several strings",
        "multi.example.test",
        RecordType::TXT,
    ),
    query(
        "TXT longer than 255 split in two",
        "long.example.test",
        RecordType::TXT,
    ),
    query(
        "SRV with target address",
        "_sip._tcp.example.test",
        RecordType::SRV,
    ),
    query(
        "empty non-terminal _tcp",
        "_tcp.example.test",
        RecordType::A,
    ),
    query("NAPTR", "naptr.example.test", RecordType::NAPTR),
    query("SSHFP", "sshfp.example.test", RecordType::SSHFP),
    query("TLSA", "_443._tcp.www.example.test", RecordType::TLSA),
    query("HINFO", "hinfo.example.test", RecordType::HINFO),
    query("PTR", "ptr.example.test", RecordType::PTR),
    query("nameserver address", "ns1.example.test", RecordType::A),
    query("wildcard match", "foo.wild.example.test", RecordType::A),
    query(
        "wildcard match TXT",
        "foo.wild.example.test",
        RecordType::TXT,
    ),
    query(
        "wildcard match two labels down",
        "a.b.wild.example.test",
        RecordType::A,
    ),
    query("wildcard NODATA", "foo.wild.example.test", RecordType::AAAA),
    query(
        "the wildcard owner itself",
        "*.wild.example.test",
        RecordType::A,
    ),
    query(
        "empty non-terminal sibling of the wildcard",
        "ent.wild.example.test",
        RecordType::A,
    ),
    query(
        "below the wildcard's empty non-terminal sibling",
        "foo.ent.wild.example.test",
        RecordType::A,
    )
    .nxdomain(),
    query(
        "existing name next to the wildcard",
        "host.ent.wild.example.test",
        RecordType::A,
    ),
    query(
        "empty non-terminal NODATA",
        "ent.example.test",
        RecordType::A,
    ),
    query(
        "below an empty non-terminal",
        "host.ent.example.test",
        RecordType::A,
    ),
    query("referral at the cut", "sub.example.test", RecordType::A).referral(),
    query(
        "referral for NS at the cut",
        "sub.example.test",
        RecordType::NS,
    )
    .referral(),
    query(
        "referral below the cut",
        "host.sub.example.test",
        RecordType::A,
    )
    .referral(),
    query(
        "glue name is below the cut",
        "ns.sub.example.test",
        RecordType::A,
    )
    .referral(),
    query(
        "DS at the cut answered by the parent",
        "sub.example.test",
        RecordType::DS,
    ),
    query("mixed-case QNAME", "WwW.ExAmPlE.TeSt", RecordType::A),
    query(
        "mixed-case CNAME chain",
        "ChAiN1.eXaMpLe.TEST",
        RecordType::A,
    ),
    query("mixed-case NXDOMAIN", "NoNe.ExAmPlE.tEsT", RecordType::A).nxdomain(),
    query(
        "mixed-case referral",
        "HoSt.SuB.eXaMpLe.TeSt",
        RecordType::A,
    )
    .referral(),
    query("name outside every zone", "www.other.test", RecordType::A).refused(),
    query("parent of the zone", "test", RecordType::SOA).refused(),
    query(
        "big RRset with a 512-byte buffer",
        "big.example.test",
        RecordType::TXT,
    )
    .edns(EdnsChoice::Small)
    .truncated(),
    query(
        "big RRset without EDNS",
        "big.example.test",
        RecordType::TXT,
    )
    .edns(EdnsChoice::None)
    .truncated(),
    query(
        "big RRset fits 1232 bytes",
        "big.example.test",
        RecordType::TXT,
    ),
    query("plain A without EDNS", "www.example.test", RecordType::A).edns(EdnsChoice::None),
    query(
        "NXDOMAIN without EDNS",
        "nonexistent.example.test",
        RecordType::A,
    )
    .nxdomain()
    .edns(EdnsChoice::None),
    query(
        "DO bit on an unsigned zone",
        "www.example.test",
        RecordType::A,
    )
    .edns(EdnsChoice::DnssecOk),
];
