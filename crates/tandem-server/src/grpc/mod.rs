//! gRPC: DTM's coordinator API (`dtmgimp.Dtm`, [`api`]) on its own port, and branch calls
//! to gRPC participants ([`transport`]).
//!
//! - [`wire`]: DTM's messages onto the HTTP API's requests (one implementation for both);
//! - [`status`]: DTM's status codes, for answers and for participants' replies;
//! - [`codec`]: strict decoding of requests, raw bytes for branch calls.

pub mod api;
pub mod codec;
pub mod status;
pub mod transport;
pub mod wire;

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
