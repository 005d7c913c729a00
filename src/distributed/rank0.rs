//! What rank 0 does alone for every rank of a launch, as a suite needs it between runs: a
//! choice rank 0 makes and tells the others (skip a finished run, resume an unfinished
//! one), and work the others wait for (the embeddings), so that no two ranks decide or
//! write the same thing. Alone, the process is rank 0: its choice is its own and the work
//! runs in place.
use super::group::{Lane, ProcessGroup};
use crate::error::{Error, Result};
use crate::interrupt::{self, Signal};
use std::time::Duration;
use tch::Tensor;

/// How often rank 0 tells the waiting ranks whether its work is done.
const POLL: Duration = Duration::from_millis(100);

/// Rank 0's answer to `what` (`decide`, called on rank 0 only) on every rank.
pub fn choice(what: &str, decide: impl FnOnce() -> Result<i64>) -> Result<i64> {
    match super::current() {
        Some(group) => choice_in(group, what, decide),
        None => decide(),
    }
}

/// [`choice`] on `group`. Rank 0 sends whether it has an answer with it, so that its
/// failure is the others' error at once, not a wait for the timeout.
pub fn choice_in(
    group: &ProcessGroup,
    what: &str,
    decide: impl FnOnce() -> Result<i64>,
) -> Result<i64> {
    let mine = if group.rank == 0 {
        Some(decide())
    } else {
        None
    };
    let sent = match &mine {
        Some(Ok(v)) => [1, *v],
        _ => [0, 0],
    };
    let t = Tensor::from_slice(&sent);
    group.broadcast(what, Lane::Control, &[&t], 0)?;
    let got = Vec::<i64>::try_from(&t)?;
    match (mine, got[0]) {
        (Some(Err(e)), _) => Err(e),
        (_, 1) => Ok(got[1]),
        _ => Err(failed_on_rank0(group, what)),
    }
}

/// Runs `work` on rank 0 alone while the other ranks wait (they get `None`). Rank 0 works
/// on a thread of its own and meets the others every [`POLL`] to say whether it is done,
/// so no collective waits longer than the group's timeout however long the work takes,
/// and a SIGINT / SIGTERM that reached any rank becomes every rank's (the work on rank 0
/// sees it where it polls [`interrupt::requested`]).
pub fn work<T: Send>(what: &str, work: impl FnOnce() -> Result<T> + Send) -> Result<Option<T>> {
    match super::current() {
        Some(group) => work_in(group, what, work),
        None => work().map(Some),
    }
}

const WORKING: i64 = 0;
const DONE: i64 = 1;
const FAILED: i64 = 2;

/// [`work`] on `group`.
pub fn work_in<T: Send>(
    group: &ProcessGroup,
    what: &str,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<Option<T>> {
    if group.rank != 0 {
        return loop {
            match meet(group, what, WORKING)? {
                WORKING => continue,
                DONE => break Ok(None),
                _ => break Err(failed_on_rank0(group, what)),
            }
        };
    }
    std::thread::scope(|s| {
        let mut handle = Some(s.spawn(work));
        loop {
            let (state, result) = match handle.take_if(|h| h.is_finished()) {
                Some(h) => {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err(Error::distributed(0, what, "the work panicked")));
                    (if r.is_ok() { DONE } else { FAILED }, Some(r))
                }
                None => (WORKING, None),
            };
            // A failed meeting (a dead peer) returns here; the scope still waits for the
            // work, which torchrun ends with the rest of the group.
            meet(group, what, state)?;
            if let Some(r) = result {
                return r.map(Some);
            }
            std::thread::sleep(POLL);
        }
    })
}

/// One meeting of the ranks while rank 0 works: rank 0's state (the others send
/// `WORKING`, 0) and every rank's stop flags, summed; a signal seen anywhere becomes this
/// rank's agreed stop.
fn meet(group: &ProcessGroup, what: &str, state: i64) -> Result<i64> {
    let mine = interrupt::requested();
    let sums = group.sum_i64(
        what,
        &[
            state,
            i64::from(mine == Some(Signal::INT)),
            i64::from(mine == Some(Signal::TERM)),
        ],
    )?;
    if mine.is_none() {
        if sums[2] > 0 {
            interrupt::agree(Signal::TERM);
        } else if sums[1] > 0 {
            interrupt::agree(Signal::INT);
        }
    }
    Ok(sums[0])
}

/// A waiting rank's error when rank 0's part failed: an interruption when a signal
/// stopped the launch (rank 0 said why), else a pointer to rank 0's own error.
fn failed_on_rank0(group: &ProcessGroup, what: &str) -> Error {
    match interrupt::requested() {
        Some(signal) => Error::interrupted(
            signal,
            format!(
                "rank {}: {what}: interrupted by {signal} on rank 0",
                group.rank
            ),
            "run the same launch again",
        ),
        None => Error::distributed(group.rank, what, "rank 0 failed; its error says why"),
    }
}
