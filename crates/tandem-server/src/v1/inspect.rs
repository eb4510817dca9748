//! `/v1/transactions`: look transactions up (one with every branch and attempt, or a
//! filtered, cursor-paged list) and the operator actions *retry now* and *force stop*, each
//! of which needs a reason that the engine records in the transaction's history.

use axum::extract::State;
use axum::Json;
use tandem_core::{Timestamp, TxKind, TxStatus};
use tandem_store::{ListQuery, LIST_LIMIT_MAX};

use super::build;
use super::extract::{V1Json, V1Path, V1Query};
use super::model::{ListParams, ReasonRequest};
use super::protocols::load;
use super::view::{ErrorBody, TxPage, TxSummary, TxView};
use crate::error::ApiError;
use crate::AppState;

/// Page size when the client names none.
pub const LIST_LIMIT_DEFAULT: usize = 100;

/// Get a transaction with its branches, their attempts, and its history.
#[utoipa::path(get, path = "/v1/transactions/{gid}", tag = "transactions",
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "The transaction", body = TxView),
        (status = 404, description = "No such transaction", body = ErrorBody)))]
pub async fn get_tx(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
) -> Result<Json<TxView>, ApiError> {
    let tx = load(&state, &gid, None).await?;
    Ok(Json(TxView::from(&tx)))
}

fn list_query(p: ListParams) -> Result<ListQuery, ApiError> {
    let status = p
        .status
        .map(|s| {
            TxStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown status {s:?}: prepared, submitted, aborting, succeed or failed"
                    ),
                )
            })
        })
        .transpose()?;
    let kind = p
        .kind
        .map(|k| {
            TxKind::parse(&k).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("unknown type {k:?}: saga, 2pc, tcc or msg"),
                )
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit {limit}: must be 1..={LIST_LIMIT_MAX}"),
        ));
    }
    Ok(ListQuery {
        status,
        kind,
        parked: p.parked,
        gid_prefix: p.gid_prefix.filter(|g| !g.is_empty()),
        created_from: p.created_from_ms.map(Timestamp),
        created_to: p.created_to_ms.map(Timestamp),
        cursor: p.cursor.filter(|c| !c.is_empty()),
        limit,
    })
}

/// List transactions, newest first, with filters and cursor paging.
#[utoipa::path(get, path = "/v1/transactions", tag = "transactions", params(ListParams),
    responses(
        (status = 200, description = "One page", body = TxPage),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorBody)))]
pub async fn list_tx(
    State(state): State<AppState>,
    V1Query(params): V1Query<ListParams>,
) -> Result<Json<TxPage>, ApiError> {
    let q = list_query(params)?;
    let page = state.coord.list(&q).await.map_err(|e| match e {
        // A cursor the store cannot read is the client's mistake.
        tandem_engine::EngineError::Store(tandem_store::StoreError::InvalidQuery(m)) => {
            ApiError::bad_request("invalid_query", m)
        }
        other => other.into(),
    })?;
    Ok(Json(TxPage {
        transactions: page.items.iter().map(TxSummary::from).collect(),
        next_cursor: page.next,
    }))
}

/// Operator: retry every unfinished branch now (clears parking). The reason is recorded.
#[utoipa::path(post, path = "/v1/transactions/{gid}/retry", tag = "operator",
    request_body = ReasonRequest,
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "Retried; the transaction now", body = TxView),
        (status = 400, description = "No reason given", body = ErrorBody),
        (status = 404, description = "No such transaction", body = ErrorBody)))]
pub async fn retry_tx(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    V1Json(req): V1Json<ReasonRequest>,
) -> Result<Json<TxView>, ApiError> {
    let reason = build::reason(&req.reason)?;
    state.coord.retry(&gid, reason).await?;
    let tx = load(&state, &gid, None).await?;
    Ok(Json(TxView::from(&tx)))
}

/// Operator: force stop. A saga ends `failed` at once, with no further calls (the operator
/// takes over its compensation); a 2PC or TCC still before its decision, or a message still
/// prepared, is aborted (rolled back / cancelled / dropped). After a commit decision a stop
/// is refused with 409 `wrong_status`: retry instead. The reason is recorded.
#[utoipa::path(post, path = "/v1/transactions/{gid}/stop", tag = "operator",
    request_body = ReasonRequest,
    params(("gid" = String, Path, description = "Transaction id")),
    responses(
        (status = 200, description = "Stopped; the transaction now", body = TxView),
        (status = 400, description = "No reason given", body = ErrorBody),
        (status = 404, description = "No such transaction", body = ErrorBody),
        (status = 409, description = "Past its decision: cannot be stopped", body = ErrorBody)))]
pub async fn stop_tx(
    State(state): State<AppState>,
    V1Path(gid): V1Path<String>,
    V1Json(req): V1Json<ReasonRequest>,
) -> Result<Json<TxView>, ApiError> {
    let reason = build::reason(&req.reason)?;
    state.coord.stop(&gid, reason).await?;
    let tx = load(&state, &gid, None).await?;
    Ok(Json(TxView::from(&tx)))
}
