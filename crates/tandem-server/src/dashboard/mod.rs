//! The web dashboard: an operator console served at `/` by `tandem serve` — the
//! transaction list with filters and paging, one transaction's branches and attempts on a
//! timeline, the parked list with *retry now* and *force stop*, live counters and a
//! throughput chart.
//!
//! ```text
//!  GET /                        index.html (the app; hash routes: #/, #/parked, #/tx/{gid})
//!  GET /dashboard/app.js        the app's code (plain JS, no framework, no build step)
//!  GET /dashboard/app.css       its styles
//!  GET /dashboard/favicon.svg   its icon
//! ```
//!
//! The assets are compiled into the binary (`include_str!`): no CDN, nothing to install.
//! They carry no data and stay public (see [`is_public_path`]); every piece of data comes
//! from the `/v1` API, which the app calls with `Authorization: Bearer <token>` once one is
//! entered on its login page (shown on any 401). Invariants: user data (gids, errors,
//! reasons, URLs) reaches the DOM only as text, never as markup, and the Content Security
//! Policy allows only this origin's scripts and styles, so an injected string cannot run.
//! Answers carry an `ETag` and `Cache-Control: no-cache`, so a browser revalidates (a cheap
//! 304) and never runs a stale app against a newer server.

use std::sync::OnceLock;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/dashboard/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/app.css"),
    },
    Asset {
        path: "/dashboard/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

/// Only this origin's code runs; the API is called on this origin; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the dashboard's static files, which carry no data and need no
/// token (an authentication layer lets these through; the `/v1` calls they make are checked).
pub fn is_public_path(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// A strong validator for `body`: FNV-1a 64 of the bytes, computed once per asset.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in a.body.bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
                format!("\"{h:016x}\"")
            })
            .collect()
    });
    tags.get(i).map(String::as_str).unwrap_or("\"\"")
}

fn serve(i: usize, req: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(i) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let tag = etag(i);
    let fresh = req
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        headers.insert(ETAG, v);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if asset.content_type.starts_with("text/html") {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    (StatusCode::OK, headers, asset.body).into_response()
}

/// `/` and `/dashboard/*` (GET and HEAD).
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for (i, a) in ASSETS.iter().enumerate() {
        r = r.route(a.path, get(move |h: HeaderMap| async move { serve(i, &h) }));
    }
    r
}
