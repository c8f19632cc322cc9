//! Integration tests of the operator, one binary, one module per rung of the test ladder.
//!
//! No kube-apiserver can run on these machines, so each module proves one rung:
//! - `builders`: rung 1, every built object snapshot-tested;
//! - `schema`: rung 2, the CRD is structural, CEL rules accept and reject, `crds/` does not drift;
//! - `wire`: rung 4, the exact HTTP requests of reconcile against a `tower-test` mock;
//! - `convergence`: rung 5, reconcile to a fixed point on `kube-fake-client`;
//! - `backup_lifecycle`: rung 5 for `Backup` resources and the tracker's backup status, with
//!   `engine_stub` standing in for the engine's admin API;
//! - `controller_loop`: rung 6, `Controller::run` against a loopback API server (`apiserver`);
//! - `project_loop`: rung 6 for `FaultlineProject`s with the engine binary running for real;
//! - `examples`: rung 2 for `examples/`: each tracker parses without losing a field, passes CEL;
//! - `leader`: Lease-based leader election on `kube-fake-client`;
//! - `auth`: `spec.auth` across rungs 1, 2 and 5 (config, client secret mount, CEL rules, a
//!   missing or changed Secret);
//! - `projects`: `FaultlineProject`s across rungs 1, 2 and 5 (DSN Secret, declaration, CEL
//!   rules, two trackers and three app namespaces converging on `kube-fake-client`);
//! - `metrics`, `cli`: the `/metrics` endpoint and the `crd` / `render` subcommands.
//!
//! The offline validation of built objects and of the chart against the Kubernetes schemas
//! (rungs 2 and 3 with `kubernetes-validate`, helm and checkov) lives in `tests/k8s/` (Python).

mod apiserver;
mod auth;
mod backup_lifecycle;
mod builders;
mod cli;
mod common;
mod controller_loop;
mod convergence;
mod engine_stub;
mod examples;
mod leader;
mod metrics;
mod mock_api;
mod project_loop;
mod projects;
mod schema;
mod wire;
