//! Credentials in every form Relay accepts.

use faultline_protocol::ErrorKind;
use faultline_protocol::auth::{Auth, AuthError, AuthInput, parse_auth, parse_dsn};

const KEY: &str = "a2cd2c93e6bd4b6e8d9d3a4d0d1f6a41";

fn auth(input: AuthInput<'_>) -> Result<Option<Auth>, AuthError> {
    parse_auth(&input)
}

#[test]
fn x_sentry_auth_header() {
    let header = format!(
        "Sentry sentry_version=7, sentry_client=sentry.python/2.19.0, sentry_key={KEY}, sentry_timestamp=1700000000"
    );
    let got = auth(AuthInput {
        x_sentry_auth: Some(&header),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        got,
        Auth {
            public_key: KEY.into(),
            client: Some("sentry.python/2.19.0".into()),
            version: Some("7".into()),
        }
    );
}

#[test]
fn keys_without_prefix_and_upper_case_keys_are_accepted() {
    let header = format!("sentry key={}, version=7", KEY.to_uppercase());
    let got = auth(AuthInput {
        x_sentry_auth: Some(&header),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.public_key, KEY, "keys are lowercased");
}

#[test]
fn authorization_header_sentry_and_dsn_forms() {
    let sentry = format!("Sentry sentry_key={KEY},sentry_version=7");
    let got = auth(AuthInput {
        authorization: Some(&sentry),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.public_key, KEY);

    let dsn = format!("DSN https://{KEY}@sentry.example.com/42");
    let got = auth(AuthInput {
        authorization: Some(&dsn),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.public_key, KEY);
    assert_eq!(got.client, None);
}

#[test]
fn query_string_key() {
    let query = format!("sentry_version=7&sentry_key={KEY}&sentry_client=raven-js%2F3.27.0");
    let got = auth(AuthInput {
        query: Some(&query),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.public_key, KEY);
    assert_eq!(got.client.as_deref(), Some("raven-js/3.27.0"));
}

#[test]
fn header_wins_over_query() {
    let other = "b".repeat(32);
    let header = format!("Sentry sentry_key={KEY}");
    let query = format!("sentry_key={other}");
    let got = auth(AuthInput {
        x_sentry_auth: Some(&header),
        authorization: None,
        query: Some(&query),
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.public_key, KEY);
}

#[test]
fn proxy_authorization_schemes_are_ignored() {
    let query = format!("sentry_key={KEY}");
    let got = auth(AuthInput {
        authorization: Some("Basic dXNlcjpwYXNz"),
        query: Some(&query),
        ..Default::default()
    })
    .unwrap()
    .unwrap();
    assert_eq!(got.public_key, KEY);
    assert_eq!(
        auth(AuthInput {
            authorization: Some("Bearer abc"),
            ..Default::default()
        }),
        Ok(None)
    );
}

#[test]
fn no_credentials_is_none() {
    assert_eq!(auth(AuthInput::default()), Ok(None));
    assert_eq!(
        auth(AuthInput {
            query: Some("foo=bar"),
            ..Default::default()
        }),
        Ok(None)
    );
}

#[test]
fn malformed_credentials_are_unauthorized_errors() {
    let cases = [
        (
            AuthInput {
                x_sentry_auth: Some("Bearer abc"),
                ..Default::default()
            },
            "X-Sentry-Auth is not a Sentry auth header",
        ),
        (
            AuthInput {
                authorization: Some("Sentrykey=abc"),
                ..Default::default()
            },
            "Authorization is not a Sentry auth header",
        ),
        (
            AuthInput {
                x_sentry_auth: Some("Sentry sentry_version=7"),
                ..Default::default()
            },
            "X-Sentry-Auth has no sentry_key",
        ),
        (
            AuthInput {
                authorization: Some("Sentry sentry_key=not-a-key"),
                ..Default::default()
            },
            "invalid sentry_key \"not-a-key\" in Authorization",
        ),
        (
            AuthInput {
                authorization: Some("DSN nonsense"),
                ..Default::default()
            },
            "invalid DSN \"nonsense\": not a URL",
        ),
    ];
    for (input, expected) in cases {
        let err = auth(input).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{err}");
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
    }
}

#[test]
fn dsn_key_and_project() {
    assert_eq!(
        parse_dsn(&format!("https://{KEY}@o1.ingest.example.com/42")).unwrap(),
        (KEY.to_owned(), "42".to_owned())
    );
    assert_eq!(
        parse_dsn(&format!("http://{KEY}:secret@127.0.0.1:8000/sub/path/7")).unwrap(),
        (KEY.to_owned(), "7".to_owned())
    );
    for (dsn, reason) in [
        ("https://sentry.example.com/42", "no public key"),
        (
            &format!("https://{KEY}@sentry.example.com/"),
            "no project id",
        ),
        (
            &format!("https://{KEY}@sentry.example.com/abc"),
            "not a number",
        ),
    ] {
        let err = parse_dsn(dsn).unwrap_err().to_string();
        assert!(err.contains(reason), "{dsn}: {err}");
    }
}
