//! Integration tests of the operator, one binary, one module per rung of the test ladder.
//!
//! No kube-apiserver can run on these machines, so each module proves one rung:
//! - `builders`: rung 1, every built object snapshot-tested;
//! - `schema`: rung 2, the CRD is structural, CEL rules accept and reject, `crds/` does not drift;
//! - `wire`: rung 4, the exact HTTP requests of reconcile against a `tower-test` mock;
//! - `convergence`: rung 5, reconcile to a fixed point on `kube-fake-client`;
//! - `controller_loop`: rung 6, `Controller::run` against a loopback API server.

mod apiserver;
mod builders;
mod common;
mod controller_loop;
mod convergence;
mod mock_api;
mod schema;
mod wire;
