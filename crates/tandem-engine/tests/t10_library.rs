//! The library API end to end on a real embedded log: sagas and 2PC with in-process
//! participants, retries, parking and operator actions, timeouts, restart recovery, gid
//! rules and backpressure.
//!
//! Guards against: an outcome reported before it is logged, a compensation for a step that
//! never started, retries that never stop, a parked transaction lost across a restart, a
//! resubmitted gid running twice.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tandem_engine::tandem_core::{BranchStatus, Op, TxStatus};
use tandem_engine::{
    BranchError, CallRequest, Coordinator, EngineConfig, EngineError, Resource, SagaStep, Vote,
};

type Answers = VecDeque<Result<(), BranchError>>;

/// A participant whose answers are scripted per op; records every call.
#[derive(Default)]
struct Scripted {
    script: Mutex<HashMap<(String, &'static str), Answers>>,
    calls: Mutex<Vec<String>>,
    delays: Mutex<HashMap<String, Duration>>,
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        Arc::new(Scripted::default())
    }
    /// The next answers for `gid`'s op (then success).
    fn answers(&self, gid: &str, op: &'static str, answers: Vec<Result<(), BranchError>>) {
        self.script
            .lock()
            .unwrap()
            .insert((gid.into(), op), answers.into());
    }
    /// Every call of `gid` takes this long before it answers.
    fn delay(&self, gid: &str, d: Duration) {
        self.delays.lock().unwrap().insert(gid.into(), d);
    }
    async fn answer_later(&self, call: &CallRequest) -> Result<(), BranchError> {
        let d = self.delays.lock().unwrap().get(&*call.gid).copied();
        if let Some(d) = d.filter(|d| !d.is_zero()) {
            tokio::time::sleep(d).await;
        }
        self.answer(call)
    }
    fn answer(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.calls.lock().unwrap().push(format!(
            "{} {} {}",
            call.gid,
            call.branch_id,
            call.op.as_str()
        ));
        let mut s = self.script.lock().unwrap();
        s.get_mut(&(call.gid.to_string(), call.op.as_str()))
            .and_then(|q| q.pop_front())
            .unwrap_or(Ok(()))
    }
    fn calls(&self, gid: &str) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with(&format!("{gid} ")))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl SagaStep for Scripted {
    async fn action(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.answer_later(call).await
    }
    async fn compensate(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.answer(call)
    }
}

#[async_trait]
impl Resource for Scripted {
    async fn prepare(&self, call: &CallRequest) -> Result<Vote, BranchError> {
        self.answer(call).map(|()| Vote::Yes)
    }
    async fn commit(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.answer(call)
    }
    async fn rollback(&self, call: &CallRequest) -> Result<(), BranchError> {
        self.answer(call)
    }
}

async fn open(dir: &std::path::Path, a: &Arc<Scripted>, b: &Arc<Scripted>) -> Coordinator {
    Coordinator::builder()
        .step("a", a.clone())
        .step("b", b.clone())
        .resource("ra", a.clone())
        .resource("rb", b.clone())
        .open(dir)
        .await
        .expect("open")
}

fn fast(o: &mut tandem_engine::tandem_core::Options) {
    o.retry_interval_ms = 5;
    o.retry_max_ms = 20;
}

#[tokio::test]
async fn t10_saga_success_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    let out = c
        .saga("s1")
        .step("a", "x")
        .step("b", "y")
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    assert_eq!(a.calls("s1"), vec!["s1 01 action"]);
    assert_eq!(b.calls("s1"), vec!["s1 02 action"]);
    let tx = c.get("s1").await.unwrap().expect("logged");
    assert_eq!(tx.status, TxStatus::Succeeded);
    assert!(tx.finished_at.is_some());
    assert_eq!(&tx.branches[0].payload[..], b"x");
    c.close().await.unwrap();
}

#[tokio::test]
async fn t11_saga_failure_compensates_started_steps_in_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    b.answers("s2", "action", vec![Err(BranchError::Failure("no".into()))]);
    let out = c
        .saga("s2")
        .step("a", "1")
        .step("b", "2")
        .step("a", "3")
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Failed);
    assert!(out.fail_reason.unwrap().contains("step 02 failed"));
    // Step 3 never started: never compensated. Step 2 (failed) and 1, in that order.
    assert_eq!(a.calls("s2"), vec!["s2 01 action", "s2 01 compensate"]);
    assert_eq!(b.calls("s2"), vec!["s2 02 action", "s2 02 compensate"]);
    let tx = c.get("s2").await.unwrap().unwrap();
    assert_eq!(tx.branches[4].status, BranchStatus::Skipped);
    assert_eq!(tx.branches[5].status, BranchStatus::Skipped);
    c.close().await.unwrap();
}

#[tokio::test]
async fn t12_transient_errors_are_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    let t = |m: &str| Err(BranchError::Transient(m.into()));
    a.answers(
        "s3",
        "action",
        vec![t("down"), t("down"), Err(BranchError::Ongoing)],
    );
    let out = c
        .saga("s3")
        .step("a", "1")
        .options(fast)
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    let tx = c.get("s3").await.unwrap().unwrap();
    assert_eq!(tx.branches[0].attempts, 4);
    assert_eq!(tx.branches[0].recent.len(), 4);
    assert_eq!(tx.branches[0].recent[0].error.as_deref(), Some("down"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn t13_retry_limit_parks_then_operator_retry_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    let t = || Err(BranchError::Transient("down".into()));
    a.answers("s4", "action", vec![t(), t(), t()]);
    let out = c.saga("s4").step("a", "1").options(|o| {
        fast(o);
        o.retry_limit = 3;
    });
    let out = out.run().await.unwrap();
    assert_eq!(out.status, TxStatus::Submitted);
    assert!(
        out.parked.as_deref().unwrap().contains("after 3 attempts"),
        "{out:?}"
    );
    assert_eq!(c.stats().parked, 1);
    // Parked means no more calls on its own.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.calls("s4").len(), 3);
    let tx = c.get("s4").await.unwrap().unwrap();
    assert!(tx.parked.is_some());
    c.retry("s4", "dependency fixed").await.unwrap();
    let out = c.wait("s4").await.unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    let tx = c.get("s4").await.unwrap().unwrap();
    assert!(tx
        .history
        .iter()
        .any(|h| h.what == "retry" && h.reason == "dependency fixed"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn t14_compensation_failure_parks_instead_of_looping() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    b.answers("s5", "action", vec![Err(BranchError::Failure("no".into()))]);
    a.answers(
        "s5",
        "compensate",
        vec![Err(BranchError::Failure("cannot undo".into()))],
    );
    let out = c
        .saga("s5")
        .step("a", "1")
        .step("b", "2")
        .options(fast)
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Aborting);
    assert!(out.parked.unwrap().contains("cannot undo"));
    c.stop("s5", "compensated by hand").await.unwrap();
    let tx = c.get("s5").await.unwrap().unwrap();
    assert_eq!(tx.status, TxStatus::Failed);
    assert!(tx
        .history
        .iter()
        .any(|h| h.what == "stop" && h.reason == "compensated by hand"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn t15_timeout_to_fail_aborts_a_stuck_saga() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    a.answers(
        "s6",
        "action",
        (0..1000).map(|_| Err(BranchError::Ongoing)).collect(),
    );
    let out = c
        .saga("s6")
        .step("a", "1")
        .options(|o| {
            o.retry_interval_ms = 20;
            o.retry_limit = 1000;
            o.timeout_to_fail_ms = Some(150);
        })
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Failed);
    assert!(out.fail_reason.unwrap().contains("timeout"));
    // The action was called: it is compensated.
    assert!(a.calls("s6").contains(&"s6 01 compensate".to_string()));
    c.close().await.unwrap();
}

#[tokio::test]
async fn t20_two_phase_commit_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    let out = c
        .two_phase("x1")
        .participant("ra", "1")
        .participant("rb", "2")
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    assert_eq!(a.calls("x1"), vec!["x1 01 prepare", "x1 01 commit"]);
    b.answers(
        "x2",
        "prepare",
        vec![Err(BranchError::Failure("no".into()))],
    );
    let out = c
        .two_phase("x2")
        .participant("ra", "1")
        .participant("rb", "2")
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Failed);
    assert_eq!(a.calls("x2"), vec!["x2 01 prepare", "x2 01 rollback"]);
    assert_eq!(b.calls("x2"), vec!["x2 02 prepare"]);
    // One participant: one phase.
    let out = c
        .two_phase("x3")
        .participant("ra", "1")
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    // (Scripted uses the default commit_one_phase: its prepare and commit, in one call.)
    assert_eq!(a.calls("x3"), vec!["x3 01 commit_one_phase"; 2]);
    assert_eq!(c.get("x3").await.unwrap().unwrap().branches.len(), 1);
    c.close().await.unwrap();
}

#[tokio::test]
async fn t21_commit_errors_retry_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    b.answers(
        "x4",
        "commit",
        vec![Err(BranchError::Transient("net".into()))],
    );
    let out = c
        .two_phase("x4")
        .participant("ra", "1")
        .participant("rb", "2")
        .options(fast)
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    assert_eq!(
        b.calls("x4"),
        vec!["x4 02 prepare", "x4 02 commit", "x4 02 commit"]
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn t30_parked_transaction_survives_restart_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    {
        let c = open(dir.path(), &a, &b).await;
        a.answers(
            "r1",
            "action",
            vec![Err(BranchError::Transient("down".into()))],
        );
        let out = c
            .saga("r1")
            .step("a", "1")
            .options(|o| {
                fast(o);
                o.retry_limit = 1;
            })
            .run()
            .await
            .unwrap();
        assert!(out.parked.is_some());
        c.close().await.unwrap();
    }
    let c = open(dir.path(), &a, &b).await;
    assert_eq!(c.stats().recovered, 1);
    let tx = c.get("r1").await.unwrap().unwrap();
    assert!(tx.parked.is_some(), "still parked after restart");
    c.retry("r1", "after restart").await.unwrap();
    assert_eq!(c.wait("r1").await.unwrap().status, TxStatus::Succeeded);
    c.close().await.unwrap();
}

/// A saga that only waits (its action answered ONGOING, asked again in 1.5 s) lives in the
/// store: a restart does not call it early, the scheduler loads it when it is due, and it ends.
#[tokio::test]
async fn t31_a_waiting_saga_runs_at_its_time_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    {
        let c = open(dir.path(), &a, &b).await;
        a.answers("r2", "action", vec![Err(BranchError::Ongoing)]);
        c.saga("r2")
            .step("a", "1")
            .options(|o| o.retry_interval_ms = 1_500)
            .submit()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.close().await.unwrap();
    }
    let calls_before = a.calls("r2").len();
    let c = open(dir.path(), &a, &b).await;
    assert_eq!(c.stats().recovered, 0, "it was waiting, not running");
    assert_eq!(
        c.counts().await.unwrap().unfinished,
        1,
        "but it counts as unfinished"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.calls("r2").len(),
        calls_before,
        "not called before its time"
    );
    let mut status = TxStatus::Submitted;
    for _ in 0..100 {
        status = c.get("r2").await.unwrap().unwrap().status;
        if status == TxStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, TxStatus::Succeeded, "ran when due");
    c.close().await.unwrap();
}

/// A saga whose call was in flight when the coordinator stopped is resumed at once.
#[tokio::test]
async fn t31_a_running_saga_resumes_at_once_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    {
        let c = open(dir.path(), &a, &b).await;
        a.answers(
            "r3",
            "action",
            vec![Err(BranchError::Transient("slow".into()))],
        );
        a.delay("r3", Duration::from_secs(30));
        c.saga("r3").step("a", "1").submit().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.close_within(Duration::ZERO).await.unwrap();
    }
    a.delay("r3", Duration::ZERO);
    let c = open(dir.path(), &a, &b).await;
    assert_eq!(c.stats().recovered, 1);
    let out = c.wait("r3").await.unwrap();
    assert_eq!(out.status, TxStatus::Succeeded, "resumed at once");
    c.close().await.unwrap();
}

#[tokio::test]
async fn t40_gid_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    assert!(matches!(
        c.saga("").step("a", "1").run().await,
        Err(EngineError::Gid(_))
    ));
    assert!(matches!(
        c.saga("a b").step("a", "1").run().await,
        Err(EngineError::Gid(_))
    ));
    assert!(matches!(
        c.saga("g").step("nobody", "1").run().await,
        Err(EngineError::UnknownParticipant(_))
    ));
    assert!(
        matches!(
            c.saga("g").run().await,
            Err(EngineError::Spec(
                tandem_engine::tandem_core::SpecError::NoSteps
            ))
        ),
        "a saga needs steps"
    );
    assert_eq!(
        c.saga("g1").step("a", "1").run().await.unwrap().status,
        TxStatus::Succeeded
    );
    // Same content: answered from the log, not run again.
    assert_eq!(
        c.saga("g1").step("a", "1").run().await.unwrap().status,
        TxStatus::Succeeded
    );
    assert_eq!(a.calls("g1").len(), 1);
    // Different content: refused.
    assert!(matches!(
        c.saga("g1").step("a", "2").run().await,
        Err(EngineError::GidExists(_))
    ));
    assert!(matches!(
        c.retry("nope", "x").await,
        Err(EngineError::NotFound(_))
    ));
    c.close().await.unwrap();
}

#[tokio::test]
async fn t41_backpressure_when_too_many_are_active() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = Coordinator::builder()
        .config(EngineConfig {
            active_max: 2,
            ..EngineConfig::default()
        })
        .step("a", a.clone())
        .step("b", b.clone())
        .open(dir.path())
        .await
        .unwrap();
    for g in ["p1", "p2"] {
        a.answers(g, "action", vec![Err(BranchError::Ongoing)]);
        c.saga(g)
            .step("a", "1")
            .options(|o| o.retry_interval_ms = 60_000)
            .submit()
            .await
            .unwrap();
    }
    let err = c.saga("p3").step("a", "1").submit().await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Busy {
                active: 2,
                limit: 2
            }
        ),
        "{err}"
    );
    assert!(err.retryable());
    c.close().await.unwrap();
}

#[tokio::test]
async fn t42_concurrent_saga_dag() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::new(), Scripted::new());
    let c = open(dir.path(), &a, &b).await;
    // 0 and 1 in parallel, 2 after both.
    let out = c
        .saga("d1")
        .step_after("a", "0", &[])
        .step_after("b", "1", &[])
        .step_after("a", "2", &[0, 1])
        .run()
        .await
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    assert_eq!(a.calls("d1"), vec!["d1 01 action", "d1 03 action"]);
    let tx = c.get("d1").await.unwrap().unwrap();
    assert!(tx
        .branches
        .iter()
        .filter(|b| b.op == Op::Action)
        .all(|b| b.status == BranchStatus::Succeeded));
    c.close().await.unwrap();
}

/// A step that takes a while and counts its calls.
struct Slow(std::sync::atomic::AtomicU32);

#[async_trait]
impl SagaStep for Slow {
    async fn action(&self, _: &CallRequest) -> Result<(), BranchError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
    async fn compensate(&self, _: &CallRequest) -> Result<(), BranchError> {
        Ok(())
    }
}

#[tokio::test]
async fn t32_close_lets_in_flight_calls_finish() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Arc::new(Slow(std::sync::atomic::AtomicU32::new(0)));
    let open = || {
        Coordinator::builder()
            .step("slow", slow.clone())
            .open(dir.path())
    };
    let c = open().await.unwrap();
    c.saga("slow-1").step("slow", "1").submit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    c.close_within(Duration::from_secs(2)).await.unwrap();
    // New work is refused once closing began.
    assert!(matches!(
        c.saga("late").step("slow", "1").submit().await,
        Err(EngineError::ShuttingDown)
    ));
    drop(c); // releases the data directory
    let c = open().await.unwrap();
    let tx = c.get("slow-1").await.unwrap().unwrap();
    assert_eq!(
        tx.status,
        TxStatus::Succeeded,
        "the call in flight finished and was logged"
    );
    assert_eq!(
        slow.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not called again after the restart"
    );
    c.close().await.unwrap();
}

/// `run()` drives the transaction in the caller's task; a caller that stops waiting half
/// way (a timeout, a client that hung up) must not stop the transaction, nor run it twice.
#[tokio::test]
async fn t33_caller_that_stops_waiting_leaves_the_transaction_running() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Arc::new(Slow(std::sync::atomic::AtomicU32::new(0)));
    let c = Coordinator::builder()
        .step("slow", slow.clone())
        .open(dir.path())
        .await
        .unwrap();
    let waited = tokio::time::timeout(
        Duration::from_millis(50),
        c.saga("gone-1").step("slow", "1").step("slow", "2").run(),
    )
    .await;
    assert!(waited.is_err(), "the caller gave up during the first step");
    assert_eq!(slow.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    let out = tokio::time::timeout(Duration::from_secs(5), c.wait("gone-1"))
        .await
        .expect("the transaction went on without its caller")
        .unwrap();
    assert_eq!(out.status, TxStatus::Succeeded);
    assert_eq!(
        slow.0.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "each step ran once"
    );
    c.close().await.unwrap();
}
