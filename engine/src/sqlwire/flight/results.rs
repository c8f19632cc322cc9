//! Results waiting between `GetFlightInfo` and `DoGet`, within bounds.
//!
//! A result is held until its token fetches it, for at most `query.flight_result_ttl`. Each
//! token may hold `query.flight_results_per_token` results of at most
//! `query.flight_result_bytes_per_token` together: beyond that its oldest results are dropped
//! (a client that runs more queries than it fetches has abandoned them). All tokens together
//! may hold `query.flight_results_total` results of `query.flight_result_bytes_total`: beyond
//! that a new result is refused with a "busy, retry" error, so that one token cannot push
//! another's results out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_config::QueryConfig;
use parking_lot::Mutex;
use tonic::Status;

use crate::query::QueryOutput;

struct Pending {
    token_id: String,
    output: QueryOutput,
    bytes: u64,
    at: Instant,
}

/// The bounds, from `[query]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) ttl: Duration,
    pub(super) per_token: usize,
    pub(super) bytes_per_token: u64,
    pub(super) total: usize,
    pub(super) bytes_total: u64,
}

impl Bounds {
    pub(super) fn from_config(config: &QueryConfig) -> Self {
        Self {
            ttl: config.flight_result_ttl,
            per_token: config.flight_results_per_token.max(1),
            bytes_per_token: config.flight_result_bytes_per_token.as_u64(),
            total: config.flight_results_total.max(1),
            bytes_total: config.flight_result_bytes_total.as_u64(),
        }
    }
}

/// The results held for `DoGet`, by handle.
pub(super) struct Results {
    bounds: Bounds,
    held: Mutex<HashMap<String, Pending>>,
}

impl Results {
    pub(super) fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            held: Mutex::default(),
        }
    }

    /// Keeps `output` for `token_id` under `handle`, within the bounds.
    pub(super) fn keep(
        &self,
        handle: String,
        token_id: &str,
        output: QueryOutput,
    ) -> Result<(), Status> {
        let bounds = self.bounds;
        let bytes: u64 = output
            .batches
            .iter()
            .map(|b| crate::query::batch_bytes(b) as u64)
            .sum();
        if bytes > bounds.bytes_per_token {
            return Err(Status::resource_exhausted(format!(
                "the result is {bytes} bytes, more than query.flight_result_bytes_per_token \
                 ({} bytes) allows to hold for DoGet; add a LIMIT or narrow the query",
                bounds.bytes_per_token
            )));
        }
        let mut held = self.held.lock();
        held.retain(|_, p| p.at.elapsed() < bounds.ttl);
        // The token's own oldest results make room for its new one.
        loop {
            let mine = held.iter().filter(|(_, p)| p.token_id == token_id);
            let (count, used) = mine.fold((0usize, 0u64), |(n, b), (_, p)| (n + 1, b + p.bytes));
            if count < bounds.per_token && used + bytes <= bounds.bytes_per_token {
                break;
            }
            let oldest = held
                .iter()
                .filter(|(_, p)| p.token_id == token_id)
                .min_by_key(|(_, p)| p.at)
                .map(|(h, _)| h.clone());
            match oldest {
                Some(oldest) => {
                    tracing::debug!(token = token_id, "dropping an unfetched flight result");
                    held.remove(&oldest);
                }
                None => break,
            }
        }
        let used: u64 = held.values().map(|p| p.bytes).sum();
        if held.len() >= bounds.total || used + bytes > bounds.bytes_total {
            return Err(Status::resource_exhausted(format!(
                "too busy, retry shortly: {} unfetched Flight SQL results of {used} bytes are \
                 held, the most query.flight_results_total ({}) and \
                 query.flight_result_bytes_total ({} bytes) allow",
                held.len(),
                bounds.total,
                bounds.bytes_total
            )));
        }
        held.insert(
            handle,
            Pending {
                token_id: token_id.to_owned(),
                output,
                bytes,
                at: Instant::now(),
            },
        );
        Ok(())
    }

    /// The result `handle` if `token_id` ran it and it has not expired; it is held no more.
    pub(super) fn take(&self, handle: &str, token_id: &str) -> Option<QueryOutput> {
        let mut held = self.held.lock();
        match held.get(handle) {
            // Only the token that ran the query may fetch its result.
            Some(p) if p.token_id == token_id && p.at.elapsed() < self.bounds.ttl => {
                held.remove(handle).map(|p| p.output)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A result of `rows` 64-bit integers.
    fn output(rows: usize) -> QueryOutput {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let values: Vec<i64> = (0..rows as i64).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(values))],
        )
        .expect("batch");
        QueryOutput {
            schema,
            batches: vec![batch],
        }
    }

    fn bounds() -> Bounds {
        Bounds {
            ttl: Duration::from_secs(60),
            per_token: 2,
            bytes_per_token: 1 << 20,
            total: 3,
            bytes_total: 1 << 30,
        }
    }

    #[test]
    fn a_token_over_its_bound_loses_its_oldest_result() {
        let results = Results::new(bounds());
        results.keep("a1".into(), "a", output(10)).expect("kept");
        results.keep("a2".into(), "a", output(10)).expect("kept");
        results.keep("a3".into(), "a", output(10)).expect("kept");
        assert!(results.take("a1", "a").is_none(), "the oldest was dropped");
        assert!(
            results.take("a2", "b").is_none(),
            "another token cannot fetch it"
        );
        assert!(results.take("a2", "a").is_some());
        assert!(results.take("a3", "a").is_some());
        assert!(results.take("a3", "a").is_none(), "fetched once");
    }

    #[test]
    fn results_over_the_byte_bounds_are_refused_or_make_room() {
        let results = Results::new(bounds());
        // 200,000 rows of 8 bytes: more than the token's 1 MiB.
        let err = results
            .keep("big".into(), "a", output(200_000))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message()
                .contains("query.flight_result_bytes_per_token"),
            "{err}"
        );
        // Two of 100,000 rows do not fit together: the first makes room for the second.
        results
            .keep("h1".into(), "a", output(100_000))
            .expect("kept");
        results
            .keep("h2".into(), "a", output(100_000))
            .expect("kept");
        assert!(results.take("h1", "a").is_none());
        assert!(results.take("h2", "a").is_some());
    }

    #[test]
    fn the_total_bound_refuses_new_results_with_busy() {
        let results = Results::new(bounds());
        results.keep("a1".into(), "a", output(1)).expect("kept");
        results.keep("b1".into(), "b", output(1)).expect("kept");
        results.keep("c1".into(), "c", output(1)).expect("kept");
        let err = results.keep("d1".into(), "d", output(1)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message().starts_with("too busy, retry shortly"),
            "{err}"
        );
        assert!(
            results.take("a1", "a").is_some(),
            "nobody else's result was dropped"
        );
        results
            .keep("d1".into(), "d", output(1))
            .expect("room again");
    }

    #[test]
    fn expired_results_are_gone() {
        let results = Results::new(Bounds {
            ttl: Duration::ZERO,
            ..bounds()
        });
        results.keep("a1".into(), "a", output(1)).expect("kept");
        assert!(results.take("a1", "a").is_none());
    }
}
