use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;

use super::*;
use crate::tenancy::Scope;

struct Fixture {
    people: People,
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl Fixture {
    fn new() -> Self {
        Self::with_config(AuthConfig::default())
    }

    fn with_config(config: AuthConfig) -> Self {
        let now = Arc::new(Mutex::new(
            DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        let clock_now = Arc::clone(&now);
        let people =
            People::with_clock(Store::memory(), config, Arc::new(move || *clock_now.lock()));
        Self { people, now }
    }

    fn advance(&self, by: TimeDelta) {
        *self.now.lock() += by;
    }

    /// Forgets cached sessions (as another node, or after the cache time).
    fn other_node(&self) {
        self.people.sessions.write().clear();
    }

    async fn user(&self, email: &str, role: OrgRole) -> UserRecord {
        self.people
            .create_user(email, "Jane", "acme", role, Some("correct horse battery"))
            .await
            .unwrap()
    }
}

fn client() -> Client {
    Client {
        ip: Some("192.0.2.7".into()),
        user_agent: Some("test".into()),
    }
}

#[tokio::test]
async fn sessions_end_after_the_idle_and_the_absolute_timeout() {
    let f = Fixture::new();
    f.user("jane@example.com", OrgRole::Member).await;
    let s = f
        .people
        .login("Jane@Example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    assert_eq!(s.cookie.len(), 64);
    assert!(
        f.people
            .session_principal(&s.cookie)
            .await
            .unwrap()
            .is_some()
    );
    // idle: 12 h minus a minute is fine, and the request resets the idle clock
    f.advance(TimeDelta::hours(12) - TimeDelta::minutes(1));
    f.other_node();
    assert!(
        f.people
            .session_principal(&s.cookie)
            .await
            .unwrap()
            .is_some()
    );
    f.advance(TimeDelta::hours(12) - TimeDelta::minutes(1));
    f.other_node();
    assert!(
        f.people
            .session_principal(&s.cookie)
            .await
            .unwrap()
            .is_some()
    );
    f.advance(TimeDelta::hours(12));
    f.other_node();
    assert!(
        f.people
            .session_principal(&s.cookie)
            .await
            .unwrap()
            .is_none()
    );

    // absolute: active every 11 hours, still over after 14 days
    let s = f
        .people
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    let mut alive = TimeDelta::zero();
    while alive + TimeDelta::hours(11) < TimeDelta::days(14) {
        f.advance(TimeDelta::hours(11));
        alive += TimeDelta::hours(11);
        f.other_node();
        assert!(
            f.people
                .session_principal(&s.cookie)
                .await
                .unwrap()
                .is_some()
        );
    }
    f.advance(TimeDelta::days(14) - alive);
    f.other_node();
    assert!(
        f.people
            .session_principal(&s.cookie)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn every_login_is_a_new_session_and_logout_or_disable_ends_it() {
    let f = Fixture::new();
    let jane = f.user("jane@example.com", OrgRole::Member).await;
    f.user("owner@example.com", OrgRole::Owner).await;
    let a = f
        .people
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    let b = f
        .people
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    assert_ne!(a.cookie, b.cookie);
    let (actor, _) = f
        .people
        .session_principal(&a.cookie)
        .await
        .unwrap()
        .unwrap();
    let list = f
        .people
        .sessions_of(&jane.id, &actor.session_id)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s.current).count(), 1);
    f.people.logout(&a.cookie).await.unwrap();
    assert!(
        f.people
            .session_principal(&a.cookie)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.people
            .session_principal(&b.cookie)
            .await
            .unwrap()
            .is_some()
    );
    f.people.set_disabled("acme", &jane.id, true).await.unwrap();
    assert!(
        f.people
            .session_principal(&b.cookie)
            .await
            .unwrap()
            .is_none()
    );
    let err = f
        .people
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "this account is disabled");
    let err = f
        .people
        .login("jane@example.com", "wrong password!", None, &client())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "wrong email address or password");
    let err = f
        .people
        .login(
            "nobody@example.com",
            "correct horse battery",
            None,
            &client(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "wrong email address or password");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account() {
    let f = Fixture::new();
    f.user("jane@example.com", OrgRole::Member).await;
    for i in 0..10 {
        let c = Client {
            ip: Some(format!("192.0.2.{i}")),
            user_agent: None,
        };
        let err = f
            .people
            .login("jane@example.com", "wrong", None, &c)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadLogin), "{err}");
    }
    let err = f
        .people
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("too many failed logins for this account: try again in "),
        "{err}"
    );
}

#[tokio::test]
async fn the_principal_is_the_union_of_org_and_team_roles() {
    let f = Fixture::new();
    let jane = f.user("jane@example.com", OrgRole::Member).await;
    let admin = f.user("admin@example.com", OrgRole::Admin).await;
    let p = &f.people;
    p.create_team("acme", "backend").await.unwrap();
    p.create_team("acme", "web").await.unwrap();
    p.edit_team("acme", "backend", |t| t.projects = vec![3, 1])
        .await
        .unwrap();
    p.edit_team("acme", "web", |t| t.projects = vec![7])
        .await
        .unwrap();
    p.add_team_member("acme", "backend", &jane.id, TeamRole::Admin)
        .await
        .unwrap();
    let (_, principal) = p.resolve(&jane, "s".into()).await.unwrap();
    assert_eq!(principal.org.as_deref(), Some("acme"));
    assert_eq!(principal.projects, Some(vec![1, 3]));
    assert!(principal.scopes.contains(&Scope::ProjectWrite)); // from the team admin role
    assert!(!principal.scopes.contains(&Scope::MemberWrite));
    let (_, principal) = p.resolve(&admin, "s".into()).await.unwrap();
    assert_eq!(principal.projects, None);
    p.set_org_settings(
        "acme",
        &OrgSettings {
            open_membership: true,
            require_mfa: false,
        },
    )
    .await
    .unwrap();
    let (_, principal) = p.resolve(&jane, "s".into()).await.unwrap();
    assert_eq!(principal.projects, None);
    // an organization requiring MFA leaves members without it only enrolment
    p.set_org_settings(
        "acme",
        &OrgSettings {
            open_membership: false,
            require_mfa: true,
        },
    )
    .await
    .unwrap();
    let (actor, principal) = p.resolve(&jane, "s".into()).await.unwrap();
    assert!(actor.must_enrol_mfa);
    assert!(principal.scopes.is_empty());
}

#[tokio::test]
async fn the_servers_require_mfa_holds_whatever_the_organization_says() {
    let f = Fixture::with_config(AuthConfig {
        require_mfa: true,
        ..AuthConfig::default()
    });
    let jane = f.user("jane@example.com", OrgRole::Member).await;
    let p = &f.people;
    let settings = p.org_settings("acme").await.unwrap();
    assert!(
        !settings.require_mfa,
        "the organization itself does not ask"
    );
    assert!(p.requires_mfa(&settings));
    let (actor, principal) = p.resolve(&jane, "s".into()).await.unwrap();
    assert!(actor.must_enrol_mfa);
    assert!(
        principal.scopes.is_empty(),
        "only enrolment until TOTP is on"
    );
}

#[tokio::test]
async fn invites_expire_and_work_once() {
    let f = Fixture::new();
    let owner = f.user("owner@example.com", OrgRole::Owner).await;
    let p = &f.people;
    p.create_team("acme", "web").await.unwrap();
    let (token, invite) = p
        .invite(
            "acme",
            "new@example.com",
            OrgRole::Admin,
            vec!["web".into()],
            &owner.id,
        )
        .await
        .unwrap();
    assert_eq!(invite.expires, p.now() + TimeDelta::days(7));
    let err = p.accept_invite(&token, "New", "short").await.unwrap_err();
    assert!(err.to_string().contains("use at least 8"), "{err}");
    let user = p
        .accept_invite(&token, "New Person", "a long enough passphrase")
        .await
        .unwrap();
    assert_eq!(user.role, OrgRole::Admin);
    assert_eq!(p.member(&user).await.unwrap().teams, vec!["web"]);
    let err = p
        .accept_invite(&token, "Again", "a long enough passphrase")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the link is unknown, used or expired: ask for a new one"
    );

    let (token, _) = p
        .invite(
            "acme",
            "late@example.com",
            OrgRole::Member,
            vec![],
            &owner.id,
        )
        .await
        .unwrap();
    f.advance(TimeDelta::days(7) - TimeDelta::seconds(1));
    p.pending_invite(&token).await.unwrap();
    f.advance(TimeDelta::seconds(1));
    assert!(matches!(
        p.pending_invite(&token).await,
        Err(Error::BadLink)
    ));
    let err = p
        .invite(
            "acme",
            "owner@example.com",
            OrgRole::Member,
            vec![],
            &owner.id,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmailTaken { .. }));
}

#[tokio::test]
async fn setup_links_create_the_first_owner_once() {
    let f = Fixture::new();
    let p = &f.people;
    assert!(!p.has_owner().await.unwrap());
    let token = p.create_link(None).await.unwrap();
    let err = p
        .use_link(&token, None, None, "a long enough passphrase")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the email address of the first owner is required here"
    );
    let owner = p
        .use_link(
            &token,
            Some("boss@example.com"),
            Some("Boss"),
            "a long enough passphrase",
        )
        .await
        .unwrap();
    assert_eq!(owner.role, OrgRole::Owner);
    assert!(p.has_owner().await.unwrap());
    assert!(matches!(
        p.use_link(
            &token,
            Some("x@example.com"),
            None,
            "a long enough passphrase"
        )
        .await,
        Err(Error::BadLink)
    ));
    // the last owner can be neither demoted nor disabled
    let err = p
        .set_role("default", &owner.id, OrgRole::Member)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "an organization needs at least one enabled owner"
    );
}

#[tokio::test]
async fn totp_codes_and_recovery_codes_work_once() {
    let f = Fixture::new();
    let jane = f.user("jane@example.com", OrgRole::Member).await;
    let p = &f.people;
    let s = p
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    let (actor, _) = p.session_principal(&s.cookie).await.unwrap().unwrap();
    let enrolment = p.enrol_totp(&actor).await.unwrap();
    assert!(enrolment.otpauth_uri.starts_with("otpauth://totp/"));
    assert!(enrolment.otpauth_uri.contains(&enrolment.secret));
    let now = || u64::try_from(p.now().timestamp()).unwrap();
    assert!(matches!(
        p.confirm_totp(&actor, "000000x").await,
        Err(Error::BadCode)
    ));
    let code = totp::code_at(&enrolment.secret, now()).unwrap();
    let recovery = p.confirm_totp(&actor, &code).await.unwrap();
    assert_eq!(recovery.len(), 10);
    // the stored record holds hashes of the recovery codes, never the codes
    let stored = p.user(&jane.id).await.unwrap();
    let text = serde_json::to_string(&stored).unwrap();
    assert!(recovery.iter().all(|c| !text.contains(c.as_str())));

    let login = |code: Option<String>| async move {
        p.login(
            "jane@example.com",
            "correct horse battery",
            code.as_deref(),
            &client(),
        )
        .await
    };
    assert!(matches!(login(None).await, Err(Error::CodeRequired)));
    // the code used to confirm is spent
    assert!(matches!(
        login(Some(code.clone())).await,
        Err(Error::BadCode)
    ));
    f.advance(TimeDelta::seconds(30));
    let next = totp::code_at(&enrolment.secret, now()).unwrap();
    login(Some(next.clone())).await.unwrap();
    assert!(matches!(login(Some(next)).await, Err(Error::BadCode)));
    // a recovery code works once, with or without dashes and in capitals
    login(Some(recovery[3].to_uppercase())).await.unwrap();
    assert!(matches!(
        login(Some(recovery[3].replace('-', ""))).await,
        Err(Error::BadCode)
    ));
    login(Some(recovery[4].clone())).await.unwrap();
    assert!(matches!(
        p.enrol_totp(&actor).await,
        Err(Error::TotpEnabled)
    ));
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let f = Fixture::new();
    f.user("jane@example.com", OrgRole::Member).await;
    let p = &f.people;
    let a = p
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    let b = p
        .login("jane@example.com", "correct horse battery", None, &client())
        .await
        .unwrap();
    let (actor, _) = p.session_principal(&a.cookie).await.unwrap().unwrap();
    assert!(matches!(
        p.change_password(&actor, "wrong", "a brand new passphrase")
            .await,
        Err(Error::WrongPassword)
    ));
    let err = p
        .change_password(&actor, "correct horse battery", "acme rocks forever")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"acme\""), "{err}");
    let ended = p
        .change_password(&actor, "correct horse battery", "a brand new passphrase")
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert!(p.session_principal(&a.cookie).await.unwrap().is_some());
    assert!(p.session_principal(&b.cookie).await.unwrap().is_none());
    p.login(
        "jane@example.com",
        "a brand new passphrase",
        None,
        &client(),
    )
    .await
    .unwrap();
}
