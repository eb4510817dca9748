//! DTM's gRPC API, `dtmgimp.Dtm`: each method maps its message onto the request the HTTP
//! API parses ([`super::wire`]), runs the same operation ([`crate::dtm::service`]) and
//! answers with DTM's status codes ([`super::status`]).
//!
//! The same rules as HTTP apply: the bearer token (metadata `authorization: Bearer …`),
//! `body_bytes_max` as the largest request message, every check on gids, URLs, options and
//! branch counts; a malformed request is `INVALID_ARGUMENT` with a message. A request's
//! `traceparent` metadata continues into the transaction's branch calls.

use std::future::Future;

use tonic::metadata::MetadataMap;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::pb::dtm_server::{Dtm, DtmServer};
use super::{pb, status, wire};
use crate::config::Secret;
use crate::dtm::reply::DtmError;
use crate::dtm::request::RegisterReq;
use crate::dtm::service;
use crate::AppState;

/// The `dtmgimp.Dtm` service over one coordinator.
pub struct DtmApi {
    state: AppState,
}

type Answer<T> = Result<Response<T>, Status>;

fn traceparent(md: &MetadataMap) -> Option<String> {
    md.get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Runs one operation under the request's trace context and renders its result.
async fn answer<T>(md: &MetadataMap, op: impl Future<Output = Result<T, DtmError>>) -> Answer<T> {
    crate::trace::scoped(traceparent(md), op)
        .await
        .map(Response::new)
        .map_err(status::from_dtm)
}

#[tonic::async_trait]
impl Dtm for DtmApi {
    async fn new_gid(&self, _req: Request<()>) -> Answer<pb::DtmGidReply> {
        Ok(Response::new(pb::DtmGidReply {
            gid: self.state.coord.new_gid(),
        }))
    }

    async fn submit(&self, req: Request<pb::DtmRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            service::submit(&self.state, &wire::trans_req(msg)?).await
        })
        .await
    }

    async fn prepare(&self, req: Request<pb::DtmRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            service::prepare(&self.state, &wire::trans_req(msg)?).await
        })
        .await
    }

    async fn abort(&self, req: Request<pb::DtmRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            service::abort(&self.state, &wire::trans_req(msg)?).await
        })
        .await
    }

    async fn register_branch(&self, req: Request<pb::DtmBranchRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            let fields = wire::register_fields(&msg);
            let r = RegisterReq::build(&self.state.cfg, fields, msg.busi_payload.clone())?;
            service::register_branch(&self.state, &r).await
        })
        .await
    }

    async fn prepare_workflow(
        &self,
        req: Request<pb::DtmRequest>,
    ) -> Answer<pb::DtmProgressesReply> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            let tx = service::prepare_workflow(&self.state, &wire::trans_req(msg)?).await?;
            Ok(wire::progresses(&tx))
        })
        .await
    }

    async fn subscribe(&self, req: Request<pb::DtmTopicRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            Ok(crate::topics::subscribe(&self.state, &msg.topic, &msg.url, &msg.remark).await?)
        })
        .await
    }

    async fn unsubscribe(&self, req: Request<pb::DtmTopicRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            Ok(crate::topics::unsubscribe(&self.state, &msg.topic, &msg.url).await?)
        })
        .await
    }

    async fn delete_topic(&self, req: Request<pb::DtmTopicRequest>) -> Answer<()> {
        let (md, _, msg) = req.into_parts();
        answer(&md, async {
            Ok(crate::topics::delete(&self.state, &msg.topic).await?)
        })
        .await
    }
}

/// Checks the bearer token, when one is configured.
#[derive(Clone)]
pub struct Auth(Option<Secret>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        match given {
            Some(t) if crate::auth::same(t.as_bytes(), token.expose().as_bytes()) => Ok(req),
            Some(_) => Err(Status::unauthenticated("the bearer token is not valid")),
            None => Err(Status::unauthenticated(
                "this server requires a token: send metadata authorization: Bearer <token>",
            )),
        }
    }
}

/// The service, with the token check and the message-size limit.
pub fn service(state: AppState) -> InterceptedService<DtmServer<DtmApi>, Auth> {
    let limit = state.cfg.body_bytes_max;
    let auth = Auth(state.cfg.auth_token.clone());
    let server = DtmServer::new(DtmApi { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit.max(4 << 20));
    InterceptedService::new(server, auth)
}

/// Most requests one gRPC connection may have in flight (further ones wait).
pub const REQUESTS_PER_CONNECTION_MAX: usize = 1024;

/// Serves the gRPC API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        // Bounded like the HTTP side: requests per connection in flight at once.
        .concurrency_limit_per_connection(REQUESTS_PER_CONNECTION_MAX)
        .max_concurrent_streams(Some(REQUESTS_PER_CONNECTION_MAX as u32))
        .add_service(service(state))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
