//! Message topics, shared by the DTM API (HTTP and gRPC) and `/v1`: subscribe,
//! unsubscribe, delete, and the fan-out of a message step whose action is `topic://NAME`.
//!
//! Topics live in the store (see `tandem_store::topic`), so they survive restarts and every
//! coordinator on the same store sees them. A change reads the topic, edits it and writes
//! it back only if nobody changed it meanwhile (compare-and-set on its version), retried a
//! few times: concurrent subscriptions are never lost.
//!
//! Fan-out follows DTM: step `i` (1-based) of a message sent to a topic becomes one
//! delivery per subscriber, branch ids `ii-01`, `ii-02`, … in subscription order (a topic
//! with one subscriber gives plain `ii`, as in DTM). A topic that does not exist, or has no
//! subscriber, is refused when the message is prepared or submitted.

use std::collections::HashMap;

use axum::http::StatusCode;
use tandem_engine::EngineError;
use tandem_store::topic::SUBSCRIBERS_MAX;
use tandem_store::{StoreError, Subscriber, Topic};

use crate::error::ApiError;
use crate::AppState;

/// The prefix of a message step's action that names a topic.
pub const TOPIC_PREFIX: &str = "topic://";
/// Longest topic name, in bytes.
pub const TOPIC_NAME_LEN_MAX: usize = 128;
/// Longest remark, in bytes.
pub const REMARK_LEN_MAX: usize = 256;
/// Compare-and-set attempts before a change gives up (another writer kept winning).
const CAS_ATTEMPTS: usize = 8;

fn conflict(code: &'static str, m: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, m)
}

/// Checks a topic name: 1..=128 bytes, no whitespace or control characters.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > TOPIC_NAME_LEN_MAX
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::bad_request(
            "invalid_topic",
            format!("topic {name:?} must be 1..={TOPIC_NAME_LEN_MAX} bytes without spaces"),
        ));
    }
    Ok(())
}

fn store_err(e: EngineError) -> ApiError {
    match e {
        EngineError::Store(StoreError::Full(m)) => conflict("topics_full", m),
        e => e.into(),
    }
}

/// Reads `name`, applies `edit` and writes it back unless someone changed it meanwhile.
/// `edit` gets the stored topic (`None`: none yet) and returns the new subscriber list, or
/// `None` to delete the topic.
async fn change(
    s: &AppState,
    name: &str,
    edit: impl Fn(Option<&Topic>) -> Result<Option<Vec<Subscriber>>, ApiError>,
) -> Result<(), ApiError> {
    for _ in 0..CAS_ATTEMPTS {
        let old = s.coord.topic(name).await.map_err(store_err)?;
        let now = s.coord.now();
        let Some(subscribers) = edit(old.as_ref())? else {
            s.coord.delete_topic(name).await.map_err(store_err)?;
            return Ok(());
        };
        let expected = old.as_ref().map_or(0, |t| t.version);
        let new = Topic {
            name: name.to_string(),
            subscribers,
            version: expected + 1,
            created_at: old.as_ref().map_or(now, |t| t.created_at),
            updated_at: now,
        };
        if s.coord.put_topic(&new, expected).await.map_err(store_err)? {
            return Ok(());
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!("topic {name:?} kept changing under this request; try again"),
    ))
}

/// Adds `url` to `topic`'s subscribers (creating the topic).
pub async fn subscribe(s: &AppState, topic: &str, url: &str, remark: &str) -> Result<(), ApiError> {
    check_name(topic)?;
    if url.is_empty() {
        return Err(ApiError::bad_request("invalid_url", "url is missing"));
    }
    crate::validate::branch_url(&s.cfg, url)?;
    if remark.len() > REMARK_LEN_MAX {
        return Err(ApiError::bad_request(
            "invalid_remark",
            format!("remark is over {REMARK_LEN_MAX} bytes"),
        ));
    }
    change(s, topic, |old| {
        let mut subs = old.map(|t| t.subscribers.clone()).unwrap_or_default();
        if subs.iter().any(|x| x.url == url) {
            return Err(conflict(
                "subscriber_exists",
                format!("{url} already subscribes to {topic}"),
            ));
        }
        if subs.len() >= SUBSCRIBERS_MAX.min(s.cfg.branches_max) {
            return Err(conflict(
                "too_many_subscribers",
                format!("topic {topic} has the most subscribers allowed"),
            ));
        }
        subs.push(Subscriber {
            url: url.to_string(),
            remark: remark.to_string(),
        });
        Ok(Some(subs))
    })
    .await
}

/// Removes `url` from `topic`'s subscribers (the topic stays, possibly empty, as in DTM).
pub async fn unsubscribe(s: &AppState, topic: &str, url: &str) -> Result<(), ApiError> {
    check_name(topic)?;
    if url.is_empty() {
        return Err(ApiError::bad_request("invalid_url", "url is missing"));
    }
    change(s, topic, |old| {
        let old = old.ok_or_else(|| ApiError::not_found(format!("no topic {topic}")))?;
        let subs: Vec<Subscriber> = old
            .subscribers
            .iter()
            .filter(|x| x.url != url)
            .cloned()
            .collect();
        if subs.len() == old.subscribers.len() {
            return Err(ApiError::not_found(format!(
                "{url} does not subscribe to {topic}"
            )));
        }
        Ok(Some(subs))
    })
    .await
}

/// Deletes `topic` and its subscriptions.
pub async fn delete(s: &AppState, topic: &str) -> Result<(), ApiError> {
    check_name(topic)?;
    if !s.coord.delete_topic(topic).await.map_err(store_err)? {
        return Err(ApiError::not_found(format!("no topic {topic}")));
    }
    Ok(())
}

/// The subscriber URLs of every topic the message `steps` name (`topic://NAME` actions).
pub async fn resolve<'a>(
    s: &AppState,
    actions: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut out = HashMap::new();
    for action in actions {
        let Some(name) = action.strip_prefix(TOPIC_PREFIX) else {
            continue;
        };
        if out.contains_key(name) {
            continue;
        }
        let urls: Vec<String> = s
            .coord
            .topic(name)
            .await
            .map_err(store_err)?
            .map(|t| t.subscribers.into_iter().map(|x| x.url).collect())
            .unwrap_or_default();
        if urls.is_empty() {
            return Err(ApiError::bad_request(
                "unknown_topic",
                format!("topic {name:?} does not exist or has no subscriber (subscribe first)"),
            ));
        }
        out.insert(name.to_string(), urls);
    }
    Ok(out)
}

/// Branch ids of step `step` (0-based) fanned out to `n` subscribers.
pub fn fan_out_ids(step: usize, n: usize) -> Vec<String> {
    if n == 1 {
        return vec![format!("{:02}", step + 1)];
    }
    (1..=n).map(|j| format!("{:02}-{j:02}", step + 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_ids_follow_dtm() {
        assert_eq!(fan_out_ids(0, 2), vec!["01-01", "01-02"]);
        assert_eq!(fan_out_ids(2, 1), vec!["03"]);
        assert!(check_name("orders.created").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
    }
}
