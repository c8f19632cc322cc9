//! The stored data as other processes see it: one writer per WAL, and the Parquet files read by
//! other tools.

use anyhow::Result;

use crate::harness::{Setup, store_message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_data_dir_refuses_and_names_the_first() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let first = setup.start()?;
    store_message(&setup, &dsn, "hello").await?;

    let mut second = setup.clone();
    second.port = crate::harness::free_port();
    let err = second
        .start()
        .expect_err("a second server on the same data directory must not start")
        .to_string();
    assert!(err.contains("exited with exit status: 1"), "{err}");
    assert!(
        err.contains("another faultline server already writes to the WAL in"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {} on host ", first.pid())),
        "the holder is named: {err}"
    );
    assert!(err.contains("node node-0, started "), "{err}");

    // Reading beside the running server works.
    let rows = setup.query("SELECT message FROM events")?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["message"], "hello");

    // Once the first has stopped, a server starts on the directory again.
    first.terminate()?;
    let again = second.start()?;
    let rows = setup.query("SELECT count(*) AS n FROM events")?;
    assert_eq!(rows[0]["n"], 1);
    drop(again);
    Ok(())
}
