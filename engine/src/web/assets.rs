//! The UI's CSS and script, compiled into the binary and served under URLs that name a hash of
//! their content (`/static/app.<hash>.css`), so browsers may keep them for a year: a new build
//! with changed files has new URLs.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../static/app.css");
const JS: &str = include_str!("../../static/app.js");
/// The passkey ceremonies (`navigator.credentials`), on the login and account pages only.
const PASSKEYS_JS: &str = include_str!("../../static/passkeys.js");

fn hashed(stem: &str, ext: &str, content: &str) -> String {
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    format!("{stem}.{}.{ext}", &digest[..12])
}

static CSS_NAME: LazyLock<String> = LazyLock::new(|| hashed("app", "css", CSS));
static JS_NAME: LazyLock<String> = LazyLock::new(|| hashed("app", "js", JS));
static PASSKEYS_JS_NAME: LazyLock<String> = LazyLock::new(|| hashed("passkeys", "js", PASSKEYS_JS));

pub(crate) fn css_url() -> String {
    format!("/static/{}", *CSS_NAME)
}

pub(crate) fn js_url() -> String {
    format!("/static/{}", *JS_NAME)
}

pub(crate) fn passkeys_js_url() -> String {
    format!("/static/{}", *PASSKEYS_JS_NAME)
}

/// `GET /static/{file}`: the current CSS or script; any other name is a 404.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = if file == *CSS_NAME {
        (CSS, "text/css; charset=utf-8")
    } else if file == *JS_NAME {
        (JS, "text/javascript; charset=utf-8")
    } else if file == *PASSKEYS_JS_NAME {
        (PASSKEYS_JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
