//! DTM's wire vocabulary for branch calls, shared by every transport that speaks DTM's
//! conventions: the `trans_type` and op names a participant sees, the query string of an HTTP
//! branch call, and how an answer is classified (DTM's order: "not yet" before "failed").
//!
//! Why a module of its own: the vocabulary is the protocol, not HTTP plumbing — the DTM API's
//! views ([`super::view`]) print the same names, and a gRPC transport carries the same values
//! in its metadata. Keeping it in one place keeps those from drifting apart.

use tandem_core::{CallOutcome, Op, TxKind};
use tandem_engine::CallRequest;

/// DTM's `trans_type` for a call.
pub fn trans_type(kind: TxKind, op: Op) -> &'static str {
    match (kind, op) {
        (TxKind::Saga, _) => "saga",
        (TxKind::Msg, _) => "msg",
        (TxKind::Tcc, Op::Commit | Op::Rollback) => "xa",
        (TxKind::Tcc, _) => "tcc",
        (TxKind::TwoPc, _) => "xa",
        (TxKind::Workflow, _) => "workflow",
    }
}

/// DTM's name for an op on the wire.
pub fn op_name(op: Op) -> &'static str {
    match op {
        Op::Msg => "action",
        other => other.as_str(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for query values).
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The branch id and op a participant sees for `req`: DTM asks the sender's query-prepared
/// check as branch `00`, op `msg` (dtmcli's barrier uses the same), and a workflow's callback
/// as branch `00` with the workflow's name as op (the callback branch keeps the name as its
/// id: `tandem_core::workflow`).
pub fn wire_branch(req: &CallRequest) -> (&str, &str) {
    match req.op {
        Op::QueryPrepared => ("00", "msg"),
        Op::Workflow => ("00", req.branch_id.as_str()),
        op => (req.branch_id.as_str(), op_name(op)),
    }
}

/// The URL a branch call goes to: the target plus DTM's query parameters.
pub fn call_url(req: &CallRequest) -> String {
    let sep = if req.target.contains('?') { '&' } else { '?' };
    let (branch_id, op) = wire_branch(req);
    format!(
        "{}{sep}gid={}&trans_type={}&branch_id={}&op={}",
        req.target,
        encode_query(&req.gid),
        trans_type(req.kind, req.op),
        encode_query(branch_id),
        op
    )
}

/// Classifies an HTTP answer the way DTM does.
pub fn classify(status: u16, body: &[u8]) -> CallOutcome {
    let text = String::from_utf8_lossy(body);
    // DTM checks "not yet" before "failed" (dtmcli.HTTPResp2DtmError): a 425, or a body
    // saying ONGOING, wins even over a 409.
    if status == 425 || text.contains("ONGOING") {
        return CallOutcome::Ongoing;
    }
    if status == 409 || text.contains("FAILURE") {
        return CallOutcome::Failure(format!("HTTP {status}: {}", snippet(&text)));
    }
    if (200..300).contains(&status) {
        return CallOutcome::Success;
    }
    CallOutcome::Error(format!("HTTP {status}: {}", snippet(&text)))
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    if t.len() <= 200 {
        t.to_string()
    } else {
        let mut end = 200;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &t[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_dtm() {
        assert_eq!(
            classify(200, b"{\"dtm_result\":\"SUCCESS\"}"),
            CallOutcome::Success
        );
        assert!(matches!(
            classify(200, b"{\"dtm_result\":\"FAILURE\"}"),
            CallOutcome::Failure(_)
        ));
        assert!(matches!(classify(409, b""), CallOutcome::Failure(_)));
        assert_eq!(classify(425, b""), CallOutcome::Ongoing);
        assert_eq!(classify(200, b"ONGOING"), CallOutcome::Ongoing);
        assert_eq!(
            classify(425, b"FAILURE"),
            CallOutcome::Ongoing,
            "DTM's order"
        );
        assert!(matches!(classify(500, b"oops"), CallOutcome::Error(_)));
        assert!(matches!(classify(404, b""), CallOutcome::Error(_)));
    }
}
