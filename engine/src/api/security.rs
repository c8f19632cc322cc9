//! Browser-facing protections on every route except ingest (which keeps its CORS):
//!
//! - Security headers: a strict Content-Security-Policy (no inline script or style, no
//!   framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy`, `Cross-Origin-Opener-Policy`,
//!   `X-Frame-Options: DENY`, and HSTS when the public URL is https.
//! - CSRF: a state-changing request (not GET, HEAD or OPTIONS) that carries the session cookie
//!   (or goes to `/auth/...`, so no other site can log a browser into its own account) and no
//!   Bearer token is refused with `403` when it is cross-site: by Fetch Metadata
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
fn cross_site(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    cookie_name: &str,
) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || bearer(headers).is_some()
        || !(has_cookie(headers, cookie_name) || path.starts_with("/auth/"))
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
    let refusal = cross_site(
        request.method(),
        request.uri().path(),
        request.headers(),
        security.cookie_name,
    );
    let mut response = match refusal {
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

    /// True if a request with these headers is refused.
    fn refused(method: Method, path: &str, pairs: &[(&'static str, &str)]) -> bool {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        cross_site(&method, path, &h, "s").is_some()
    }

    #[test]
    fn only_cross_site_cookie_posts_are_refused() {
        let post = || Method::POST;
        let cookie = ("cookie", "s=1");
        let host = ("host", "errors.example");
        let evil = ("origin", "https://evil.example");
        let api = "/api/x";
        assert!(refused(
            post(),
            api,
            &[cookie, ("sec-fetch-site", "cross-site")]
        ));
        assert!(refused(
            post(),
            api,
            &[cookie, ("sec-fetch-site", "same-site")]
        ));
        assert!(!refused(
            post(),
            api,
            &[cookie, ("sec-fetch-site", "same-origin")]
        ));
        assert!(!refused(post(), api, &[cookie, ("sec-fetch-site", "none")]));
        assert!(!refused(
            Method::GET,
            api,
            &[cookie, ("sec-fetch-site", "cross-site")]
        ));
        assert!(refused(post(), api, &[cookie, evil, host]));
        assert!(!refused(
            post(),
            api,
            &[cookie, ("origin", "https://errors.example"), host]
        ));
        assert!(refused(post(), api, &[cookie, ("origin", "null"), host]));
        // no browser headers at all: not a browser
        assert!(!refused(post(), api, &[cookie]));
        // no cookie, or a Bearer token: nothing a browser adds on its own
        assert!(!refused(
            post(),
            api,
            &[evil, ("sec-fetch-site", "cross-site")]
        ));
        let bearer = ("authorization", "Bearer x");
        assert!(!refused(
            post(),
            api,
            &[cookie, bearer, ("sec-fetch-site", "cross-site")]
        ));
        // a cross-site login (no cookie yet) is refused too
        assert!(refused(post(), "/auth/login", &[evil, host]));
        assert!(!refused(
            post(),
            "/auth/login",
            &[("sec-fetch-site", "same-origin")]
        ));
        assert!(!refused(post(), "/auth/login", &[]));
    }
}
