//! `/v1/topics`: message topics in the native API's shape (the same topics DTM's
//! `subscribe`/`unsubscribe` keep; see [`crate::topics`]).
//!
//! ```text
//!  GET    /v1/topics                            every topic with its subscribers
//!  GET    /v1/topics/{name}                     one
//!  POST   /v1/topics/{name}/subscribers         subscribe {url, remark}
//!  DELETE /v1/topics/{name}/subscribers?url=    unsubscribe
//!  DELETE /v1/topics/{name}                     delete the topic
//! ```

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_store::Topic;
use utoipa::{IntoParams, ToSchema};

use super::extract::{V1Json, V1Path, V1Query};
use super::view::ErrorBody;
use crate::error::ApiError;
use crate::AppState;

/// One subscriber of a topic.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SubscriberView {
    pub url: String,
    pub remark: String,
}

/// A topic: a message step whose action is `topic://<name>` is delivered to each subscriber.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub subscribers: Vec<SubscriberView>,
    /// Grows with every change.
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Every topic.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TopicList {
    pub topics: Vec<TopicView>,
}

/// `POST /v1/topics/{name}/subscribers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// Where deliveries go: an http(s) URL or a gRPC method `host:port/pkg.Service/Method`.
    pub url: String,
    /// A note for operators (at most 256 bytes).
    #[serde(default)]
    pub remark: String,
}

/// `DELETE /v1/topics/{name}/subscribers`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeParams {
    /// The subscriber's URL.
    pub url: String,
}

impl From<&Topic> for TopicView {
    fn from(t: &Topic) -> TopicView {
        TopicView {
            name: t.name.clone(),
            subscribers: t
                .subscribers
                .iter()
                .map(|s| SubscriberView {
                    url: s.url.clone(),
                    remark: s.remark.clone(),
                })
                .collect(),
            version: t.version,
            created_at_ms: t.created_at.0,
            updated_at_ms: t.updated_at.0,
        }
    }
}

async fn one(state: &AppState, name: &str) -> Result<Json<TopicView>, ApiError> {
    crate::topics::check_name(name)?;
    let t = state
        .coord
        .topic(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no topic {name:?}")))?;
    Ok(Json(TopicView::from(&t)))
}

/// Every topic.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses((status = 200, description = "Every topic, by name", body = TopicList)))]
pub async fn list_topics(State(state): State<AppState>) -> Result<Json<TopicList>, ApiError> {
    let topics = state.coord.topics().await?;
    Ok(Json(TopicList {
        topics: topics.iter().map(TopicView::from).collect(),
    }))
}

/// One topic.
#[utoipa::path(get, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "The topic", body = TopicView),
        (status = 404, description = "No such topic", body = ErrorBody)))]
pub async fn get_topic(
    State(state): State<AppState>,
    V1Path(name): V1Path<String>,
) -> Result<Json<TopicView>, ApiError> {
    one(&state, &name).await
}

/// Subscribe a URL to a topic (creating the topic).
#[utoipa::path(post, path = "/v1/topics/{name}/subscribers", tag = "topics", request_body = SubscribeRequest,
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "Subscribed (durably)", body = TopicView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "Already subscribed, or too many subscribers or topics", body = ErrorBody)))]
pub async fn subscribe(
    State(state): State<AppState>,
    V1Path(name): V1Path<String>,
    V1Json(req): V1Json<SubscribeRequest>,
) -> Result<Json<TopicView>, ApiError> {
    crate::topics::subscribe(&state, &name, &req.url, &req.remark).await?;
    one(&state, &name).await
}

/// Unsubscribe a URL from a topic.
#[utoipa::path(delete, path = "/v1/topics/{name}/subscribers", tag = "topics",
    params(("name" = String, Path, description = "Topic name"), UnsubscribeParams),
    responses(
        (status = 200, description = "Unsubscribed (durably)", body = TopicView),
        (status = 404, description = "No such topic or subscriber", body = ErrorBody)))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    V1Path(name): V1Path<String>,
    V1Query(q): V1Query<UnsubscribeParams>,
) -> Result<Json<TopicView>, ApiError> {
    crate::topics::unsubscribe(&state, &name, &q.url).await?;
    one(&state, &name).await
}

/// Delete a topic.
#[utoipa::path(delete, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "Deleted (durably); every topic left", body = TopicList),
        (status = 404, description = "No such topic", body = ErrorBody)))]
pub async fn delete_topic(
    State(state): State<AppState>,
    V1Path(name): V1Path<String>,
) -> Result<Json<TopicList>, ApiError> {
    crate::topics::delete(&state, &name).await?;
    list_topics(State(state)).await
}
