//! Message topics in redb: table `topics`, name → encoded [`Topic`]. Topics change rarely
//! and each change must be durable before it is acknowledged, so a change is one redb write
//! transaction committed with `Durability::Immediate` (not the log: a topic is not a
//! transaction snapshot, and the log's newest-version-per-gid rule does not fit a
//! compare-and-set). Such a commit also makes the applier's earlier non-durable commits
//! durable, which is harmless: they hold only records already durable in the log.

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::redb_err;
use crate::topic::{self, Topic, TOPICS_MAX};
use crate::{Result, StoreError};

pub(crate) const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");

pub(crate) fn all(db: &Database) -> Result<Vec<Topic>> {
    let rtx = db.begin_read().map_err(redb_err)?;
    let table = match rtx.open_table(TOPICS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(redb_err(e)),
    };
    let mut out = Vec::new();
    for row in redb::ReadableTable::iter(&table).map_err(redb_err)? {
        let (k, v) = row.map_err(redb_err)?;
        out.push(topic::decode(k.value(), v.value())?);
    }
    Ok(out)
}

pub(crate) fn get(db: &Database, name: &str) -> Result<Option<Topic>> {
    let rtx = db.begin_read().map_err(redb_err)?;
    let table = match rtx.open_table(TOPICS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(redb_err(e)),
    };
    let found = redb::ReadableTable::get(&table, name).map_err(redb_err)?;
    found.map(|v| topic::decode(name, v.value())).transpose()
}

pub(crate) fn put(db: &Database, t: &Topic, expected: u64) -> Result<bool> {
    let bytes = topic::encode(t)?;
    let mut wtx = db.begin_write().map_err(redb_err)?;
    wtx.set_durability(Durability::Immediate)
        .map_err(redb_err)?;
    {
        let mut table = wtx.open_table(TOPICS).map_err(redb_err)?;
        let stored = match redb::ReadableTable::get(&table, t.name.as_str()).map_err(redb_err)? {
            Some(v) => topic::decode(&t.name, v.value())?.version,
            None => 0,
        };
        if stored != expected {
            return Ok(false);
        }
        if stored == 0
            && redb::ReadableTableMetadata::len(&table).map_err(redb_err)? as usize >= TOPICS_MAX
        {
            return Err(StoreError::Full(format!(
                "{TOPICS_MAX} topics, the most a store keeps"
            )));
        }
        table
            .insert(t.name.as_str(), bytes.as_slice())
            .map_err(redb_err)?;
    }
    wtx.commit().map_err(redb_err)?;
    Ok(true)
}

pub(crate) fn delete(db: &Database, name: &str) -> Result<bool> {
    let mut wtx = db.begin_write().map_err(redb_err)?;
    wtx.set_durability(Durability::Immediate)
        .map_err(redb_err)?;
    let removed = {
        let mut table = wtx.open_table(TOPICS).map_err(redb_err)?;
        let removed = table.remove(name).map_err(redb_err)?.is_some();
        removed
    };
    wtx.commit().map_err(redb_err)?;
    Ok(removed)
}
