//! The authoritative lookup algorithm (RFC 1034 4.3.2, RFC 4592 wildcards, RFC 2308 negative
//! answers, RFC 8482 ANY): given one zone snapshot and a question, decide the sections of the
//! answer.
//!
//! Pure logic: no sockets, no clocks, no message encoding (that is `response`'s job). The
//! answer borrows the zone's wire-format RRsets, so deciding it copies no record data and, in
//! the common case, allocates nothing. Delegations are referrals without AA; data below a zone
//! cut is occluded; CNAME chains are followed inside the zone up to `CNAME_CHAIN_MAX` links.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use smallvec::SmallVec;

use crate::dns::name::KeyBuf;
use crate::dns::zone::{CNAME_CHAIN_MAX, Node, RrSetRef, Zone};

/// Whose name a record of the answer is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'z> {
    /// The query name, as the client wrote it (exact matches and wildcard synthesis).
    Query,
    /// A name in uncompressed wire form (CNAME targets, zone cuts, glue, the apex).
    Wire(&'z [u8]),
}

/// One RRset of an answer, with the owner to write it under.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'z> {
    /// The owner name.
    pub owner: Owner<'z>,
    /// The records (type, TTL, RDATAs).
    pub set: RrSetRef<'z>,
}

/// RRsets of one section; a handful fit without allocating.
pub type Section<'z> = SmallVec<[Entry<'z>; 4]>;

/// The sections of an answer, before encoding.
#[derive(Debug, Clone)]
pub struct Answer<'z> {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// Whether the AA bit is set (false only for referrals).
    pub authoritative: bool,
    /// The answer section.
    pub answer: Section<'z>,
    /// The authority section.
    pub authority: Section<'z>,
    /// The additional section (glue and addresses of targets), which may be dropped first when
    /// the answer does not fit.
    pub additional: Section<'z>,
    /// True when the additional section holds referral glue, which must not be dropped
    /// silently: an answer without room for it is truncated instead (RFC 9471).
    pub glue_required: bool,
}

impl<'z> Answer<'z> {
    /// An answer with no records and the given code (REFUSED, SERVFAIL, ...).
    pub fn empty(rcode: ResponseCode) -> Answer<'z> {
        Answer {
            rcode,
            authoritative: false,
            answer: Section::new(),
            authority: Section::new(),
            additional: Section::new(),
            glue_required: false,
        }
    }
}

/// How many RRsets an ANY query may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyPolicy {
    /// One RRset (RFC 8482 4.2): used over UDP, where a full dump is an amplification vector.
    Minimal,
    /// Every RRset at the name: used over TCP.
    Full,
}

/// Answers the query name whose key is `qname` (`KeyBuf::of_wire`, which the caller already
/// made to find the zone) for `qtype` from `zone`. The name must be at or below the zone apex.
pub fn lookup<'z>(zone: &'z Zone, qname: &KeyBuf, qtype: RecordType, any: AnyPolicy) -> Answer<'z> {
    let mut answer = Answer::empty(ResponseCode::NoError);
    answer.authoritative = true;
    let mut owner = Owner::Query;
    let mut key = qname.clone();
    let mut visited: SmallVec<[KeyBuf; 2]> = SmallVec::new();
    loop {
        // A zone cut above (or at) the name turns the answer into a referral, except that the
        // DS RRset at a cut belongs to this (the parent) side.
        let exact = match descend(zone, key.as_slice(), qtype) {
            Descent::Cut(cut) => {
                add_referral(zone, cut, &mut answer);
                return answer;
            }
            Descent::Exact(node) => node,
        };
        let target = match exact {
            Some(node) => answer_node(zone, node, owner, qtype, any, &mut answer),
            None if zone.has_descendants_key(key.as_slice()) => {
                // An empty non-terminal exists but holds nothing: NODATA.
                add_negative_soa(zone, &mut answer);
                None
            }
            None => match find_wildcard(zone, key.as_slice()) {
                Some(wildcard) => answer_node(zone, wildcard, owner, qtype, any, &mut answer),
                None => {
                    answer.rcode = ResponseCode::NXDomain;
                    add_negative_soa(zone, &mut answer);
                    None
                }
            },
        };
        let Some(target) = target else {
            return answer;
        };
        let target_key = KeyBuf::of_wire(target);
        visited.push(key);
        // Follow the chain only inside this zone, only so far, and never around a loop.
        if !zone.contains_key(target_key.as_slice())
            || visited.len() > CNAME_CHAIN_MAX
            || visited
                .iter()
                .any(|seen| seen.as_slice() == target_key.as_slice())
        {
            return answer;
        }
        key = target_key;
        owner = Owner::Wire(target);
    }
}

/// The SOA for the authority section of a negative answer, with the negative TTL.
fn add_negative_soa<'z>(zone: &'z Zone, answer: &mut Answer<'z>) {
    let apex = zone.apex();
    if let Some(mut soa) = apex.rrset(RecordType::SOA) {
        soa.ttl = zone.negative_ttl();
        answer.authority.push(Entry {
            owner: Owner::Wire(apex.name_wire()),
            set: soa,
        });
    }
}

/// Adds the data of `node` for `qtype` under `owner`; returns a CNAME target to follow.
fn answer_node<'z>(
    zone: &'z Zone,
    node: &'z Node,
    owner: Owner<'z>,
    qtype: RecordType,
    any: AnyPolicy,
    answer: &mut Answer<'z>,
) -> Option<&'z [u8]> {
    if qtype == RecordType::ANY {
        let limit = match any {
            AnyPolicy::Full => usize::MAX,
            AnyPolicy::Minimal => 1,
        };
        for set in node.rrsets().take(limit) {
            answer.answer.push(Entry { owner, set });
        }
        return None;
    }
    if let Some(set) = node.rrset(qtype) {
        answer.answer.push(Entry { owner, set });
        add_target_addresses(zone, set, false, answer);
        return None;
    }
    if let Some(set) = node.rrset(RecordType::CNAME) {
        answer.answer.push(Entry { owner, set });
        return set.rdatas().next();
    }
    add_negative_soa(zone, answer);
    None
}

/// Ends of the label-terminating zeros in a key: the keys of a name's ancestors are its
/// prefixes up to and including each of them (labels from the root down).
fn ancestor_ends(key: &[u8]) -> impl Iterator<Item = usize> + '_ {
    key.iter()
        .enumerate()
        .filter(|(_, byte)| **byte == 0)
        .map(|(index, _)| index + 1)
}

/// Where the way from the apex down to a name ends.
enum Descent<'z> {
    /// At a zone cut: the answer is a referral.
    Cut(&'z Node),
    /// At the name itself, which holds data or not.
    Exact(Option<&'z Node>),
}

/// Walks from the apex down to the name of `key`, looking each name up once: the first name
/// below the apex with NS records is a cut (except for DS at the cut itself, which the parent
/// side answers); otherwise the name's own node.
fn descend<'z>(zone: &'z Zone, key: &[u8], qtype: RecordType) -> Descent<'z> {
    let apex_len = zone.origin_key().len();
    if key.len() > apex_len && zone.has_cuts() {
        for end in ancestor_ends(key).filter(|end| *end > apex_len && *end < key.len()) {
            if let Some(node) = zone.node_by_key(&key[..end])
                && node.rrset(RecordType::NS).is_some()
            {
                return Descent::Cut(node);
            }
        }
    }
    let node = zone.node_by_key(key);
    if key.len() > apex_len
        && qtype != RecordType::DS
        && let Some(node) = node
        && node.rrset(RecordType::NS).is_some()
    {
        return Descent::Cut(node);
    }
    Descent::Exact(node)
}

/// The highest delegation point strictly below the apex on the way to `key`.
fn find_cut<'z>(zone: &'z Zone, key: &[u8], qtype: RecordType) -> Option<&'z Node> {
    if !zone.has_cuts() {
        return None;
    }
    let apex_len = zone.origin_key().len();
    for end in ancestor_ends(key).filter(|end| *end > apex_len) {
        let Some(node) = zone.node_by_key(&key[..end]) else {
            continue;
        };
        if node.rrset(RecordType::NS).is_none() {
            continue;
        }
        if end == key.len() && qtype == RecordType::DS {
            return None;
        }
        return Some(node);
    }
    None
}

/// A referral: NS of the cut in authority, addresses of its name servers as glue.
fn add_referral<'z>(zone: &'z Zone, cut: &'z Node, answer: &mut Answer<'z>) {
    if answer.answer.is_empty() {
        answer.authoritative = false;
    }
    let Some(ns) = cut.rrset(RecordType::NS) else {
        return;
    };
    // DS records belong in a referral only for DNSSEC-aware requests (RFC 4035 3.1.4), and this
    // server does not add DNSSEC data to answers yet.
    answer.authority.push(Entry {
        owner: Owner::Wire(cut.name_wire()),
        set: ns,
    });
    let before = answer.additional.len();
    add_target_addresses(zone, ns, true, answer);
    answer.glue_required |= answer.additional.len() > before;
}

/// The name an NS, MX or SRV RDATA points to, in wire form.
fn target_of(rtype: RecordType, rdata: &[u8]) -> Option<&[u8]> {
    match rtype {
        RecordType::NS => Some(rdata),
        RecordType::MX => rdata.get(2..),
        RecordType::SRV => rdata.get(6..),
        _ => None,
    }
}

/// Additional-section processing (RFC 1034 4.3.2 step 6): A and AAAA records held in this zone
/// for the names that NS, MX and SRV records point to. Addresses at or below a zone cut are
/// glue, not authoritative data: they go out only with a referral (`glue`), never beside an
/// authoritative answer (RFC 2181 5.4.1).
fn add_target_addresses<'z>(
    zone: &'z Zone,
    set: RrSetRef<'z>,
    glue: bool,
    answer: &mut Answer<'z>,
) {
    if !matches!(set.rtype, RecordType::NS | RecordType::MX | RecordType::SRV) {
        return;
    }
    for rdata in set.rdatas() {
        let Some(target) = target_of(set.rtype, rdata) else {
            continue;
        };
        let key = KeyBuf::of_wire(target);
        let key = key.as_slice();
        if !zone.contains_key(key) || (!glue && find_cut(zone, key, RecordType::A).is_some()) {
            continue;
        }
        let Some(node) = zone.node_by_key(key) else {
            continue;
        };
        for rtype in [RecordType::A, RecordType::AAAA] {
            let Some(addresses) = node.rrset(rtype) else {
                continue;
            };
            let duplicate = answer.additional.iter().any(|entry| {
                entry.set.rtype == rtype
                    && matches!(entry.owner, Owner::Wire(name) if std::ptr::eq(name, node.name_wire()))
            });
            if !duplicate {
                answer.additional.push(Entry {
                    owner: Owner::Wire(node.name_wire()),
                    set: addresses,
                });
            }
        }
    }
}

/// The wildcard node that synthesises the name of `key` (RFC 4592 3.3.1): `*.` below the
/// closest encloser, when the name itself does not exist.
fn find_wildcard<'z>(zone: &'z Zone, key: &[u8]) -> Option<&'z Node> {
    if !zone.has_wildcards() {
        return None;
    }
    let apex_len = zone.origin_key().len();
    let ends: SmallVec<[usize; 16]> = ancestor_ends(key).collect();
    // From the parent of the name up to the apex: the first that exists is the closest
    // encloser, and only its own wildcard may answer.
    for &end in ends.iter().rev().skip(1) {
        if end < apex_len {
            break;
        }
        let ancestor = &key[..end];
        if end == apex_len
            || zone.node_by_key(ancestor).is_some()
            || zone.has_descendants_key(ancestor)
        {
            let mut wildcard = KeyBuf::from_slice(ancestor)?;
            wildcard.push_slice(b"*\0")?;
            return zone.node_by_key(wildcard.as_slice());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::MX;

    use hickory_proto::rr::{Name, RData, Record};

    use super::*;
    use crate::dns::name::{name_from_wire, name_wire};
    use crate::dns::zone::tests::{LIMITS, a, base_records, cname, name, ns, txt};

    fn test_zone() -> Zone {
        let mut records = base_records();
        records.extend([
            cname("alias.example.test.", "www.example.test."),
            cname("chain.example.test.", "alias.example.test."),
            cname("out.example.test.", "www.elsewhere.test."),
            cname("loop1.example.test.", "loop2.example.test."),
            cname("loop2.example.test.", "loop1.example.test."),
            a("*.wild.example.test.", "192.0.2.20"),
            txt("host.sub.wild.example.test.", "deep"),
            ns("child.example.test.", "ns.child.example.test."),
            a("ns.child.example.test.", "192.0.2.30"),
            a("hidden.child.example.test.", "192.0.2.31"),
            a("a.ent.example.test.", "192.0.2.40"),
            Record::from_rdata(
                name("example.test."),
                300,
                RData::MX(MX::new(10, name("mail.example.test."))),
            ),
            a("mail.example.test.", "192.0.2.25"),
            cname("*.cw.example.test.", "www.example.test."),
            Record::from_rdata(
                name("occl.example.test."),
                300,
                RData::MX(MX::new(10, name("ns.child.example.test."))),
            ),
            a("x.ent.example.test.", "192.0.2.41"),
        ]);
        Zone::from_records(&name("example.test."), records, LIMITS).expect("valid")
    }

    /// An answer with its sections as records, owners filled in.
    #[derive(Debug)]
    struct Seen {
        rcode: ResponseCode,
        authoritative: bool,
        answer: Vec<Record>,
        authority: Vec<Record>,
        additional: Vec<Record>,
        glue_required: bool,
    }

    fn records(section: &Section<'_>, qname: &Name) -> Vec<Record> {
        section
            .iter()
            .flat_map(|entry| {
                let owner = match entry.owner {
                    Owner::Query => qname.clone(),
                    Owner::Wire(wire) => name_from_wire(wire).expect("valid"),
                };
                entry.set.records(&owner)
            })
            .collect()
    }

    fn ask_in(zone: &Zone, qname: &str, qtype: RecordType, any: AnyPolicy) -> Seen {
        let qname = name(qname);
        let found = lookup(zone, &KeyBuf::of_wire(&name_wire(&qname)), qtype, any);
        Seen {
            rcode: found.rcode,
            authoritative: found.authoritative,
            answer: records(&found.answer, &qname),
            authority: records(&found.authority, &qname),
            additional: records(&found.additional, &qname),
            glue_required: found.glue_required,
        }
    }

    fn ask(qname: &str, qtype: RecordType) -> Seen {
        ask_in(&test_zone(), qname, qtype, AnyPolicy::Full)
    }

    fn types(records: &[Record]) -> Vec<RecordType> {
        records.iter().map(Record::record_type).collect()
    }

    #[test]
    fn exact_answer_is_authoritative() {
        let answer = ask("WWW.example.test.", RecordType::A);
        assert_eq!(answer.rcode, ResponseCode::NoError);
        assert!(answer.authoritative);
        assert_eq!(types(&answer.answer), [RecordType::A]);
        assert_eq!(answer.answer[0].name.to_string(), "WWW.example.test.");
        assert!(answer.authority.is_empty());
    }

    #[test]
    fn nodata_and_nxdomain_carry_negative_soa() {
        let nodata = ask("www.example.test.", RecordType::AAAA);
        assert_eq!(nodata.rcode, ResponseCode::NoError);
        assert!(nodata.answer.is_empty());
        assert_eq!(types(&nodata.authority), [RecordType::SOA]);
        assert_eq!(nodata.authority[0].ttl, 300, "min(SOA TTL, MINIMUM)");

        let nx = ask("nope.example.test.", RecordType::A);
        assert_eq!(nx.rcode, ResponseCode::NXDomain);
        assert_eq!(types(&nx.authority), [RecordType::SOA]);
    }

    #[test]
    fn cname_chains_are_followed_inside_the_zone() {
        let answer = ask("chain.example.test.", RecordType::A);
        assert_eq!(
            types(&answer.answer),
            [RecordType::CNAME, RecordType::CNAME, RecordType::A]
        );
        let out = ask("out.example.test.", RecordType::A);
        assert_eq!(types(&out.answer), [RecordType::CNAME]);
        assert_eq!(out.rcode, ResponseCode::NoError);
        let looped = ask("loop1.example.test.", RecordType::A);
        assert_eq!(
            types(&looped.answer),
            [RecordType::CNAME, RecordType::CNAME]
        );
        let direct = ask("alias.example.test.", RecordType::CNAME);
        assert_eq!(types(&direct.answer), [RecordType::CNAME]);
    }

    #[test]
    fn wildcards_synthesise_only_for_missing_names() {
        let answer = ask("anything.wild.example.test.", RecordType::A);
        assert_eq!(types(&answer.answer), [RecordType::A]);
        assert_eq!(answer.answer[0].name, name("anything.wild.example.test."));
        let nodata = ask("anything.wild.example.test.", RecordType::MX);
        assert!(nodata.answer.is_empty());
        assert_eq!(nodata.rcode, ResponseCode::NoError);
        // sub.wild is an empty non-terminal: it exists, so no synthesis (RFC 4592 2.2.2).
        let ent = ask("sub.wild.example.test.", RecordType::A);
        assert!(ent.answer.is_empty());
        assert_eq!(ent.rcode, ResponseCode::NoError);
        // Below the empty non-terminal the closest encloser is sub.wild, which has no wildcard.
        let below = ask("x.sub.wild.example.test.", RecordType::A);
        assert_eq!(below.rcode, ResponseCode::NXDomain);
        let deep = ask("a.b.wild.example.test.", RecordType::A);
        assert_eq!(types(&deep.answer), [RecordType::A]);
        let cname_wild = ask("foo.cw.example.test.", RecordType::A);
        assert_eq!(
            types(&cname_wild.answer),
            [RecordType::CNAME, RecordType::A]
        );
    }

    #[test]
    fn delegations_are_referrals_with_glue() {
        for qname in [
            "child.example.test.",
            "hidden.child.example.test.",
            "x.y.child.example.test.",
        ] {
            let answer = ask(qname, RecordType::A);
            assert!(!answer.authoritative, "{qname}");
            assert!(
                answer.answer.is_empty(),
                "{qname}: occluded data stays hidden"
            );
            assert_eq!(types(&answer.authority), [RecordType::NS]);
            assert_eq!(types(&answer.additional), [RecordType::A]);
        }
        let ds = ask("child.example.test.", RecordType::DS);
        assert!(ds.authoritative);
        assert_eq!(types(&ds.authority), [RecordType::SOA]);
    }

    #[test]
    fn literal_asterisk_labels_in_the_query() {
        // `*.wild` itself exists, so it is the closest encloser of `*.*.wild`, which has no
        // `*.*.wild` wildcard: NXDOMAIN, as NSD answers (RFC 4592 3.3.1).
        let below_wildcard = ask("*.*.wild.example.test.", RecordType::A);
        assert_eq!(below_wildcard.rcode, ResponseCode::NXDomain);
        let exact = ask("*.wild.example.test.", RecordType::A);
        assert_eq!(types(&exact.answer), [RecordType::A]);
        // x.ent exists, so *.x.ent is NXDOMAIN: there is no *.x.ent wildcard.
        let no_wildcard = ask("*.x.ent.example.test.", RecordType::A);
        assert_eq!(no_wildcard.rcode, ResponseCode::NXDomain);
        // Below a cut: a referral, even for a name that starts with `*`.
        let below_cut = ask("*.child.example.test.", RecordType::DS);
        assert!(!below_cut.authoritative);
        assert_eq!(types(&below_cut.authority), [RecordType::NS]);
    }

    #[test]
    fn glue_stays_out_of_authoritative_answers() {
        let answer = ask("occl.example.test.", RecordType::MX);
        assert_eq!(types(&answer.answer), [RecordType::MX]);
        assert!(
            answer.additional.is_empty(),
            "occluded address leaked: {answer:?}"
        );
        assert!(!answer.glue_required);
        let referral = ask("child.example.test.", RecordType::A);
        assert!(referral.glue_required);
    }

    #[test]
    fn empty_non_terminal_is_nodata() {
        let answer = ask("ent.example.test.", RecordType::A);
        assert_eq!(answer.rcode, ResponseCode::NoError);
        assert!(answer.answer.is_empty());
        assert_eq!(types(&answer.authority), [RecordType::SOA]);
    }

    #[test]
    fn additional_addresses_for_mx_and_ns() {
        let mx = ask("example.test.", RecordType::MX);
        assert_eq!(types(&mx.additional), [RecordType::A]);
        let apex_ns = ask("example.test.", RecordType::NS);
        assert_eq!(types(&apex_ns.additional), [RecordType::A]);
    }

    #[test]
    fn any_is_minimal_over_udp() {
        let zone = test_zone();
        let full = ask_in(&zone, "example.test.", RecordType::ANY, AnyPolicy::Full);
        assert!(full.answer.len() >= 2);
        let minimal = ask_in(&zone, "example.test.", RecordType::ANY, AnyPolicy::Minimal);
        assert_eq!(minimal.answer.len(), 1);
    }
}
