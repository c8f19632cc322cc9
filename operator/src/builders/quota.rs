//! A project's quotas as the engine takes them: `[[project]] quotas` of the config file for
//! the projects of an `ErrorTracker`, `quotas` of the registration for a `FaultlineProject`.
//!
//! The schema already limits the categories, the number of quotas and the window; the engine's
//! own check ([`faultline_config::quotas_problem`]) runs again here for specs that did not pass
//! an API server (`render -f`), so a bad quota is refused naming its field in the spec.

use std::time::Duration;

use faultline_config::{Quota, quotas_problem};

use super::{Error, Result};
use crate::crd::QuotaSpec;

/// The engine's quotas of `specs`, in order; refused as the engine would refuse them, naming
/// the field below `at` (`projects[0].` for a tracker's project, empty for a
/// `FaultlineProject`).
pub(crate) fn engine_quotas(specs: &[QuotaSpec], at: &str) -> Result<Vec<Quota>> {
    let quotas: Vec<Quota> = specs
        .iter()
        .map(|q| Quota {
            categories: q.categories.clone(),
            limit: q.limit,
            window: Duration::from_secs(q.window_seconds),
        })
        .collect();
    match quotas_problem(&quotas) {
        None => Ok(quotas),
        Some((field, message)) => {
            // The engine's `window` is `windowSeconds` in the spec.
            let field = match field.strip_suffix(".window") {
                Some(quota) => format!("{quota}.windowSeconds"),
                None => field,
            };
            Err(Error::InvalidQuotas {
                field: format!("{at}{field}"),
                message,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(categories: &[&str], window_seconds: u64) -> QuotaSpec {
        QuotaSpec {
            categories: categories.iter().map(|&c| c.to_owned()).collect(),
            limit: 10,
            window_seconds,
        }
    }

    #[test]
    fn quotas_map_to_the_engine_and_bad_ones_are_refused_by_their_spec_field() {
        let quotas = engine_quotas(&[quota(&["span", "log_item"], 60), quota(&[], 1)], "").unwrap();
        assert_eq!(quotas[0].categories, ["span", "log_item"]);
        assert_eq!(
            (quotas[0].limit, quotas[0].window),
            (10, Duration::from_secs(60))
        );
        assert!(quotas[1].categories.is_empty());

        let refused = |specs: &[QuotaSpec]| {
            engine_quotas(specs, "projects[2].")
                .unwrap_err()
                .to_string()
        };
        let err = refused(&[quota(&["span"], 60), quota(&["error", "spans"], 60)]);
        assert!(
            err.starts_with("spec.projects[2].quotas[1].categories[1]: ") && err.contains("spans"),
            "{err}"
        );
        let err = refused(&[quota(&["span"], 0)]);
        assert!(
            err.starts_with("spec.projects[2].quotas[0].windowSeconds: "),
            "{err}"
        );
        let err = refused(&vec![quota(&[], 60); faultline_config::MAX_QUOTAS + 1]);
        assert!(err.starts_with("spec.projects[2].quotas: "), "{err}");
    }
}
