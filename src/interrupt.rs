//! Ctrl-C and SIGTERM as a request to stop cleanly. The binary [`install`]s the handlers for
//! the long commands (train, suite, embed); the first signal only raises a flag that the
//! work polls at safe points (the trainer after each step, word2vec between sentences, PMI
//! between phases), so the step in progress completes and a consistent checkpoint is written.
//! A second signal exits at once (`_exit`, nothing more is written): every file the program
//! writes is renamed into place complete, so the last complete checkpoint stays intact.
//!
//! Without [`install`] (library users, tests in one process) no flag is ever raised.
pub use crate::error::Signal;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static PENDING: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// A stop the ranks of a data-parallel launch agreed on (a signal that reached another
/// rank); not PENDING, so this rank's own first signal still only raises the flag.
static AGREED: AtomicUsize = AtomicUsize::new(0);

/// Routes SIGINT and SIGTERM to the stop flag; a second one of either exits at once with the
/// code of the one that arrived second.
pub fn install() -> std::io::Result<()> {
    for sig in [Signal::INT, Signal::TERM] {
        // Registered first so that it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(
            sig.number(),
            i32::from(sig.exit_code()),
            &PENDING,
        )?;
        signal_hook::flag::register_usize(sig.number(), &SIGNAL, sig.number() as usize)?;
        signal_hook::flag::register(sig.number(), &PENDING)?;
    }
    Ok(())
}

/// Makes `signal` this process's stop request: the ranks of a data-parallel launch agreed
/// to stop after the same step, whichever of them the signal reached.
pub fn agree(signal: Signal) {
    AGREED.store(signal.number() as usize, Ordering::SeqCst);
}

/// The signal that asked to stop, if one did (the agreed one first).
pub fn requested() -> Option<Signal> {
    if let n @ 1.. = AGREED.load(Ordering::SeqCst) {
        return Some(Signal::from_number(n as i32));
    }
    if !PENDING.load(Ordering::Relaxed) {
        return None;
    }
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Some(Signal::from_number(n as i32)),
    }
}

/// Err([`Error::Interrupted`]) when a signal asked to stop `name`, work whose output is
/// written only once complete (the embeddings): nothing was written, rerunning recomputes.
pub fn stop_unwritten(name: &str) -> Result<()> {
    match requested() {
        Some(signal) => Err(Error::interrupted(
            signal,
            format!("{name}: interrupted by {signal}; nothing was written"),
            "run the same command again to compute the vectors from the start",
        )),
        None => Ok(()),
    }
}

/// `arg` as one shell word: as is when it is made of safe characters, else single-quoted
/// (for the resume commands the program prints).
pub fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(Signal::INT.exit_code(), 130);
        assert_eq!(Signal::TERM.exit_code(), 143);
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        // Nothing installed in unit tests: no request.
        assert_eq!(requested(), None);
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("runs/a-1/config.toml"), "runs/a-1/config.toml");
        assert_eq!(shell_quote("my runs/x"), "'my runs/x'");
        assert_eq!(shell_quote("name=\"it's\""), "'name=\"it'\\''s\"'");
    }
}
