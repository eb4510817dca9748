//! How database tests find their servers.
//!
//! Each database is named by an environment variable holding its URL:
//! - `TANDEM_TEST_PG` (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! - `TANDEM_TEST_PG2` (a second PostgreSQL database, e.g. `.../test2`, for transactions across
//!   two databases),
//! - `TANDEM_TEST_MYSQL` (e.g. `mysql://root@127.0.0.1:3306/test`).
//!
//! Outside CI an unset variable makes the test print a loud `SKIPPED` line and pass; with
//! `CI=true` an unset variable is a failure, so CI can never go green without the databases.

/// The URL in `var`, or `None` after printing a loud SKIPPED line (outside CI).
///
/// # Panics
/// When `CI=true` and `var` is unset or empty: a database test must not silently skip in CI.
pub fn url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if in_ci() {
                panic!("{test}: {var} is not set, and CI=true: the database tests must run in CI");
            }
            eprintln!(
                "\n*** SKIPPED {test}: set {var} to run it (see README, 'Database tests') ***\n"
            );
            None
        }
    }
}

/// True when running under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}
