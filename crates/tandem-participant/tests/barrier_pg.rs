//! The barrier on a real PostgreSQL (`TANDEM_TEST_PG`): idempotency, null compensation, no
//! hanging, rollback of the barrier rows with a failed business transaction, concurrent
//! duplicate deliveries, and the transactional-message check. Guards against the business code
//! running twice, or running after its compensation, whatever order the calls arrive in.

use std::sync::atomic::{AtomicU32, Ordering};

use tandem_participant::barrier::{
    self, postgres, Admission, Barrier, CallError, MsgStatus, Outcome, Skip,
};
use tokio_postgres::{Client, NoTls};

const EFFECTS: &str = "tandem_barrier_test_effects";

async fn connect(test: &str) -> Option<Client> {
    let url = tandem_participant::testenv::url("TANDEM_TEST_PG", test)?;
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    postgres::create_table_if_missing(&client, barrier::DEFAULT_TABLE)
        .await
        .expect("barrier table");
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(7411);
             CREATE TABLE IF NOT EXISTS {EFFECTS}(gid varchar(128), op varchar(45));"
        ))
        .await
        .expect("effects table");
    Some(client)
}

fn gid(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Delivers one call: the business code records (gid, op) in the effects table, and fails
/// after doing so when `fail` is set.
async fn deliver(
    client: &mut Client,
    trans_type: &str,
    gid: &str,
    op: &str,
    fail: bool,
) -> Result<Outcome<()>, CallError<String>> {
    let mut b = Barrier::new(trans_type, gid, "01", op).expect("barrier");
    let (g, o) = (gid.to_owned(), op.to_owned());
    postgres::call(&mut b, client, |tx| {
        Box::pin(async move {
            tx.execute(
                &format!("INSERT INTO {EFFECTS}(gid, op) VALUES ($1, $2)"),
                &[&g, &o],
            )
            .await
            .map_err(|e| e.to_string())?;
            if fail {
                return Err("injected business failure".to_owned());
            }
            Ok(())
        })
    })
    .await
}

async fn effects(client: &Client, gid: &str, op: &str) -> i64 {
    client
        .query_one(
            &format!("SELECT count(*) FROM {EFFECTS} WHERE gid = $1 AND op = $2"),
            &[&gid, &op],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn t10_duplicate_op_runs_business_once() {
    let Some(mut c) = connect("t10_duplicate_op_runs_business_once").await else {
        return;
    };
    let g = gid("pg-dup");
    for op in ["action", "compensate"] {
        assert_eq!(
            deliver(&mut c, "saga", &g, op, false).await.unwrap(),
            Outcome::Ran(())
        );
        for _ in 0..2 {
            assert_eq!(
                deliver(&mut c, "saga", &g, op, false).await.unwrap(),
                Outcome::Skipped(Skip::Duplicate)
            );
        }
        assert_eq!(effects(&c, &g, op).await, 1, "{op}");
    }
}

#[tokio::test]
async fn t11_compensation_first_is_a_null_compensation_and_refuses_the_late_action() {
    let Some(mut c) = connect("t11_null_compensation").await else {
        return;
    };
    for (trans_type, action, undo) in [
        ("saga", "action", "compensate"),
        ("tcc", "try", "cancel"),
        ("xa", "action", "rollback"),
        // Bug 5: `/v1/2pc` sends its first phase as op=prepare; a late prepare after the
        // rollback must be refused too.
        ("2pc", "prepare", "rollback"),
    ] {
        let g = gid("pg-null");
        let undone = deliver(&mut c, trans_type, &g, undo, false).await.unwrap();
        assert_eq!(undone, Outcome::Skipped(Skip::NullCompensation));
        assert!(!undone.is_failure());
        let late = deliver(&mut c, trans_type, &g, action, false)
            .await
            .unwrap();
        assert_eq!(late, Outcome::Skipped(Skip::Refused), "{trans_type}");
        assert!(late.is_failure());
        // A repeated compensation stays a successful no-op.
        assert_eq!(
            deliver(&mut c, trans_type, &g, undo, false).await.unwrap(),
            Outcome::Skipped(Skip::Duplicate)
        );
        assert_eq!(effects(&c, &g, action).await, 0);
        assert_eq!(effects(&c, &g, undo).await, 0);
    }
}

#[tokio::test]
async fn t12_business_error_rolls_the_barrier_back_and_a_retry_runs() {
    let Some(mut c) = connect("t12_business_error_rolls_back").await else {
        return;
    };
    let g = gid("pg-err");
    let err = deliver(&mut c, "saga", &g, "action", true).await;
    assert!(matches!(err, Err(CallError::Business(_))), "{err:?}");
    assert_eq!(effects(&c, &g, "action").await, 0);
    assert_eq!(
        deliver(&mut c, "saga", &g, "action", false).await.unwrap(),
        Outcome::Ran(())
    );
    assert_eq!(effects(&c, &g, "action").await, 1);
    // The compensation after a real action is not a null compensation: it runs.
    assert_eq!(
        deliver(&mut c, "saga", &g, "compensate", false)
            .await
            .unwrap(),
        Outcome::Ran(())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t13_concurrent_duplicate_deliveries_run_once() {
    let Some(c) = connect("t13_concurrent_duplicates").await else {
        return;
    };
    let g = gid("pg-conc");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let g = g.clone();
        tasks.push(tokio::spawn(async move {
            let mut own = connect("t13_concurrent_duplicates").await.expect("url");
            deliver(&mut own, "tcc", &g, "try", false).await.unwrap()
        }));
    }
    let mut ran = 0;
    for t in tasks {
        match t.await.unwrap() {
            Outcome::Ran(()) => ran += 1,
            other => assert_eq!(other, Outcome::Skipped(Skip::Duplicate)),
        }
    }
    assert_eq!(ran, 1);
    assert_eq!(effects(&c, &g, "try").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t14_racing_action_and_compensation_never_leave_a_hanging_action() {
    let Some(c) = connect("t14_racing_action_and_compensation").await else {
        return;
    };
    for round in 0..4 {
        let g = gid("pg-race");
        let mut tasks = Vec::new();
        for i in 0..8 {
            let g = g.clone();
            let op = if (i + round) % 2 == 0 {
                "action"
            } else {
                "compensate"
            };
            tasks.push(tokio::spawn(async move {
                let mut own = connect("t14").await.expect("url");
                deliver(&mut own, "saga", &g, op, false).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (a, u) = (
            effects(&c, &g, "action").await,
            effects(&c, &g, "compensate").await,
        );
        assert!(a <= 1 && u <= 1, "action {a}, compensate {u}");
        assert_eq!(
            a, u,
            "an action ran without its compensation (or the reverse)"
        );
    }
}

#[tokio::test]
async fn t15_query_prepared_sees_committed_and_blocks_uncommitted_messages() {
    let Some(mut c) = connect("t15_query_prepared").await else {
        return;
    };
    // Committed local transaction: the check says deliver.
    let g = gid("pg-msg-ok");
    let mut local = Barrier::for_msg(&g).unwrap();
    let tx = c.transaction().await.unwrap();
    assert_eq!(
        postgres::enter(&mut local, &tx).await.unwrap(),
        Admission::Run
    );
    tx.commit().await.unwrap();
    let check = Barrier::for_msg(&g).unwrap();
    assert_eq!(
        postgres::query_prepared(&check, &c).await.unwrap(),
        MsgStatus::Committed
    );
    // Never committed: the check says drop, and blocks the late local transaction.
    let g = gid("pg-msg-none");
    let check = Barrier::for_msg(&g).unwrap();
    assert_eq!(
        postgres::query_prepared(&check, &c).await.unwrap(),
        MsgStatus::RolledBack
    );
    assert_eq!(
        postgres::query_prepared(&check, &c).await.unwrap(),
        MsgStatus::RolledBack
    );
    let mut late = Barrier::for_msg(&g).unwrap();
    let tx = c.transaction().await.unwrap();
    assert_eq!(
        postgres::enter(&mut late, &tx).await.unwrap(),
        Admission::Skip(Skip::Refused)
    );
}

#[tokio::test]
async fn t16_custom_table_and_second_barrier_id() {
    let Some(mut c) = connect("t16_custom_table").await else {
        return;
    };
    let table = "tandem_test_barrier.barrier_custom";
    postgres::create_table_if_missing(&c, table).await.unwrap();
    let g = gid("pg-custom");
    let mut b = Barrier::new("saga", &g, "01", "action")
        .unwrap()
        .with_table(table)
        .unwrap();
    // Two local transactions in one handler call: barrier ids 01 and 02, both run.
    for _ in 0..2 {
        let tx = c.transaction().await.unwrap();
        assert_eq!(postgres::enter(&mut b, &tx).await.unwrap(), Admission::Run);
        tx.commit().await.unwrap();
    }
    let ids: Vec<String> = c
        .query(
            &format!("SELECT barrier_id FROM {table} WHERE gid = $1 ORDER BY barrier_id"),
            &[&g],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, ["01", "02"]);
}

/// Guards against: a confirm that runs after its cancel (or the other way round, or commit
/// and rollback): only the first second-phase op of a branch takes effect.
#[tokio::test]
async fn t17_second_phase_is_decided_once() {
    let Some(mut c) = connect("t17_second_phase_is_decided_once").await else {
        return;
    };
    for (trans_type, first_phase, first, second) in [
        ("tcc", "try", "cancel", "confirm"),
        ("tcc", "try", "confirm", "cancel"),
        ("xa", "prepare", "rollback", "commit"),
        ("xa", "prepare", "commit", "rollback"),
    ] {
        let g = gid("t17");
        assert_eq!(
            deliver(&mut c, trans_type, &g, first_phase, false)
                .await
                .unwrap(),
            Outcome::Ran(())
        );
        let decided = deliver(&mut c, trans_type, &g, first, false).await.unwrap();
        assert!(!decided.is_failure(), "{first}: {decided:?}");
        let late = deliver(&mut c, trans_type, &g, second, false)
            .await
            .unwrap();
        assert_eq!(
            late,
            Outcome::Skipped(Skip::Refused),
            "{first} then {second}"
        );
        assert_eq!(effects(&c, &g, second).await, 0, "{first} then {second}");
    }
}
