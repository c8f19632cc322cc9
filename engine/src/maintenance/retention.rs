//! Which `date=` partitions retention drops: a pure function of the live files, the policy and
//! today's date, so a dry run shows exactly what a real run does.
//!
//! A project keeps `days` whole days before today plus today: with 3 days on 2026-11-24 the
//! dates 2026-11-21 to 2026-11-24 stay and 2026-11-20 and older go. With
//! `max_events_per_project`, the oldest dates of a project also go until the rest fit, but the
//! newest date always stays.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::store::manifest::Manifest;

/// Retention settings resolved per project id.
#[derive(Debug, Clone)]
pub struct Policy {
    pub default_days: u32,
    /// Days per project id (from the config's per-project settings).
    pub days: BTreeMap<u64, u32>,
    pub max_events_per_project: Option<u64>,
}

impl Policy {
    fn days(&self, project_id: u64) -> u32 {
        self.days
            .get(&project_id)
            .copied()
            .unwrap_or(self.default_days)
    }
}

/// One partition retention drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The project's name (its id when the project is unknown).
    pub project: String,
    pub project_id: u64,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Live files in the partition, over every node's manifest.
    pub files: usize,
    pub events: u64,
    /// Why: `"age"` or `"max_events"`.
    pub reason: &'static str,
}

/// The partitions to drop, ordered by project and date.
pub fn plan(
    manifests: &[Manifest],
    policy: &Policy,
    names: &BTreeMap<u64, String>,
    today: NaiveDate,
) -> Vec<Dropped> {
    // (project, date) -> (files, events); the files of item tables (spans, logs, ...) are
    // dropped with their day, but only events count towards `max_events_per_project`.
    let mut partitions: BTreeMap<(u64, String), (usize, u64)> = BTreeMap::new();
    for manifest in manifests {
        let events = manifest.files.iter().map(|f| (f, f.rows));
        for (file, rows) in events.chain(manifest.item_files().map(|f| (f, 0))) {
            let entry = partitions
                .entry((file.project_id, file.date.clone()))
                .or_default();
            entry.0 += 1;
            entry.1 += rows;
        }
    }
    let name = |id: u64| names.get(&id).cloned().unwrap_or_else(|| id.to_string());
    let mut dropped = Vec::new();
    let mut kept: BTreeMap<u64, Vec<(String, u64, usize)>> = BTreeMap::new();
    for ((project_id, date), (files, events)) in partitions {
        let expired = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
            .is_ok_and(|day| day + chrono::Days::new(u64::from(policy.days(project_id))) < today);
        if expired {
            dropped.push(Dropped {
                project: name(project_id),
                project_id,
                date,
                files,
                events,
                reason: "age",
            });
        } else {
            kept.entry(project_id)
                .or_default()
                .push((date, events, files));
        }
    }
    if let Some(max) = policy.max_events_per_project {
        for (project_id, mut dates) in kept {
            // Newest first; the newest date always stays.
            dates.sort_by(|a, b| b.0.cmp(&a.0));
            let mut total = 0u64;
            let mut over = BTreeSet::new();
            for (i, (date, events, _)) in dates.iter().enumerate() {
                total += events;
                if i > 0 && total > max {
                    over.insert(date.clone());
                }
            }
            for (date, events, files) in dates.into_iter().rev() {
                if over.contains(&date) {
                    dropped.push(Dropped {
                        project: name(project_id),
                        project_id,
                        date,
                        files,
                        events,
                        reason: "max_events",
                    });
                }
            }
        }
        dropped.sort_by(|a, b| (a.project_id, &a.date).cmp(&(b.project_id, &b.date)));
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::manifest::DataFile;

    fn file(project_id: u64, date: &str, rows: u64) -> DataFile {
        DataFile {
            path: format!("events/project={project_id}/date={date}/hour=00/x.parquet"),
            project_id,
            date: date.into(),
            hour: 0,
            rows,
            bytes: 1,
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    fn manifest(files: Vec<DataFile>) -> Manifest {
        Manifest {
            files,
            ..Manifest::default()
        }
    }

    fn policy() -> Policy {
        Policy {
            default_days: 3,
            days: BTreeMap::from([(2, 1)]),
            max_events_per_project: None,
        }
    }

    fn dates(dropped: &[Dropped]) -> Vec<(u64, &str)> {
        dropped
            .iter()
            .map(|d| (d.project_id, d.date.as_str()))
            .collect()
    }

    #[test]
    fn drops_days_older_than_each_projects_retention_and_nothing_else() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let manifests = [
            manifest(vec![
                file(1, "2026-11-20", 5),
                file(1, "2026-11-21", 5),
                file(2, "2026-11-22", 1),
            ]),
            manifest(vec![
                file(1, "2026-11-20", 2),
                file(1, "2026-11-24", 1),
                file(2, "2026-11-23", 1),
            ]),
        ];
        let names = BTreeMap::from([(1, "shop".to_owned())]);
        let dropped = plan(&manifests, &policy(), &names, today);
        assert_eq!(dates(&dropped), [(1, "2026-11-20"), (2, "2026-11-22")]);
        assert_eq!(dropped[0].files, 2, "files of both nodes");
        assert_eq!(dropped[0].events, 7);
        assert_eq!(dropped[0].project, "shop");
        assert_eq!(
            dropped[1].project, "2",
            "an unknown project is named by its id"
        );
    }

    #[test]
    fn days_of_item_tables_expire_with_the_same_policy() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let mut old = manifest(vec![file(1, "2026-11-24", 3)]);
        let mut span = file(1, "2026-11-19", 40);
        span.path = "items/spans/proj=1/date=2026-11-19/x.parquet".into();
        let mut log = file(1, "2026-11-24", 9);
        log.path = "items/logs/proj=1/date=2026-11-24/x.parquet".into();
        old.tables.insert("spans".into(), vec![span]);
        old.tables.insert("logs".into(), vec![log]);
        let dropped = plan(
            std::slice::from_ref(&old),
            &policy(),
            &BTreeMap::new(),
            today,
        );
        assert_eq!(dates(&dropped), [(1, "2026-11-19")]);
        assert_eq!(dropped[0].files, 1);
        assert_eq!(dropped[0].events, 0, "spans are not events");
        let expired = dropped
            .iter()
            .map(|d| (d.project_id, d.date.clone()))
            .collect();
        let next = old.retire_partitions(&expired, 5).unwrap();
        assert!(!next.tables.contains_key("spans"));
        assert_eq!(next.tables["logs"].len(), 1);
        assert_eq!(next.retired.len(), 1);
        assert_eq!(
            next.retired[0].path,
            "items/spans/proj=1/date=2026-11-19/x.parquet"
        );
    }

    #[test]
    fn max_events_drops_the_oldest_days_but_never_the_newest() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let manifests = [manifest(vec![
            file(1, "2026-11-22", 4),
            file(1, "2026-11-23", 4),
            file(1, "2026-11-24", 4),
            file(3, "2026-11-24", 50),
        ])];
        let mut policy = policy();
        policy.max_events_per_project = Some(9);
        let dropped = plan(&manifests, &policy, &BTreeMap::new(), today);
        assert_eq!(dates(&dropped), [(1, "2026-11-22")]);
        assert_eq!(dropped[0].reason, "max_events");
    }
}
