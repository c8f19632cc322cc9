//! End-to-end tests: the real `faultline` binary, real Sentry SDKs, a real S3-compatible server.
//!
//! Each test starts `faultline serve` on a free loopback port with a temporary data directory,
//! creates a project with the CLI, sends events with an official SDK (Python `sentry-sdk`,
//! `@sentry/node`) or raw HTTP, and checks through SQL (`faultline query` and `POST /api/sql`)
//! what a user would look for.
//!
//! Needs (installed by `scripts/test`): a Python venv with `tests/requirements.txt`
//! (`FAULTLINE_TEST_PYTHON`, default `<workspace>/.venv/bin/python`; `moto_server` next to it)
//! (including `adbc-driver-flightsql`, `pyarrow`, `psycopg`, `asyncpg` and `sqlalchemy`), `npm ci` in `tests/node` (`node` on PATH; `@sentry/node`, `@sentry/browser`, `esbuild`, `@sentry/mcp-server`),
//! `npm ci` in `tests/browser` (playwright-core) with Debian's `chromium` for the browser SDK,
//! and `psql` (Debian package postgresql-client); `pyotp` for the TOTP test, `aiosmtpd` for the
//! mail test and npm `oidc-provider` (in `tests/node`) for single sign-on.
//! A missing tool fails the test; nothing is skipped.

#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/alerts.rs"]
mod alerts;
#[path = "e2e/attachments.rs"]
mod attachments;
#[path = "e2e/backup.rs"]
mod backup;
#[path = "e2e/browser_sdk.rs"]
mod browser_sdk;
#[path = "e2e/durability.rs"]
mod durability;
#[path = "e2e/flight_sql.rs"]
mod flight_sql;
#[path = "e2e/ingest_limits.rs"]
mod ingest_limits;
#[path = "e2e/items.rs"]
mod items;
#[path = "e2e/mail.rs"]
mod mail;
#[path = "e2e/mcp_server.rs"]
mod mcp_server;
#[path = "e2e/node_sdk.rs"]
mod node_sdk;
#[path = "e2e/ops.rs"]
mod ops;
#[path = "e2e/people.rs"]
mod people;
#[path = "e2e/postgres.rs"]
mod postgres;
#[path = "e2e/postgres_drivers.rs"]
mod postgres_drivers;
#[path = "e2e/privacy.rs"]
mod privacy;
#[path = "e2e/python_sdk.rs"]
mod python_sdk;
#[path = "e2e/release_health.rs"]
mod release_health;
#[path = "e2e/retention.rs"]
mod retention;
#[path = "e2e/s3.rs"]
mod s3;
#[path = "e2e/sentry_cli.rs"]
mod sentry_cli;
#[path = "e2e/sourcemaps.rs"]
mod sourcemaps;
#[path = "e2e/sql_everywhere.rs"]
mod sql_everywhere;
#[path = "e2e/sso.rs"]
mod sso;
#[path = "e2e/store.rs"]
mod store;
