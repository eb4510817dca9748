//! `/v1/workflows`: DTM's workflow mode in the native API's shape. The client runs the
//! steps and records each one as it ends; the coordinator keeps that record durable and
//! resumes an unfinished workflow through its callback (see `tandem_core::workflow`).
//!
//! ```text
//!  POST /v1/workflows                  create (or, for an existing gid, answer it + steps)
//!  POST /v1/workflows/{gid}/steps      record one step that ended (succeed | failed)
//!  POST /v1/workflows/{gid}/finish     end it (succeed | failed, reason, result)
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use tandem_core::spec::{self, TxSpec};
use tandem_core::{ApplyError, BranchStatus, Event, Op, TxKind, TxStatus};
use tandem_engine::{EngineError, Wait};

use super::extract::{V1Json, V1Path};
use super::model::{WorkflowFinishRequest, WorkflowRequest, WorkflowStepRequest};
use super::options::options;
use super::protocols::load;
use super::view::{ErrorBody, WorkflowView};
use crate::error::ApiError;
use crate::AppState;

type Answer = Result<Json<WorkflowView>, ApiError>;

fn payload(v: &Option<serde_json::Value>) -> Vec<u8> {
    match v {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => v.to_string().into_bytes(),
    }
}

fn status_of(s: &str, what: &str) -> Result<TxStatus, ApiError> {
    match s {
        "succeed" | "succeeded" => Ok(TxStatus::Succeeded),
        "failed" => Ok(TxStatus::Failed),
        other => Err(ApiError::bad_request(
            "invalid_status",
            format!("{what} status must be succeed or failed, not {other:?}"),
        )),
    }
}

/// Create a workflow, or answer an existing one with its recorded steps.
#[utoipa::path(post, path = "/v1/workflows", tag = "workflow", request_body = WorkflowRequest,
    responses(
        (status = 200, description = "The workflow (new, or as recorded so far)", body = WorkflowView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The gid is a transaction of another type", body = ErrorBody)))]
pub async fn create_workflow(
    State(state): State<AppState>,
    V1Json(req): V1Json<WorkflowRequest>,
) -> Answer {
    let gid = super::build::gid(&state, req.gid.clone());
    tandem_core::validate_gid(&gid)
        .map_err(|e| ApiError::bad_request("invalid_gid", format!("invalid gid: {e}")))?;
    if state.coord.get(&gid).await?.is_none() {
        let shape = crate::workflow::shape(
            &state.cfg,
            req.name.clone(),
            payload(&req.data),
            req.callback.as_deref().unwrap_or(""),
        )?;
        let spec = TxSpec {
            gid: gid.clone(),
            shape,
            options: options(&req.options),
            custom_data: None,
        };
        let tx = spec::build(spec, state.coord.limits(), state.coord.now())?;
        match state
            .coord
            .begin(crate::trace::adopt(tx), Wait::Accepted)
            .await
        {
            Ok(_) | Err(EngineError::GidExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let tx = load(&state, &gid, Some(TxKind::Workflow)).await?;
    Ok(Json(WorkflowView::from(&tx)))
}

/// Record one step of a workflow that ended.
#[utoipa::path(post, path = "/v1/workflows/{gid}/steps", tag = "workflow", request_body = WorkflowStepRequest,
    params(("gid" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "Recorded (durably)", body = WorkflowView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Not a workflow (`wrong_type`), already finished (`wrong_status`), or this step is recorded already (`step_exists`)", body = ErrorBody)))]
pub async fn record_step(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    V1Json(req): V1Json<WorkflowStepRequest>,
) -> Answer {
    let op = Op::parse(&req.op).ok_or_else(|| {
        ApiError::bad_request("invalid_op", format!("unknown step op {:?}", req.op))
    })?;
    let status = match status_of(&req.status, "a step's")? {
        TxStatus::Succeeded => BranchStatus::Succeeded,
        _ => BranchStatus::Failed,
    };
    let tx = load(&state, &gid, Some(TxKind::Workflow)).await?;
    let event = spec::record(
        &tx,
        &req.branch_id,
        op,
        status,
        payload(&req.result),
        state.coord.limits(),
    )?;
    state.coord.send(&gid, event).await.map_err(|e| match e {
        EngineError::Refused(r @ ApplyError::BranchConflict { .. }) => {
            ApiError::new(StatusCode::CONFLICT, "step_exists", r.to_string())
        }
        other => other.into(),
    })?;
    let tx = load(&state, &gid, Some(TxKind::Workflow)).await?;
    Ok(Json(WorkflowView::from(&tx)))
}

/// End a workflow.
#[utoipa::path(post, path = "/v1/workflows/{gid}/finish", tag = "workflow", request_body = WorkflowFinishRequest,
    params(("gid" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "Ended (durably)", body = WorkflowView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Not a workflow, or ended otherwise already", body = ErrorBody)))]
pub async fn finish_workflow(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    V1Json(req): V1Json<WorkflowFinishRequest>,
) -> Answer {
    let status = status_of(&req.status, "a workflow's")?;
    let reason = req.reason.unwrap_or_default();
    if reason.len() > super::build::REASON_BYTES_MAX {
        return Err(ApiError::bad_request(
            "reason_too_long",
            "reason is over 1000 bytes",
        ));
    }
    load(&state, &gid, Some(TxKind::Workflow)).await?;
    let result = String::from_utf8(payload(&req.result)).unwrap_or_default();
    state
        .coord
        .send(
            &gid,
            Event::Conclude {
                status,
                reason,
                result,
            },
        )
        .await?;
    let tx = load(&state, &gid, Some(TxKind::Workflow)).await?;
    Ok(Json(WorkflowView::from(&tx)))
}
