//! The barrier table: its validated name (it is spliced into SQL, so only plain identifiers
//! pass) and the DDL that creates it, column for column DTM's `dtm_barrier.barrier` with the
//! same unique key `(gid, branch_id, op, barrier_id)`.

use super::error::{Error, Result};

/// Default table on PostgreSQL and MySQL/MariaDB, DTM's.
pub const DEFAULT_TABLE: &str = "dtm_barrier.barrier";
/// Default table on SQLite (one database per file, no schemas).
pub const DEFAULT_SQLITE_TABLE: &str = "barrier";

/// A validated `name` or `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    schema: Option<String>,
    name: String,
}

impl Table {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        let ident = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let (schema, name) = match s.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, s),
        };
        if !ident(name) || !schema.is_none_or(ident) {
            return Err(Error::InvalidTable(s.to_owned()));
        }
        Ok(Table {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The schema (PostgreSQL) or database (MySQL) part, if any.
    pub(crate) fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The bare table name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `schema.name` or `name`, for SQL.
    pub(crate) fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The table named by `chosen`, or `default` (a valid constant).
    pub(crate) fn or_default(chosen: &Option<Table>, default: &str) -> Result<Table> {
        match chosen {
            Some(t) => Ok(t.clone()),
            None => Table::parse(default),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers() {
        assert_eq!(
            Table::parse("dtm_barrier.barrier").unwrap().qualified(),
            "dtm_barrier.barrier"
        );
        assert_eq!(Table::parse("barrier").unwrap().schema(), None);
        for bad in [
            "", ".", "a.", ".b", "a.b.c", "a;drop", "a b", "a-b", "\"a\"",
        ] {
            assert!(Table::parse(bad).is_err(), "{bad:?}");
        }
    }
}
