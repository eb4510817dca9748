//! Branch calls to gRPC participants, with DTM's conventions, so existing DTM gRPC
//! participants (dtmgrpc's `XaLocalTransaction`, barrier, workflow servers…) work as they are.
//!
//! - The URL names the server and the method: `host:port/package.Service/Method` (or
//!   `grpc://…`; `grpcs://…` is dialled with TLS and the system's trusted roots).
//! - The request message is the branch's stored payload as it is (it already is the encoded
//!   message; nothing is re-encoded); the reply is read (bounded) and not interpreted.
//! - Metadata: `dtm-gid`, `dtm-trans_type`, `dtm-branch_id`, `dtm-op`, `dtm-dtm` (this
//!   server's gRPC address, where a participant registers XA branches), the transaction's
//!   branch headers, and a W3C `traceparent`.
//! - Deadline: the call's timeout (`grpc-timeout`), the same the engine waits.
//! - Answer: see [`super::status`] (OK success, ABORTED failure, FAILED_PRECONDITION not
//!   yet, anything else unknown and retried with backoff by the engine).
//!
//! Connections are pooled: one HTTP/2 channel per server (scheme + authority), shared by
//! every call to it and dialled lazily; at most [`CHANNELS_MAX`] are kept.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tandem_core::CallOutcome;
use tandem_engine::{CallRequest, CallResult};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::codec::RawCodec;
use crate::dtm::wire::{trans_type, wire_branch};
use crate::http_transport::ANSWER_BYTES_MAX;
use crate::target::GrpcTarget;

/// Most servers with a pooled channel; past it the pool is emptied and starts again (a
/// coordinator talking to more distinct servers than this is unusual, and a dropped
/// channel is only a reconnect).
pub const CHANNELS_MAX: usize = 1024;

/// Calls gRPC participants.
pub struct GrpcTransport {
    channels: Mutex<HashMap<String, Channel>>,
    /// What `dtm-dtm` says: this server's gRPC API, when it serves one.
    dtm: String,
    spans: Option<crate::otlp::Exporter>,
}

impl GrpcTransport {
    /// `dtm` is sent as `dtm-dtm` (empty when the gRPC API is off).
    pub fn new(dtm: impl Into<String>) -> GrpcTransport {
        GrpcTransport {
            channels: Mutex::new(HashMap::new()),
            dtm: dtm.into(),
            spans: None,
        }
    }

    /// Exports a span for every branch call.
    pub fn with_spans(mut self, spans: crate::otlp::Exporter) -> GrpcTransport {
        self.spans = Some(spans);
        self
    }

    /// The pooled channel to `t`'s server (dialled on first use).
    fn channel(&self, t: &GrpcTarget<'_>) -> Result<Channel, String> {
        let origin = t.origin();
        let mut pool = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = pool.get(&origin) {
            return Ok(c.clone());
        }
        let mut ep = Endpoint::from_shared(origin.clone())
            .map_err(|e| format!("{origin}: not a valid gRPC server: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false);
        if t.tls {
            ep = ep
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| format!("{origin}: TLS: {e}"))?;
        }
        let channel = ep.connect_lazy();
        if pool.len() >= CHANNELS_MAX {
            pool.clear();
        }
        pool.insert(origin, channel.clone());
        Ok(channel)
    }

    /// The request for `req`: payload as it is, DTM's metadata, the deadline.
    fn request(&self, req: &CallRequest, tp: &str) -> tonic::Request<Bytes> {
        let mut r = tonic::Request::new(Bytes::from(req.payload.clone()));
        let (branch_id, op) = wire_branch(req);
        let md = r.metadata_mut();
        let mut put = |k: &str, v: &str| match (
            AsciiMetadataKey::from_str(k),
            AsciiMetadataValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => {
                md.insert(k, v);
            }
            _ => tracing::debug!(key = k, "metadata not sent: not valid gRPC metadata"),
        };
        for (k, v) in req.headers.iter() {
            if !k.eq_ignore_ascii_case("traceparent") {
                put(&k.to_ascii_lowercase(), v);
            }
        }
        put("dtm-gid", &req.gid);
        put("dtm-trans_type", trans_type(req.kind, req.op));
        put("dtm-branch_id", branch_id);
        put("dtm-op", op);
        put("dtm-dtm", &self.dtm);
        put("traceparent", tp);
        r.set_timeout(req.timeout);
        r
    }

    pub async fn call(&self, req: &CallRequest, t: GrpcTarget<'_>) -> CallResult {
        let trace_id = crate::trace::trace_id(&req.gid, &req.headers);
        let span_id = if self.spans.is_some() {
            crate::trace::new_span_id()
        } else {
            crate::http_transport::call_span_id(&req.gid, &req.branch_id, req.op)
        };
        let tp = crate::trace::TraceParent { trace_id, span_id };
        let start_ns = crate::otlp::now_ns();
        let result = self.send(req, &t, &tp.header()).await;
        if let Some(spans) = &self.spans {
            let attrs = vec![
                ("rpc.system", serde_json::json!("grpc")),
                ("rpc.method", serde_json::json!(t.path)),
                ("server.address", serde_json::json!(t.authority)),
            ];
            spans.export(crate::http_transport::call_span(
                req, tp, start_ns, attrs, &result,
            ));
        }
        result
    }

    async fn send(&self, req: &CallRequest, t: &GrpcTarget<'_>, tp: &str) -> CallResult {
        let channel = match self.channel(t) {
            Ok(c) => c,
            Err(e) => return CallOutcome::Error(e).into(),
        };
        let path = match t.path.parse::<tonic::codegen::http::uri::PathAndQuery>() {
            Ok(p) => p,
            Err(e) => return CallOutcome::Error(format!("{}: {e}", t.path)).into(),
        };
        let mut client =
            tonic::client::Grpc::new(channel).max_decoding_message_size(ANSWER_BYTES_MAX);
        if let Err(e) = client.ready().await {
            return CallOutcome::Error(format!("{}: {e}", t.authority)).into();
        }
        let answer = client.unary(self.request(req, tp), path, RawCodec).await;
        super::status::classify(answer.as_ref().map(|_| ())).into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tandem_core::{Op, TxKind};

    fn call(op: Op, kind: TxKind) -> CallRequest {
        CallRequest {
            gid: Arc::from("g-1"),
            kind,
            branch_id: "01".into(),
            op,
            target: "127.0.0.1:1/busi.Busi/TransIn".into(),
            payload: vec![8, 1],
            headers: Arc::new(vec![
                ("X-Tenant".into(), "acme".into()),
                ("traceparent".into(), "ignored-here".into()),
            ]),
            timeout: Duration::from_millis(1500),
            xid: None,
        }
    }

    /// The metadata a DTM gRPC participant reads (`dtmgimp.TransBaseFromGrpc`), the
    /// branch headers, the trace context and the deadline.
    #[test]
    fn requests_carry_dtm_metadata_and_the_deadline() {
        let t = GrpcTransport::new("127.0.0.1:36790");
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let r = t.request(&call(Op::Action, TxKind::Saga), tp);
        let md = r.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).unwrap_or("<none>");
        assert_eq!(get("dtm-gid"), "g-1");
        assert_eq!(get("dtm-trans_type"), "saga");
        assert_eq!(get("dtm-branch_id"), "01");
        assert_eq!(get("dtm-op"), "action");
        assert_eq!(get("dtm-dtm"), "127.0.0.1:36790");
        assert_eq!(get("x-tenant"), "acme");
        assert_eq!(
            get("traceparent"),
            tp,
            "the call's own span, not the stored header"
        );
        assert_eq!(get("grpc-timeout"), "1500000u");
        assert_eq!(r.get_ref().as_ref(), &[8, 1], "payload as it is");

        let r = t.request(&call(Op::QueryPrepared, TxKind::Msg), tp);
        let md = r.metadata();
        assert_eq!(
            md.get("dtm-branch_id").and_then(|v| v.to_str().ok()),
            Some("00")
        );
        assert_eq!(md.get("dtm-op").and_then(|v| v.to_str().ok()), Some("msg"));
        let r = t.request(&call(Op::Commit, TxKind::Tcc), tp);
        assert_eq!(
            r.metadata()
                .get("dtm-trans_type")
                .and_then(|v| v.to_str().ok()),
            Some("xa")
        );
    }

    /// Nothing listens: unknown (retried), never a failure or a panic.
    #[tokio::test]
    async fn an_unreachable_server_is_unknown() {
        let t = GrpcTransport::new("");
        let mut c = call(Op::Action, TxKind::Saga);
        c.timeout = Duration::from_secs(2);
        let target = crate::target::parse("127.0.0.1:1/busi.Busi/TransIn");
        let Ok(crate::target::Target::Grpc(g)) = target else {
            panic!("{target:?}");
        };
        let res = t.call(&c, g).await;
        assert!(matches!(res.outcome, CallOutcome::Error(_)), "{res:?}");
    }

    /// A `grpcs://` URL is dialled with TLS (here against a plain TCP listener, so the
    /// handshake fails): unknown and retried, never a panic or a plaintext call.
    #[tokio::test]
    async fn grpcs_urls_are_called_over_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"not TLS at all\r\n").await;
            }
        });
        let t = GrpcTransport::new("");
        let mut c = call(Op::Action, TxKind::Saga);
        c.target = format!("grpcs://{addr}/busi.Busi/TransIn");
        c.timeout = Duration::from_secs(3);
        let Ok(crate::target::Target::Grpc(g)) = crate::target::parse(&c.target) else {
            panic!("{}", c.target);
        };
        assert!(g.tls);
        let res = tokio::time::timeout(Duration::from_secs(10), t.call(&c, g))
            .await
            .expect("bounded");
        assert!(matches!(res.outcome, CallOutcome::Error(_)), "{res:?}");
    }
}
