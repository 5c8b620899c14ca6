//! Why a refresh failed, typed: every cause a zone's status, logs and metrics can name. Tests
//! and the status endpoint match [`RefreshError::kind`], a short stable label, never the text.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::dns::zone::ZoneError;
use crate::dns::zonefile::ZoneFileError;
use crate::store::StoreError;
use crate::xfr::client::TransferError;
use crate::xfr::connect::ConnectError;

/// Why one attempt at one source failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The source cannot be reached at all: its connection could not be set up (a TLS file
    /// went missing, `[tls]` is absent).
    #[error("{0}")]
    Connector(Arc<ConnectError>),
    /// The SOA query failed.
    #[error("SOA query: {0}")]
    Soa(TransferError),
    /// The IXFR failed and AXFR was not worth trying.
    #[error("IXFR: {0}")]
    Ixfr(TransferError),
    /// The AXFR failed.
    #[error("AXFR: {0}")]
    Axfr(TransferError),
    /// The transfer arrived but its data was refused.
    #[error("{transfer}: {reason}")]
    Rejected {
        /// `IXFR` or `AXFR`.
        transfer: &'static str,
        /// Why.
        reason: Rejection,
    },
    /// The new version could not be made durable.
    #[error("storing the new version: {0}")]
    Store(#[from] StoreError),
    /// A blocking task (store, parser) did not finish.
    #[error("{0} task failed")]
    Task(&'static str),
}

/// Why received data was refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The data is not a valid zone.
    #[error("{0}")]
    Invalid(ZoneError),
    /// The differences do not apply to the version held: AXFR instead.
    #[error("differences do not apply: {0}")]
    Diff(ZoneError),
    /// Differences came while no version is held.
    #[error("differences without a current version")]
    NoCurrentVersion,
    /// The transfer would move the serial backwards (RFC 1982).
    #[error("the transfer brought serial {received}, which is not newer than ours ({ours})")]
    NotNewer {
        /// The serial received.
        received: u32,
        /// The serial held.
        ours: u32,
    },
    /// The source answered "up to date" after announcing a newer serial.
    #[error("the source answered \"up to date\" at serial {0} after announcing a newer one")]
    UpToDate(u32),
}

impl RefreshError {
    /// A short, stable name of the cause, for `/status` and as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            RefreshError::Connector(error) => error.kind(),
            RefreshError::Soa(error) | RefreshError::Ixfr(error) | RefreshError::Axfr(error) => {
                error.kind()
            }
            RefreshError::Rejected { reason, .. } => match reason {
                Rejection::Invalid(_) => "invalid_zone",
                Rejection::Diff(_) | Rejection::NoCurrentVersion => "bad_diff",
                Rejection::NotNewer { .. } | Rejection::UpToDate(_) => "not_newer",
            },
            RefreshError::Store(_) => "store",
            RefreshError::Task(_) => "internal",
        }
    }
}

/// A round in which every source failed: each source with its error, in the order tried.
#[derive(Debug, Default)]
pub struct RoundFailure {
    /// (source address, connector label, error).
    pub attempts: Vec<(SocketAddr, &'static str, RefreshError)>,
}

impl RoundFailure {
    /// The kind of the last error: what the final source tried said.
    pub fn kind(&self) -> &'static str {
        self.attempts
            .last()
            .map_or("internal", |(_, _, error)| error.kind())
    }
}

impl std::fmt::Display for RoundFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (address, label, error)) in self.attempts.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{address} ({label}): {error}")?;
        }
        Ok(())
    }
}

/// Why a zone file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a master file we can read.
    #[error("{0}")]
    Parse(#[from] ZoneFileError),
    /// Its records are not a valid zone.
    #[error("{path}: {error}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        error: ZoneError,
    },
    /// The parser task did not finish.
    #[error("parser task failed")]
    Task,
}

impl FileError {
    /// A short, stable name of the cause.
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::Read { .. } => "file_unreadable",
            FileError::Parse(_) => "file_syntax",
            FileError::Invalid { .. } => "invalid_zone",
            FileError::Task => "internal",
        }
    }
}
