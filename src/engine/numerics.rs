//! Non-finite numbers in training: a NaN or infinite loss or gradient norm stops the run
//! with the step number and the last good checkpoint kept, or (`train.on_nonfinite =
//! "skip"`) leaves the weights as they were and goes on, up to
//! [`MAX_CONSECUTIVE_SKIPS`] steps in a row. A fixed head's alpha that is not finite, not
//! positive or above [`ALPHA_MAX`] after an update stops the run the same way (an update
//! cannot be taken back, so there is no skipping it). A skipped step still consumes its
//! batch, and what the task carries to the next step stays as the step left it: a NaN in
//! the LM's hidden state makes the following steps NaN too, and the skip limit stops the run.
//!
//! Tests force a NaN with the environment variable `FIXCLF_DEBUG_NAN_AT_STEP`: `N` makes the
//! loss of step N (1-based, as the messages count) NaN, `N..` every step from N on, and a
//! `:grad` suffix (`N:grad`, `N..:grad`) the gradient instead, the loss left finite. It is
//! read once per `train` call and changes nothing else.
use super::trainer::Trainer;
use super::{Event, TrainStep, LAST};
use crate::config::{OnNonFinite, MAX_CONSECUTIVE_SKIPS};
use crate::error::{Error, Result};

/// Largest alpha accepted: the logits lie in [-alpha, alpha] and the paper's alphas stay in
/// the tens; beyond this the softmax is a hard max and the run has gone wrong.
pub const ALPHA_MAX: f64 = 1e4;

/// What to do after a non-finite loss or gradient. A resumed run takes its learning rate
/// from the checkpoint, so only starting again changes it.
pub(super) const RETRY: &str = "lower train.lr or train.clip and start again (--force), or \
     resume (--resume) with --set train.on_nonfinite=skip to step over bad batches";
/// What to do when skipping did not help.
pub(super) const RESTART: &str = "lower train.lr or train.clip and start again (--force)";

/// The environment variable of [`NanInjection`].
pub const NAN_ENV: &str = "FIXCLF_DEBUG_NAN_AT_STEP";

/// NaNs forced into training steps, for tests (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NanInjection {
    /// The first step (1-based), and whether every later one too.
    from: Option<u64>,
    onwards: bool,
    in_gradient: bool,
}

impl NanInjection {
    pub fn from_env() -> Result<NanInjection> {
        let Ok(v) = std::env::var(NAN_ENV) else {
            return Ok(NanInjection::default());
        };
        let (rest, in_gradient) = match v.strip_suffix(":grad") {
            Some(rest) => (rest, true),
            None => (v.as_str(), false),
        };
        let (n, onwards) = match rest.strip_suffix("..") {
            Some(n) => (n, true),
            None => (rest, false),
        };
        let from = n.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
            Error::arg(
                NAN_ENV,
                format!("`{v}`: use N, N.., N:grad or N..:grad with a step number N >= 1"),
            )
        })?;
        Ok(NanInjection {
            from: Some(from),
            onwards,
            in_gradient,
        })
    }

    /// Makes step `step` (1-based) non-finite, if it is a chosen one.
    pub fn apply(&self, step: u64, s: &mut TrainStep) {
        let Some(from) = self.from else {
            return;
        };
        if step == from || (self.onwards && step > from) {
            s.objective = &s.objective * f64::NAN;
            if !self.in_gradient {
                s.loss = f64::NAN;
            }
        }
    }
}

impl Trainer<'_> {
    /// A non-finite `what` (loss, gradient norm) in the step being taken: Err to stop, or
    /// Ok with the step counted as skipped.
    pub(super) fn non_finite(&mut self, what: &str, value: f64) -> Result<()> {
        let failing = self.st.step + 1;
        if self.cfg.train.on_nonfinite == OnNonFinite::Stop {
            return Err(self.diverged(&format!("the {what} is {value}"), value, RETRY));
        }
        self.st.skipped_steps += 1;
        self.st.epoch_skips += 1;
        self.st.consecutive_skips += 1;
        self.st.interval.skipped += 1;
        if self.st.consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
            return Err(self.diverged(
                &format!(
                    "the {what} is {value}, {MAX_CONSECUTIVE_SKIPS} non-finite steps in a row \
                     with train.on_nonfinite = \"skip\""
                ),
                value,
                RESTART,
            ));
        }
        if !self.quiet {
            println!("| step {failing} skipped: the {what} is {value}");
        }
        Ok(())
    }

    /// Stops when the fixed head's alpha left (0, ALPHA_MAX] with the update just taken.
    pub(super) fn check_alpha(&mut self) -> Result<()> {
        match self.task.head().alpha() {
            Some(a) if !(a.is_finite() && a > 0.0 && a <= ALPHA_MAX) => Err(self.diverged(
                &format!(
                    "alpha of the fixed classifier is {a} after the update (it must stay \
                     finite, > 0 and <= {ALPHA_MAX})"
                ),
                a,
                "lower train.lr, raise head.alpha_weight_decay or keep alpha fixed \
                 (head.learn_alpha = false) and start again (--force)",
            )),
            _ => Ok(()),
        }
    }

    /// The error that stops a run at the step in progress; `last.safetensors` (written
    /// before this step) is left as it is. `fix` says what to do.
    pub(super) fn diverged(&mut self, why: &str, value: f64, fix: &str) -> Error {
        let _ = self.metrics.write(&Event::Diverged {
            epoch: self.st.epoch,
            step: self.st.step,
            value: value.to_string(),
        });
        let kept = if self.run.has_last() {
            format!(
                "the last good checkpoint is kept in {}",
                self.run.file(LAST).display()
            )
        } else {
            "no checkpoint had been written yet".to_string()
        };
        Error::Diverged(format!(
            "{}: training diverged at epoch {} step {} ({why}); {kept}; {fix}",
            self.run.path.display(),
            self.st.epoch,
            self.st.step + 1
        ))
    }
}
