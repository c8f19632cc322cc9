//! People over HTTP: login and sessions, the role x action table, lockout, CSRF and the
//! security headers.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use super::{Harness, Reply, harness, post};
use crate::people::{OrgRole, TeamRole};
use crate::tenancy::DEFAULT_ORG;

const PASSWORD: &str = "correct horse battery";
const COOKIE: &str = "faultline_session";

impl Harness {
    async fn person(&self, email: &str, role: OrgRole) -> String {
        self.node
            .people
            .create_user(email, email, DEFAULT_ORG, role, Some(PASSWORD))
            .await
            .unwrap()
            .id
    }

    async fn login(&self, email: &str, password: &str) -> Reply {
        self.send(
            post("/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"email": email, "password": password}).to_string(),
                ))
                .unwrap(),
        )
        .await
    }

    /// Logs in and returns the session cookie's value.
    async fn session(&self, email: &str) -> String {
        let reply = self.login(email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly; SameSite=Lax"), "{cookie}");
        let value = cookie
            .strip_prefix(&format!("{COOKIE}="))
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        value.to_owned()
    }

    /// `POST /api/sql` as `who` (a session cookie value or an API token).
    async fn sql_by(&self, who: &str, sql: &str) -> Reply {
        let mut request = post("/api/sql");
        request = if who.starts_with("flt_") {
            request.header("authorization", format!("Bearer {who}"))
        } else {
            request
                .header("cookie", format!("{COOKIE}={who}"))
                .header("sec-fetch-site", "same-origin")
        };
        self.send(request.body(Body::from(sql.to_owned())).unwrap())
            .await
    }

    /// A request as `who`: a session cookie value or (with `flt_`) an API token.
    async fn call(&self, who: &str, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        request = if who.starts_with("flt_") {
            request.header("authorization", format!("Bearer {who}"))
        } else {
            request
                .header("cookie", format!("{COOKIE}={who}"))
                .header("sec-fetch-site", "same-origin")
        };
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }
}

const MEMBERS: &str = "/api/0/organizations/default/members/";

#[tokio::test]
async fn who_may_do_what() {
    let h = harness().await;
    assert_eq!(
        h.store(r#"{"message":"boom"}"#).await.status,
        StatusCode::OK
    );
    let issue = h.sql("SELECT issue_id FROM issues").await[0]["issue_id"].clone();
    h.node
        .people
        .create_team(DEFAULT_ORG, "shop-team")
        .await
        .unwrap();
    h.node
        .people
        .edit_team(DEFAULT_ORG, "shop-team", |t| t.projects = vec![1])
        .await
        .unwrap();

    let mut callers: Vec<(String, String)> = Vec::new();
    for role in OrgRole::ALL {
        let email = format!("{role}@example.com");
        let id = h.person(&email, role).await;
        if role == OrgRole::Member {
            h.node
                .people
                .add_team_member(DEFAULT_ORG, "shop-team", &id, TeamRole::Contributor)
                .await
                .unwrap();
        }
        callers.push((role.to_string(), h.session(&email).await));
    }
    for scopes in [
        "event:read",
        "event:write",
        "member:write",
        "member:admin",
        "org:write",
        "org:admin",
        "event:read org:admin",
    ] {
        let names: Vec<&str> = scopes.split(' ').collect();
        let token = h.token(&names, None).await;
        callers.push((format!("token {scopes}"), token));
    }

    // (caller, invite, role change, disable, token create, resolve, SQL on events, SQL on
    // audit_log)
    let expected: [(&str, [u16; 7]); 11] = [
        ("member", [403, 403, 403, 403, 200, 200, 403]),
        ("admin", [403, 403, 403, 403, 200, 200, 403]),
        ("manager", [201, 200, 200, 201, 200, 200, 403]),
        ("owner", [201, 200, 200, 201, 200, 200, 200]),
        ("token event:read", [403, 403, 403, 403, 403, 200, 403]),
        ("token event:write", [403, 403, 403, 403, 200, 403, 403]),
        ("token member:write", [201, 403, 403, 403, 403, 403, 403]),
        ("token member:admin", [403, 200, 200, 403, 403, 403, 403]),
        ("token org:write", [403, 403, 403, 201, 403, 403, 403]),
        ("token org:admin", [403, 403, 403, 403, 403, 403, 403]),
        (
            "token event:read org:admin",
            [403, 403, 403, 403, 403, 200, 200],
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (name, who)) in callers.iter().enumerate() {
        let (label, want) = expected[i];
        assert_eq!(label, name);
        let target = h
            .person(&format!("target{i}@example.com"), OrgRole::Member)
            .await;
        let other = h
            .person(&format!("other{i}@example.com"), OrgRole::Member)
            .await;
        let replies = [
            h.call(
                who,
                Method::POST,
                MEMBERS,
                Some(json!({"email": format!("new{i}@example.com"), "orgRole": "member"})),
            )
            .await,
            h.call(
                who,
                Method::PUT,
                &format!("{MEMBERS}{target}/"),
                Some(json!({"orgRole": "admin"})),
            )
            .await,
            h.call(
                who,
                Method::PUT,
                &format!("{MEMBERS}{other}/"),
                Some(json!({"disabled": true})),
            )
            .await,
            h.call(
                who,
                Method::POST,
                "/api/tokens",
                Some(json!({"name": "t", "scopes": ["org:write"]})),
            )
            .await,
            h.call(
                who,
                Method::POST,
                &format!("/api/issues/{issue}/resolve"),
                None,
            )
            .await,
            h.sql_by(who, "SELECT count(*) AS n FROM events").await,
            h.sql_by(who, "SELECT count(*) AS n FROM audit_log").await,
        ];
        let got: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        if got != want {
            let bodies: Vec<&Value> = replies.iter().map(|r| &r.body).collect();
            wrong.push(format!("{name}: want {want:?} got {got:?} {bodies:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // What a refusal says, and that the invite link is printed once.
    let member = &callers[0].1;
    let refused = h
        .call(
            member,
            Method::POST,
            MEMBERS,
            Some(json!({"email": "z@example.com"})),
        )
        .await;
    assert_eq!(
        refused.body,
        json!({"detail": "the API token lacks the scope member:write"})
    );
    let manager = &callers[2].1;
    let invited = h
        .call(
            manager,
            Method::POST,
            MEMBERS,
            Some(json!({"email": "boss@example.com", "orgRole": "owner"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::FORBIDDEN);
    assert_eq!(
        invited.body,
        json!({"detail": "only an owner (scope org:admin) may invite an owner"})
    );
    // a member sees the members list (member:read), not the audit log
    let list = h.call(member, Method::GET, MEMBERS, None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.as_array().unwrap().len() > 4);
    let refused = h.sql_by(member, "SELECT * FROM audit_log").await;
    assert_eq!(
        refused.body,
        json!({"detail": "the API token lacks the scope org:admin"})
    );
    let owner = &callers[3].1;
    let rows = h
        .sql_by(
            owner,
            "SELECT event, count(*) AS n FROM audit_log WHERE event IN \
             ('issue.resolve', 'api-key.create', 'member.edit', 'member.disable') \
             GROUP BY event ORDER BY event",
        )
        .await;
    assert_eq!(
        rows.body,
        json!([
            {"event": "api-key.create", "n": 3},
            {"event": "issue.resolve", "n": 5},
            {"event": "member.disable", "n": 3},
            {"event": "member.edit", "n": 3},
        ])
    );
}

#[tokio::test]
async fn invite_accept_login_logout_and_disable() {
    let h = harness().await;
    h.person("owner@example.com", OrgRole::Owner).await;
    let owner = h.session("owner@example.com").await;
    let invited = h
        .call(
            &owner,
            Method::POST,
            MEMBERS,
            Some(json!({"email": "Ann@Example.com", "orgRole": "admin"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{:?}", invited.body);
    let link = invited.body["inviteLink"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap();
    assert!(link.starts_with("http://127.0.0.1:8000/accept/"), "{link}");

    // accept with a form, as the UI's plain HTML form does: 303 to `next`, cookie set
    let accepted = h
        .send(
            post("/auth/accept")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "token={token}&name=Ann&password=a+long+enough+passphrase&next=%2Fissues"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(
        accepted.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        accepted.body
    );
    assert_eq!(accepted.headers[header::LOCATION], "/issues");
    assert!(accepted.headers.contains_key(header::SET_COOKIE));
    let again = h
        .send(
            post("/auth/accept")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "token={token}&name=Ann&password=a+long+enough+passphrase"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // a form login never redirects off-site
    let login = h
        .send(
            post("/auth/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(
                    "email=ann%40example.com&password=a+long+enough+passphrase&next=%2F%2Fevil.example",
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers[header::LOCATION], "/");

    let ann = {
        let reply = h.login("ann@example.com", "a long enough passphrase").await;
        let cookie = reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        cookie[COOKIE.len() + 1..]
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let me = h.call(&ann, Method::GET, "/auth/me", None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["orgRole"], "admin");
    let sessions = h.call(&ann, Method::GET, "/auth/sessions", None).await;
    assert_eq!(sessions.body.as_array().unwrap().len(), 3);

    // the owner disables Ann: her sessions end at once
    let id = me.body["user"]["id"].as_str().unwrap();
    let disabled = h
        .call(
            &owner,
            Method::PUT,
            &format!("{MEMBERS}{id}/"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.body["disabled"], true);
    let me = h.call(&ann, Method::GET, "/auth/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me.body,
        json!({"detail": "the session has ended or expired: log in again"})
    );
    let refused = h.login("ann@example.com", "a long enough passphrase").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body, json!({"detail": "this account is disabled"}));

    // logout ends the session and clears the cookie
    let out = h.call(&owner, Method::POST, "/auth/logout", None).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let me = h.call(&owner, Method::GET, "/auth/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    // every step is in the audit log, once
    let events: Vec<String> = h
        .node
        .people
        .audit
        .entries(Some(DEFAULT_ORG))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "user.login",
            "member.invite",
            "member.accept-invite",
            "user.login",
            "user.login",
            "member.disable",
            "user.login-failed",
            "user.logout"
        ]
    );
    // the same rows through SQL, with who, from where and what
    let owner = h.session("owner@example.com").await;
    let rows = h
        .sql_by(
            &owner,
            "SELECT event, actor_type, actor_label, ip, target_type, data->>'role' AS role \
             FROM audit_log WHERE event <> 'user.login' ORDER BY ts",
        )
        .await;
    assert_eq!(rows.status, StatusCode::OK, "{:?}", rows.body);
    assert_eq!(
        rows.body,
        json!([
            {"event": "member.invite", "actor_type": "user", "actor_label": "owner@example.com",
             "ip": "10.1.2.3", "target_type": "email", "role": "admin"},
            {"event": "member.accept-invite", "actor_type": "user", "actor_label": "ann@example.com",
             "ip": "10.1.2.3", "target_type": "user", "role": "admin"},
            {"event": "member.disable", "actor_type": "user", "actor_label": "owner@example.com",
             "ip": "10.1.2.3", "target_type": "user", "role": null},
            {"event": "user.login-failed", "actor_type": "system", "actor_label": "ann@example.com",
             "ip": "10.1.2.3", "target_type": "user", "role": null},
            {"event": "user.logout", "actor_type": "user", "actor_label": "owner@example.com",
             "ip": "10.1.2.3", "target_type": "session", "role": null},
        ])
    );
}

#[tokio::test]
async fn failed_logins_lock_the_account_with_429() {
    let h = harness().await;
    h.person("jane@example.com", OrgRole::Member).await;
    for _ in 0..10 {
        let reply = h.login("jane@example.com", "wrong password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.body,
            json!({"detail": "wrong email address or password"})
        );
    }
    let reply = h.login("jane@example.com", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("too many failed logins for this account: try again in "),
        "{detail}"
    );
    let audit = h.node.people.audit.entries(None).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.event == "user.login-failed")
            .count(),
        11
    );
    assert_eq!(audit[0].ip.as_deref(), Some("10.1.2.3"));
}

#[tokio::test]
async fn cross_site_cookie_posts_are_refused_and_bearer_is_exempt() {
    let h = harness().await;
    h.person("jane@example.com", OrgRole::Owner).await;
    let jane = h.session("jane@example.com").await;
    let token = h.token(&["events:read"], None).await;
    let cross = |extra: (&'static str, &'static str)| {
        post("/auth/logout")
            .header("cookie", format!("{COOKIE}={jane}"))
            .header(extra.0, extra.1)
            .header("host", "errors.example")
            .body(Body::empty())
            .unwrap()
    };
    let refused = h.send(cross(("sec-fetch-site", "cross-site"))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body["detail"],
        "cross-site request refused (Sec-Fetch-Site: cross-site): changes need a request from this site's own pages or an API token"
    );
    let refused = h.send(cross(("origin", "https://evil.example"))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // the session survived both attempts
    let me = h.call(&jane, Method::GET, "/auth/me", None).await;
    assert_eq!(me.status, StatusCode::OK);
    // a Bearer request is not a browser's ambient credential
    let sql = h
        .send(
            post("/api/sql")
                .header("authorization", format!("Bearer {token}"))
                .header("cookie", format!("{COOKIE}={jane}"))
                .header("sec-fetch-site", "cross-site")
                .body(Body::from("SELECT 1 AS one"))
                .unwrap(),
        )
        .await;
    assert_eq!(sql.status, StatusCode::OK);
    let same = h.send(cross(("origin", "http://errors.example"))).await;
    assert_eq!(same.status, StatusCode::OK);
    let me = h.call(&jane, Method::GET, "/auth/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn security_headers_on_api_health_and_login_but_not_ingest() {
    let h = harness().await;
    let token = h.token(&["events:read"], None).await;
    let requests = [
        Request::get("/health/live").body(Body::empty()).unwrap(),
        post("/api/sql")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from("SELECT 1"))
            .unwrap(),
        post("/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"email":"x@example.com","password":"nope"}"#))
            .unwrap(),
        Request::get("/api/0/organizations/default/members/")
            .body(Body::empty())
            .unwrap(),
    ];
    for request in requests {
        let uri = request.uri().to_string();
        let reply = h.send(request).await;
        let get = |name: &str| {
            reply
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            get("content-security-policy").as_deref(),
            Some(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                 base-uri 'none'; object-src 'none'"
            ),
            "{uri}"
        );
        assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"));
        assert_eq!(
            get("referrer-policy").as_deref(),
            Some("strict-origin-when-cross-origin")
        );
        assert_eq!(
            get("cross-origin-opener-policy").as_deref(),
            Some("same-origin")
        );
        assert_eq!(get("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(get("strict-transport-security"), None, "{uri}: plain HTTP");
    }
    let ingest = h
        .send(
            post("/api/1/store/")
                .header("x-sentry-auth", super::auth())
                .header("origin", "https://shop.example")
                .body(Body::from(r#"{"message":"x"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(ingest.status, StatusCode::OK);
    assert!(!ingest.headers.contains_key("content-security-policy"));
    assert_eq!(
        ingest.headers["access-control-allow-origin"],
        "https://shop.example"
    );
}

#[tokio::test]
async fn https_public_url_adds_hsts_and_a_host_prefixed_secure_cookie() {
    let h = super::harness_with(|c| {
        c.server.public_url = Some("https://errors.example".into());
    })
    .await;
    h.person("jane@example.com", OrgRole::Member).await;
    let reply = h.login("jane@example.com", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Host-faultline_session="), "{cookie}");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(
        cookie.contains("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
}

#[tokio::test]
async fn key_and_token_changes_by_a_token_are_audited_with_the_token_as_actor() {
    let h = harness().await;
    let admin = h.token(&["projects:admin"], None).await;
    let keys = "/api/0/projects/default/shop/keys/";
    let created = h
        .call(&admin, Method::POST, keys, Some(json!({"name": "ci"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let public = created.body["public"].as_str().unwrap().to_owned();
    let deleted = h
        .call(&admin, Method::DELETE, &format!("{keys}{public}/"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let token = h
        .call(
            &admin,
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "grafana", "scopes": ["project:read"]})),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{:?}", token.body);
    let audit = h
        .node
        .people
        .audit
        .entries(Some(DEFAULT_ORG))
        .await
        .unwrap();
    let rows: Vec<(&str, &str, Option<&str>)> = audit
        .iter()
        .map(|e| {
            (
                e.event.as_str(),
                e.actor_type.as_str(),
                e.target_id.as_deref(),
            )
        })
        .collect();
    let token_id = token.body["id"].as_str().unwrap();
    assert_eq!(
        rows,
        [
            ("projectkey.create", "token", Some(public.as_str())),
            ("projectkey.remove", "token", Some(public.as_str())),
            ("api-key.create", "token", Some(token_id)),
        ]
    );
    // the token itself never reaches the audit log
    let secret = token.body["token"].as_str().unwrap();
    assert!(
        audit
            .iter()
            .all(|e| !serde_json::to_string(e).unwrap().contains(secret))
    );
}

#[tokio::test]
async fn other_modules_authenticate_cookies_and_tokens_alike() {
    let h = harness().await;
    h.person("jane@example.com", OrgRole::Admin).await;
    let jane = h.session("jane@example.com").await;
    let token = h.token(&["events:read"], None).await;
    assert_eq!(crate::api::session_cookie_name(&h.node), COOKIE);
    let headers = |name: &'static str, value: String| {
        let mut map = axum::http::HeaderMap::new();
        map.insert(name, value.parse().unwrap());
        map
    };
    let (actor, principal) =
        crate::api::authenticate(&h.node, &headers("cookie", format!("{COOKIE}={jane}")))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(actor.unwrap().email, "jane@example.com");
    assert_eq!(principal.org.as_deref(), Some(DEFAULT_ORG));
    assert_eq!(principal.projects, None);
    let (actor, principal) = crate::api::authenticate(
        &h.node,
        &headers("authorization", format!("Bearer {token}")),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(actor.is_none());
    assert_eq!(principal.name, "test");
    assert!(
        crate::api::authenticate(&h.node, &axum::http::HeaderMap::new())
            .await
            .unwrap()
            .is_none()
    );
    let err = crate::api::authenticate(&h.node, &headers("cookie", format!("{COOKIE}=nope")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_organization_requiring_mfa_leaves_members_only_enrolment() {
    let h = harness().await;
    h.person("owner@example.com", OrgRole::Owner).await;
    h.person("jane@example.com", OrgRole::Member).await;
    let owner = h.session("owner@example.com").await;
    let org = "/api/0/organizations/default/";
    let set = h
        .call(&owner, Method::PUT, org, Some(json!({"require2FA": true})))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.body["require2FA"], true);
    let jane = h.session("jane@example.com").await;
    let refused = h.call(&jane, Method::GET, MEMBERS, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body,
        json!({"detail": "your organization requires two-factor authentication: enrol a TOTP authenticator (POST /auth/totp) or register a passkey first"})
    );
    let enrolment = h.call(&jane, Method::POST, "/auth/totp", None).await;
    assert_eq!(enrolment.status, StatusCode::OK);
    assert_eq!(enrolment.headers["cache-control"], "no-store");
    let seed = enrolment.body["secret"].as_str().unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let code = crate::people::totp::code_at(seed, now).unwrap();
    let confirmed = h
        .call(
            &jane,
            Method::POST,
            "/auth/totp/confirm",
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:?}", confirmed.body);
    let allowed = h.call(&jane, Method::GET, MEMBERS, None).await;
    assert_eq!(allowed.status, StatusCode::OK);
    // the seed is never shown again
    let me = h.call(&jane, Method::GET, "/auth/me", None).await;
    assert!(!me.body.to_string().contains(seed));
    assert_eq!(me.body["user"]["mfa"], true);
}

#[tokio::test]
async fn failed_logins_from_one_address_are_throttled_across_accounts() {
    let h = harness().await;
    h.person("jane@example.com", OrgRole::Member).await;
    for i in 0..10 {
        let reply = h.login(&format!("nobody{i}@example.com"), PASSWORD).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // the harness sends every request from 10.1.2.3
    let reply = h.login("jane@example.com", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("too many failed logins for this address: try again in "),
        "{:?}",
        reply.body
    );
}

const API_TOKENS: &str = "/api/0/api-tokens/";

#[tokio::test]
async fn a_persons_token_never_does_more_than_the_person_does_now() {
    let h = harness().await;
    assert_eq!(
        h.store(r#"{"message":"boom"}"#).await.status,
        StatusCode::OK
    );
    h.person("boss@example.com", OrgRole::Owner).await;
    let boss = h.session("boss@example.com").await;
    let mia_id = h.person("mia@example.com", OrgRole::Owner).await;
    let mia = h.session("mia@example.com").await;
    h.person("member@example.com", OrgRole::Member).await;
    let member = h.session("member@example.com").await;

    // a member cannot mint what they do not hold
    let refused = h
        .call(
            &member,
            Method::POST,
            API_TOKENS,
            Some(json!({"name": "x", "scopes": ["event:read", "org:admin"]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body["detail"],
        "cannot grant the scope org:admin: you do not hold it"
    );
    let unnamed = h
        .call(
            &member,
            Method::POST,
            API_TOKENS,
            Some(json!({"name": " ", "scopes": ["event:read"]})),
        )
        .await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unnamed.body["detail"],
        "the token name must be 1-200 characters"
    );

    // an owner's token with org:admin reads the audit log, until the owner is demoted
    let created = h
        .call(
            &mia,
            Method::POST,
            API_TOKENS,
            Some(json!({"name": "laptop", "scopes": ["event:read", "org:admin"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(created.body["name"], "laptop");
    assert_eq!(created.body["scopes"], json!(["org:admin", "event:read"]));
    let token = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("flt_"));
    let audit = "SELECT event FROM audit_log";
    assert_eq!(h.sql_by(&token, audit).await.status, StatusCode::OK);
    assert_eq!(
        h.sql_by(&token, "SELECT count(*) FROM events").await.status,
        StatusCode::OK
    );
    // listed for its person only, without the secret
    let listed = h.call(&mia, Method::GET, API_TOKENS, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["id"], id);
    assert!(listed.body[0].get("token").is_none());
    let others = h.call(&boss, Method::GET, API_TOKENS, None).await;
    assert_eq!(others.body, json!([]));
    // a token cannot manage tokens of its person
    let by_token = h.call(&token, Method::GET, API_TOKENS, None).await;
    assert_eq!(by_token.status, StatusCode::FORBIDDEN);

    let demote = h
        .call(
            &boss,
            Method::PUT,
            &format!("{MEMBERS}{mia_id}/"),
            Some(json!({"orgRole": "member"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::OK, "{:?}", demote.body);
    let audit_now = h.sql_by(&token, audit).await;
    assert_eq!(
        audit_now.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        audit_now.body
    );
    assert_eq!(
        audit_now.body["detail"],
        "the API token lacks the scope org:admin"
    );
    // a member in no team sees no project now, so no events either
    let events = h.sql_by(&token, "SELECT count(*) AS n FROM events").await;
    assert_eq!(events.status, StatusCode::OK, "{:?}", events.body);
    assert_eq!(events.body, json!([{"n": 0}]));

    // disabling the person stops the token
    let disable = h
        .call(
            &boss,
            Method::PUT,
            &format!("{MEMBERS}{mia_id}/"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disable.status, StatusCode::OK, "{:?}", disable.body);
    let stopped = h.sql_by(&token, "SELECT 1").await;
    assert_eq!(stopped.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stopped.body["detail"], "invalid API token");
}

#[tokio::test]
async fn a_revoked_personal_token_is_refused_and_both_revocations_are_audited() {
    let h = harness().await;
    h.person("ann@example.com", OrgRole::Admin).await;
    let ann = h.session("ann@example.com").await;
    h.person("bob@example.com", OrgRole::Admin).await;
    let bob = h.session("bob@example.com").await;
    let mut made = Vec::new();
    for name in ["one", "two"] {
        let created = h
            .call(
                &ann,
                Method::POST,
                API_TOKENS,
                Some(json!({"name": name, "scopes": ["event:read"]})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        made.push((
            created.body["id"].as_str().unwrap().to_owned(),
            created.body["token"].as_str().unwrap().to_owned(),
        ));
    }
    let (one, one_token) = &made[0];
    let (two, two_token) = &made[1];
    assert_eq!(h.sql_by(one_token, "SELECT 1").await.status, StatusCode::OK);
    // someone else's token is not theirs to revoke
    let foreign = h
        .call(&bob, Method::DELETE, &format!("{API_TOKENS}{one}/"), None)
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign.body["detail"],
        format!("no API token with id {one}")
    );
    assert_eq!(h.sql_by(one_token, "SELECT 1").await.status, StatusCode::OK);

    let by_path = h
        .call(&ann, Method::DELETE, &format!("{API_TOKENS}{one}/"), None)
        .await;
    assert_eq!(by_path.status, StatusCode::NO_CONTENT);
    let by_body = h
        .call(
            &ann,
            Method::DELETE,
            API_TOKENS,
            Some(json!({"tokenId": two})),
        )
        .await;
    assert_eq!(by_body.status, StatusCode::NO_CONTENT);
    for token in [one_token, two_token] {
        let reply = h.sql_by(token, "SELECT 1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        h.call(&ann, Method::GET, API_TOKENS, None).await.body,
        json!([])
    );
    let audit = h
        .node
        .people
        .audit
        .entries(Some(DEFAULT_ORG))
        .await
        .unwrap();
    let rows: Vec<(&str, Option<&str>, Option<&str>)> = audit
        .iter()
        .filter(|e| e.event.starts_with("api-token."))
        .map(|e| {
            (
                e.event.as_str(),
                e.actor_label.as_deref(),
                e.target_id.as_deref(),
            )
        })
        .collect();
    let ann_label = Some("ann@example.com");
    assert_eq!(
        rows,
        [
            ("api-token.create", ann_label, Some(one.as_str())),
            ("api-token.create", ann_label, Some(two.as_str())),
            ("api-token.remove", ann_label, Some(one.as_str())),
            ("api-token.remove", ann_label, Some(two.as_str())),
        ]
    );
    assert!(audit.iter().all(|e| {
        let text = serde_json::to_string(e).unwrap();
        !text.contains(one_token.as_str()) && !text.contains(two_token.as_str())
    }));
}

#[tokio::test]
async fn passkey_endpoints_answer_options_and_refuse_used_ceremonies_and_tokens() {
    let h = harness().await;
    h.person("ann@example.com", OrgRole::Member).await;
    let ann = h.session("ann@example.com").await;
    let token = h.token(&["events:read"], None).await;

    // registration: for a logged-in person only
    let by_token = h
        .call(&token, Method::POST, "/auth/passkeys/register", None)
        .await;
    assert_eq!(by_token.status, StatusCode::FORBIDDEN);
    let started = h
        .call(&ann, Method::POST, "/auth/passkeys/register", None)
        .await;
    assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
    assert_eq!(started.headers[header::CACHE_CONTROL], "no-store");
    let options = &started.body["options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "ann@example.com");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    let listed = h.call(&ann, Method::GET, "/auth/passkeys", None).await;
    assert_eq!(listed.body, json!([]));

    // passwordless start needs nothing; the second factor needs the right password
    let login = h
        .call(&ann, Method::POST, "/auth/passkeys/login", Some(json!({})))
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    assert!(login.body["options"]["publicKey"]["challenge"].is_string());
    let wrong = h
        .call(
            &ann,
            Method::POST,
            "/auth/passkeys/login",
            Some(json!({"email": "ann@example.com", "password": "not the password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["detail"], "wrong email address or password");
    let half = h
        .call(
            &ann,
            Method::POST,
            "/auth/passkeys/login",
            Some(json!({"email": "ann@example.com"})),
        )
        .await;
    assert_eq!(half.status, StatusCode::BAD_REQUEST);
    let none = h
        .call(
            &ann,
            Method::POST,
            "/auth/passkeys/login",
            Some(json!({"email": "ann@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(
        none.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("this account has no passkey")
    );

    // a forged answer to the passwordless ceremony: 401, and the ceremony is used up
    let ceremony = login.body["ceremony"].as_str().unwrap();
    let forged = json!({
        "ceremony": ceremony,
        "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA",
                         "signature": "AAAA", "userHandle": null},
            "extensions": {}}
    });
    let refused = h
        .call(
            &ann,
            Method::POST,
            "/auth/passkeys/login/finish",
            Some(forged.clone()),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    assert!(refused.headers.get(header::SET_COOKIE).is_none());
    let replayed = h
        .call(
            &ann,
            Method::POST,
            "/auth/passkeys/login/finish",
            Some(forged),
        )
        .await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        replayed.body["detail"],
        "the passkey request is unknown, used or expired: start again"
    );
    let unknown = h
        .call(
            &ann,
            Method::DELETE,
            "/auth/passkeys/0123456789abcdef",
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let audit = h
        .node
        .people
        .audit
        .entries(Some(DEFAULT_ORG))
        .await
        .unwrap();
    let failed: Vec<&str> = audit
        .iter()
        .filter(|e| e.event == "user.login-failed")
        .filter_map(|e| e.data["method"].as_str())
        .collect();
    assert_eq!(
        failed,
        ["password+passkey", "password+passkey", "passkey", "passkey"]
    );
}
