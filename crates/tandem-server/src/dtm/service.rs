//! DTM's operations, independent of the wire: the HTTP handlers ([`super::handlers`]) and
//! the gRPC service ([`crate::grpc::api`]) parse their requests into [`TransReq`] /
//! [`RegisterReq`], call these, and render the result their way (HTTP 200/409/425/4xx;
//! gRPC OK/Aborted/FailedPrecondition/InvalidArgument, see [`crate::grpc::status`]).
//!
//! Invariant: `Ok` from `prepare`, `submit`, `register_branch`, `abort` is returned only
//! after the coordinator made the change durable (the engine's `begin`/`send` resolve after
//! the log write). A resubmitted gid with the same content is answered from the stored
//! transaction and never starts a second one.

use tandem_core::{ApplyError, Event, Transaction, TxKind, TxStatus};
use tandem_engine::{EngineError, Outcome, Wait};

use super::reply::DtmError;
use super::request::{DtmType, RegisterReq, TransReq};
use crate::error::ApiError;
use crate::AppState;

pub type Done = Result<(), DtmError>;

pub fn not_found(gid: &str) -> DtmError {
    DtmError(ApiError::not_found(format!("no transaction {gid}")))
}

/// What a caller waiting for the result hears.
fn outcome_answer(o: &Outcome, expected: TxStatus) -> Done {
    if o.status == expected {
        return Ok(());
    }
    if o.status.is_final() {
        let why = o
            .fail_reason
            .clone()
            .unwrap_or_else(|| format!("transaction is {}", o.status.as_str()));
        return Err(DtmError::failure("rolled_back", why));
    }
    match &o.parked {
        Some(r) => Err(DtmError::ongoing(format!("parked for an operator: {r}"))),
        None => Err(DtmError::ongoing(format!(
            "transaction is still {}",
            o.status.as_str()
        ))),
    }
}

fn still_running() -> DtmError {
    DtmError::ongoing("not finished within the wait; it goes on in the background")
}

/// Waits (bounded by `wait_result_max_ms`) for `gid` to end.
async fn wait_for(s: &AppState, gid: &str, expected: TxStatus) -> Done {
    match s.coord.wait_within(gid, s.cfg.wait_result_max).await? {
        Some(o) => outcome_answer(&o, expected),
        None => Err(still_running()),
    }
}

pub async fn prepare(s: &AppState, req: &TransReq) -> Done {
    match req.dtm_type()? {
        DtmType::Saga => {
            return Err(ApiError::bad_request(
                "invalid_trans_type",
                "a saga is submitted directly, not prepared",
            )
            .into())
        }
        DtmType::Workflow => {
            return Err(ApiError::bad_request(
                "invalid_trans_type",
                "a workflow is prepared with prepareWorkflow",
            )
            .into())
        }
        _ => {}
    }
    let topics = crate::topics::resolve(s, req.actions()).await?;
    let tx = req.to_transaction_with(&s.cfg, s.coord.limits(), s.coord.now(), false, &topics)?;
    let o = s
        .coord
        .begin(crate::trace::adopt(tx), Wait::Accepted)
        .await?;
    if o.status != TxStatus::Prepared {
        return Err(DtmError::failure(
            "wrong_status",
            format!("current status '{}', cannot prepare", o.status.as_str()),
        ));
    }
    Ok(())
}

pub async fn submit(s: &AppState, req: &TransReq) -> Done {
    let ty = req.dtm_type()?;
    let gid = req.gid()?.to_string();
    let wait = req.wait_result();
    match ty {
        DtmType::Saga => {
            let tx = req.to_transaction(&s.cfg, s.coord.limits(), s.coord.now(), false)?;
            if !wait {
                s.coord
                    .begin(crate::trace::adopt(tx), Wait::Accepted)
                    .await?;
                return Ok(());
            }
            let bound = Wait::OutcomeWithin(s.cfg.wait_result_max);
            let o = s.coord.begin(crate::trace::adopt(tx), bound).await?;
            return outcome_answer(&o, TxStatus::Succeeded);
        }
        DtmType::Msg => match s.coord.get(&gid).await? {
            Some(old) if old.kind != TxKind::Msg => {
                return Err(EngineError::GidExists(gid).into());
            }
            Some(_) => s.coord.send(&gid, Event::Submit).await?,
            None => {
                // Submitted without prepare: no check is needed, deliver at once.
                let topics = crate::topics::resolve(s, req.actions()).await?;
                let tx = req.to_transaction_with(
                    &s.cfg,
                    s.coord.limits(),
                    s.coord.now(),
                    true,
                    &topics,
                )?;
                s.coord
                    .begin(crate::trace::adopt(tx), Wait::Accepted)
                    .await?;
            }
        },
        DtmType::Workflow => return conclude(s, &gid, req).await,
        DtmType::Tcc | DtmType::Xa => {
            s.coord
                .send(&gid, Event::Submit)
                .await
                .map_err(|e| match e {
                    EngineError::NotFound(g) => not_found(&g),
                    e => e.into(),
                })?;
        }
    }
    if wait {
        return wait_for(s, &gid, TxStatus::Succeeded).await;
    }
    Ok(())
}

pub async fn abort(s: &AppState, req: &TransReq) -> Done {
    let gid = req.gid()?.to_string();
    let tx = s.coord.get(&gid).await?.ok_or_else(|| not_found(&gid))?;
    match (tx.kind, tx.status) {
        (TxKind::Msg, TxStatus::Prepared) => {
            s.coord.stop(&gid, "aborted by the sender").await?;
        }
        (TxKind::Msg, TxStatus::Failed) => {}
        (TxKind::Tcc, _) => s.coord.send(&gid, Event::Abort).await?,
        (kind, status) => {
            return Err(DtmError::failure(
                "wrong_status",
                format!(
                    "trans type '{}' current status '{}', cannot abort",
                    kind.as_str(),
                    status.as_str()
                ),
            ))
        }
    }
    if req.wait_result() {
        return wait_for(s, &gid, TxStatus::Failed).await;
    }
    Ok(())
}

pub async fn register_branch(s: &AppState, req: &RegisterReq) -> Done {
    let missing = || {
        DtmError::failure(
            "not_found",
            format!("no trans with gid: {} status: prepared found", req.gid),
        )
    };
    let tx = s.coord.get(&req.gid).await?.ok_or_else(missing)?;
    if let Some((op, status)) = req.step {
        if tx.kind != TxKind::Workflow {
            return Err(DtmError::failure(
                "wrong_kind",
                format!(
                    "{} is a {} transaction, not a workflow",
                    req.gid,
                    tx.kind.as_str()
                ),
            ));
        }
        let event = tandem_core::spec::record(
            &tx,
            &req.branch_id,
            op,
            status,
            req.data.clone(),
            s.coord.limits(),
        )?;
        return s.coord.send(&req.gid, event).await.map_err(|e| match e {
            EngineError::NotFound(_) => missing(),
            EngineError::Refused(r @ ApplyError::BranchConflict { .. }) => DtmError::failure(
                "branch_conflict",
                format!("{r}: a workflow step is recorded once"),
            ),
            e => e.into(),
        });
    }
    if tx.kind != TxKind::Tcc {
        return Err(DtmError::failure(
            "wrong_kind",
            format!(
                "{} is a {} transaction; registerBranch is for tcc and xa",
                req.gid,
                tx.kind.as_str()
            ),
        ));
    }
    let event = tandem_core::spec::registration(
        &tx,
        &req.branch_id,
        req.ops.clone(),
        req.data.clone(),
        s.coord.limits(),
    )?;
    s.coord.send(&req.gid, event).await.map_err(|e| match e {
        EngineError::NotFound(_) => missing(),
        e => e.into(),
    })?;
    Ok(())
}

pub async fn force_stop(s: &AppState, gid: &str) -> Done {
    let tx = s.coord.get(gid).await?.ok_or_else(|| not_found(gid))?;
    if tx.is_final() {
        return Err(DtmError::failure(
            "wrong_status",
            format!(
                "global transaction force stop error. status: {}",
                tx.status.as_str()
            ),
        ));
    }
    s.coord.stop(gid, "forceStop (DTM API)").await?;
    Ok(())
}

pub async fn reset_next_cron_time(s: &AppState, gid: &str) -> Done {
    match s.coord.retry(gid, "resetNextCronTime (DTM API)").await {
        // DTM resets the time of an ended transaction too; nothing is due, so that is a no-op.
        Ok(()) | Err(EngineError::Refused(ApplyError::Ended { .. })) => Ok(()),
        Err(EngineError::NotFound(g)) => Err(not_found(&g)),
        Err(e) => Err(e.into()),
    }
}

/// `prepareWorkflow`: creates the workflow in `prepared`, or, for a gid that exists, answers
/// it as it is (the client then replays the steps recorded so far).
pub async fn prepare_workflow(s: &AppState, req: &TransReq) -> Result<Transaction, DtmError> {
    if req.dtm_type()? != DtmType::Workflow {
        return Err(ApiError::bad_request(
            "invalid_trans_type",
            "prepareWorkflow is for trans_type workflow",
        )
        .into());
    }
    let gid = req.gid()?.to_string();
    if let Some(tx) = s.coord.get(&gid).await? {
        return existing_workflow(tx);
    }
    let tx = req.to_transaction(&s.cfg, s.coord.limits(), s.coord.now(), false)?;
    match s.coord.begin(crate::trace::adopt(tx), Wait::Accepted).await {
        // Another request created it meanwhile (with other options): answer that one.
        Ok(_) | Err(EngineError::GidExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    existing_workflow(s.coord.get(&gid).await?.ok_or_else(|| not_found(&gid))?)
}

fn existing_workflow(tx: Transaction) -> Result<Transaction, DtmError> {
    if tx.kind != TxKind::Workflow {
        return Err(EngineError::GidExists(tx.gid).into());
    }
    Ok(tx)
}

/// Workflow `submit`: the client finished; `req_extra` has `status` (`succeed` or `failed`),
/// `rollback_reason` and `result`.
async fn conclude(s: &AppState, gid: &str, req: &TransReq) -> Done {
    let extra = req.req_extra.clone().unwrap_or_default();
    let get = |k: &str| extra.get(k).cloned().unwrap_or_default();
    let status = match get("status").as_str() {
        "succeed" => TxStatus::Succeeded,
        "failed" => TxStatus::Failed,
        other => {
            return Err(ApiError::bad_request(
                "invalid_status",
                format!(
                "a workflow is submitted with req_extra.status succeed or failed, not {other:?}"
            ),
            )
            .into())
        }
    };
    let tx = s.coord.get(gid).await?.ok_or_else(|| not_found(gid))?;
    if tx.kind != TxKind::Workflow {
        return Err(DtmError::failure(
            "wrong_kind",
            format!(
                "{gid} is a {} transaction, not a workflow",
                tx.kind.as_str()
            ),
        ));
    }
    let event = Event::Conclude {
        status,
        reason: get("rollback_reason"),
        result: get("result"),
    };
    s.coord.send(gid, event).await.map_err(|e| match e {
        EngineError::NotFound(g) => not_found(&g),
        e => e.into(),
    })
}
