//! Answering: the responder (queries, NOTIFY in, transfers out) and the listeners that feed it
//! (UDP workers, TCP, XoT, XoQ). Listeners import only the responder.

pub mod encrypted;
pub mod responder;
pub mod udp;
