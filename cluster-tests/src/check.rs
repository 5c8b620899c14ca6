//! Assertions on single DNS responses that show the whole response when they fail.
//!
//! Scenarios check an answer's rcode or SOA serial again and again; these helpers keep each
//! check one line and make every failure print the response (`compare::message_text`) with a
//! note saying what was being checked. They do no I/O.

use hickory_proto::op::{Message, ResponseCode};

use crate::client::answer_serial;
use crate::compare::message_text;

/// Asserts that `response` has the rcode `expected`; on failure, panics with `context` and the
/// whole response.
#[track_caller]
pub fn assert_rcode(response: &Message, expected: ResponseCode, context: &str) {
    assert_eq!(
        response.metadata.response_code,
        expected,
        "{context}:\n{}",
        message_text(response)
    );
}

/// Asserts that the answer section of `response` holds a SOA with serial `expected`; on failure,
/// panics with `context` and the whole response.
#[track_caller]
pub fn assert_soa_serial(response: &Message, expected: u32, context: &str) {
    assert_eq!(
        answer_serial(response),
        Some(expected),
        "{context}:\n{}",
        message_text(response)
    );
}
