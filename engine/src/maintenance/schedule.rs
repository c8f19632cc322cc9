//! The maintenance loop of a server: on the node holding the lease, retention every
//! `retention.interval`, compaction every `compaction.interval`, the cron monitors' missed and
//! timed-out runs every tick (`crate::monitors`), and backups on `backup.schedule` (5-field
//! cron, UTC) followed by pruning.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::Maintenance;
use crate::backup::Backups;
use crate::node::Node;
use crate::store::lease::{self, LEASE_PATH, Lease};

/// How long a taken lease lasts without renewal; the loop renews it every third of this.
const LEASE_TTL: Duration = Duration::from_secs(90);

/// Parses `backup.schedule`: exactly 5 fields (minute hour day month weekday), UTC.
pub fn parse_cron(schedule: &str) -> Result<croner::Cron, String> {
    if schedule.split_whitespace().count() != 5 {
        return Err("expected 5 fields: minute hour day-of-month month day-of-week".to_owned());
    }
    schedule.parse::<croner::Cron>().map_err(|e| e.to_string())
}

fn due(next: &mut DateTime<Utc>, now: DateTime<Utc>, every: Duration) -> bool {
    if now < *next {
        return false;
    }
    *next = now + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::hours(1));
    true
}

/// Runs until `shutdown`; gives the lease up on the way out.
pub async fn run(node: Arc<Node>, backups: Option<Arc<Backups>>, shutdown: CancellationToken) {
    let config = &node.config;
    let holder = config.storage.node_id.clone();
    let maintenance = Maintenance::for_node(&node);
    let cron = config
        .backup
        .schedule
        .as_deref()
        .and_then(|s| match parse_cron(s) {
            Ok(cron) => Some(cron),
            Err(err) => {
                tracing::error!(schedule = s, cause = %err, "invalid backup.schedule; scheduled backups are off");
                None
            }
        });
    let tick = (LEASE_TTL / 3)
        .min(config.retention.interval)
        .min(config.compaction.interval)
        .max(Duration::from_secs(1));
    // The first retention and compaction run a tick after start, once the lease is ours.
    let mut next_retention = Utc::now();
    let mut next_compaction = Utc::now();
    let mut next_backfill = Utc::now();
    let mut next_backup = cron
        .as_ref()
        .and_then(|c| c.find_next_occurrence(&Utc::now(), false).ok());
    let mut holding = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
        match lease::acquire(&node.store, LEASE_PATH, &holder, LEASE_TTL).await {
            Ok(Lease::Held { .. }) => {
                if !holding {
                    tracing::info!(holder, "took the maintenance lease");
                }
                holding = true;
            }
            Ok(Lease::Busy { holder: other, .. }) => {
                if holding {
                    tracing::info!(holder = other, "lost the maintenance lease");
                }
                holding = false;
                continue;
            }
            Err(err) => {
                tracing::warn!(cause = %err, "cannot reach the maintenance lease");
                holding = false;
                continue;
            }
        }
        let now = Utc::now();
        if due(&mut next_retention, now, config.retention.interval)
            && let Err(err) = maintenance.retention(false).await
        {
            tracing::error!(cause = %err, "retention failed");
        }
        if due(&mut next_compaction, now, config.compaction.interval)
            && let Err(err) = maintenance.compact(false, false).await
        {
            tracing::error!(cause = %err, "compaction failed");
        }
        if due(&mut next_backfill, now, config.compaction.interval)
            && let Err(err) = maintenance.backfill_tag_rollups().await
        {
            tracing::error!(cause = %err, "writing the tag rollups of older rollup files failed");
        }
        // cron monitors: every tick, so a missed run is found within a tick of its margin
        if let Err(err) = crate::monitors::check(&node, now).await {
            tracing::error!(cause = %err, "checking the cron monitors failed");
        }
        // deleted issues: one listing per tick, work only once a deletion has settled
        if let Err(err) = maintenance.erase_deleted().await {
            tracing::error!(cause = %err, "erasing the events of deleted issues failed");
        }
        // erased projects: one listing per tick, work only when a late flush left rows
        if let Err(err) = maintenance.erase_projects().await {
            tracing::error!(cause = %err, "erasing the rows of erased projects failed");
        }
        if let (Some(backups), Some(at)) = (&backups, next_backup)
            && now >= at
        {
            next_backup = cron
                .as_ref()
                .and_then(|c| c.find_next_occurrence(&now, false).ok());
            backups.run_scheduled().await;
        }
    }
    if holding && let Err(err) = lease::release(&node.store, LEASE_PATH, &holder).await {
        tracing::warn!(cause = %err, "cannot release the maintenance lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_schedule_fires_next_at_its_minute_in_utc() {
        let cron = parse_cron("30 3 * * *").unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-24T16:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let next = cron.find_next_occurrence(&now, false).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-25T03:30:00+00:00");
        assert!(
            parse_cron("0 30 3 * * *").is_err(),
            "seconds are not allowed"
        );
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn a_job_is_due_once_per_interval() {
        let start = Utc::now();
        let mut next = start;
        assert!(due(&mut next, start, Duration::from_secs(60)));
        assert!(!due(
            &mut next,
            start + chrono::Duration::seconds(59),
            Duration::from_secs(60)
        ));
        assert!(due(
            &mut next,
            start + chrono::Duration::seconds(60),
            Duration::from_secs(60)
        ));
    }
}
