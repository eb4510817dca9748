//! Errors of the barrier: invalid input (branch identity, table name), the database's own
//! errors per backend, and, for the `call` helpers, the business closure's error kept apart
//! so the handler can tell "my code failed" from "the barrier failed".

/// Result of the barrier operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the barrier itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// trans_type, gid, branch_id or op is missing or too long for the table.
    #[error("invalid branch identity: {0}")]
    InvalidBranch(String),
    /// The table name is not `name` or `schema.name` of ASCII letters, digits and underscores.
    #[error("invalid barrier table name {0:?}: expected `name` or `schema.name` ([A-Za-z0-9_])")]
    InvalidTable(String),
    /// The insert found an existing row, but reading it back found none (the table was
    /// changed under us, or the transaction isolation hides committed rows).
    #[error("barrier row {gid}/{branch_id}/{op}/{barrier_id} conflicted but cannot be read back")]
    RowVanished {
        /// Global transaction id.
        gid: String,
        /// Branch id.
        branch_id: String,
        /// Op of the row.
        op: String,
        /// Barrier id of the row.
        barrier_id: String,
    },
    /// PostgreSQL said no.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// MySQL/MariaDB said no.
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The error of a `call` helper: the barrier (or begin/commit) failed, or the business code
/// did. Either way the local transaction was rolled back, barrier rows included.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The barrier, begin, commit or rollback failed.
    #[error(transparent)]
    Barrier(#[from] Error),
    /// The business closure returned this error.
    #[error("business: {0}")]
    Business(E),
}
