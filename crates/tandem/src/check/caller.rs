//! Calling the participant the way the coordinator does: the server's own
//! [`HttpTransport`] (same URL, query, method, headers and answer classification), so what
//! the check proves holds for the calls the participant will really get. Plus the one call
//! the coordinator cannot make on purpose: a request whose answer is lost on the wire.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tandem_core::{CallOutcome, Op};
use tandem_engine::{CallRequest, Transport};
use tandem_server::dtm::wire::call_url;
use tandem_server::http_transport::HttpTransport;
use tokio::io::AsyncWriteExt;

use super::spec::{fill, Protocol, Role, Spec};

/// What a call was answered, as the coordinator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Success,
    Failure,
    Ongoing,
    /// 5xx, a timeout, a refused connection: the outcome is unknown.
    Error(String),
}

impl Answer {
    pub fn name(&self) -> String {
        match self {
            Answer::Success => "SUCCESS".into(),
            Answer::Failure => "FAILURE".into(),
            Answer::Ongoing => "ONGOING".into(),
            Answer::Error(e) => format!("ERROR ({e})"),
        }
    }
}

/// Which payload a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Template,
    Failing,
    Slow,
}

/// Makes the calls of one check run.
pub struct Caller {
    transport: HttpTransport,
    spec: Arc<Spec>,
    /// Times an ONGOING answer is asked again (as the coordinator would) before giving up.
    ongoing_max: u32,
}

impl Caller {
    pub fn new(spec: Arc<Spec>) -> Caller {
        Caller {
            transport: HttpTransport::new(),
            spec,
            ongoing_max: 20,
        }
    }

    fn request(&self, gid: &str, role: Role, body: Body) -> CallRequest {
        let p = self.spec.protocol;
        let payload = match body {
            Body::Template => &self.spec.template,
            Body::Failing => self.spec.failing.as_ref().unwrap_or(&self.spec.template),
            Body::Slow => self.spec.slow.as_ref().unwrap_or(&self.spec.template),
        };
        let payload = match fill(payload, gid) {
            Value::Null => Vec::new(),
            v => v.to_string().into_bytes(),
        };
        CallRequest {
            gid: Arc::from(gid),
            kind: p.kind(),
            branch_id: "01".into(),
            op: p.op(role).unwrap_or(Op::Action),
            target: self.spec.endpoint(role).to_owned(),
            payload,
            headers: Arc::new(Vec::new()),
            xid: None,
            timeout: Duration::from_millis(self.spec.timeout_ms),
        }
    }

    /// One call, asked again while it answers ONGOING (bounded).
    pub async fn call(&self, gid: &str, role: Role, body: Body) -> Answer {
        let timeout = Duration::from_millis(self.spec.timeout_ms);
        for _ in 0..self.ongoing_max {
            let req = self.request(gid, role, body);
            let answer = match tokio::time::timeout(timeout, self.transport.call(req)).await {
                Err(_) => return Answer::Error(format!("no answer within {timeout:?}")),
                Ok(r) => match r.outcome {
                    CallOutcome::Success | CallOutcome::ReadOnly => Answer::Success,
                    CallOutcome::Failure(_) => Answer::Failure,
                    CallOutcome::Ongoing => Answer::Ongoing,
                    CallOutcome::Error(e) => Answer::Error(e),
                    // Only XA resources answer this; an HTTP participant never does.
                    CallOutcome::NotPrepared => Answer::Error("not prepared".into()),
                },
            };
            if answer != Answer::Ongoing {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Answer::Ongoing
    }

    /// Sends the call over a connection of its own and keeps it open without reading the
    /// answer; the caller drops the returned stream to lose the answer.
    pub async fn send_unread(
        &self,
        gid: &str,
        role: Role,
    ) -> anyhow::Result<tokio::net::TcpStream> {
        let req = self.request(gid, role, Body::Template);
        let url = call_url(&req);
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("{url}: only http:// endpoints"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let post = !req.payload.is_empty() || self.spec.protocol == Protocol::TwoPc;
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n",
            if post { "POST" } else { "GET" }
        );
        if post {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                req.payload.len()
            ));
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&req.payload).await?;
        stream.flush().await?;
        Ok(stream)
    }
}
