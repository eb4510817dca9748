//! The server's [`Transport`]: each branch call goes by its URL's kind ([`crate::target`]) —
//! HTTP(S) participants through [`HttpTransport`], gRPC participants through
//! [`GrpcTransport`], an empty URL is a no-op success. Whatever the transport, the engine
//! around it is the same: the per-call timeout, retries with backoff, parking past the
//! retry limit, metrics by op and outcome.

use async_trait::async_trait;
use tandem_core::CallOutcome;
use tandem_engine::{CallRequest, CallResult, Transport};

use crate::grpc::transport::GrpcTransport;
use crate::http_transport::HttpTransport;
use crate::target::{self, Target};

pub struct Branches {
    pub http: HttpTransport,
    pub grpc: GrpcTransport,
}

#[async_trait]
impl Transport for Branches {
    async fn call(&self, req: CallRequest) -> CallResult {
        let grpc = match target::parse(&req.target) {
            Ok(Target::Grpc(t)) => Some(self.grpc.call(&req, t).await),
            Ok(Target::Http | Target::Empty) => None,
            // Checked at submission; a log written by another build may still hold one.
            Err(e) => Some(CallOutcome::Error(e).into()),
        };
        match grpc {
            Some(result) => result,
            None => self.http.call(req).await,
        }
    }
}
