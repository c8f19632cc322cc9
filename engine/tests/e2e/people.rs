//! People end to end on the real binary: the first-start setup link, login with a session
//! cookie, invite and accept, a role change, a failed login, TOTP with a real authenticator
//! (Python `pyotp`), logout, `faultline user list`, and the audit log read through `psql` and
//! the HTTP SQL API.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Setup, free_port, python_client};

const PASSWORD: &str = "correct horse battery";

/// An HTTP client that keeps the session cookie, as a page of the site would.
pub(crate) struct Browser {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    /// Sends like a page of the site would: the cookie and `Sec-Fetch-Site: same-origin`.
    pub(crate) async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("sec-fetch-site", "same-origin");
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("faultline_session={cookie}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        if let Some(set) = response.headers().get("set-cookie") {
            let value = set.to_str()?.split(';').next().unwrap_or("");
            let value = value.strip_prefix("faultline_session=").unwrap_or("");
            self.cookie = (!value.is_empty()).then(|| value.to_owned());
        }
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn psql(port: u16, token: &str, sql: &str) -> Result<String> {
    let output = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=auditor dbname=faultline sslmode=disable connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .stdin(Stdio::null())
        .output()
        .context("run psql")?;
    ensure!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_owner_invite_totp_and_the_audit_log_through_psql() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let pg_port = free_port();
    let setup = Setup::new(
        tmp.path(),
        "data",
        &format!("[server]\npg_listen = \"127.0.0.1:{pg_port}\"\n"),
    );
    let server = setup.start()?;
    let log = server.log_text();
    let link = log
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/setup/"))
        .with_context(|| format!("no setup link in the log:\n{log}"))?
        .trim_matches(|c: char| c == '"' || c == ',')
        .to_owned();
    assert!(log.contains("No owner yet"), "{log}");
    let token = link.rsplit('/').next().context("token")?.to_owned();

    // The first owner sets a password through the link, and is logged in.
    let mut owner = Browser::new(&setup.base_url());
    let (status, body) = owner
        .send(
            reqwest::Method::POST,
            "/auth/setup",
            Some(json!({"token": token, "email": "owner@example.com", "name": "Owner", "password": PASSWORD})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["orgRole"], "owner");
    let mut again = Browser::new(&setup.base_url());
    let (status, _) = again
        .send(
            reqwest::Method::POST,
            "/auth/setup",
            Some(json!({"token": token, "email": "x@example.com", "password": PASSWORD})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "the setup link works once");

    // Invite Ann; she accepts and logs in.
    let (status, body) = owner
        .send(
            reqwest::Method::POST,
            "/api/0/organizations/default/members/",
            Some(json!({"email": "ann@example.com", "orgRole": "member"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let invite = body["inviteLink"].as_str().context("invite link")?;
    let invite = invite.rsplit('/').next().context("invite token")?;
    let mut ann = Browser::new(&setup.base_url());
    let (status, body) = ann
        .send(
            reqwest::Method::POST,
            "/auth/accept",
            Some(json!({"token": invite, "name": "Ann", "password": "long winter evenings by the sea"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = ann.send(reqwest::Method::GET, "/auth/me", None).await?;
    let ann_id = me["user"]["id"].as_str().context("id")?.to_owned();

    // A wrong password, then a role change by the owner.
    let mut stranger = Browser::new(&setup.base_url());
    let (status, body) = stranger
        .send(
            reqwest::Method::POST,
            "/auth/login",
            Some(json!({"email": "ann@example.com", "password": "guess guess guess"})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "wrong email address or password"}));
    let (status, body) = owner
        .send(
            reqwest::Method::PUT,
            &format!("/api/0/organizations/default/members/{ann_id}/"),
            Some(json!({"orgRole": "manager"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["orgRole"], "manager");

    // Ann enrols TOTP with a real authenticator; each code works once.
    let (status, enrolment) = ann.send(reqwest::Method::POST, "/auth/totp", None).await?;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let seed = enrolment["secret"].as_str().context("seed")?.to_owned();
    let code = python_client("totp_code.py", &[&seed])?.trim().to_owned();
    let (status, body) = ann
        .send(
            reqwest::Method::POST,
            "/auth/totp/confirm",
            Some(json!({"code": code})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recoveryCodes"].as_array().map(Vec::len), Some(10));
    let login = |code: Option<String>| {
        let mut b = Browser::new(&setup.base_url());
        async move {
            let mut body =
                json!({"email": "ann@example.com", "password": "long winter evenings by the sea"});
            if let Some(code) = code {
                body["code"] = json!(code);
            }
            b.send(reqwest::Method::POST, "/auth/login", Some(body))
                .await
        }
    };
    let (status, body) = login(None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"detail": "this account needs a TOTP code (or a recovery code) to log in"})
    );
    let (status, _) = login(Some(code.clone())).await?;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the confirming code is spent"
    );
    let next = python_client("totp_code.py", &[&seed, "1"])?
        .trim()
        .to_owned();
    let (status, body) = login(Some(next.clone())).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = login(Some(next)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code works once");

    let (status, _) = owner
        .send(reqwest::Method::POST, "/auth/logout", None)
        .await?;
    assert_eq!(status, StatusCode::OK);

    let users = setup.cli(&["user", "list"])?;
    assert!(
        users.contains("owner@example.com") && users.contains("ann@example.com"),
        "{users}"
    );
    assert!(
        users.contains("manager") && users.contains("totp"),
        "{users}"
    );

    // The audit log, through psql with a token holding org:admin, and refused without it.
    let auditor = setup
        .token_with("auditor", &["event:read", "org:admin"])?
        .trim()
        .to_owned();
    let rows = psql(
        pg_port,
        &auditor,
        "SELECT event, coalesce(actor_label, '-'), coalesce(target_type, '-') FROM audit_log \
         WHERE event <> 'user.login-failed' OR actor_label = 'ann@example.com' ORDER BY ts",
    )?;
    assert_eq!(
        rows,
        "user.password.change|owner@example.com|user\n\
         member.invite|owner@example.com|email\n\
         member.accept-invite|ann@example.com|user\n\
         user.login-failed|ann@example.com|user\n\
         member.edit|owner@example.com|user\n\
         user.mfa.enable|ann@example.com|user\n\
         user.login-failed|ann@example.com|user\n\
         user.login|ann@example.com|user\n\
         user.login-failed|ann@example.com|user\n\
         user.logout|owner@example.com|session\n\
         api-key.create|faultline (command line)|token\n",
        "server log:\n{}",
        server.log_text()
    );
    let reader = setup.create_token()?;
    let refused = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} user=r dbname=faultline sslmode=disable connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM audit_log"])
        .env("PGPASSWORD", &reader)
        .stdin(Stdio::null())
        .output()?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("lacks the scope org:admin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let rows = server
        .sql(
            &auditor,
            "SELECT count(*) AS n FROM audit_log WHERE event = 'user.login-failed'",
        )
        .await?;
    assert_eq!(rows[0]["n"], 3);
    Ok(())
}
