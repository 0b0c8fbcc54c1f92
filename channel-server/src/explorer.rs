//! The log explorer at `/explorer/`: static files (`channel-server/explorer/`), embedded in the
//! binary at compile time, that read the log through the public read endpoints and verify every
//! entry they show in the browser (see docs/channel-operator.md, "The log explorer").
//!
//! Nothing here is trusted by the explorer: a page served by the channel can be replaced by a
//! lying channel. The same files, served from anywhere else, check a channel or a mirror with
//! `#channel=<url>`; for that, [`allow_public_reads`] lets any origin read the public GET
//! endpoints the explorer uses.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The policy of every explorer file: scripts and styles only from this origin (no inline
/// script, no `eval`), nothing framed or framing, no forms sent. `connect-src` is wider than
/// `'self'` on purpose: `#channel=<url>` points the page at another channel or a mirror. That
/// leaks nothing: the page holds no secret, only reads public data with `GET` (no cookies), and
/// verifies it; with no injected script possible, only the page's own code can connect.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self' http: https:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The explorer's files: path under `/explorer/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../explorer/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../explorer/app.js"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../explorer/verify.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../explorer/style.css"),
    ),
    (
        "vendor/noble.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../explorer/vendor/noble.js"),
    ),
];

/// The explorer's routes (`/explorer` redirects to `/explorer/`, so relative URLs resolve).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route(
        "/explorer",
        get(|| async { Redirect::permanent("/explorer/") }),
    );
    for &(name, content_type, body) in FILES {
        // The page is re-checked on every load, so a new binary's page is seen at once; the
        // files it loads may be cached for a few minutes.
        let cache = if name.is_empty() {
            "no-cache"
        } else {
            "public, max-age=300"
        };
        router = router.route(
            &format!("/explorer/{name}"),
            get(move || async move { file(content_type, cache, body) }),
        );
    }
    router
}

fn file(content_type: &'static str, cache: &'static str, body: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The read endpoints an explorer served from elsewhere needs (path prefixes, all `GET`).
const PUBLIC_READS: &[&str] = &[
    "/v1/checkpoint",
    "/v1/stats",
    "/v1/entries",
    "/v1/proof/inclusion",
    "/v1/suppliers/",
    "/checkpoint",
];

/// Middleware: `Access-Control-Allow-Origin: *` on `GET` answers of [`PUBLIC_READS`], so that
/// an explorer served from another origin can read them. Safe because everything these answer is
/// public (anyone may fetch it with curl) and is verified by whoever reads it; browsers send no
/// cookies or credentials with such requests, and the channel uses none. Not on submissions,
/// archive uploads or anything that is not a `GET`.
pub async fn allow_public_reads(req: Request, next: Next) -> Response {
    let public = req.method() == Method::GET
        && PUBLIC_READS.iter().any(|p| {
            req.uri().path() == p.trim_end_matches('/') || req.uri().path().starts_with(p)
        });
    let mut res = next.run(req).await;
    if public {
        res.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_embedded_and_the_page_loads_only_them() {
        let page = std::str::from_utf8(FILES[0].2).expect("utf-8");
        for (name, _, body) in FILES {
            assert!(!body.is_empty(), "{name}");
        }
        // The page's only script and style are served here, and no script is inline.
        assert!(page.contains(r#"<script type="module" src="app.js"></script>"#));
        assert!(page.contains(r#"href="style.css""#));
        assert_eq!(page.matches("<script").count(), 1);
        let app = std::str::from_utf8(FILES[1].2).expect("utf-8");
        assert!(app.contains("from './verify.js'"));
        let verify = std::str::from_utf8(FILES[2].2).expect("utf-8");
        assert!(verify.contains("from './vendor/noble.js'"));
    }
}
