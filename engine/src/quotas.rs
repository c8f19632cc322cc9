//! Projects' quotas (`faultline_config::Quota`): how many items of some data categories a
//! project accepts per window, as Relay's quotas with the `project` scope.
//!
//! Counting is in memory per node, in fixed windows that start at a project's first item after
//! the previous window ended (as the events' rate limits). An item passes only if every quota
//! counting its category has room; only then do all of them count it, so an item refused by one
//! quota uses none of another's room. A quota changed by a reload starts a new window.
//!
//! What was refused goes back to the SDK as `X-Sentry-Rate-Limits` ([`Refusals::header`]): on
//! the 429 of a request refused as a whole, and on the 200 of one whose other items were kept,
//! so the SDK holds back exactly the refused categories for the time left in the window.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use faultline_config::{ATTACHMENT_BYTES, Quota};
use parking_lot::Mutex;

/// Who set the limit that refused items (the third field of `X-Sentry-Rate-Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Project,
    Key,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Key => "key",
        }
    }
}

/// One limit that refused items of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limited data categories; empty: all of them.
    pub categories: Vec<String>,
    pub scope: Scope,
    /// Items (events, for the events' rate limits) allowed per `window`.
    pub limit: u64,
    pub window: Duration,
    /// Until the window ends: how long the SDK should hold these categories back.
    pub retry_after: Duration,
}

impl Refusal {
    /// Whole seconds to wait, at least 1 (the SDKs read an integer).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.categories.as_slice() {
            [] => "items".to_owned(),
            [only] if only == ATTACHMENT_BYTES => "attachment bytes".to_owned(),
            categories if categories.iter().any(|c| c == ATTACHMENT_BYTES) => {
                format!("{} items (attachments by bytes)", categories.join(", "))
            }
            categories => format!("{} items", categories.join(", ")),
        };
        write!(
            f,
            "over the {} quota of {} {what} per {}s; retry in {}s",
            self.scope.as_str(),
            self.limit,
            self.window.as_secs(),
            self.retry_after_secs()
        )
    }
}

/// The limits that refused items of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals(Vec<Refusal>);

impl Refusals {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a refusal; the same limit refusing several items is named once.
    pub fn add(&mut self, refusal: Refusal) {
        if !self.0.iter().any(|r| {
            r.categories == refusal.categories
                && r.scope == refusal.scope
                && r.limit == refusal.limit
        }) {
            self.0.push(refusal);
        }
    }

    /// Adds the refusals of `other`.
    pub fn merge(&mut self, other: Refusals) {
        for refusal in other.0 {
            self.add(refusal);
        }
    }

    /// The longest wait among them.
    pub fn retry_after(&self) -> Duration {
        self.0
            .iter()
            .map(|r| Duration::from_secs(r.retry_after_secs()))
            .max()
            .unwrap_or(Duration::from_secs(1))
    }

    /// `X-Sentry-Rate-Limits`: `retry_after:categories:scope` per limit, comma-separated,
    /// categories `;`-separated (none: all categories); `None` when nothing was refused.
    pub fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|r| {
                    format!(
                        "{}:{}:{}",
                        r.retry_after_secs(),
                        r.categories.join(";"),
                        r.scope.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

impl From<Refusal> for Refusals {
    fn from(refusal: Refusal) -> Self {
        Self(vec![refusal])
    }
}

impl fmt::Display for Refusals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, refusal) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{refusal}")?;
        }
        Ok(())
    }
}

/// One quota's current window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// The quota it counts for: a changed quota starts afresh.
    quota: Quota,
    start: Instant,
    count: u64,
}

impl Window {
    fn fresh(quota: &Quota, now: Instant) -> Self {
        Self {
            quota: quota.clone(),
            start: now,
            count: 0,
        }
    }

    fn roll(&mut self, quota: &Quota, now: Instant) {
        if self.quota != *quota || now.duration_since(self.start) >= quota.window {
            *self = Self::fresh(quota, now);
        }
    }

    fn retry_after(&self, now: Instant) -> Duration {
        self.quota
            .window
            .saturating_sub(now.duration_since(self.start))
    }
}

/// The windows of every project's quotas on this node.
#[derive(Debug, Default)]
pub struct QuotaWindows {
    /// By (project id, position of the quota in the project's list).
    windows: Mutex<HashMap<(u64, usize), Window>>,
}

impl QuotaWindows {
    /// Counts what an item (or a group of events) is charged, as (category, quantity) pairs
    /// (an attachment: its bytes as `attachment` and itself as `attachment_item`), for
    /// project `project_id`, whose quotas are `quotas`, if every quota counting any of the
    /// categories has room for its share; else counts nothing and says which quota refused.
    pub fn take(
        &self,
        project_id: u64,
        quotas: &[Quota],
        charges: &[(&str, u64)],
        now: Instant,
    ) -> Result<(), Refusal> {
        let share = |quota: &Quota| -> u64 {
            charges
                .iter()
                .filter(|(category, _)| quota.counts(category))
                .map(|(_, quantity)| quantity)
                .sum()
        };
        if !quotas.iter().any(|q| share(q) > 0) {
            return Ok(());
        }
        let mut windows = self.windows.lock();
        for (i, quota) in quotas.iter().enumerate() {
            let quantity = share(quota);
            if quantity == 0 {
                continue;
            }
            let window = windows
                .entry((project_id, i))
                .or_insert_with(|| Window::fresh(quota, now));
            window.roll(quota, now);
            if window.count.saturating_add(quantity) > quota.limit {
                return Err(Refusal {
                    categories: quota.categories.clone(),
                    scope: Scope::Project,
                    limit: quota.limit,
                    window: quota.window,
                    retry_after: window.retry_after(now),
                });
            }
        }
        for (i, quota) in quotas.iter().enumerate() {
            let quantity = share(quota);
            if quantity > 0
                && let Some(window) = windows.get_mut(&(project_id, i))
            {
                window.count += quantity;
            }
        }
        Ok(())
    }

    /// Gives back what [`Self::take`] counted for `charges` when another limit refused the
    /// items after all.
    pub fn give_back(&self, project_id: u64, quotas: &[Quota], charges: &[(&str, u64)]) {
        let mut windows = self.windows.lock();
        for (i, quota) in quotas.iter().enumerate() {
            let quantity: u64 = charges
                .iter()
                .filter(|(category, _)| quota.counts(category))
                .map(|(_, quantity)| quantity)
                .sum();
            if quantity > 0
                && let Some(window) = windows.get_mut(&(project_id, i))
                && window.quota == *quota
            {
                window.count = window.count.saturating_sub(quantity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(categories: &[&str], limit: u64, secs: u64) -> Quota {
        Quota {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            limit,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn an_item_passes_only_when_every_quota_of_its_category_has_room() {
        let windows = QuotaWindows::default();
        let quotas = [quota(&["span"], 3, 60), quota(&[], 4, 60)];
        let now = Instant::now();
        for _ in 0..3 {
            windows.take(1, &quotas, &[("span", 1)], now).unwrap();
        }
        let refused = windows.take(1, &quotas, &[("span", 1)], now).unwrap_err();
        assert_eq!(refused.categories, ["span"]);
        assert_eq!(refused.limit, 3);
        assert_eq!(refused.retry_after_secs(), 60);
        // the refused span used none of the all-categories quota: one log still fits
        windows.take(1, &quotas, &[("log_item", 1)], now).unwrap();
        let refused = windows
            .take(1, &quotas, &[("log_item", 1)], now)
            .unwrap_err();
        assert!(refused.categories.is_empty(), "{refused:?}");
        // categories without a quota are not counted at all
        windows
            .take(1, &[quota(&["span"], 0, 60)], &[("error", 100)], now)
            .unwrap();
        // other projects have their own windows
        windows.take(2, &quotas, &[("span", 3)], now).unwrap();
    }

    #[test]
    fn attachments_count_their_bytes_and_themselves_as_relay_counts_them() {
        let windows = QuotaWindows::default();
        let now = Instant::now();
        let attachment = |bytes| [("attachment", bytes), ("attachment_item", 1)];
        let bytes = [quota(&["attachment"], 1_000, 60)];
        windows.take(1, &bytes, &attachment(600), now).unwrap();
        let refused = windows.take(1, &bytes, &attachment(600), now).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "over the project quota of 1000 attachment bytes per 60s; retry in 60s"
        );
        windows.take(1, &bytes, &attachment(400), now).unwrap();

        let items = [quota(&["attachment_item"], 2, 60)];
        windows.take(2, &items, &attachment(1 << 20), now).unwrap();
        windows.take(2, &items, &attachment(1 << 20), now).unwrap();
        assert!(windows.take(2, &items, &attachment(1), now).is_err());

        // a quota without categories counts an attachment once, whatever its size
        let all = [quota(&[], 3, 60)];
        windows.take(3, &all, &attachment(1 << 20), now).unwrap();
        windows.take(3, &all, &[("error", 1)], now).unwrap();
        windows.take(3, &all, &attachment(1 << 20), now).unwrap();
        assert!(windows.take(3, &all, &[("error", 1)], now).is_err());
    }

    #[test]
    fn a_window_ends_and_a_changed_quota_starts_afresh() {
        let windows = QuotaWindows::default();
        let quotas = [quota(&["transaction"], 1, 10)];
        let now = Instant::now();
        windows
            .take(1, &quotas, &[("transaction", 1)], now)
            .unwrap();
        let refused = windows
            .take(
                1,
                &quotas,
                &[("transaction", 1)],
                now + Duration::from_secs(4),
            )
            .unwrap_err();
        assert_eq!(refused.retry_after_secs(), 6);
        windows
            .take(
                1,
                &quotas,
                &[("transaction", 1)],
                now + Duration::from_secs(10),
            )
            .unwrap();
        let raised = [quota(&["transaction"], 2, 10)];
        windows
            .take(
                1,
                &raised,
                &[("transaction", 2)],
                now + Duration::from_secs(11),
            )
            .unwrap();
        windows.give_back(1, &raised, &[("transaction", 1)]);
        windows
            .take(
                1,
                &raised,
                &[("transaction", 1)],
                now + Duration::from_secs(12),
            )
            .unwrap();
    }

    #[test]
    fn the_header_names_each_refusing_limit_once() {
        let mut refusals = Refusals::default();
        let spans = Refusal {
            categories: vec!["transaction".into(), "span".into()],
            scope: Scope::Project,
            limit: 10,
            window: Duration::from_secs(60),
            retry_after: Duration::from_millis(41_200),
        };
        refusals.add(spans.clone());
        refusals.add(spans);
        refusals.add(Refusal {
            categories: vec!["error".into()],
            scope: Scope::Key,
            limit: 5,
            window: Duration::from_secs(60),
            retry_after: Duration::from_millis(300),
        });
        assert_eq!(
            refusals.header().as_deref(),
            Some("42:transaction;span:project, 1:error:key")
        );
        assert_eq!(refusals.retry_after(), Duration::from_secs(42));
        assert_eq!(
            refusals.to_string(),
            "over the project quota of 10 transaction, span items per 60s; retry in 42s; \
             over the key quota of 5 error items per 60s; retry in 1s"
        );
        assert_eq!(Refusals::default().header(), None);
    }
}
