//! The ID-token checks of single sign-on, with tokens signed by a key made for these tests
//! (`sso_test_key.pem`, an RSA key used nowhere else): what a real provider cannot be made to
//! send (another audience, a wrong nonce, a foreign signature) is refused here; the whole flow
//! against a real provider is in engine/tests/e2e/sso.rs.

use chrono::{TimeDelta, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{
    Audience, ClientId, ClientSecret, EmptyAdditionalClaims, EndUserEmail, IssuerUrl, JsonWebKeyId,
    Nonce, PrivateSigningKey, StandardClaims, SubjectIdentifier,
};

use super::{Error, identity, verify};

const ISSUER: &str = "https://idp.example.test/realms/acme";
const CLIENT: &str = "faultline";

fn key(kid: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(
        include_str!("sso_test_key.pem"),
        Some(JsonWebKeyId::new(kid.to_owned())),
    )
    .expect("the test key parses")
}

struct Claims {
    subject: &'static str,
    issuer: &'static str,
    audience: &'static str,
    nonce: &'static str,
    expires_in: TimeDelta,
}

impl Default for Claims {
    fn default() -> Self {
        Self {
            subject: "248289761001",
            issuer: ISSUER,
            audience: CLIENT,
            nonce: "n-0S6_WzA2Mj",
            expires_in: TimeDelta::minutes(5),
        }
    }
}

fn token(claims: Claims, signer: &CoreRsaPrivateSigningKey) -> CoreIdToken {
    let now = Utc::now();
    let standard = StandardClaims::new(SubjectIdentifier::new(claims.subject.to_owned()))
        .set_email(Some(EndUserEmail::new("jane@example.test".to_owned())))
        .set_email_verified(Some(true));
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(claims.issuer.to_owned()).unwrap(),
        vec![Audience::new(claims.audience.to_owned())],
        now + claims.expires_in,
        now - TimeDelta::seconds(10),
        standard,
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(claims.nonce.to_owned())));
    CoreIdToken::new(
        claims,
        signer,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .expect("the token signs")
}

/// What the relying party checks against: our client, the configured issuer, the provider's
/// published key.
fn verifier() -> CoreIdTokenVerifier<'static> {
    CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(CLIENT.to_owned()),
        ClientSecret::new("secret".to_owned()),
        IssuerUrl::new(ISSUER.to_owned()).unwrap(),
        CoreJsonWebKeySet::new(vec![key("k1").as_verification_key()]),
    )
}

fn nonce() -> Nonce {
    Nonce::new(Claims::default().nonce.to_owned())
}

fn refusal(token: &CoreIdToken) -> String {
    match verify(token, &verifier(), &nonce()) {
        Err(err @ Error::IdToken(_)) => err.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_valid_token_gives_issuer_subject_and_email() {
    let claims = verify(&token(Claims::default(), &key("k1")), &verifier(), &nonce()).unwrap();
    let who = identity(&claims);
    assert_eq!(who.issuer, ISSUER);
    assert_eq!(who.subject, "248289761001");
    assert_eq!(who.email.as_deref(), Some("jane@example.test"));
    assert!(who.email_verified);
}

#[test]
fn another_audience_is_refused() {
    let message = refusal(&token(
        Claims {
            audience: "another-app",
            ..Claims::default()
        },
        &key("k1"),
    ));
    assert!(message.contains("audience"), "{message}");
}

#[test]
fn another_issuer_is_refused() {
    let message = refusal(&token(
        Claims {
            issuer: "https://evil.example.test",
            ..Claims::default()
        },
        &key("k1"),
    ));
    assert!(message.contains("issuer"), "{message}");
}

#[test]
fn a_wrong_nonce_is_refused() {
    let message = refusal(&token(
        Claims {
            nonce: "replayed-from-another-login",
            ..Claims::default()
        },
        &key("k1"),
    ));
    assert!(message.contains("nonce"), "{message}");
}

#[test]
fn an_expired_token_is_refused() {
    let message = refusal(&token(
        Claims {
            expires_in: TimeDelta::minutes(-1),
            ..Claims::default()
        },
        &key("k1"),
    ));
    assert!(message.contains("expired"), "{message}");
}

#[test]
fn a_token_signed_with_an_unpublished_key_is_refused() {
    // the same key material under a key id the provider does not publish
    let message = refusal(&token(Claims::default(), &key("not-published")));
    assert!(message.to_lowercase().contains("key"), "{message}");
}

#[test]
fn a_token_whose_claims_were_changed_after_signing_is_refused() {
    let jane = token(Claims::default(), &key("k1")).to_string();
    let admin = token(
        Claims {
            subject: "the-admin",
            ..Claims::default()
        },
        &key("k1"),
    )
    .to_string();
    // Jane's header and signature around the admin's claims
    let jane: Vec<&str> = jane.split('.').collect();
    let admin: Vec<&str> = admin.split('.').collect();
    let forged: CoreIdToken = [jane[0], admin[1], jane[2]].join(".").parse().unwrap();
    let message = refusal(&forged);
    assert!(message.to_lowercase().contains("signature"), "{message}");
}

mod linking {
    use faultline_config::AuthConfig;

    use super::super::{Error as SsoError, Identity};
    use crate::people::{self, OrgRole, People};
    use crate::store::Store;
    use crate::tenancy::DEFAULT_ORG;

    const PASSWORD: &str = "correct horse battery";

    fn alice() -> Identity {
        Identity {
            issuer: super::ISSUER.to_owned(),
            subject: "alice-sub".to_owned(),
            email: Some("alice@idp.example.test".to_owned()),
            email_verified: true,
            name: None,
        }
    }

    async fn account(people: &People, email: &str, password: Option<&str>) -> String {
        people
            .create_user(email, email, DEFAULT_ORG, OrgRole::Member, password)
            .await
            .unwrap()
            .id
    }

    #[tokio::test]
    async fn an_identity_links_to_one_account_and_unlinks_while_another_login_remains() {
        let people = People::new(Store::memory(), AuthConfig::default());
        let ann = account(&people, "ann@example.com", Some(PASSWORD)).await;
        let bob = account(&people, "bob@example.com", Some(PASSWORD)).await;
        let sso_only = account(&people, "sso@example.com", None).await;

        assert!(people.user_of_identity(&alice()).await.unwrap().is_none());
        let linked = people.link_sso("Test IdP", &alice(), &ann).await.unwrap();
        assert_eq!(linked.subject, "alice-sub");
        let found = people.user_of_identity(&alice()).await.unwrap().unwrap();
        assert_eq!(found.id, ann);
        assert_eq!(
            found.sso.as_ref().map(|l| l.issuer.as_str()),
            Some(super::ISSUER)
        );
        // linking again is harmless
        people.link_sso("Test IdP", &alice(), &ann).await.unwrap();

        // the identity is ann's: bob is refused, with the reason
        let err = people
            .link_sso("Test IdP", &alice(), &bob)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this Test IdP login already belongs to another faultline account: log in with it, or unlink it there first"
        );
        assert!(people.user(&bob).await.unwrap().sso.is_none());
        // and ann cannot link a second identity
        let other = Identity {
            subject: "someone-else".to_owned(),
            ..alice()
        };
        let err = people.link_sso("Test IdP", &other, &ann).await.unwrap_err();
        assert!(
            matches!(err, people::Error::Sso(SsoError::AlreadyLinked { .. })),
            "{err}"
        );

        // unlinking frees it for bob
        people.unlink_sso(&ann).await.unwrap();
        assert!(people.user_of_identity(&alice()).await.unwrap().is_none());
        assert!(people.user(&ann).await.unwrap().sso.is_none());
        let err = people.unlink_sso(&ann).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "your account is not linked to a single sign-on login"
        );
        people.link_sso("Test IdP", &alice(), &bob).await.unwrap();
        assert_eq!(
            people.user_of_identity(&alice()).await.unwrap().unwrap().id,
            bob
        );

        // an account whose only login is single sign-on keeps it
        people
            .link_sso("Test IdP", &other, &sso_only)
            .await
            .unwrap();
        let err = people.unlink_sso(&sso_only).await.unwrap_err();
        assert!(
            matches!(err, people::Error::Sso(SsoError::LastLogin)),
            "{err}"
        );
        assert_eq!(
            people.user_of_identity(&other).await.unwrap().unwrap().id,
            sso_only
        );
    }
}
