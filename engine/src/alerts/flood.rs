//! Anti-flood per channel: an hourly budget of sends (`max_per_hour`). A delivery beyond it is
//! not sent but recorded as `suppressed`, naming the limit.

use std::collections::{HashMap, VecDeque};

const HOUR_MS: i64 = 3_600_000;

/// Per channel, when (ms) its sends of the last hour went out, oldest first.
#[derive(Debug, Default)]
pub struct Budgets {
    sent: HashMap<String, VecDeque<i64>>,
}

impl Budgets {
    /// Takes one send from `channel`'s budget of `limit` per hour at `now_ms`: false when the
    /// last hour holds `limit` sends already (nothing is taken then). A limit of 0 is no limit.
    pub fn take(&mut self, channel: &str, limit: u32, now_ms: i64) -> bool {
        if limit == 0 {
            return true;
        }
        let sent = self.sent.entry(channel.to_owned()).or_default();
        while sent.front().is_some_and(|at| *at <= now_ms - HOUR_MS) {
            sent.pop_front();
        }
        if sent.len() >= limit as usize {
            return false;
        }
        sent.push_back(now_ms);
        true
    }

    /// Counts a send made before (read back from the attempts at start-up).
    pub fn seed(&mut self, channel: &str, at_ms: i64) {
        let sent = self.sent.entry(channel.to_owned()).or_default();
        let at = sent.partition_point(|t| *t <= at_ms);
        sent.insert(at, at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_alerts_with_five_an_hour_send_five() {
        let mut budgets = Budgets::default();
        let sent = (0..20)
            .filter(|i| budgets.take("slack", 5, 1_000 + i * 1_000))
            .count();
        assert_eq!(sent, 5);
        // Another channel has its own budget.
        assert!(budgets.take("mail", 5, 30_000));
        // An hour after the first send, one send is free again; the refused ones took nothing.
        assert!(!budgets.take("slack", 5, 1_000 + HOUR_MS - 1));
        assert!(budgets.take("slack", 5, 1_000 + HOUR_MS));
        assert!(!budgets.take("slack", 5, 1_000 + HOUR_MS));
    }

    #[test]
    fn no_limit_and_seeded_sends() {
        let mut budgets = Budgets::default();
        assert!((0..1000).all(|i| budgets.take("hook", 0, i)));
        // Sends read back at start-up, in any order, count against the hour.
        for at in [3_000, 1_000, 2_000] {
            budgets.seed("hook", at);
        }
        assert!(!budgets.take("hook", 3, 10_000));
        assert!(budgets.take("hook", 3, 1_000 + HOUR_MS));
    }
}
