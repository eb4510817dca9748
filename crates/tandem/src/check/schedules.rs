//! The failure schedules: what real failures do to a participant, replayed on fresh gids,
//! each with the effect (and, where the protocol says so, the answer) it must produce.
//!
//! First a baseline on fresh gids measures what "nothing", one first-phase call (action,
//! try, prepare) and, for TCC and 2PC, a completed one (try + confirm, prepare + commit)
//! do to the effect read-back. Every schedule then compares against those:
//!
//! | schedule | calls | must end with |
//! |---|---|---|
//! | compensation-undoes | first, undo | nothing |
//! | duplicate | first ×2 | one first |
//! | duplicate-concurrent | first ×8 at once | one first |
//! | lost-answer | first (answer dropped after the work), first again | one first |
//! | slow-retry | first (slow), first again while it runs | one first |
//! | null-compensation | undo (no first) | nothing |
//! | hanging | undo, then the late first (refused: 409) | no change by the late first |
//! | compensation-repeated | first, undo ×2 | nothing |
//! | failure-then-compensation | first answering 409, undo | nothing (no double undo) |
//! | confirm-repeated | try, confirm ×2 (2PC: commit) | one completed |
//! | confirm-after-cancel | try, cancel, confirm (refused: 409) | nothing |
//! | cancel-after-confirm | try, confirm, cancel (refused: 409) | one completed |
//!
//! Every gid is made by the check (`chk-<run>-<n>`); nothing else is called or read.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::caller::{Answer, Body, Caller};
use super::readback::Reader;
use super::spec::{Protocol, Role, Spec};

/// Concurrent deliveries in `duplicate-concurrent`.
const CONCURRENT_CALLS: usize = 8;

/// The schedules, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CompensationUndoes,
    Duplicate,
    DuplicateConcurrent,
    LostAnswer,
    SlowRetry,
    NullCompensation,
    Hanging,
    CompensationRepeated,
    FailureThenCompensation,
    SecondRepeated,
    SecondAfterUndo,
    UndoAfterSecond,
}

const ALL: [Kind; 12] = [
    Kind::CompensationUndoes,
    Kind::Duplicate,
    Kind::DuplicateConcurrent,
    Kind::LostAnswer,
    Kind::SlowRetry,
    Kind::NullCompensation,
    Kind::Hanging,
    Kind::CompensationRepeated,
    Kind::FailureThenCompensation,
    Kind::SecondRepeated,
    Kind::SecondAfterUndo,
    Kind::UndoAfterSecond,
];

impl Kind {
    fn applies(self, p: Protocol) -> bool {
        let has_undo = p.op(Role::Undo).is_some();
        let has_second = p.op(Role::Second).is_some();
        match self {
            Kind::Duplicate | Kind::DuplicateConcurrent | Kind::LostAnswer | Kind::SlowRetry => {
                true
            }
            Kind::SecondRepeated | Kind::SecondAfterUndo | Kind::UndoAfterSecond => has_second,
            _ => has_undo,
        }
    }

    /// The schedule's name, in the protocol's words where they differ.
    pub fn name(self, p: Protocol) -> String {
        let (second, undo) = (p.op_name(Role::Second), p.op_name(Role::Undo));
        match self {
            Kind::CompensationUndoes => "compensation-undoes".into(),
            Kind::Duplicate => "duplicate".into(),
            Kind::DuplicateConcurrent => "duplicate-concurrent".into(),
            Kind::LostAnswer => "lost-answer".into(),
            Kind::SlowRetry => "slow-retry".into(),
            Kind::NullCompensation => "null-compensation".into(),
            Kind::Hanging => "hanging".into(),
            Kind::CompensationRepeated => "compensation-repeated".into(),
            Kind::FailureThenCompensation => "failure-then-compensation".into(),
            Kind::SecondRepeated => format!("{second}-repeated"),
            Kind::SecondAfterUndo => format!("{second}-after-{undo}"),
            Kind::UndoAfterSecond => format!("{undo}-after-{second}"),
        }
    }

    /// What the schedule does, in the protocol's words.
    pub fn describe(self, p: Protocol) -> String {
        let (f, s, u) = (
            p.op_name(Role::First),
            p.op_name(Role::Second),
            p.op_name(Role::Undo),
        );
        match self {
            Kind::CompensationUndoes => format!("{f}, then {u}: nothing remains"),
            Kind::Duplicate => format!("{f} delivered twice: takes effect once"),
            Kind::DuplicateConcurrent => {
                format!("{f} delivered {CONCURRENT_CALLS} times at once: takes effect once")
            }
            Kind::LostAnswer => {
                format!("{f} done but its answer lost, then retried: takes effect once")
            }
            Kind::SlowRetry => {
                format!("{f} times out and is retried while still running: takes effect once")
            }
            Kind::NullCompensation => format!("{u} before any {f}: a no-op that succeeds"),
            Kind::Hanging => format!("{u}, then the late {f}: refused, no effect"),
            Kind::CompensationRepeated => format!("{f}, then {u} twice: undone once"),
            Kind::FailureThenCompensation => {
                format!("{f} refused (409), then {u}: nothing undone that was not done")
            }
            Kind::SecondRepeated => format!("{f}, then {s} twice: takes effect once"),
            Kind::SecondAfterUndo => format!("{f}, {u}, then {s}: refused, no effect"),
            Kind::UndoAfterSecond => format!("{f}, {s}, then {u}: refused, no effect"),
        }
    }
}

/// A schedule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Violation { expected: String, observed: String },
    Skipped(String),
}

/// One schedule's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub description: String,
    pub verdict: Verdict,
    pub gids: Vec<String>,
    pub calls: u32,
    pub ms: u64,
    /// Something worth knowing that is not a violation.
    pub note: Option<String>,
}

/// The effects the baseline measured.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// A gid nothing was done for.
    pub zero: Value,
    /// After one first-phase call.
    pub first: Value,
    /// After a first phase and its second (TCC, 2PC).
    pub second: Option<Value>,
    pub gids: Vec<String>,
}

/// One check run: the participant, the read-back, the gids.
pub struct Run {
    pub spec: Arc<Spec>,
    caller: Caller,
    reader: Reader,
    run_id: String,
    next: AtomicU32,
}

/// The schedule being run: its gids, calls and first mismatch.
struct Ctx {
    gids: Vec<String>,
    calls: u32,
    note: Option<String>,
}

type Check = Result<(), Verdict>;

fn violation(expected: impl Into<String>, observed: impl Into<String>) -> Verdict {
    Verdict::Violation {
        expected: expected.into(),
        observed: observed.into(),
    }
}

impl Run {
    pub fn new(spec: Arc<Spec>, reader: Reader) -> Run {
        let run_id = format!(
            "{:x}{:04x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
                % 0xffff_ffff,
            fastrand::u16(..)
        );
        Run {
            caller: Caller::new(spec.clone()),
            spec,
            reader,
            run_id,
            next: AtomicU32::new(0),
        }
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    fn gid(&self, ctx: &mut Ctx) -> String {
        let g = format!(
            "chk-{}-{}",
            self.run_id,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        ctx.gids.push(g.clone());
        g
    }

    fn op(&self, role: Role) -> &'static str {
        self.spec.protocol.op_name(role)
    }

    async fn call(&self, ctx: &mut Ctx, gid: &str, role: Role, body: Body) -> Answer {
        ctx.calls += 1;
        self.caller.call(gid, role, body).await
    }

    /// A call that must answer `want`.
    async fn expect(
        &self,
        ctx: &mut Ctx,
        gid: &str,
        role: Role,
        body: Body,
        want: &Answer,
        when: &str,
    ) -> Check {
        let got = self.call(ctx, gid, role, body).await;
        if &got == want {
            Ok(())
        } else {
            Err(violation(
                format!("{} to {}{when}", want.name(), self.op(role)),
                got.name(),
            ))
        }
    }

    async fn effect(&self, gid: &str) -> Result<Value, Verdict> {
        self.reader
            .read(gid)
            .await
            .map_err(|e| violation("a readable effect", format!("{e:#}")))
    }

    /// The effect of `gid` must be `want` (named `what` in the report).
    async fn expect_effect(&self, gid: &str, want: &Value, what: &str) -> Check {
        let got = self.effect(gid).await?;
        if &got == want {
            Ok(())
        } else {
            Err(violation(
                format!("effect {want} ({what})"),
                got.to_string(),
            ))
        }
    }

    /// Measures the baseline effects.
    ///
    /// # Errors
    /// When a baseline call does not succeed or nothing the participant does is visible in
    /// the read-back: the check could not tell anything, so it refuses to report.
    pub async fn baseline(&self) -> anyhow::Result<Baseline> {
        let mut ctx = Ctx {
            gids: Vec::new(),
            calls: 0,
            note: None,
        };
        let z = self.gid(&mut ctx);
        let zero = self.reader.read(&z).await?;
        let g = self.gid(&mut ctx);
        let a = self.call(&mut ctx, &g, Role::First, Body::Template).await;
        if a != Answer::Success {
            bail!(
                "the baseline {} (gid {g}) answered {}: the participant must accept the \
                 spec's template payload",
                self.op(Role::First),
                a.name()
            );
        }
        let first = self.reader.read(&g).await?;
        let second = match self.spec.protocol.op(Role::Second) {
            Some(_) => {
                let a = self.call(&mut ctx, &g, Role::Second, Body::Template).await;
                if a != Answer::Success {
                    bail!(
                        "the baseline {} (gid {g}) answered {}",
                        self.op(Role::Second),
                        a.name()
                    );
                }
                Some(self.reader.read(&g).await?)
            }
            None => None,
        };
        if first == zero && second.as_ref().is_none_or(|s| s == &zero) {
            bail!(
                "the effect read back for gid {g} after a successful {} is {first}, the same \
                 as for a gid never used: the check cannot see what the participant does. \
                 The read-back must show the effect of one gid.",
                self.op(Role::First)
            );
        }
        Ok(Baseline {
            zero,
            first,
            second,
            gids: ctx.gids,
        })
    }

    /// Every schedule of the spec's protocol, in order.
    pub fn kinds(&self) -> Vec<Kind> {
        ALL.into_iter()
            .filter(|k| k.applies(self.spec.protocol))
            .collect()
    }

    /// Runs one schedule.
    pub async fn run(&self, kind: Kind, base: &Baseline) -> Outcome {
        let p = self.spec.protocol;
        let mut ctx = Ctx {
            gids: Vec::new(),
            calls: 0,
            note: None,
        };
        let started = Instant::now();
        let verdict = match self.schedule(kind, base, &mut ctx).await {
            Ok(()) => Verdict::Ok,
            Err(v) => v,
        };
        Outcome {
            name: kind.name(p),
            description: kind.describe(p),
            verdict,
            gids: ctx.gids,
            calls: ctx.calls,
            ms: started.elapsed().as_millis() as u64,
            note: ctx.note,
        }
    }

    async fn schedule(&self, kind: Kind, base: &Baseline, ctx: &mut Ctx) -> Check {
        let (f, s, u) = (Role::First, Role::Second, Role::Undo);
        let t = Body::Template;
        let ok = &Answer::Success;
        let refused = &Answer::Failure;
        let (fname, uname) = (self.op(f), self.op(u));
        let one = format!("one {fname}");
        let completed = format!("one {fname} + {}", self.op(s));
        let second = base.second.clone().unwrap_or(Value::Null);
        let g = self.gid(ctx);
        match kind {
            Kind::CompensationUndoes => {
                self.expect(ctx, &g, f, t, ok, "").await?;
                self.expect(ctx, &g, u, t, ok, "").await?;
                self.expect_effect(&g, &base.zero, &format!("{uname} undid the {fname}"))
                    .await
            }
            Kind::Duplicate => {
                self.expect(ctx, &g, f, t, ok, "").await?;
                self.expect(ctx, &g, f, t, ok, " delivered again").await?;
                self.expect_effect(&g, &base.first, &one).await
            }
            Kind::DuplicateConcurrent => {
                let calls = (0..CONCURRENT_CALLS).map(|_| self.caller.call(&g, f, t));
                let answers = futures_join(calls).await;
                ctx.calls += CONCURRENT_CALLS as u32;
                let mut errors = 0;
                for a in answers {
                    match a {
                        Answer::Success => {}
                        Answer::Error(_) => errors += 1,
                        other => {
                            return Err(violation(
                                format!("SUCCESS to every concurrent {fname}"),
                                other.name(),
                            ))
                        }
                    }
                }
                // A delivery that broke (a deadlock, a serialization error) is called again,
                // as the coordinator would.
                for _ in 0..errors {
                    self.expect(ctx, &g, f, t, ok, " retried after an error")
                        .await?;
                }
                if errors > 0 {
                    ctx.note = Some(format!(
                        "{errors} of {CONCURRENT_CALLS} concurrent calls answered an error \
                         (retried)"
                    ));
                }
                self.expect_effect(&g, &base.first, &one).await
            }
            Kind::LostAnswer => {
                let stream = self.caller.send_unread(&g, f).await.map_err(|e| {
                    violation(format!("a connection to the {fname}"), e.to_string())
                })?;
                ctx.calls += 1;
                // Hold the connection until the work is visible (or the call's timeout),
                // then drop it unread: the answer is lost after the work was done.
                let deadline = Instant::now() + Duration::from_millis(self.spec.timeout_ms);
                while Instant::now() < deadline && self.effect(&g).await? == base.zero {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                drop(stream);
                self.expect(ctx, &g, f, t, ok, " retried after its answer was lost")
                    .await?;
                self.expect_effect(&g, &base.first, &one).await
            }
            Kind::SlowRetry => {
                let (body, pause) = match self.spec.slow {
                    Some(_) => (Body::Slow, self.spec.slow_timeout_ms),
                    None => {
                        ctx.note = Some(
                            "no slow payload in the spec: the retry overlaps the first call \
                             only as long as that call takes"
                                .into(),
                        );
                        (t, 1)
                    }
                };
                let first = self.caller.call(&g, f, body);
                let retry = async {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    self.caller.call(&g, f, body).await
                };
                let (_timed_out, again) = tokio::join!(first, retry);
                ctx.calls += 2;
                if &again != ok {
                    return Err(violation(
                        format!("SUCCESS to the {fname} retried while the first still ran"),
                        again.name(),
                    ));
                }
                self.expect_effect(&g, &base.first, &one).await
            }
            Kind::NullCompensation => {
                self.expect(ctx, &g, u, t, ok, &format!(" with no {fname} before it"))
                    .await?;
                self.expect_effect(
                    &g,
                    &base.zero,
                    &format!("nothing: no {fname} ran, so the {uname} had nothing to undo"),
                )
                .await
            }
            Kind::Hanging => {
                self.call(ctx, &g, u, t).await;
                let before = self.effect(&g).await?;
                let late = self.call(ctx, &g, f, t).await;
                self.expect_effect(
                    &g,
                    &before,
                    &format!("unchanged: the {fname} after its {uname} must not take effect"),
                )
                .await?;
                if &late != refused {
                    return Err(violation(
                        format!("FAILURE to the {fname} that came after its {uname}"),
                        late.name(),
                    ));
                }
                Ok(())
            }
            Kind::CompensationRepeated => {
                self.expect(ctx, &g, f, t, ok, "").await?;
                self.expect(ctx, &g, u, t, ok, "").await?;
                self.expect(ctx, &g, u, t, ok, " delivered again").await?;
                self.expect_effect(&g, &base.zero, &format!("the {fname} undone once"))
                    .await
            }
            Kind::FailureThenCompensation => {
                if self.spec.failing.is_none() {
                    return Err(Verdict::Skipped(
                        "no failing payload in the spec ([payload] failing)".into(),
                    ));
                }
                self.expect(
                    ctx,
                    &g,
                    f,
                    Body::Failing,
                    refused,
                    " with the failing payload",
                )
                .await?;
                self.expect_effect(&g, &base.zero, &format!("nothing: the {fname} failed"))
                    .await?;
                self.expect(
                    ctx,
                    &g,
                    u,
                    Body::Failing,
                    ok,
                    &format!(" after a failed {fname}"),
                )
                .await?;
                self.expect_effect(
                    &g,
                    &base.zero,
                    &format!("nothing: the {uname} of a failed {fname} undoes nothing"),
                )
                .await
            }
            Kind::SecondRepeated => {
                self.expect(ctx, &g, f, t, ok, "").await?;
                self.expect(ctx, &g, s, t, ok, "").await?;
                self.expect(ctx, &g, s, t, ok, " delivered again").await?;
                self.expect_effect(&g, &second, &completed).await
            }
            Kind::SecondAfterUndo => {
                self.expect(ctx, &g, f, t, ok, "").await?;
                self.expect(ctx, &g, u, t, ok, "").await?;
                let late = self.call(ctx, &g, s, t).await;
                self.expect_effect(
                    &g,
                    &base.zero,
                    &format!(
                        "nothing: a {} after the {uname} must not take effect",
                        self.op(s)
                    ),
                )
                .await?;
                if &late != refused {
                    return Err(violation(
                        format!("FAILURE to the {} after the {uname}", self.op(s)),
                        late.name(),
                    ));
                }
                Ok(())
            }
            Kind::UndoAfterSecond => {
                self.expect(ctx, &g, f, t, ok, "").await?;
                self.expect(ctx, &g, s, t, ok, "").await?;
                let late = self.call(ctx, &g, u, t).await;
                self.expect_effect(
                    &g,
                    &second,
                    &format!(
                        "{completed}: a {uname} after the {} must not take effect",
                        self.op(s)
                    ),
                )
                .await?;
                if &late != refused {
                    return Err(violation(
                        format!("FAILURE to the {uname} after the {}", self.op(s)),
                        late.name(),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Runs `calls` concurrently; their answers in order.
async fn futures_join<F: std::future::Future<Output = Answer>>(
    calls: impl Iterator<Item = F>,
) -> Vec<Answer> {
    futures::future::join_all(calls).await
}
