//! Bearer-token authentication for every API, when a token is configured.
//!
//! Protected: the native API (`/v1/...`), the DTM-compatible API (`/api/...`, so also
//! `/api/ping` unless `ping_public`) and `/metrics` (unless `metrics_public`). The dashboard's
//! static files carry no data and stay public; the dashboard asks for the token on a login
//! page and sends it with every API call. A missing or wrong token gets 401 with a JSON body
//! and `WWW-Authenticate: Bearer`. The token is compared in constant time and never logged
//! (the config holds it as a [`crate::config::Secret`]).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// Whether `path` needs the token under `state`'s settings.
fn protected(state: &AppState, path: &str) -> bool {
    if path == "/metrics" {
        return !state.cfg.metrics_public;
    }
    if path == "/api/ping" {
        return !state.cfg.ping_public;
    }
    path == "/v1" || path.starts_with("/v1/") || path.starts_with("/api/")
}

/// The middleware: lets the request through or answers 401.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.cfg.auth_token.as_ref() else {
        return next.run(req).await;
    };
    if !protected(&state, req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match given {
        Some(t) if same(t.as_bytes(), token.expose().as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("the bearer token is not valid"),
        None => unauthorized(
            "this server requires a token (its auth_token, TANDEM_AUTH_TOKEN): send \
             Authorization: Bearer <token>; the tandem CLI sends TANDEM_AUTH_TOKEN when set",
        ),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tandem\""),
    );
    resp
}

/// Constant-time equality (for equal lengths; the length itself is not secret).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_exactly() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
