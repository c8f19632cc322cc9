//! Invites by mail through a real SMTP server (PyPI `aiosmtpd`, tests/clients/python/
//! smtp_sink.py): the invited person gets the link the API answered; with the mail server gone
//! the invite still works and the answer says the mail was not sent.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::harness::{Setup, free_port, python, workspace_root};

/// `python smtp_sink.py`; killed when dropped.
pub(crate) struct Sink {
    child: Child,
}

impl Sink {
    pub(crate) fn start(port: u16, out: &std::path::Path) -> Result<Self> {
        let mut child = Command::new(python())
            .arg(workspace_root().join("tests/clients/python/smtp_sink.py"))
            .arg(port.to_string())
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("run smtp_sink.py (pip install aiosmtpd)")?;
        let stdout = child.stdout.take().context("sink stdout")?;
        match BufReader::new(stdout).lines().next() {
            Some(Ok(line)) if line == "ready" => Ok(Self { child }),
            other => bail!("smtp_sink.py did not start: {other:?}"),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn invite(setup: &Setup, token: &str, email: &str) -> Result<Value> {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/0/organizations/default/members/",
            setup.base_url()
        ))
        .bearer_auth(token)
        .json(&json!({"email": email, "orgRole": "member"}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 201,
        "invite answered {}",
        response.status()
    );
    Ok(response.json().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_is_mailed_and_a_mail_server_outage_is_reported() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let smtp_port = free_port();
    let inbox = tmp.path().join("inbox.jsonl");
    let setup = Setup::new(
        tmp.path(),
        "data",
        &format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
             from = \"faultline <faultline@example.test>\"\ntimeout = \"3s\"\n"
        ),
    );
    let sink = Sink::start(smtp_port, &inbox)?;
    let _server = setup.start()?;
    let token = setup
        .token_with("inviter", &["member:write"])?
        .trim()
        .to_owned();

    let answer = invite(&setup, &token, "ann@example.test").await?;
    assert_eq!(answer["mailed"], true, "{answer}");
    assert_eq!(answer["mailError"], Value::Null);
    let link = answer["inviteLink"].as_str().context("invite link")?;
    let mail: Value = serde_json::from_str(
        std::fs::read_to_string(&inbox)?
            .lines()
            .next()
            .context("a mail arrived")?,
    )?;
    assert_eq!(mail["from"], "faultline@example.test");
    assert_eq!(mail["to"], json!(["ann@example.test"]));
    let data = mail["data"].as_str().context("mail text")?;
    assert!(
        data.contains("Subject: You are invited to default on faultline"),
        "{data}"
    );
    // the link may be folded by quoted-printable; compare without soft line breaks
    let text = data.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        text.contains(link),
        "the mail holds the invite link {link}:\n{data}"
    );

    // The mail server goes away: the invite is made all the same, and the answer says why no
    // mail went out.
    drop(sink);
    let answer = invite(&setup, &token, "bob@example.test").await?;
    assert_eq!(answer["mailed"], false, "{answer}");
    let error = answer["mailError"].as_str().context("mail error")?;
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(
        answer["inviteLink"]
            .as_str()
            .is_some_and(|l| l.contains("/accept/"))
    );
    Ok(())
}
