//! Extractors for `/v1` whose rejections are [`ApiError`]s, so that every malformed
//! request — bad JSON, wrong types, unknown fields or enum values, a body over the limit, a
//! bad query string or path — is answered with the API's JSON error shape and a 4xx, never
//! with axum's plain-text rejection.
//!
//! Bodies are parsed as JSON whatever the `Content-Type` says (clients that forget the
//! header are served, not refused); an empty body is refused unless the type says it may be
//! empty ([`OptJson`]).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A required JSON body.
#[derive(Debug)]
pub struct V1Json<T>(pub T);

/// A JSON body that may be absent (empty): then `T::default()`.
#[derive(Debug)]
pub struct OptJson<T>(pub T);

/// The query string, deserialized.
#[derive(Debug)]
pub struct V1Query<T>(pub T);

/// Path parameters.
#[derive(Debug)]
pub struct V1Path<T>(pub T);

fn body_rejection(r: BytesRejection) -> ApiError {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "unreadable_body"
    };
    ApiError::new(status, code, r.body_text())
}

/// Parses `bytes` as JSON: a syntax error is 400 `malformed_json`; valid JSON of the wrong
/// shape (wrong type, unknown field or value, missing field) is 422 `invalid_body`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("request body: {e}"),
            ),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("malformed_json", format!("request body is not JSON: {e}"))
            }
        }
    })
}

impl<S, T> FromRequest<S> for V1Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "missing_body",
                "this endpoint needs a JSON body",
            ));
        }
        parse(&bytes).map(V1Json)
    }
}

impl<S, T> FromRequest<S> for OptJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptJson(T::default()));
        }
        parse(&bytes).map(OptJson)
    }
}

impl<S, T> FromRequestParts<S> for V1Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| V1Query(v))
            .map_err(|r: QueryRejection| ApiError::bad_request("invalid_query", r.body_text()))
    }
}

impl<S, T> FromRequestParts<S> for V1Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| V1Path(v))
            .map_err(|r: PathRejection| ApiError::bad_request("invalid_path", r.body_text()))
    }
}
