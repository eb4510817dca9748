//! What the DTM API and `/v1` share about workflows (the protocol is
//! `tandem_core::workflow`, the layout `tandem_core::spec`): the shape of a new one with its
//! callback, and its recorded steps.
//!
//! The callback is sent the workflow's data as it is, or wrapped in `workflow.WorkflowData`
//! when it is a gRPC method (what DTM's workflow gRPC server, `/workflow.Workflow/Execute`,
//! takes). A workflow without a callback is never resumed by the coordinator: it waits for
//! its client (and is parked by `stuck_after` like anything else that stops moving).

use tandem_core::spec::{CallbackSpec, Shape};
use tandem_core::{Branch, Op, Transaction};

use crate::error::ApiError;
use crate::validate;
use crate::ServerConfig;

/// The shape of a new workflow `name` resumed through `callback` (empty: none).
pub fn shape(
    cfg: &ServerConfig,
    name: String,
    data: Vec<u8>,
    callback: &str,
) -> Result<Shape, ApiError> {
    validate::branch_url(cfg, callback)?;
    let callback = (!callback.is_empty()).then(|| {
        let payload = match crate::target::parse(callback) {
            Ok(crate::target::Target::Grpc(_)) => {
                prost::Message::encode_to_vec(&crate::grpc::wfpb::WorkflowData { data })
            }
            _ => data,
        };
        CallbackSpec {
            target: callback.to_string(),
            payload,
        }
    });
    Ok(Shape::Workflow { name, callback })
}

/// A workflow's recorded steps, in the order they were recorded.
pub fn steps(tx: &Transaction) -> impl Iterator<Item = &Branch> {
    tx.branches.iter().filter(|b| b.op != Op::Workflow)
}
