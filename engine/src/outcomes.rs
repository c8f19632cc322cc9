//! faultline's own outcomes (accepted, rate limited, invalid, too large, filtered, scrubbed), counted in
//! memory per project, data category, outcome, reason and hour, and turned into rows of the
//! `outcomes` table (`items/outcomes.rs`) when the server flushes.
//!
//! Counting is off the event's critical path: a shared read lock and one atomic addition per
//! request for a (project, category, outcome, reason, hour) seen before; only the first count
//! of such a combination in an hour takes the write lock and allocates. Taking the counts swaps
//! the map under the write lock, so no count is lost or counted twice.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use crate::items::{ItemRow, RowContext, outcomes};

/// What became of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Stored.
    Accepted,
    /// Refused by a rate limit (the project's or its DSN key's).
    RateLimited,
    /// Not stored on purpose (an item type faultline does not keep).
    Filtered,
    /// Could not be read.
    Invalid,
    /// Over a size limit.
    TooLarge,
    /// Stored (and counted as accepted too) with something removed by scrubbing; the reason
    /// names the rules that did, sorted and joined by `, `.
    Scrubbed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::RateLimited => "rate_limited",
            Self::Filtered => "filtered",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::Scrubbed => "scrubbed",
        }
    }
}

/// Sentry's data category of an envelope item type (the names client reports use).
pub fn category(ty: &faultline_protocol::envelope::ItemType) -> &'static str {
    use faultline_protocol::envelope::ItemType;
    match ty {
        ItemType::Event => "error",
        ItemType::Transaction => "transaction",
        ItemType::Span => "span",
        ItemType::Log => "log_item",
        ItemType::Session | ItemType::Sessions => "session",
        ItemType::Attachment => "attachment",
        ItemType::Feedback | ItemType::UserReport => "feedback",
        ItemType::CheckIn => "monitor",
        ItemType::Profile => "profile",
        ItemType::ReplayEvent | ItemType::ReplayRecording => "replay",
        ItemType::Security | ItemType::RawSecurity => "security",
        ItemType::ClientReport => "internal",
        ItemType::FormData | ItemType::Other(_) => "default",
    }
}

/// What items are counted as, in outcomes and quotas: `items` in the data category of their
/// type, except attachments, which count their `bytes` as `attachment` and themselves as
/// `attachment_item` (Relay's two categories; the SDKs' client reports count attachment bytes,
/// an empty attachment as 1, as done here).
pub fn charges(ty: &faultline_protocol::envelope::ItemType, items: u64, bytes: u64) -> Charges {
    if *ty == faultline_protocol::envelope::ItemType::Attachment {
        Charges {
            pairs: [("attachment", bytes.max(items)), ("attachment_item", items)],
            len: 2,
        }
    } else {
        Charges {
            pairs: [(category(ty), items), ("", 0)],
            len: 1,
        }
    }
}

/// The (category, quantity) pairs of [`charges`].
#[derive(Debug, Clone, Copy)]
pub struct Charges {
    pairs: [(&'static str, u64); 2],
    len: usize,
}

impl Charges {
    pub fn as_slice(&self) -> &[(&'static str, u64)] {
        &self.pairs[..self.len]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    project_id: u64,
    hour_ms: i64,
    category: &'static str,
    outcome: Outcome,
    /// Our own reasons are static; a scrubbing rule's name is the project's.
    reason: Cow<'static, str>,
}

#[derive(Debug)]
struct Count {
    project: String,
    quantity: AtomicU64,
}

/// The counts not logged yet.
#[derive(Debug, Default)]
pub struct Outcomes {
    counts: RwLock<HashMap<Key, Count>>,
}

/// One counted combination, taken out of [`Outcomes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub project_id: u64,
    pub project: String,
    pub hour: DateTime<Utc>,
    pub category: &'static str,
    pub outcome: Outcome,
    pub reason: Cow<'static, str>,
    pub quantity: u64,
}

impl Outcomes {
    /// Counts `items` of type `ty` (`bytes` long in all) with one outcome, in each of the
    /// categories they are charged in ([`charges`]).
    #[allow(clippy::too_many_arguments)]
    pub fn add_items(
        &self,
        project_id: u64,
        project: &str,
        at: DateTime<Utc>,
        ty: &faultline_protocol::envelope::ItemType,
        outcome: Outcome,
        reason: &'static str,
        items: u64,
        bytes: u64,
    ) {
        for &(category, quantity) in charges(ty, items, bytes).as_slice() {
            self.add(project_id, project, at, category, outcome, reason, quantity);
        }
    }

    /// Counts `quantity` items of `project` at `at` (counted in its hour).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        project_id: u64,
        project: &str,
        at: DateTime<Utc>,
        category: &'static str,
        outcome: Outcome,
        reason: impl Into<Cow<'static, str>>,
        quantity: u64,
    ) {
        if quantity == 0 {
            return;
        }
        let reason = reason.into();
        let key = Key {
            project_id,
            hour_ms: outcomes::hour_of(at).timestamp_millis(),
            category,
            outcome,
            reason,
        };
        if let Some(count) = self.counts.read().get(&key) {
            count.quantity.fetch_add(quantity, Ordering::Relaxed);
            return;
        }
        self.counts
            .write()
            .entry(key)
            .or_insert_with(|| Count {
                project: project.to_owned(),
                quantity: AtomicU64::new(0),
            })
            .quantity
            .fetch_add(quantity, Ordering::Relaxed);
    }

    /// Takes every count out (the counter starts again from nothing).
    pub fn take(&self) -> Vec<Counted> {
        let counts = std::mem::take(&mut *self.counts.write());
        let mut out: Vec<Counted> = counts
            .into_iter()
            .map(|(key, count)| Counted {
                project_id: key.project_id,
                project: count.project,
                hour: DateTime::from_timestamp_millis(key.hour_ms).unwrap_or_default(),
                category: key.category,
                outcome: key.outcome,
                reason: key.reason,
                quantity: count.quantity.into_inner(),
            })
            .filter(|c| c.quantity > 0)
            .collect();
        out.sort_by(|a, b| {
            (
                a.project_id,
                a.hour,
                a.category,
                a.outcome.as_str(),
                &a.reason,
            )
                .cmp(&(
                    b.project_id,
                    b.hour,
                    b.category,
                    b.outcome.as_str(),
                    &b.reason,
                ))
        });
        out
    }

    /// Puts counts taken by [`Outcomes::take`] back (their rows could not be logged).
    pub fn put_back(&self, counted: Vec<Counted>) {
        for c in counted {
            self.add(
                c.project_id,
                &c.project,
                c.hour,
                c.category,
                c.outcome,
                c.reason,
                c.quantity,
            );
        }
    }
}

impl Counted {
    /// The row of the `outcomes` table for this count, received at `now`.
    pub fn row(&self, now: DateTime<Utc>) -> ItemRow {
        outcomes::row(
            RowContext {
                project_id: self.project_id,
                project: &self.project,
                received: now,
                scrubber: None,
            },
            self.hour,
            self.category,
            self.outcome.as_str(),
            &self.reason,
            self.quantity,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn attachments_are_charged_in_bytes_and_as_items_and_the_rest_per_item() {
        use faultline_protocol::envelope::ItemType;
        assert_eq!(
            charges(&ItemType::Attachment, 2, 5_000).as_slice(),
            [("attachment", 5_000), ("attachment_item", 2)]
        );
        // an empty attachment is one byte, as the SDKs count it in their client reports
        assert_eq!(
            charges(&ItemType::Attachment, 1, 0).as_slice(),
            [("attachment", 1), ("attachment_item", 1)]
        );
        assert_eq!(
            charges(&ItemType::Event, 3, 90_000).as_slice(),
            [("error", 3)]
        );
        assert_eq!(
            charges(&ItemType::Log, 1, 700).as_slice(),
            [("log_item", 1)]
        );
    }

    #[test]
    fn counts_add_up_per_hour_and_start_again_once_taken() {
        let outcomes = Outcomes::default();
        let error = "error";
        outcomes.add(
            1,
            "shop",
            at("2026-12-05T09:00:00Z"),
            error,
            Outcome::Accepted,
            "",
            1,
        );
        outcomes.add(
            1,
            "shop",
            at("2026-12-05T09:59:59.999Z"),
            error,
            Outcome::Accepted,
            "",
            2,
        );
        outcomes.add(
            1,
            "shop",
            at("2026-12-05T10:00:00Z"),
            error,
            Outcome::Accepted,
            "",
            4,
        );
        outcomes.add(
            2,
            "api",
            at("2026-12-05T09:30:00Z"),
            error,
            Outcome::Accepted,
            "",
            8,
        );
        outcomes.add(
            1,
            "shop",
            at("2026-12-05T09:30:00Z"),
            "attachment",
            Outcome::TooLarge,
            "max_attachment_size",
            1,
        );
        outcomes.add(
            1,
            "shop",
            at("2026-12-05T09:30:00Z"),
            error,
            Outcome::Invalid,
            "x",
            0,
        );
        let taken = outcomes.take();
        let summary: Vec<(u64, String, &str, &str, &str, u64)> = taken
            .iter()
            .map(|c| {
                (
                    c.project_id,
                    c.hour.to_rfc3339(),
                    c.category,
                    c.outcome.as_str(),
                    &*c.reason,
                    c.quantity,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    1,
                    "2026-12-05T09:00:00+00:00".into(),
                    "attachment",
                    "too_large",
                    "max_attachment_size",
                    1
                ),
                (
                    1,
                    "2026-12-05T09:00:00+00:00".into(),
                    "error",
                    "accepted",
                    "",
                    3
                ),
                (
                    1,
                    "2026-12-05T10:00:00+00:00".into(),
                    "error",
                    "accepted",
                    "",
                    4
                ),
                (
                    2,
                    "2026-12-05T09:00:00+00:00".into(),
                    "error",
                    "accepted",
                    "",
                    8
                ),
            ]
        );
        assert!(outcomes.take().is_empty(), "taken counts are gone");
        outcomes.put_back(taken.clone());
        assert_eq!(outcomes.take(), taken, "counts put back are taken again");
    }

    #[test]
    fn a_count_becomes_a_row_of_the_outcomes_table() {
        let outcomes = Outcomes::default();
        outcomes.add(
            7,
            "shop",
            at("2026-12-05T09:12:00Z"),
            "error",
            Outcome::RateLimited,
            "key_quota",
            5,
        );
        let rows: Vec<ItemRow> = outcomes
            .take()
            .iter()
            .map(|c| c.row(at("2026-12-05T10:00:00Z")))
            .collect();
        let text = crate::items::tests::printed(&rows);
        assert!(
            text.contains("| 7          | shop    | 2026-12-05T09:00:00Z | 2026-12-05T10:00:00Z | error    | rate_limited | key_quota | 5        |"),
            "{text}"
        );
    }

    #[test]
    fn counting_from_many_threads_loses_nothing() {
        let outcomes = std::sync::Arc::new(Outcomes::default());
        let now = at("2026-12-05T09:00:00Z");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let outcomes = std::sync::Arc::clone(&outcomes);
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        outcomes.add(1, "shop", now, "error", Outcome::Accepted, "", 1);
                        if i % 100 == 0 {
                            // a flush taking the counts meanwhile
                            let taken = outcomes.take();
                            outcomes.put_back(taken);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total: u64 = outcomes.take().iter().map(|c| c.quantity).sum();
        assert_eq!(total, 4000);
    }
}
