//! What follows every new version of a zone once it is stored and served: its difference
//! from the previous version goes to the journal (for IXFR out), and `also_notify` targets get
//! NOTIFY.
//!
//! The NOTIFY tasks belong to this zone's `JoinSet`: a newer version cancels the older round,
//! and when the zone's task ends they end with it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::dns::serial;
use crate::dns::zone::Zone;
use crate::store::{JournalLimits, Store};
use crate::xfr::notify;

/// Records a journaled difference may always hold, however small the zone.
const JOURNAL_DIFF_MIN: usize = 10_000;

/// The journal and NOTIFY duties of one zone.
pub struct Downstream {
    store: Store,
    limits: JournalLimits,
    also_notify: Vec<SocketAddr>,
    /// Cancels the previous version's NOTIFY retransmissions.
    round: CancellationToken,
    /// The NOTIFY tasks of the current round.
    tasks: JoinSet<()>,
}

impl Downstream {
    /// Duties towards `also_notify`, journaling into `store`.
    pub fn new(store: Store, limits: JournalLimits, also_notify: Vec<SocketAddr>) -> Downstream {
        Downstream {
            store,
            limits,
            also_notify,
            round: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Journals the step from `old` to `new` (on the blocking pool) and NOTIFYs downstreams.
    pub async fn new_version(&mut self, old: Option<Arc<Zone>>, new: &Arc<Zone>) {
        if let Some(old) = old {
            let (store, limits, new_zone) = (self.store.clone(), self.limits, new.clone());
            let result = tokio::task::spawn_blocking(move || {
                let name = new_zone.origin().clone();
                // A difference over a quarter of the zone is not journaled (as a delta it would
                // outweigh the zone): clients older than this version get AXFR-style answers,
                // which the journal's chain check gives them.
                let max = (new_zone.record_count() / 4).max(JOURNAL_DIFF_MIN);
                if !serial::is_newer(new_zone.serial(), old.serial()) {
                    // History no longer forms a chain: IXFR clients get AXFR-style answers.
                    store.clear_journal(&name)
                } else if let Some(diff) = old.diff_within(&new_zone, max) {
                    store.append_diff(&name, &old.soa_record(), &diff, limits)
                } else {
                    debug!(zone = %name, "difference too large to journal");
                    Ok(())
                }
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    warn!(zone = %new.origin(), %error, "cannot journal the difference; IXFR clients get AXFR-style answers")
                }
                Err(error) => warn!(zone = %new.origin(), %error, "journal task failed"),
            }
        }
        if !self.also_notify.is_empty() {
            self.round.cancel();
            self.round = CancellationToken::new();
            while self.tasks.try_join_next().is_some() {}
            notify::announce(
                &mut self.tasks,
                new.origin(),
                new.soa_record(),
                &self.also_notify,
                &self.round,
            );
        }
    }
}
