//! Message topics: a name and the URLs subscribed to it, kept by the store beside the
//! transactions (DTM keeps them in its KV store under the category `topics`).
//!
//! Changes are compare-and-set on [`Topic::version`] ([`crate::Store::put_topic`]), so two
//! coordinators (or two requests) subscribing at once never lose one another's subscriber:
//! the loser reads again and retries. A topic write is durable before it is acknowledged,
//! like a synced transaction write. Encoded as `[format version][postcard(Topic)]`.

use serde::{Deserialize, Serialize};
use tandem_core::Timestamp;

use crate::{Result, StoreError};

/// Most topics a store keeps.
pub const TOPICS_MAX: usize = 10_000;
/// Most subscribers of one topic.
pub const SUBSCRIBERS_MAX: usize = 256;

/// The format version of an encoded topic.
pub const TOPIC_FORMAT: u8 = 1;

/// One subscriber: where a message to the topic is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    pub url: String,
    pub remark: String,
}

/// A topic and its subscribers, in subscription order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub subscribers: Vec<Subscriber>,
    /// 1 when created, +1 with every change.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Topic {
    /// Checks the bounds every stored topic keeps.
    pub fn check(&self) -> Result<()> {
        if self.name.is_empty() || self.subscribers.len() > SUBSCRIBERS_MAX || self.version == 0 {
            return Err(StoreError::Corrupt(format!(
                "topic {:?}: {} subscribers, version {}",
                self.name,
                self.subscribers.len(),
                self.version
            )));
        }
        Ok(())
    }
}

pub(crate) fn encode(t: &Topic) -> Result<Vec<u8>> {
    t.check()?;
    postcard::to_allocvec(&(TOPIC_FORMAT, t))
        .map_err(|e| StoreError::Corrupt(format!("encoding topic {:?}: {e}", t.name)))
}

pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<Topic> {
    let bad = |what: String| StoreError::Corrupt(format!("topic {name:?}: {what}"));
    match bytes.first() {
        Some(&TOPIC_FORMAT) => {}
        Some(v) => {
            return Err(bad(format!(
                "format version {v} is not known to this build"
            )))
        }
        None => return Err(bad("empty".into())),
    }
    let t: Topic = postcard::from_bytes(&bytes[1..]).map_err(|e| bad(e.to_string()))?;
    t.check()?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() -> Result<()> {
        let t = Topic {
            name: "orders".into(),
            subscribers: vec![Subscriber {
                url: "http://a/b".into(),
                remark: "r".into(),
            }],
            version: 3,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
        };
        let mut bytes = encode(&t)?;
        assert_eq!(decode("orders", &bytes)?, t);
        bytes[0] = 9;
        assert!(decode("orders", &bytes).is_err());
        assert!(decode("orders", &[]).is_err());
        Ok(())
    }
}
