//! What the DTM API and `/v1` share about workflows (the protocol itself is
//! `tandem_core::workflow`): building a new one with its callback, and its recorded steps.
//!
//! The callback is sent the workflow's data as it is, or wrapped in `workflow.WorkflowData`
//! when it is a gRPC method (what DTM's workflow gRPC server, `/workflow.Workflow/Execute`,
//! takes). A workflow without a callback is never resumed by the coordinator: it waits for
//! its client (and is parked by `stuck_after` like anything else that stops moving).

use tandem_core::{Branch, Op, Options, Timestamp, Transaction, TxKind};

use crate::error::ApiError;
use crate::validate;
use crate::ServerConfig;

/// A new workflow `name` in `prepared`, resumed through `callback` (empty: none).
pub fn build(
    cfg: &ServerConfig,
    gid: &str,
    options: Options,
    name: &str,
    data: Vec<u8>,
    callback: &str,
    now: Timestamp,
) -> Result<Transaction, ApiError> {
    validate::branch_url(cfg, callback)?;
    let mut tx = Transaction::new(gid, TxKind::Workflow, options, now);
    if !callback.is_empty() {
        tx.query_prepared = Some(callback.to_string());
        let payload = match crate::target::parse(callback) {
            Ok(crate::target::Target::Grpc(_)) => {
                prost::Message::encode_to_vec(&crate::grpc::wfpb::WorkflowData { data })
            }
            _ => data,
        };
        tx.branches.push(tandem_core::workflow::callback_branch(
            name, callback, payload,
        ));
    }
    Ok(tx)
}

/// A workflow's recorded steps, in the order they were recorded.
pub fn steps(tx: &Transaction) -> impl Iterator<Item = &Branch> {
    tx.branches.iter().filter(|b| b.op != Op::Workflow)
}
