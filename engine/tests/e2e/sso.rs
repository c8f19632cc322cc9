//! Single sign-on against a real OpenID Connect provider: npm `oidc-provider` (tests/node/
//! oidc_provider.mjs), its login and consent pages driven like a browser by
//! tests/clients/python/oidc_login.py. The ID-token checks a real provider cannot be made to
//! fail (a token for another audience, a wrong nonce, a bad signature) are unit tests in
//! engine/src/people/sso/tests.rs with tokens signed by a test key.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::harness::{Setup, free_port, python_client, workspace_root};

const SECRET: &str = "faultline-e2e-client-secret";

/// `node oidc_provider.mjs`; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    fn start(redirect: &str) -> Result<Self> {
        let port = free_port();
        let mut child = Command::new("node")
            .arg(workspace_root().join("tests/node/oidc_provider.mjs"))
            .args([&port.to_string(), redirect, SECRET])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("run node tests/node/oidc_provider.mjs (npm ci in tests/node)")?;
        let stdout = child.stdout.take().context("provider stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Instant::now() > deadline {
                bail!("oidc_provider.mjs did not say ready");
            }
            match lines.next() {
                Some(line) => {
                    if let Some(issuer) = line?.strip_prefix("ready ") {
                        // keep reading, or the provider dies writing to a closed pipe
                        std::thread::spawn(move || lines.for_each(drop));
                        return Ok(Self {
                            child,
                            issuer: issuer.to_owned(),
                        });
                    }
                }
                None => bail!("oidc_provider.mjs exited: {:?}", child.wait()?),
            }
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn configure(setup: &Setup, issuer: &str, extra: &str) -> Result<()> {
    let secret = setup.data_dir.with_extension("oidc-secret");
    std::fs::write(&secret, SECRET)?;
    std::fs::write(
        &setup.config,
        format!(
            "[auth]\n{extra}\n[auth.oidc]\nissuer = \"{issuer}\"\nclient_id = \"faultline\"\n\
             client_secret_file = \"{}\"\nname = \"Test IdP\"\nauto_provision = true\n",
            secret.display()
        ),
    )?;
    Ok(())
}

fn login(setup: &Setup, name: &str) -> Result<Value> {
    let out = python_client("oidc_login.py", &[&setup.base_url(), name])?;
    serde_json::from_str(&out).with_context(|| format!("oidc_login.py printed no JSON: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_creates_an_account_once_and_refuses_a_replayed_state() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let provider = Provider::start(&format!("{}/auth/oidc/callback", setup.base_url()))?;
    configure(&setup, &provider.issuer, "password_login = false")?;
    let server = setup.start()?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    let methods: Value = client
        .get(format!("{}/auth/methods", setup.base_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        methods,
        serde_json::json!({"password": false, "sso": {"name": "Test IdP", "url": "/auth/oidc/login"}})
    );

    // The first login creates the account; the session cookie works and names the person.
    let first = login(&setup, "alice")?;
    assert_eq!(first["answer"]["status"], 303, "{first}");
    assert_eq!(first["answer"]["location"], "/done", "{first}");
    assert_eq!(first["me_status"], 200, "{first}");
    assert_eq!(first["me"]["user"]["email"], "alice@example.test");
    assert_eq!(first["me"]["user"]["name"], "User alice");
    assert_eq!(first["me"]["user"]["orgRole"], "member");
    assert_eq!(first["me"]["user"]["hasPassword"], false);
    let id = first["me"]["user"]["id"].clone();

    // The second login finds the same account (by issuer and subject).
    let second = login(&setup, "alice")?;
    assert_eq!(second["me"]["user"]["id"], id, "{second}");

    // The provider's redirect, replayed with the state cookie it was bound to: refused.
    let callback = first["callback"].as_str().context("callback URL")?;
    let state = url::Url::parse(callback)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .context("state in the callback")?;
    let replay = client
        .get(callback)
        .header("cookie", format!("faultline_sso={state}"))
        .send()
        .await?;
    assert_eq!(replay.status(), 400);
    let body = replay.text().await?;
    assert!(body.contains("already used"), "{body}");

    // A state without the browser's cookie: refused before the provider is asked.
    let foreign = client
        .get(format!(
            "{}/auth/oidc/callback?code=x&state={state}",
            setup.base_url()
        ))
        .send()
        .await?;
    assert_eq!(foreign.status(), 400);

    // The provider's own refusal is passed on.
    let denied = client
        .get(format!(
            "{}/auth/oidc/callback?error=access_denied&error_description=End-User%20aborted",
            setup.base_url()
        ))
        .send()
        .await?;
    assert_eq!(denied.status(), 401);
    let body = denied.text().await?;
    assert!(body.contains("access_denied: End-User aborted"), "{body}");

    // Password login is off.
    let password = client
        .post(format!("{}/auth/login", setup.base_url()))
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({"email": "alice@example.test", "password": "whatever it is"}))
        .send()
        .await?;
    assert_eq!(password.status(), 403);

    // Each login and each refusal is in the audit log.
    let token = setup
        .token_with("auditor", &["event:read", "org:admin"])?
        .trim()
        .to_owned();
    let rows = server
        .sql(
            &token,
            "SELECT event, data FROM audit_log WHERE event LIKE 'user.login%' ORDER BY ts",
        )
        .await?;
    let events: Vec<&str> = rows.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_eq!(
        events,
        [
            "user.login",
            "user.login",
            "user.login-failed",
            "user.login-failed",
            "user.login-failed",
            // the password attempt
            "user.login-failed"
        ],
        "{rows:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_names_another_issuer_is_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let provider = Provider::start(&format!("{}/auth/oidc/callback", setup.base_url()))?;
    // the same provider, reached under another name: its discovery document names
    // 127.0.0.1, not localhost
    let other = provider.issuer.replace("127.0.0.1", "localhost");
    configure(&setup, &other, "")?;
    let _server = setup.start()?;
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("{}/auth/oidc/login", setup.base_url()))
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    let body = response.text().await?;
    assert!(
        body.contains("issuer") && body.contains(&other),
        "the refusal names the issuer mismatch: {body}"
    );
    Ok(())
}

/// Sets the password of a new account through its set-password link; answers its session
/// cookie (`faultline_session=...`).
async fn password_account(setup: &Setup, email: &str) -> Result<String> {
    let link = setup.cli(&["user", "create", email])?;
    let token = link
        .trim()
        .rsplit_once("/setup/")
        .context("a set-password link")?
        .1
        .to_owned();
    let response = reqwest::Client::new()
        .post(format!("{}/auth/setup", setup.base_url()))
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({"token": token, "password": "a long enough password"}))
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "setup answered {}",
        response.status()
    );
    let cookie = response
        .headers()
        .get("set-cookie")
        .context("a session cookie")?
        .to_str()?
        .split(';')
        .next()
        .context("cookie")?
        .to_owned();
    Ok(cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_account_links_its_provider_login_which_no_other_account_can_take() -> Result<()>
{
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let provider = Provider::start(&format!("{}/auth/oidc/callback", setup.base_url()))?;
    configure(&setup, &provider.issuer, "")?;
    let server = setup.start()?;
    let ann = password_account(&setup, "ann@example.com").await?;
    let bob = password_account(&setup, "bob@example.com").await?;

    // Ann links her provider login "alice" from her session, and comes back to her account page.
    let linked = python_client(
        "oidc_login.py",
        &[&setup.base_url(), "alice", "/auth/oidc/link", &ann],
    )?;
    let linked: Value = serde_json::from_str(&linked)?;
    assert_eq!(linked["answer"]["status"], 303, "{linked}");
    assert_eq!(
        linked["answer"]["location"], "/account/?done=sso-linked",
        "{linked}"
    );
    assert_eq!(linked["me"]["user"]["email"], "ann@example.com", "{linked}");
    let ann_id = linked["me"]["user"]["id"].clone();

    // Logging in with "alice" is now Ann (no new account is made).
    let login = login(&setup, "alice")?;
    assert_eq!(login["answer"]["location"], "/done", "{login}");
    assert_eq!(login["me"]["user"]["id"], ann_id, "{login}");

    // Bob cannot link the same provider login: back to his account page with the reason.
    let taken = python_client(
        "oidc_login.py",
        &[&setup.base_url(), "alice", "/auth/oidc/link", &bob],
    )?;
    let taken: Value = serde_json::from_str(&taken)?;
    assert_eq!(taken["answer"]["status"], 303, "{taken}");
    let location = taken["answer"]["location"].as_str().unwrap_or_default();
    assert!(location.starts_with("/account/?error="), "{taken}");
    let reason =
        url::form_urlencoded::parse(location.split_once('?').context("query")?.1.as_bytes())
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.into_owned())
            .context("error")?;
    assert_eq!(
        reason,
        "this Test IdP login already belongs to another faultline account: log in with it, or unlink it there first"
    );
    assert_eq!(taken["me"]["user"]["email"], "bob@example.com", "{taken}");

    // Ann unlinks it (she has a password); then Bob can link it.
    let client = reqwest::Client::new();
    let unlinked = client
        .delete(format!("{}/auth/oidc/link", setup.base_url()))
        .header("cookie", &ann)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await?;
    assert_eq!(unlinked.status(), 200, "{}", unlinked.text().await?);
    let again = client
        .delete(format!("{}/auth/oidc/link", setup.base_url()))
        .header("cookie", &ann)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await?;
    assert_eq!(again.status(), 404);
    let relinked = python_client(
        "oidc_login.py",
        &[&setup.base_url(), "alice", "/auth/oidc/link", &bob],
    )?;
    let relinked: Value = serde_json::from_str(&relinked)?;
    assert_eq!(
        relinked["answer"]["location"], "/account/?done=sso-linked",
        "{relinked}"
    );

    let token = setup
        .token_with("auditor", &["event:read", "org:admin"])?
        .trim()
        .to_owned();
    let rows = server
        .sql(
            &token,
            "SELECT event, actor_label FROM audit_log WHERE event LIKE 'sso-identity.%' ORDER BY ts",
        )
        .await?;
    let events: Vec<(&str, &str)> = rows
        .iter()
        .filter_map(|r| Some((r["event"].as_str()?, r["actor_label"].as_str()?)))
        .collect();
    assert_eq!(
        events,
        [
            ("sso-identity.link", "ann@example.com"),
            ("sso-identity.unlink", "ann@example.com"),
            ("sso-identity.link", "bob@example.com"),
        ],
        "{rows:?}"
    );
    Ok(())
}
