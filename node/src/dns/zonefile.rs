//! Reading RFC 1035 master files into records.
//!
//! The text is scanned by NLnet Labs' `domain` zone file parser (which accepts every record type
//! BIND, NSD and Knot load, DS, DNSKEY, RRSIG, NSEC* and DNAME included; hickory's parser does
//! not), and each record is carried over to hickory's types through its wire form. No I/O:
//! the caller reads the file; validation of the result is `zone`'s job.

use std::str::FromStr;

use bytes::Bytes;
use domain::base::iana::Class;
use domain::zonefile::inplace::{Entry, Zonefile};
use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Why a master file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFileError {
    /// The text is not a valid master file; the message names line and column.
    #[error("{path}:{message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message (`line:column: what`).
        message: String,
    },
    /// `$INCLUDE` is not supported.
    #[error("{path}: $INCLUDE {include} is not supported; inline the file")]
    Include {
        /// The file.
        path: String,
        /// The included file.
        include: String,
    },
    /// A record could not be converted.
    #[error("{path}: record {index} cannot be converted: {message}")]
    Convert {
        /// The file.
        path: String,
        /// The record's position in the file.
        index: usize,
        /// What went wrong.
        message: String,
    },
}

/// Parses master file text; `label` names it in errors.
pub fn parse(text: &[u8], origin: &Name, label: &str) -> Result<Vec<Record>, ZoneFileError> {
    let syntax = |message: String| ZoneFileError::Syntax {
        path: label.to_string(),
        message,
    };
    let mut zonefile = Zonefile::with_capacity(text.len());
    zonefile.extend_from_slice(text);
    let origin_name = domain::base::Name::<Bytes>::from_str(&origin.to_ascii())
        .map_err(|error| syntax(format!(" origin {origin}: {error}")))?;
    zonefile.set_origin(origin_name);
    zonefile.set_default_class(Class::IN);
    let mut records = Vec::new();
    let mut wire = Vec::with_capacity(512);
    loop {
        let entry = zonefile
            .next_entry()
            .map_err(|error| syntax(error.to_string()))?;
        match entry {
            None => return Ok(records),
            Some(Entry::Include { path, .. }) => {
                return Err(ZoneFileError::Include {
                    path: label.to_string(),
                    include: path.to_string(),
                });
            }
            Some(Entry::Record(record)) => {
                let convert = |message: String| ZoneFileError::Convert {
                    path: label.to_string(),
                    index: records.len() + 1,
                    message,
                };
                wire.clear();
                record
                    .compose(&mut wire)
                    .map_err(|error| convert(format!("{error:?}")))?;
                let mut decoder = BinDecoder::new(&wire);
                let converted =
                    Record::read(&mut decoder).map_err(|error| convert(error.to_string()))?;
                records.push(converted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RecordType;

    use super::*;

    const ZONE: &str = "$TTL 3600
@ IN SOA ns1 hostmaster ( 7 3600 900 1209600 300 )
  IN NS ns1
ns1 IN A 192.0.2.1
www 300 IN AAAA 2001:db8::1
txt IN TXT \"one\" \"two words\"
child IN NS ns.child
child IN DS 12345 13 2 3FA7D0EA5A3C7E0D9CE7C7F7E8E5A3A7C0C1A1C9B0D1E2F30415263748596A7B
ns.child IN A 192.0.2.53
old IN DNAME new.example.test.
";

    #[test]
    fn reads_every_record_type_with_relative_names() {
        let origin = Name::from_ascii("example.test.").expect("name");
        let records = parse(ZONE.as_bytes(), &origin, "test").expect("parses");
        assert_eq!(records.len(), 9);
        let types: Vec<RecordType> = records.iter().map(Record::record_type).collect();
        assert!(types.contains(&RecordType::DS));
        assert_eq!(records[0].record_type(), RecordType::SOA);
        assert_eq!(records[2].name.to_ascii(), "ns1.example.test.");
        assert_eq!(records[3].ttl, 300);
        assert_eq!(records[1].ttl, 3600);
    }

    #[test]
    fn errors_name_the_line() {
        let origin = Name::from_ascii("example.test.").expect("name");
        let error = parse(
            b"$TTL 60\n@ IN SOA ns1 hostmaster 1 2 3 4 5\nbad IN A 300.1.1.1\n",
            &origin,
            "z",
        )
        .expect_err("invalid address");
        // The scanner reports where it stopped, which is the start of the next line.
        let text = error.to_string();
        assert!(text.starts_with("z:4:") && text.contains("IPv4"), "{text}");
    }
}
