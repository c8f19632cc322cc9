//! Browser-facing protections on every route except ingest (which keeps its CORS):
//!
//! - Security headers: a strict Content-Security-Policy (no inline script or style, no
//!   framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy`, `Cross-Origin-Opener-Policy`,
//!   `X-Frame-Options: DENY`, and HSTS when the public URL is https.
//! - CSRF: a state-changing request (not GET, HEAD or OPTIONS) that carries the session cookie
//!   and no Bearer token is refused with `403` when it is cross-site: by Fetch Metadata
//!   (`Sec-Fetch-Site` other than `same-origin` or `none`), or, without that header, by an
//!   `Origin` whose host differs from `Host`. A request with neither header is not from a
//!   browser and passes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::query::bearer;

pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// What the layer needs to know.
#[derive(Debug, Clone)]
pub(super) struct Security {
    pub(super) hsts: bool,
    pub(super) cookie_name: &'static str,
}

fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(n, _)| n == name)
}

/// Why a request is refused as cross-site, if it is.
fn cross_site(method: &Method, headers: &HeaderMap, cookie_name: &str) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || bearer(headers).is_some()
        || !has_cookie(headers, cookie_name)
    {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        return (!matches!(site, "same-origin" | "none")).then(|| {
            format!(
                "cross-site request refused (Sec-Fetch-Site: {site}): changes need a request from this site's own pages or an API token"
            )
        });
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    (origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host)).then(|| {
        format!(
            "cross-site request refused (Origin {origin} is not this site): changes need a request from this site's own pages or an API token"
        )
    })
}

pub(super) async fn layer(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match cross_site(request.method(), request.headers(), security.cookie_name) {
        Some(reason) => ApiError::Forbidden(reason).into_response(),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        headers,
        header::REFERRER_POLICY,
        "strict-origin-when-cross-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    if security.hsts {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_cross_site_cookie_posts_are_refused() {
        let c = "s";
        let post = Method::POST;
        let cookie = ("cookie", "s=1");
        assert!(
            cross_site(
                &post,
                &headers(&[cookie, ("sec-fetch-site", "cross-site")]),
                c
            )
            .is_some()
        );
        assert!(
            cross_site(
                &post,
                &headers(&[cookie, ("sec-fetch-site", "same-site")]),
                c
            )
            .is_some()
        );
        assert!(
            cross_site(
                &post,
                &headers(&[cookie, ("sec-fetch-site", "same-origin")]),
                c
            )
            .is_none()
        );
        assert!(cross_site(&post, &headers(&[cookie, ("sec-fetch-site", "none")]), c).is_none());
        assert!(
            cross_site(
                &Method::GET,
                &headers(&[cookie, ("sec-fetch-site", "cross-site")]),
                c
            )
            .is_none()
        );
        let evil = ("origin", "https://evil.example");
        assert!(
            cross_site(
                &post,
                &headers(&[cookie, evil, ("host", "errors.example")]),
                c
            )
            .is_some()
        );
        assert!(
            cross_site(
                &post,
                &headers(&[
                    cookie,
                    ("origin", "https://errors.example"),
                    ("host", "errors.example")
                ]),
                c
            )
            .is_none()
        );
        assert!(
            cross_site(
                &post,
                &headers(&[cookie, ("origin", "null"), ("host", "errors.example")]),
                c
            )
            .is_some()
        );
        // no browser headers at all: not a browser
        assert!(cross_site(&post, &headers(&[cookie]), c).is_none());
        // no cookie, or a Bearer token: nothing a browser adds on its own
        assert!(
            cross_site(
                &post,
                &headers(&[evil, ("sec-fetch-site", "cross-site")]),
                c
            )
            .is_none()
        );
        assert!(
            cross_site(
                &post,
                &headers(&[
                    cookie,
                    ("authorization", "Bearer x"),
                    ("sec-fetch-site", "cross-site")
                ]),
                c
            )
            .is_none()
        );
    }
}
