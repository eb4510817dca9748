//! The barrier on SQLite (a temporary database file, no server needed): idempotency, null
//! compensation, no hanging, rollback of the barrier rows with a failed business transaction,
//! concurrent duplicate deliveries from separate connections, and the transactional-message
//! check.

use std::path::Path;

use rusqlite::Connection;
use tandem_participant::barrier::{
    self, sqlite, Admission, Barrier, CallError, MsgStatus, Outcome, Skip,
};

fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy timeout");
    sqlite::create_table_if_missing(&conn, barrier::DEFAULT_SQLITE_TABLE).expect("barrier table");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS effects(gid TEXT, op TEXT)")
        .expect("effects table");
    conn
}

fn deliver(
    conn: &mut Connection,
    trans_type: &str,
    gid: &str,
    op: &str,
    fail: bool,
) -> Result<Outcome<()>, CallError<String>> {
    let mut b = Barrier::new(trans_type, gid, "01", op).expect("barrier");
    sqlite::call(&mut b, conn, |tx| {
        tx.execute("INSERT INTO effects(gid, op) VALUES (?1, ?2)", [gid, op])
            .map_err(|e| e.to_string())?;
        if fail {
            return Err("injected business failure".to_owned());
        }
        Ok(())
    })
}

fn effects(conn: &Connection, gid: &str, op: &str) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM effects WHERE gid = ?1 AND op = ?2",
        [gid, op],
        |r| r.get(0),
    )
    .expect("count")
}

#[test]
fn t10_duplicate_op_runs_business_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(&dir.path().join("p.db"));
    for op in ["action", "compensate"] {
        assert_eq!(
            deliver(&mut c, "saga", "g", op, false).unwrap(),
            Outcome::Ran(())
        );
        for _ in 0..2 {
            assert_eq!(
                deliver(&mut c, "saga", "g", op, false).unwrap(),
                Outcome::Skipped(Skip::Duplicate)
            );
        }
        assert_eq!(effects(&c, "g", op), 1, "{op}");
    }
}

#[test]
fn t11_compensation_first_is_a_null_compensation_and_refuses_the_late_action() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(&dir.path().join("p.db"));
    for (trans_type, action, undo) in [
        ("saga", "action", "compensate"),
        ("tcc", "try", "cancel"),
        ("xa", "action", "rollback"),
        // Bug 5: `/v1/2pc` sends its first phase as op=prepare; a late prepare after the
        // rollback must be refused too.
        ("2pc", "prepare", "rollback"),
    ] {
        let g = format!("g-{trans_type}");
        let undone = deliver(&mut c, trans_type, &g, undo, false).unwrap();
        assert_eq!(undone, Outcome::Skipped(Skip::NullCompensation));
        let late = deliver(&mut c, trans_type, &g, action, false).unwrap();
        assert_eq!(late, Outcome::Skipped(Skip::Refused), "{trans_type}");
        assert!(late.is_failure());
        assert_eq!(
            deliver(&mut c, trans_type, &g, undo, false).unwrap(),
            Outcome::Skipped(Skip::Duplicate)
        );
        assert_eq!(effects(&c, &g, action), 0);
        assert_eq!(effects(&c, &g, undo), 0);
    }
}

#[test]
fn t12_business_error_rolls_the_barrier_back_and_a_retry_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(&dir.path().join("p.db"));
    let err = deliver(&mut c, "saga", "g", "action", true);
    assert!(matches!(err, Err(CallError::Business(_))), "{err:?}");
    assert_eq!(effects(&c, "g", "action"), 0);
    assert_eq!(
        deliver(&mut c, "saga", "g", "action", false).unwrap(),
        Outcome::Ran(())
    );
    assert_eq!(effects(&c, "g", "action"), 1);
    assert_eq!(
        deliver(&mut c, "saga", "g", "compensate", false).unwrap(),
        Outcome::Ran(())
    );
}

#[test]
fn t13_concurrent_duplicate_deliveries_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let c = open(&path);
    let barrier = std::sync::Barrier::new(8);
    let outcomes: Vec<Outcome<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut own = open(&path);
                    barrier.wait();
                    deliver(&mut own, "tcc", "g", "try", false).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran = outcomes.iter().filter(|o| **o == Outcome::Ran(())).count();
    assert_eq!(ran, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| *o == Outcome::Ran(()) || *o == Outcome::Skipped(Skip::Duplicate)));
    assert_eq!(effects(&c, "g", "try"), 1);
}

#[test]
fn t15_query_prepared_sees_committed_and_blocks_uncommitted_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(&dir.path().join("p.db"));
    let mut local = Barrier::for_msg("ok").unwrap();
    let tx = c.transaction().unwrap();
    assert_eq!(sqlite::enter(&mut local, &tx).unwrap(), Admission::Run);
    tx.commit().unwrap();
    assert_eq!(
        sqlite::query_prepared(&Barrier::for_msg("ok").unwrap(), &c).unwrap(),
        MsgStatus::Committed
    );
    let check = Barrier::for_msg("none").unwrap();
    for _ in 0..2 {
        assert_eq!(
            sqlite::query_prepared(&check, &c).unwrap(),
            MsgStatus::RolledBack
        );
    }
    let mut late = Barrier::for_msg("none").unwrap();
    let tx = c.transaction().unwrap();
    assert_eq!(
        sqlite::enter(&mut late, &tx).unwrap(),
        Admission::Skip(Skip::Refused)
    );
}

#[test]
fn t14_racing_action_and_compensation_never_leave_a_hanging_action() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let c = open(&path);
    for round in 0..4 {
        let g = format!("race-{round}");
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for i in 0..8 {
                let (g, path, start) = (&g, &path, &start);
                s.spawn(move || {
                    let op = if (i + round) % 2 == 0 {
                        "action"
                    } else {
                        "compensate"
                    };
                    let mut own = open(path);
                    start.wait();
                    deliver(&mut own, "saga", g, op, false).unwrap();
                });
            }
        });
        let (a, u) = (effects(&c, &g, "action"), effects(&c, &g, "compensate"));
        assert!(a <= 1 && u <= 1, "action {a}, compensate {u}");
        assert_eq!(
            a, u,
            "an action ran without its compensation (or the reverse)"
        );
    }
}

#[test]
fn t16_custom_table_and_second_barrier_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(&dir.path().join("p.db"));
    sqlite::create_table_if_missing(&c, "main.my_barrier").unwrap();
    let mut b = Barrier::new("saga", "g", "01", "action")
        .unwrap()
        .with_table("main.my_barrier")
        .unwrap();
    for _ in 0..2 {
        let tx = c.transaction().unwrap();
        assert_eq!(sqlite::enter(&mut b, &tx).unwrap(), Admission::Run);
        tx.commit().unwrap();
    }
    let ids: Vec<String> = c
        .prepare("SELECT barrier_id FROM my_barrier WHERE gid = 'g' ORDER BY barrier_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["01", "02"]);
    assert!(Barrier::new("saga", "g", "01", "action")
        .unwrap()
        .with_table("my barrier; DROP TABLE effects")
        .is_err());
}

/// Guards against: a confirm that runs after its cancel (or a cancel after its confirm,
/// a commit after its rollback, ...): the coordinator decides a second phase once, so the
/// barrier lets only the first of the two take effect and refuses the other.
#[test]
fn t17_second_phase_is_decided_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(&dir.path().join("p.db"));
    for (trans_type, first_phase, first, second) in [
        ("tcc", "try", "cancel", "confirm"),
        ("tcc", "try", "confirm", "cancel"),
        ("xa", "prepare", "rollback", "commit"),
        ("xa", "prepare", "commit", "rollback"),
    ] {
        let g = format!("g17-{first}-{second}");
        assert_eq!(
            deliver(&mut c, trans_type, &g, first_phase, false).unwrap(),
            Outcome::Ran(())
        );
        let decided = deliver(&mut c, trans_type, &g, first, false).unwrap();
        assert!(!decided.is_failure(), "{first}: {decided:?}");
        let late = deliver(&mut c, trans_type, &g, second, false).unwrap();
        assert_eq!(
            late,
            Outcome::Skipped(Skip::Refused),
            "{first} then {second}"
        );
        assert!(late.is_failure());
        assert_eq!(effects(&c, &g, second), 0, "{first} then {second}");
        // The first stays idempotent.
        assert_eq!(
            deliver(&mut c, trans_type, &g, first, false).unwrap(),
            Outcome::Skipped(Skip::Duplicate)
        );
    }
}
