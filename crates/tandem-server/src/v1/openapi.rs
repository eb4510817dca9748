//! The OpenAPI 3 document of `/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and the request/response types' `ToSchema` derives, so it cannot drift from
//! the code. Served at `GET /v1/openapi.json`.

use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::model::{
    FinishRequest, MsgBranchIn, MsgRequest, ParticipantIn, ReasonRequest, SagaRequest, SagaStepIn,
    TccBeginRequest, TccBranchRequest, TwoPcRequest, TxOptions, WorkflowFinishRequest,
    WorkflowRequest, WorkflowStepRequest,
};
use super::stats::StatsView;
use super::topics::{SubscribeRequest, SubscriberView, TopicList, TopicView};
use super::view::{
    AttemptView, BranchView, ErrorBody, ErrorDetail, HistoryView, TxOutcome, TxPage, TxPending,
    TxSummary, TxView, WorkflowStepView, WorkflowView,
};
use super::{inspect, protocols, stats, topics, workflows};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tandem native API",
        description = "Sagas, two-phase commit, TCC, transactional messages and workflows over \
            HTTP and gRPC participants. Errors are `{\"error\":{\"code\",\"message\"}}`; 503 carries Retry-After."
    ),
    paths(
        protocols::create_saga,
        protocols::create_two_pc,
        protocols::create_tcc,
        protocols::register_tcc_branch,
        protocols::submit_tcc,
        protocols::abort_tcc,
        protocols::create_msg,
        protocols::submit_msg,
        workflows::create_workflow,
        workflows::record_step,
        workflows::finish_workflow,
        topics::list_topics,
        topics::get_topic,
        topics::subscribe,
        topics::unsubscribe,
        topics::delete_topic,
        inspect::list_tx,
        inspect::get_tx,
        inspect::retry_tx,
        inspect::stop_tx,
        stats::get_stats,
        openapi_json,
    ),
    components(schemas(
        TxOptions,
        SagaStepIn,
        SagaRequest,
        ParticipantIn,
        TwoPcRequest,
        TccBeginRequest,
        TccBranchRequest,
        FinishRequest,
        MsgBranchIn,
        MsgRequest,
        ReasonRequest,
        WorkflowRequest,
        WorkflowStepRequest,
        WorkflowFinishRequest,
        WorkflowStepView,
        WorkflowView,
        SubscribeRequest,
        SubscriberView,
        TopicView,
        TopicList,
        TxOutcome,
        TxPending,
        AttemptView,
        BranchView,
        HistoryView,
        TxView,
        TxSummary,
        TxPage,
        ErrorBody,
        ErrorDetail,
        StatsView
    ))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(text) => ([("content-type", "application/json")], text).into_response(),
        Err(e) => crate::error::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("rendering the OpenAPI document: {e}"),
        )
        .into_response(),
    }
}
