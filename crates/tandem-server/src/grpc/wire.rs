//! DTM's gRPC messages onto the requests the HTTP API parses from JSON, so both APIs share
//! one set of checks and one implementation ([`crate::dtm::service`]).
//!
//! `DtmRequest` → [`TransReq`]: `Steps` is the JSON the HTTP API takes in `steps`,
//! `BinPayloads` are the payloads as bytes (kept as they are: for a gRPC branch they are
//! the encoded request message), seconds stay seconds, `protocol` is `grpc`. Negative
//! durations or limits are refused rather than guessed at.

use tandem_core::Transaction;

use super::pb;
use crate::dtm::request::{RegisterFields, Step, TransReq};
use crate::error::ApiError;

fn bad(m: String) -> ApiError {
    ApiError::bad_request("invalid_options", m)
}

fn non_negative(name: &str, v: i64) -> Result<Option<u64>, ApiError> {
    u64::try_from(v)
        .map(Some)
        .map_err(|_| bad(format!("{name} must not be negative, got {v}")))
}

/// The HTTP API's request for `r`.
pub fn trans_req(r: pb::DtmRequest) -> Result<TransReq, ApiError> {
    let o = r.trans_options.unwrap_or_default();
    let steps: Option<Vec<Option<Step>>> = match r.steps.trim() {
        "" => None,
        json => serde_json::from_str(json).map_err(|e| {
            ApiError::bad_request(
                "invalid_steps",
                format!("Steps is not the JSON list of steps DTM sends: {e}"),
            )
        })?,
    };
    let text = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(TransReq {
        gid: Some(r.gid),
        trans_type: Some(r.trans_type),
        steps,
        payloads: None,
        bin_payloads: Some(r.bin_payloads),
        custom_data: text(r.customed_data),
        query_prepared: text(r.query_prepared),
        protocol: Some("grpc".into()),
        wait_result: Some(o.wait_result),
        timeout_to_fail: non_negative("TimeoutToFail", o.timeout_to_fail)?,
        request_timeout: non_negative("RequestTimeout", o.request_timeout)?,
        retry_interval: non_negative("RetryInterval", o.retry_interval)?,
        retry_limit: non_negative("RetryLimit", o.retry_limit)?,
        branch_headers: Some(o.branch_headers).filter(|h| !h.is_empty()),
        concurrent: None,
        rollback_reason: text(r.rollback_reason),
        req_extra: Some(r.req_extra).filter(|m| !m.is_empty()),
    })
}

/// The fields of a `RegisterBranch`: ids from the message, URLs from `Data`.
pub fn register_fields(r: &pb::DtmBranchRequest) -> RegisterFields<'_> {
    let data = |k: &str| r.data.get(k).map(String::as_str).unwrap_or("");
    RegisterFields {
        gid: &r.gid,
        branch_id: &r.branch_id,
        trans_type: &r.trans_type,
        confirm: data("confirm"),
        cancel: data("cancel"),
        url: data("url"),
        // DTM's workflow client sends the step's op and status in Data (and leaves Op empty).
        op: match data("op") {
            "" => &r.op,
            op => op,
        },
        status: data("status"),
    }
}

/// A workflow and its recorded steps as `PrepareWorkflow` answers them.
pub fn progresses(tx: &Transaction) -> pb::DtmProgressesReply {
    pb::DtmProgressesReply {
        transaction: Some(pb::DtmTransaction {
            gid: tx.gid.clone(),
            status: tx.status.as_str().to_string(),
            rollback_reason: tx.fail_reason.clone().unwrap_or_default(),
            result: tx.result.clone().unwrap_or_default(),
        }),
        progresses: crate::workflow::steps(tx)
            .map(|b| pb::DtmProgress {
                status: b.status.as_str().to_string(),
                bin_data: b.payload.to_vec(),
                branch_id: b.branch_id.clone(),
                op: b.op.as_str().to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerConfig;
    use tandem_core::{Op, Timestamp, TxKind};

    /// What dtmgrpc sends for a saga: Steps as JSON, one binary payload per step, options
    /// in seconds. Guards against re-encoding the payloads (they are protobuf, not text).
    #[test]
    fn a_grpc_saga_maps_onto_the_same_transaction_as_http() -> Result<(), ApiError> {
        let proto_payload = vec![0x0a, 0x03, 0xff, 0x00, 0x80];
        let req = pb::DtmRequest {
            gid: "g1".into(),
            trans_type: "saga".into(),
            trans_options: Some(pb::DtmTransOptions {
                wait_result: true,
                timeout_to_fail: 7,
                retry_interval: 2,
                branch_headers: [("x-tenant".to_string(), "a".to_string())].into(),
                request_timeout: 3,
                retry_limit: 5,
            }),
            bin_payloads: vec![proto_payload.clone(), vec![]],
            steps: r#"[{"action":"localhost:9/busi.Busi/TransOut","compensate":"localhost:9/busi.Busi/TransOutRevert"},{"action":"grpcs://b:443/busi.Busi/TransIn","compensate":""}]"#.into(),
            ..Default::default()
        };
        let tx = trans_req(req)?.to_transaction(
            &ServerConfig::default(),
            &tandem_core::Limits::default(),
            Timestamp(1),
            false,
        )?;
        assert_eq!(tx.kind, TxKind::Saga);
        assert_eq!(tx.branches.len(), 4);
        assert_eq!(tx.branches[0].op, Op::Action);
        assert_eq!(tx.branches[0].target, "localhost:9/busi.Busi/TransOut");
        assert_eq!(
            &tx.branches[0].payload[..],
            proto_payload,
            "bytes kept as they are"
        );
        assert_eq!(&tx.branches[1].payload[..], proto_payload);
        assert_eq!(&tx.branches[2].payload[..], b"");
        let o = &tx.options;
        assert!(o.wait_result);
        assert_eq!(o.timeout_to_fail_ms, Some(7000));
        assert_eq!(o.request_timeout_ms, Some(3000));
        assert_eq!((o.retry_interval_ms, o.retry_limit), (2000, 5));
        assert_eq!(o.branch_headers, vec![("x-tenant".into(), "a".into())]);
        Ok(())
    }

    #[test]
    fn malformed_requests_are_named() {
        let with = |f: &dyn Fn(&mut pb::DtmRequest)| {
            let mut r = pb::DtmRequest {
                gid: "g".into(),
                trans_type: "saga".into(),
                steps: r#"[{"action":"","compensate":""}]"#.into(),
                ..Default::default()
            };
            f(&mut r);
            trans_req(r).and_then(|t| {
                t.to_transaction(
                    &ServerConfig::default(),
                    &tandem_core::Limits::default(),
                    Timestamp(1),
                    false,
                )
            })
        };
        assert!(with(&|_| {}).is_ok());
        let err = |f: &dyn Fn(&mut pb::DtmRequest)| match with(f) {
            Err(e) => (e.status.as_u16(), e.message),
            Ok(_) => (200, String::new()),
        };
        assert_eq!(err(&|r| r.steps = "{not json".into()).0, 400);
        assert_eq!(err(&|r| r.gid = "bad gid!".into()).0, 400);
        assert_eq!(err(&|r| r.trans_type = "nope".into()).0, 400);
        assert_eq!(
            err(&|r| r.steps = r#"[{"action":"ftp://x/y","compensate":""}]"#.into()).0,
            400
        );
        let (code, msg) = err(&|r| {
            r.trans_options = Some(pb::DtmTransOptions {
                timeout_to_fail: -1,
                ..Default::default()
            })
        });
        assert_eq!(code, 400);
        assert!(msg.contains("TimeoutToFail"), "{msg}");
        assert_eq!(err(&|r| r.bin_payloads = vec![vec![], vec![]]).0, 400);
    }

    #[test]
    fn register_branch_reads_urls_from_data() {
        let r = pb::DtmBranchRequest {
            gid: "g".into(),
            trans_type: "tcc".into(),
            branch_id: "01".into(),
            op: String::new(),
            data: [
                ("confirm".to_string(), "h:1/a.B/Confirm".to_string()),
                ("cancel".to_string(), "h:1/a.B/Cancel".to_string()),
            ]
            .into(),
            busi_payload: vec![1, 2],
        };
        let f = register_fields(&r);
        assert_eq!((f.gid, f.branch_id, f.trans_type), ("g", "01", "tcc"));
        assert_eq!((f.confirm, f.cancel), ("h:1/a.B/Confirm", "h:1/a.B/Cancel"));
    }
}
