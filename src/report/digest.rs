//! What a run's `metrics.jsonl` says, digested: the last value of every step and epoch on
//! the run's final timeline (a resumed run repeats the steps after its checkpoint; a kill
//! between checkpoints leaves lines that the resumed run abandons).
use crate::engine::metrics::{Collapse, EpochEvent, Event, LogEvent, ParamReport};
use crate::stats::finite;
use std::collections::BTreeMap;

/// The `test` event: loss, perplexity (language model), top-1 and top-5 accuracy (images).
#[derive(Clone, Copy)]
pub(super) struct TestResult {
    pub loss: f64,
    pub ppl: Option<f64>,
    pub acc: Option<f64>,
    pub top5: Option<f64>,
}

/// What `metrics.jsonl` says. Later lines win over earlier ones for the same step or epoch
/// (a resumed run repeats the steps after its last checkpoint).
#[derive(Default)]
pub(super) struct MetricsDigest {
    pub params: Option<ParamReport>,
    pub device: Option<String>,
    pub classes: Option<i64>,
    pub logs: BTreeMap<u64, LogEvent>,
    pub epochs: BTreeMap<usize, EpochEvent>,
    pub test: Option<TestResult>,
    /// Neural-collapse diagnostics by epoch.
    pub collapse: BTreeMap<usize, Collapse>,
    pub diverged: bool,
}

impl MetricsDigest {
    pub fn of(events: &[Event]) -> MetricsDigest {
        let mut d = MetricsDigest::default();
        for e in events {
            match e {
                Event::Start {
                    params,
                    device,
                    classes,
                    ..
                } => {
                    d.params = Some(params.clone());
                    d.device = Some(device.clone());
                    d.classes = *classes;
                    d.diverged = false;
                }
                Event::Log(l) => {
                    d.logs.insert(l.step, l.clone());
                }
                Event::Epoch(ep) => {
                    d.epochs.insert(ep.epoch, ep.clone());
                    // Epochs after this one belong to an abandoned timeline.
                    d.epochs.retain(|&k, _| k <= ep.epoch);
                    // Its own diagnostics follow it.
                    d.collapse.retain(|&k, _| k < ep.epoch);
                }
                Event::Collapse(c) => {
                    d.collapse.insert(c.epoch, c.clone());
                }
                Event::Resume { epoch, step, .. } => {
                    // What came after the checkpoint resumed from belongs to an abandoned
                    // timeline (a kill between checkpoints); the resumed run repeats it.
                    d.logs.retain(|&s, _| s <= *step);
                    d.epochs.retain(|&e, _| e < *epoch);
                    d.diverged = false;
                }
                Event::Diverged { .. } => d.diverged = true,
                Event::Test {
                    test_loss,
                    test_ppl,
                    test_acc,
                    test_top5,
                } => {
                    d.test = Some(TestResult {
                        loss: *test_loss,
                        ppl: *test_ppl,
                        acc: *test_acc,
                        top5: *test_top5,
                    })
                }
            }
        }
        d
    }

    /// (validation loss, perplexity) of the best epoch.
    pub fn best_val(&self) -> Option<(f64, f64)> {
        self.epochs
            .values()
            .filter_map(|r| Some((finite(r.val_loss)?, finite(r.val_ppl?)?)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Validation accuracy of the epoch with the lowest validation loss.
    pub fn best_val_acc(&self) -> Option<f64> {
        self.epochs
            .values()
            .filter_map(|r| Some((finite(r.val_loss)?, finite(r.val_acc?)?)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|b| b.1)
    }

    /// (epoch, error in percent) of each epoch that has the accuracy `pick` takes.
    pub fn error_curve(&self, pick: fn(&EpochEvent) -> Option<f64>) -> Vec<(f64, f64)> {
        self.epochs
            .iter()
            .filter_map(|(e, r)| Some((*e as f64, 100.0 * (1.0 - finite(pick(r)?)?))))
            .collect()
    }

    /// The last alpha logged, by step (epoch ends count at their step).
    pub fn last_alpha(&self) -> Option<f64> {
        self.alpha_by_step().into_values().next_back()
    }

    pub fn alpha_by_step(&self) -> BTreeMap<u64, f64> {
        let mut alpha: BTreeMap<u64, f64> = self
            .epochs
            .values()
            .filter_map(|r| Some((r.step, finite(r.alpha?)?)))
            .collect();
        alpha.extend(
            self.logs
                .values()
                .filter_map(|l| Some((l.step, finite(l.alpha?)?))),
        );
        alpha
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::params;
    use super::*;
    use serde_json::json;

    #[test]
    fn report_metrics_of_a_resumed_run_keep_the_last_timeline() {
        let log = |step: u64, loss: f64, alpha: f64| {
            json!({"event": "log", "epoch": 1, "step": step, "batch": step, "batches": 10,
                "lr": 20.0, "ms_per_batch": 1.0, "loss": loss, "elapsed_s": 1.0,
                "alpha": alpha})
        };
        let epoch = |epoch: u64, step: u64, val_loss: f64, val_ppl: f64| {
            json!({"event": "epoch", "epoch": epoch, "step": step, "val_loss": val_loss,
                "val_ppl": val_ppl, "lr": 20.0, "epoch_s": 1.0, "elapsed_s": 1.0,
                "alpha": null, "peak_rss_mb": 100.0})
        };
        let events: Vec<Event> = [
            json!({"event": "start", "params": params(true), "device": "Cpu"}),
            log(10, 7.0, 10.0),
            epoch(1, 10, 6.0, 403.4),
            log(20, 6.5, 11.0),
            epoch(2, 20, 5.9, 365.0),
            // Logged after the checkpoint resumed from and not repeated: dropped.
            log(25, f64::NAN, 13.0),
            json!({"event": "diverged", "epoch": 3, "step": 25, "value": "NaN"}),
            // Resumed from the end of epoch 1: steps 11..20 and epoch 2 again.
            json!({"event": "resume", "epoch": 2, "step": 10, "lr": 20.0}),
            log(20, 6.4, 12.0),
            epoch(2, 20, 5.8, 330.3),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let m = MetricsDigest::of(&events);
        assert!(!m.diverged);
        assert_eq!(m.logs.len(), 2);
        assert_eq!(m.logs[&20].loss, 6.4);
        assert_eq!(m.epochs.len(), 2);
        assert_eq!(m.best_val(), Some((5.8, 330.3)));
        assert_eq!(m.last_alpha(), Some(12.0));
        assert_eq!(m.params.as_ref().map(|p| p.fixed), Some(1_500_000));
        assert_eq!(m.classes, None);
    }
}
