//! gRPC: DTM's coordinator API (`dtmgimp.Dtm`) on its own port, and branch calls to gRPC
//! participants.

/// Messages and the service of `proto/dtmgimp.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("dtmgimp");
}

/// `proto/workflow.proto`: what a workflow's gRPC callback receives.
#[allow(clippy::all, missing_docs)]
pub mod wfpb {
    tonic::include_proto!("workflow");
}
