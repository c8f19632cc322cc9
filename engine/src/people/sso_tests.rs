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
