//! [`BranchCall`]: who is calling — the identity of a branch call, extracted from the
//! request the coordinator sent.
//!
//! Read from the query string (`gid`, `trans_type`, `branch_id`, `op`: DTM's convention,
//! which Tandem's server follows over HTTP, with either convention's spelling of the
//! values — `trans_type` `xa` or `2pc`, a message check as `branch_id=00&op=msg` or
//! `op=query_prepared`); when the query has none of them, from the headers `dtm-gid`,
//! `dtm-trans_type`, `dtm-branch_id`, `dtm-op` (DTM's gRPC metadata names, so the same
//! handler code serves calls transcoded from gRPC). A call missing one of the four is
//! answered 400 with a JSON body naming it: a malformed call is not a business failure,
//! and the coordinator must not take it for one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::reply::Reply;
use crate::barrier::{self, Barrier};

/// The identity of one branch call, an axum extractor: from the query string (`gid`,
/// `trans_type`, `branch_id`, `op`, DTM's convention, which Tandem's server follows), else
/// from the headers `dtm-gid`, `dtm-trans_type`, `dtm-branch_id`, `dtm-op` (DTM's gRPC
/// metadata). A call missing one is answered 400 `invalid_branch_call` (not a FAILURE).
#[derive(Debug, Clone)]
pub struct BranchCall {
    barrier: Barrier,
}

impl BranchCall {
    /// A call's identity from its parts (validated as the barrier table needs them).
    ///
    /// # Errors
    /// The barrier's [`barrier::Error::InvalidBranch`] when a part is empty or too long.
    pub fn new(
        trans_type: &str,
        gid: &str,
        branch_id: &str,
        op: &str,
    ) -> Result<BranchCall, barrier::Error> {
        // The barrier's own checks (lengths, emptiness) are the rule.
        Ok(BranchCall {
            barrier: Barrier::new(trans_type, gid, branch_id, op)?,
        })
    }

    /// From a raw query string, else from DTM's gRPC metadata headers.
    fn from_parts(parts: &Parts) -> Result<BranchCall, String> {
        let query = parts.uri.query().unwrap_or("");
        let from_query = query
            .split('&')
            .any(|kv| kv.starts_with("gid=") || kv.starts_with("op="));
        let call = if from_query {
            Barrier::from_query(query).map(|barrier| BranchCall { barrier })
        } else {
            let h = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            BranchCall::new(
                &h("dtm-trans_type"),
                &h("dtm-gid"),
                &h("dtm-branch_id"),
                &h("dtm-op"),
            )
        };
        call.map_err(|e| {
            format!("{e}: a branch call carries gid, trans_type, branch_id and op in its query")
        })
    }

    /// The global transaction id.
    pub fn gid(&self) -> &str {
        self.barrier.gid()
    }

    /// `saga`, `tcc`, `xa` (2PC and XA), `msg`, ... as sent.
    pub fn trans_type(&self) -> &str {
        self.barrier.trans_type()
    }

    /// The branch id (`01`, `02`, ... or the TCC branch id the client registered).
    pub fn branch_id(&self) -> &str {
        self.barrier.branch_id()
    }

    /// `action`, `compensate`, `try`, `confirm`, `cancel`, `prepare`, `commit`, `rollback`,
    /// or `msg` for a message's check.
    pub fn op(&self) -> &str {
        self.barrier.op()
    }

    /// True for a transactional message's check (DTM: `branch_id=00&op=msg`; Tandem's name
    /// `query_prepared`): answer it with the barrier's `query_prepared`.
    pub fn is_query_prepared(&self) -> bool {
        self.op() == "query_prepared"
            || (self.op() == barrier::ops::MSG && self.branch_id() == "00")
    }

    /// True for an op that undoes another (compensate, cancel, rollback).
    pub fn is_compensation(&self) -> bool {
        barrier::origin_op(self.op()).is_some()
    }

    /// The barrier of this call (on the backend's default table).
    pub fn barrier(&self) -> Barrier {
        self.barrier.clone()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BranchCall {
    type Rejection = Reply;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        BranchCall::from_parts(parts).map_err(Reply::BadCall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn identity_from_query_or_dtm_metadata() {
        let c = BranchCall::from_parts(&parts(
            "/debit?gid=g%201&trans_type=saga&branch_id=01&op=compensate",
            &[],
        ))
        .unwrap();
        assert_eq!((c.gid(), c.op()), ("g 1", "compensate"));
        assert!(c.is_compensation() && !c.is_query_prepared());
        let c = BranchCall::from_parts(&parts(
            "/check",
            &[
                ("dtm-gid", "g2"),
                ("dtm-trans_type", "msg"),
                ("dtm-branch_id", "00"),
                ("dtm-op", "msg"),
            ],
        ))
        .unwrap();
        assert!(c.is_query_prepared());
        let err =
            BranchCall::from_parts(&parts("/x?gid=g&trans_type=saga&op=action", &[])).unwrap_err();
        assert!(err.contains("branch_id"), "{err}");
        assert!(BranchCall::from_parts(&parts("/x", &[])).is_err());
    }
}
