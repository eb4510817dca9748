//! `/v1` transaction options: the client's [`TxOptions`] (every field optional) completed into
//! the core's [`Options`] (which `tandem_core::spec` checks), and back for display.
//!
//! Invariants: defaults never contradict what the client set (a small `retry_max_ms` alone
//! lowers the default interval); branch headers are sorted by name (so the same request always
//! yields the same options — resubmission stays idempotent); `wait_result` is never stored (it
//! is how one request waits, not what the transaction is).

use tandem_core::Options;

use super::model::TxOptions;

impl From<&Options> for TxOptions {
    fn from(o: &Options) -> TxOptions {
        TxOptions {
            timeout_to_fail_ms: o.timeout_to_fail_ms,
            request_timeout_ms: o.request_timeout_ms,
            retry_interval_ms: Some(o.retry_interval_ms),
            retry_max_ms: Some(o.retry_max_ms),
            retry_limit: Some(o.retry_limit),
            concurrent: Some(o.concurrent),
            orders: Some(o.orders.clone()),
            concurrency_max: Some(o.concurrency_max),
            branch_headers: Some(o.branch_headers.iter().cloned().collect()),
            query_prepared_after_ms: Some(o.query_prepared_after_ms),
        }
    }
}

/// Fills in the defaults for what the client left out; `tandem_core::spec` checks the result.
pub fn options(o: &TxOptions) -> Options {
    let d = Options::default();
    let orders = o.orders.clone().unwrap_or_default();
    Options {
        timeout_to_fail_ms: o.timeout_to_fail_ms,
        request_timeout_ms: o.request_timeout_ms,
        retry_interval_ms: o
            .retry_interval_ms
            .unwrap_or(d.retry_interval_ms.min(o.retry_max_ms.unwrap_or(u64::MAX))),
        retry_max_ms: o
            .retry_max_ms
            .unwrap_or(d.retry_max_ms.max(o.retry_interval_ms.unwrap_or(0))),
        retry_limit: o.retry_limit.unwrap_or(d.retry_limit),
        concurrent: o.concurrent.unwrap_or(!orders.is_empty()),
        orders,
        concurrency_max: o.concurrency_max.unwrap_or(d.concurrency_max),
        wait_result: false,
        // A BTreeMap: sorted by name, so the same request always gives the same options.
        branch_headers: o
            .branch_headers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        query_prepared_after_ms: o
            .query_prepared_after_ms
            .unwrap_or(d.query_prepared_after_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_defaults_never_contradict_the_client() {
        let o = |json: serde_json::Value| {
            let t: TxOptions = serde_json::from_value(json).map_err(|e| e.to_string())?;
            let o = options(&t);
            o.check().map_err(|e| e.to_string())?;
            Ok::<_, String>(o)
        };
        let d = o(serde_json::json!({})).unwrap();
        assert_eq!(d, Options::default());
        let small = o(serde_json::json!({"retry_max_ms": 200})).unwrap();
        assert_eq!((small.retry_interval_ms, small.retry_max_ms), (200, 200));
        let big = o(serde_json::json!({"retry_interval_ms": 90_000})).unwrap();
        assert_eq!((big.retry_interval_ms, big.retry_max_ms), (90_000, 90_000));
        assert!(o(serde_json::json!({"retry_interval_ms": 10, "retry_max_ms": 5})).is_err());
        assert!(o(serde_json::json!({"retry_limit": 0})).is_err());
        let dag = o(serde_json::json!({"orders": [[], [0]]})).unwrap();
        assert!(dag.concurrent);
        let headers = o(serde_json::json!({"branch_headers": {"b": "2", "a": "1"}})).unwrap();
        assert_eq!(
            headers.branch_headers,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(o(serde_json::json!({"branch_headers": {"a": "x\ny"}})).is_err());
    }
}
