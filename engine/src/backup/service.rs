//! Backups made by a running server: on demand (`POST /api/0/backups`) and on schedule. One
//! runs at a time; the server flushes its buffer first, so the backup carries as little WAL as
//! possible. Jobs of this process are tracked in memory (running, failed); finished backups are
//! read from the destination, so the list also shows backups made elsewhere.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

use super::{DESTINATION_LEASE, Destination, Result, Source, create, new_id, prune, with_lease};
use crate::node::Node;

/// How long a backup waits for the destination lease (another writer's backup or prune).
const LEASE_WAIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Succeeded,
    Failed,
}

/// One backup as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub state: State,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub files: u64,
    pub bytes: u64,
    pub error: Option<String>,
}

/// Backups of one node; the node owns it (hence the weak reference back).
pub struct Backups {
    node: Weak<Node>,
    config: faultline_config::Config,
    jobs: Mutex<BTreeMap<String, Job>>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Backups {
    pub fn new(node: &Arc<Node>) -> Self {
        Self {
            node: Arc::downgrade(node),
            config: node.config.clone(),
            jobs: Mutex::new(BTreeMap::new()),
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    fn destination(&self) -> Result<Destination> {
        Destination::open(&self.config, None)
    }

    /// Starts a backup in the background and returns its id at once.
    pub fn start(self: &Arc<Self>) -> Result<Job> {
        self.destination()?;
        let now = Utc::now();
        let job = Job {
            id: new_id(now),
            state: State::Running,
            started: now,
            finished: None,
            files: 0,
            bytes: 0,
            error: None,
        };
        self.jobs.lock().insert(job.id.clone(), job.clone());
        let this = Arc::clone(self);
        let id = job.id.clone();
        tokio::spawn(async move {
            this.run(&id).await;
        });
        Ok(job)
    }

    /// A scheduled backup, then pruning; waits for both.
    pub async fn run_scheduled(self: &Arc<Self>) {
        let id = new_id(Utc::now());
        self.jobs.lock().insert(
            id.clone(),
            Job {
                id: id.clone(),
                state: State::Running,
                started: Utc::now(),
                finished: None,
                files: 0,
                bytes: 0,
                error: None,
            },
        );
        if self.run(&id).await {
            let config = &self.config.backup;
            let pruned = async {
                let dest = self.destination()?;
                let holder = self.config.storage.node_id.clone();
                with_lease(&dest.store, DESTINATION_LEASE, &holder, LEASE_WAIT, async {
                    prune(&dest, config.keep_last, config.keep_days, false).await
                })
                .await
            };
            match pruned.await {
                Ok(report) if !report.removed.is_empty() => {
                    tracing::info!(removed = ?report.removed, "old backups pruned");
                }
                Ok(_) => {}
                Err(err) => tracing::error!(cause = %err, "pruning backups failed"),
            }
        }
    }

    /// Runs backup `id`; records the outcome. True when it succeeded.
    async fn run(&self, id: &str) -> bool {
        let _one = self.one_at_a_time.lock().await;
        let result = async {
            let dest = self.destination()?;
            let node = self.node.upgrade().ok_or(super::Error::ShuttingDown)?;
            if let Err(err) = node.flush().await {
                tracing::warn!(cause = %err, "flush before backup failed; the backup carries the wal instead");
            }
            let config = &self.config;
            let wal_dir = config.wal_dir();
            let source = Source {
                store: &node.store,
                node: &config.storage.node_id,
                wal_dir: &wal_dir,
            };
            with_lease(
                &dest.store,
                DESTINATION_LEASE,
                &config.storage.node_id,
                LEASE_WAIT,
                create(id, &source, &dest, false),
            )
            .await
        }
        .await;
        let mut jobs = self.jobs.lock();
        let job = jobs.get_mut(id).expect("job registered before it runs");
        job.finished = Some(Utc::now());
        match result {
            Ok(record) => {
                job.state = State::Succeeded;
                job.files = record.total_files();
                job.bytes = record.total_bytes();
                true
            }
            Err(err) => {
                tracing::error!(id, cause = %err, "backup failed");
                job.state = State::Failed;
                job.error = Some(err.to_string());
                false
            }
        }
    }

    /// Every backup, newest first: this process's jobs and the destination's records.
    pub async fn list(&self) -> Result<Vec<Job>> {
        let mut all: BTreeMap<String, Job> = BTreeMap::new();
        for record in self.destination()?.records().await? {
            all.insert(
                record.id.clone(),
                Job {
                    id: record.id.clone(),
                    state: State::Succeeded,
                    started: record.started,
                    finished: Some(record.finished),
                    files: record.total_files(),
                    bytes: record.total_bytes(),
                    error: None,
                },
            );
        }
        for (id, job) in self.jobs.lock().iter() {
            if job.state != State::Succeeded {
                all.insert(id.clone(), job.clone());
            }
        }
        let mut all: Vec<Job> = all.into_values().collect();
        all.sort_by(|a, b| (b.started, &b.id).cmp(&(a.started, &a.id)));
        Ok(all)
    }

    /// One backup, if known.
    pub async fn get(&self, id: &str) -> Result<Option<Job>> {
        if let Some(job) = self.jobs.lock().get(id).cloned() {
            return Ok(Some(job));
        }
        Ok(self.list().await?.into_iter().find(|j| j.id == id))
    }
}
