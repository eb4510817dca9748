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
//!
//! The test runner (nextest) hides the output of passing tests, so a skip also appends
//! `test<TAB>variable` to the file named by `TANDEM_SKIP_LOG` when that is set;
//! `scripts/test` sets it and ends with one line naming every skipped test and why.

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
            record_skip(test, var);
            None
        }
    }
}

/// Appends `test<TAB>var` to `$TANDEM_SKIP_LOG`, when set (one short append per skip, so
/// tests running in parallel processes do not mix their lines).
fn record_skip(test: &str, var: &str) {
    let Some(path) = std::env::var_os("TANDEM_SKIP_LOG") else {
        return;
    };
    // The test binary (`barrier_pg-0123abcd` → `barrier_pg`) tells same-named tests apart.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => s,
        });
    let test = match binary {
        Some(b) => format!("{b}::{test}"),
        None => test.to_string(),
    };
    if let Err(e) = append_skip(std::path::Path::new(&path), &test, var) {
        eprintln!(
            "(could not record the skip in {}: {e})",
            path.to_string_lossy()
        );
    }
}

fn append_skip(path: &std::path::Path, test: &str, var: &str) -> std::io::Result<()> {
    use std::io::Write;
    let line = format!("{test}\t{var}\n");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
}

/// True when running under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

#[cfg(test)]
mod tests {
    /// Skips from several tests land in one file, a line each, for scripts/test's summary.
    #[test]
    fn skips_are_recorded_one_line_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("skipped.tsv");
        super::append_skip(&path, "barrier_pg::a", "TANDEM_TEST_PG").expect("append");
        super::append_skip(&path, "bank::b", "TANDEM_TEST_MYSQL").expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "barrier_pg::a\tTANDEM_TEST_PG\nbank::b\tTANDEM_TEST_MYSQL\n"
        );
    }
}
