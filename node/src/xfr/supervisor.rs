//! The zone supervisor: owns the task of every zone, and changes the set of zones at run time.
//!
//! Every zone task runs in the supervisor's `JoinSet` under a child of its token. A reload
//! (`Supervisor::apply`) compares the new zone list with the running one: new zones are added
//! to the zone set and started; removed zones leave the zone set at once (their names are then
//! REFUSED), and once their task has stopped their stored data and metrics series go; changed
//! zones take their new policy (NOTIFY and transfer ACLs) at once, and their task restarts with
//! the new source when that changed, keeping the data served meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hickory_proto::rr::Name;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{ZoneConfig, ZoneSource};
use crate::store::ZoneMeta;
use crate::store::zoneset::{ZoneHandle, ZoneSet};
use crate::xfr::task::{self, Context};

/// Most reloads waiting for the supervisor.
pub const COMMANDS_MAX: usize = 4;

/// A reload for the supervisor: the new zone list and the context its tasks run with.
pub struct Reload {
    /// Every zone of the new configuration.
    pub zones: Vec<ZoneConfig>,
    /// The shared context; when it differs from the running one, every task restarts.
    pub context: Context,
    /// True when the shared context changed (timers, limits, TLS material).
    pub context_changed: bool,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<ReloadSummary>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Zones started.
    pub added: Vec<Name>,
    /// Zones stopped and forgotten.
    pub removed: Vec<Name>,
    /// Zones whose settings changed.
    pub changed: Vec<Name>,
}

/// What to do when a zone's running task has stopped.
enum Next {
    /// Forget the zone: stored data, metrics series.
    Remove,
    /// Start it again with this configuration (source or downstreams changed).
    Restart,
}

struct Running {
    config: ZoneConfig,
    cancel: CancellationToken,
    next: Option<Next>,
}

/// Owns the zone tasks.
pub struct Supervisor {
    context: Context,
    zones: Arc<ZoneSet>,
    tasks: JoinSet<Name>,
    running: HashMap<Name, Running>,
    cancel: CancellationToken,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `cancel` fires.
    pub fn new(context: Context, zones: Arc<ZoneSet>, cancel: CancellationToken) -> Supervisor {
        Supervisor {
            context,
            zones,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            cancel,
        }
    }

    /// Starts the task of a zone already in the zone set, from its stored metadata.
    pub fn start(&mut self, config: ZoneConfig, meta: ZoneMeta) {
        let Some(handle) = self.zones.get(&config.name) else {
            error!(zone = %config.name, "a zone to start is not in the zone set");
            return;
        };
        let cancel = self.cancel.child_token();
        let name = config.name.clone();
        let future = task::run(&self.context, config.clone(), handle, meta, cancel.clone());
        self.tasks.spawn(async move {
            future.await;
            name
        });
        self.running.insert(
            config.name.clone(),
            Running {
                config,
                cancel,
                next: None,
            },
        );
    }

    /// Applies a new zone list; `context_changed` restarts every task with `context`.
    pub fn apply(
        &mut self,
        zones: Vec<ZoneConfig>,
        context: Context,
        context_changed: bool,
    ) -> ReloadSummary {
        self.context = context;
        let mut summary = ReloadSummary::default();
        let wanted: HashSet<Name> = zones.iter().map(|zone| zone.name.clone()).collect();
        let removed: Vec<Name> = self
            .running
            .iter()
            .filter(|(name, running)| {
                !wanted.contains(*name) && !matches!(running.next, Some(Next::Remove))
            })
            .map(|(name, _)| name.clone())
            .collect();
        // Removed zones are REFUSED from now on and leave /status and /metrics; their task
        // stops, then their stored data goes.
        self.zones.change(Vec::new(), &removed);
        for name in &removed {
            self.context.metrics.remove_zone(&name.to_string());
            if let Some(running) = self.running.get_mut(name) {
                running.cancel.cancel();
                running.next = Some(Next::Remove);
            }
        }
        summary.removed = removed;
        let mut new_handles = Vec::new();
        let mut to_start = Vec::new();
        for config in zones {
            let name = config.name.clone();
            match self.running.get_mut(&name) {
                None => {
                    new_handles.push(Arc::new(ZoneHandle::new(&config)));
                    summary.added.push(name);
                    to_start.push(config);
                }
                Some(running) if matches!(running.next, Some(Next::Remove)) => {
                    // Removed by an earlier reload and still stopping: it comes back afresh
                    // once the old task has ended.
                    new_handles.push(Arc::new(ZoneHandle::new(&config)));
                    summary.added.push(name);
                    running.config = config;
                    running.next = Some(Next::Restart);
                }
                Some(running) => {
                    if running.config == config && !context_changed {
                        continue;
                    }
                    if running.config != config {
                        summary.changed.push(name.clone());
                        if let Some(handle) = self.zones.get(&name) {
                            handle.set_policy(&config);
                        }
                    }
                    // The task holds its sources and downstreams: it restarts to take new ones.
                    let restart = context_changed
                        || running.config.source != config.source
                        || running.config.also_notify != config.also_notify;
                    if restart {
                        running.cancel.cancel();
                        running.next = Some(Next::Restart);
                    }
                    running.config = config;
                }
            }
        }
        self.zones.change(new_handles, &[]);
        for config in to_start {
            self.start(config, ZoneMeta::default());
        }
        summary
    }

    /// Runs until `cancel` fires: takes reloads, restarts and forgets zones whose task ended,
    /// then stops every task and waits for them.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Reload>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(reload) = commands.recv() => {
                    let summary = self.apply(reload.zones, reload.context, reload.context_changed);
                    let _ = reload.reply.send(summary);
                }
                Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.ended(ended).await;
                }
            }
        }
        // Zones removed just before the shutdown still lose their stored data.
        while let Some(ended) = self.tasks.join_next().await {
            self.ended(ended).await;
        }
        info!("zone tasks stopped");
    }

    /// A zone task ended: forget, restart, or report the zone.
    async fn ended(&mut self, ended: Result<Name, tokio::task::JoinError>) {
        let name = match ended {
            Ok(name) => name,
            Err(error) => {
                error!(%error, "a zone task failed");
                return;
            }
        };
        let Some(running) = self.running.remove(&name) else {
            return;
        };
        match running.next {
            Some(Next::Remove) => {
                let store = self.context.store.clone();
                let forget = name.clone();
                let removed = tokio::task::spawn_blocking(move || store.remove_zone(&forget)).await;
                match removed {
                    Ok(Ok(())) => {
                        info!(zone = %name, "zone removed: no longer served, stored data deleted")
                    }
                    Ok(Err(error)) => {
                        warn!(zone = %name, %error, "zone removed, but its stored data could not be deleted")
                    }
                    Err(error) => {
                        warn!(zone = %name, %error, "zone removed, but the store task failed")
                    }
                }
            }
            Some(Next::Restart) if self.cancel.is_cancelled() => {}
            Some(Next::Restart) => {
                let to_file = matches!(running.config.source, ZoneSource::File(_));
                let store = self.context.store.clone();
                let lookup = name.clone();
                let meta = tokio::task::spawn_blocking(move || {
                    if to_file {
                        // A file zone's file is its durable copy: nothing stored may be
                        // served ahead of it.
                        store.remove_zone(&lookup).map(|()| None)
                    } else {
                        store.meta(&lookup)
                    }
                })
                .await;
                let meta = match meta {
                    Ok(Ok(meta)) => meta.unwrap_or_default(),
                    Ok(Err(error)) => {
                        warn!(zone = %name, %error, "cannot read the zone's stored metadata; starting afresh");
                        ZoneMeta::default()
                    }
                    Err(_) => ZoneMeta::default(),
                };
                info!(zone = %name, "zone task restarted with its new settings");
                self.start(running.config, meta);
            }
            None if !self.cancel.is_cancelled() => {
                error!(zone = %name, "a zone task stopped by itself; starting it again");
                self.start(running.config, ZoneMeta::default());
            }
            None => {}
        }
    }
}
