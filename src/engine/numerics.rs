//! Non-finite numbers in training. The optimizer masks the update of a step whose loss or
//! gradient is not finite on the device (the weights stay as they were), and the trainer
//! reads the steps' numbers at the next log line, checkpoint, epoch end or signal
//! ([`super::step_records`]), then takes them in order: a non-finite loss or gradient norm
//! stops the run naming its step, with the last good checkpoint kept (none is written
//! after it), or (`train.on_nonfinite = "skip"`) is counted and training goes on, up to
//! [`MAX_CONSECUTIVE_SKIPS`] steps in a row. A fixed head's alpha that is not finite, not
//! positive or above [`ALPHA_MAX`] after an update stops the run the same way (an update
//! cannot be taken back, so there is no skipping it). A skipped step still consumes its
//! batch, and what the task carries to the next step stays as the step left it: a NaN in
//! the LM's hidden state makes the following steps NaN too, and the skip limit stops the run.
//! A skipped step leaves the optimizer's state as it was (SGD's momentum buffers, Adam's
//! moments and bias-correction count), as PyTorch's `GradScaler` skips `step()`.
//!
//! Tests force a NaN with the environment variable `FIXCLF_DEBUG_NAN_AT_STEP`: `N` makes the
//! loss of step N (1-based, as the messages count) NaN, `N..` every step from N on, and a
//! `:grad` suffix (`N:grad`, `N..:grad`) the gradient instead, the loss left finite. It is
//! read once per `train` call and changes nothing else.
use super::settings::{OnNonFinite, MAX_CONSECUTIVE_SKIPS};
use super::trainer::Trainer;
use super::{Event, TrainStep, LAST};
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

    /// Whether some step will be made non-finite.
    pub fn active(&self) -> bool {
        self.from.is_some()
    }

    /// Makes step `step` (1-based) non-finite, if it is a chosen one.
    pub fn apply(&self, step: u64, s: &mut TrainStep) {
        let Some(from) = self.from else {
            return;
        };
        if step == from || (self.onwards && step > from) {
            s.objective = &s.objective * f64::NAN;
            if !self.in_gradient {
                s.loss = &s.loss * f64::NAN;
            }
        }
    }
}

impl Trainer<'_> {
    /// Reads the steps recorded since the last call (one wait for the device) and takes
    /// them in order: sums for the log line and the epoch, non-finite values, alpha.
    pub(super) fn settle(&mut self) -> Result<()> {
        for r in self.records.take()? {
            if !r.loss.is_finite() {
                self.non_finite(r.step, "loss", r.loss)?;
                continue;
            }
            if !r.applied {
                let what = if r.norm.is_finite() {
                    "gradient of a parameter outside clipping (alpha)"
                } else {
                    "gradient norm"
                };
                self.non_finite(
                    r.step,
                    what,
                    if r.norm.is_finite() { f64::NAN } else { r.norm },
                )?;
                continue;
            }
            self.check_alpha(r.step, r.alpha)?;
            self.st.consecutive_skips = 0;
            self.st.epoch_loss_sum += r.loss;
            if let Some((c, n)) = r.correct {
                self.st.epoch_correct += c;
                self.st.epoch_samples += n;
            }
            self.st.interval.add(&r);
        }
        Ok(())
    }

    /// A non-finite `what` (loss, gradient norm) in step `step` (0-based; its update was
    /// not applied): Err to stop, or Ok with the step counted as skipped.
    pub(super) fn non_finite(&mut self, step: u64, what: &str, value: f64) -> Result<()> {
        let failing = step + 1;
        if self.settings.on_nonfinite == OnNonFinite::Stop {
            return Err(self.diverged(step, &format!("the {what} is {value}"), value, RETRY));
        }
        self.st.skipped_steps += 1;
        self.st.epoch_skips += 1;
        self.st.consecutive_skips += 1;
        self.st.interval.skipped += 1;
        if self.st.consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
            return Err(self.diverged(
                step,
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

    /// Stops when the fixed head's alpha left (0, ALPHA_MAX] with the update of step `step`.
    pub(super) fn check_alpha(&mut self, step: u64, alpha: Option<f64>) -> Result<()> {
        match alpha {
            Some(a) if !(a.is_finite() && a > 0.0 && a <= ALPHA_MAX) => Err(self.diverged(
                step,
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

    /// The error that stops a run at step `step` (0-based) of the epoch in progress;
    /// `last.safetensors` (written before it) is left as it is. `fix` says what to do.
    pub(super) fn diverged(&mut self, step: u64, why: &str, value: f64, fix: &str) -> Error {
        let _ = self.metrics.write(&Event::Diverged {
            epoch: self.st.epoch,
            step,
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
            step + 1
        ))
    }
}
