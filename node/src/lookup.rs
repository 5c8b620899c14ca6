//! The authoritative lookup algorithm (RFC 1034 4.3.2, RFC 4592 wildcards, RFC 2308 negative
//! answers, RFC 8482 ANY): given one zone snapshot and a question, decide the sections of the
//! answer.
//!
//! Pure logic: no sockets, no clocks, no message encoding (that is `serve`'s job). Delegations
//! are referrals without AA; data below a zone cut is occluded; CNAME chains are followed inside
//! the zone up to `CNAME_CHAIN_MAX` links.

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::zone::{CNAME_CHAIN_MAX, Node, Zone, set_records};

/// The sections of an answer, before encoding.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answer {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// Whether the AA bit is set (false only for referrals).
    pub authoritative: bool,
    /// The answer section.
    pub answer: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section (glue and addresses of targets), which may be dropped first when
    /// the answer does not fit.
    pub additional: Vec<Record>,
    /// True when the additional section holds referral glue, which must not be dropped
    /// silently: an answer without room for it is truncated instead (RFC 9471).
    pub glue_required: bool,
}

/// How many RRsets an ANY query may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyPolicy {
    /// One RRset (RFC 8482 4.2): used over UDP, where a full dump is an amplification vector.
    Minimal,
    /// Every RRset at the name: used over TCP.
    Full,
}

/// Answers `qname`/`qtype` from `zone`. `qname` must be at or below the zone apex.
pub fn lookup(zone: &Zone, qname: &Name, qtype: RecordType, any: AnyPolicy) -> Answer {
    let mut answer = Answer {
        rcode: ResponseCode::NoError,
        authoritative: true,
        ..Answer::default()
    };
    let mut name = qname.clone();
    let mut visited: Vec<Name> = Vec::new();
    loop {
        // A zone cut above (or at) the name turns the answer into a referral, except that the
        // DS RRset at a cut belongs to this (the parent) side.
        if let Some(cut) = find_cut(zone, &name, qtype) {
            add_referral(zone, &cut, &mut answer);
            return answer;
        }
        let target = match zone.node(&name) {
            Some(node) => answer_node(zone, node, &name, qtype, any, &mut answer),
            None if zone.has_descendants(&name) => {
                // An empty non-terminal exists but holds nothing: NODATA.
                answer.authority.push(zone.negative_soa_record());
                None
            }
            None => match find_wildcard(zone, &name) {
                Some(wildcard) => answer_node(zone, &wildcard, &name, qtype, any, &mut answer),
                None => {
                    answer.rcode = ResponseCode::NXDomain;
                    answer.authority.push(zone.negative_soa_record());
                    None
                }
            },
        };
        let Some(target) = target else {
            return answer;
        };
        visited.push(name);
        // Follow the chain only inside this zone, only so far, and never around a loop.
        if !zone.contains(&target)
            || visited.len() > CNAME_CHAIN_MAX
            || visited.iter().any(|seen| seen.eq_ignore_root(&target))
        {
            return answer;
        }
        name = target;
    }
}

/// Adds the data of `node` for `qtype` under owner `owner`; returns a CNAME target to follow.
fn answer_node(
    zone: &Zone,
    node: &Node,
    owner: &Name,
    qtype: RecordType,
    any: AnyPolicy,
    answer: &mut Answer,
) -> Option<Name> {
    if qtype == RecordType::ANY {
        let sets: Vec<_> = match any {
            AnyPolicy::Full => node.rrsets.iter().collect(),
            AnyPolicy::Minimal => node.rrsets.iter().take(1).collect(),
        };
        for set in sets {
            answer.answer.extend(set_records(set, owner));
        }
        return None;
    }
    if let Some(set) = node.rrset(qtype) {
        let records = set_records(set, owner);
        add_target_addresses(zone, &records, false, answer);
        answer.answer.extend(records);
        return None;
    }
    if let Some(set) = node.rrset(RecordType::CNAME) {
        answer.answer.extend(set_records(set, owner));
        return set.rdatas.iter().find_map(|data| match data {
            RData::CNAME(target) => Some(target.0.clone()),
            _ => None,
        });
    }
    answer.authority.push(zone.negative_soa_record());
    None
}

/// The highest delegation point strictly below the apex on the way to `name`.
fn find_cut(zone: &Zone, name: &Name, qtype: RecordType) -> Option<Arc<Node>> {
    let apex_labels = label_count(zone.origin());
    let name_labels = label_count(name);
    for labels in apex_labels + 1..=name_labels {
        let ancestor = name.trim_to(labels);
        let Some(node) = zone.node(&ancestor) else {
            continue;
        };
        if node.rrset(RecordType::NS).is_none() {
            continue;
        }
        if labels == name_labels && qtype == RecordType::DS {
            return None;
        }
        return Some(node.clone());
    }
    None
}

/// A referral: NS of the cut in authority, addresses of its name servers as glue.
fn add_referral(zone: &Zone, cut: &Node, answer: &mut Answer) {
    if answer.answer.is_empty() {
        answer.authoritative = false;
    }
    let ns = cut.records(RecordType::NS, &cut.name);
    // DS records belong in a referral only for DNSSEC-aware requests (RFC 4035 3.1.4), and this
    // server does not add DNSSEC data to answers yet.
    answer.authority.extend(ns.iter().cloned());
    let before = answer.additional.len();
    add_target_addresses(zone, &ns, true, answer);
    answer.glue_required |= answer.additional.len() > before;
}

/// Additional-section processing (RFC 1034 4.3.2 step 6): A and AAAA records held in this zone
/// for the names that NS, MX and SRV records point to. Addresses at or below a zone cut are
/// glue, not authoritative data: they go out only with a referral (`glue`), never beside an
/// authoritative answer (RFC 2181 5.4.1).
fn add_target_addresses(zone: &Zone, records: &[Record], glue: bool, answer: &mut Answer) {
    for record in records {
        let target = match &record.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        if !zone.contains(target) || (!glue && find_cut(zone, target, RecordType::A).is_some()) {
            continue;
        }
        let Some(node) = zone.node(target) else {
            continue;
        };
        for rtype in [RecordType::A, RecordType::AAAA] {
            for glue in node.records(rtype, &node.name) {
                if !answer.additional.contains(&glue) {
                    answer.additional.push(glue);
                }
            }
        }
    }
}

/// Every label of `name`, a leading `*` included (hickory's `num_labels` leaves a leading `*`
/// out, while `trim_to` counts it).
fn label_count(name: &Name) -> usize {
    name.iter().count()
}

/// The wildcard node that synthesises `name` (RFC 4592 3.3.1): `*.` below the closest
/// encloser, when `name` itself does not exist.
fn find_wildcard(zone: &Zone, name: &Name) -> Option<Arc<Node>> {
    let apex_labels = label_count(zone.origin());
    let mut labels = label_count(name);
    while labels > apex_labels {
        labels -= 1;
        let ancestor = name.trim_to(labels);
        if labels == apex_labels
            || zone.node(&ancestor).is_some()
            || zone.has_descendants(&ancestor)
        {
            // `ancestor` is the closest encloser: only its own wildcard may answer.
            let wildcard = ancestor.prepend_label("*").ok()?;
            return zone.node(&wildcard).cloned();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::MX;

    use super::*;
    use crate::zone::tests::{LIMITS, a, base_records, cname, name, ns, txt};

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

    fn ask(qname: &str, qtype: RecordType) -> Answer {
        lookup(&test_zone(), &name(qname), qtype, AnyPolicy::Full)
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
        let full = lookup(
            &zone,
            &name("example.test."),
            RecordType::ANY,
            AnyPolicy::Full,
        );
        assert!(full.answer.len() >= 2);
        let minimal = lookup(
            &zone,
            &name("example.test."),
            RecordType::ANY,
            AnyPolicy::Minimal,
        );
        assert_eq!(minimal.answer.len(), 1);
    }
}
