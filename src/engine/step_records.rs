//! The numbers of each training step (loss, gradient norm, whether the update applied, the
//! fixed head's alpha, correct predictions) kept on the device until the trainer needs them:
//! at a log line, a checkpoint, the end of an epoch or a signal. Reading a number of a CUDA
//! step waits for the GPU to finish it; reading a block of them once per log interval lets
//! the host queue the next steps meanwhile (and lets a captured step write them too: the
//! row to write is a device counter, not a host index).
use super::{StagedStep, TrainStep};
use crate::error::Result;
use crate::optim::StepStats;
use tch::{Device, Kind, Tensor};

/// Columns of a record.
const LOSS: usize = 0;
const NORM: usize = 1;
const APPLIED: usize = 2;
const ALPHA: usize = 3;
const CORRECT: usize = 4;
const FIELDS: usize = 5;

/// Most steps held before the trainer must read them (a long log interval reads early).
pub const MAX_PENDING: usize = 1000;

/// One step's numbers, back on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// The step's 0-based index in the run (`TrainState::step` before it).
    pub step: u64,
    pub loss: f64,
    pub norm: f64,
    pub applied: bool,
    pub alpha: Option<f64>,
    pub units: usize,
    /// Correctly classified samples and samples, where the task counts them.
    pub correct: Option<(u64, u64)>,
}

/// What the host knows of a pending step without asking the device.
struct Pending {
    step: u64,
    units: usize,
    samples: Option<u64>,
}

pub struct StepRecords {
    /// `[capacity, FIELDS]` float64 on the device.
    rows: Tensor,
    /// The next row, `[1]` int64 on the device.
    slot: Tensor,
    /// What fills an absent column (no alpha, no accuracy).
    absent: Tensor,
    pending: Vec<Pending>,
}

impl StepRecords {
    pub fn new(capacity: usize, device: Device) -> StepRecords {
        let capacity = capacity.clamp(1, MAX_PENDING) as i64;
        StepRecords {
            rows: Tensor::zeros([capacity, FIELDS as i64], (Kind::Double, device)),
            slot: Tensor::zeros([1], (Kind::Int64, device)),
            absent: Tensor::full([1], f64::NAN, (Kind::Double, device)),
            pending: Vec::new(),
        }
    }

    /// Whether the buffer is full: the trainer reads it before the next step.
    pub fn is_full(&self) -> bool {
        self.pending.len() as i64 >= self.rows.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Writes a step's numbers into the next row, on the device only (a captured step
    /// writes them at each replay); [`note`](Self::note) tells the host of it.
    pub fn record(
        &mut self,
        s: &TrainStep,
        stats: &StepStats,
        alpha: Option<&Tensor>,
    ) -> Result<()> {
        let one = |t: &Tensor| t.detach().reshape([1]).to_kind(Kind::Double);
        let cols = [
            one(&s.loss),
            one(&stats.norm),
            one(&stats.applied),
            alpha.map_or_else(|| self.absent.shallow_clone(), one),
            s.correct
                .as_ref()
                .map_or_else(|| self.absent.shallow_clone(), one),
        ];
        let row = Tensor::f_cat(&cols, 0)?.unsqueeze(0);
        tch::no_grad(|| -> Result<()> {
            let _ = self.rows.f_index_copy_(0, &self.slot, &row)?;
            let _ = self.slot.f_add_scalar_(1)?;
            Ok(())
        })
    }

    /// The host's part of step `step` (0-based), recorded (or replayed) just before.
    pub fn note(&mut self, step: u64, staged: &StagedStep) {
        debug_assert!(!self.is_full());
        self.pending.push(Pending {
            step,
            units: staged.units,
            samples: staged.samples,
        });
    }

    /// The pending steps, in order (one read from the device), and an empty buffer.
    pub fn take(&mut self) -> Result<Vec<StepRecord>> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.pending.len() as i64;
        if let Some(group) = crate::distributed::current() {
            // Each rank counted its own share of the batch's correct predictions.
            if self.pending.iter().any(|p| p.samples.is_some()) {
                let correct = self.rows.f_narrow(0, 0, n)?.select(1, CORRECT as i64);
                let lane = crate::distributed::Lane::Data;
                group.all_reduce("correct predictions", lane, &[&correct], 1.0)?;
            }
        }
        let host = self.rows.f_narrow(0, 0, n)?.f_to_device(Device::Cpu)?;
        let values = Vec::<f64>::try_from(host.flatten(0, -1))?;
        let _ = self.slot.f_zero_()?;
        let out = self
            .pending
            .drain(..)
            .zip(values.chunks(FIELDS))
            .map(|(p, v)| StepRecord {
                step: p.step,
                loss: v[LOSS],
                norm: v[NORM],
                applied: v[APPLIED] != 0.0,
                alpha: (!v[ALPHA].is_nan()).then_some(v[ALPHA]),
                units: p.units,
                correct: p.samples.map(|n| (v[CORRECT] as u64, n)),
            })
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(norm: f32, applied: f32) -> StepStats {
        StepStats {
            norm: Tensor::from(norm),
            applied: Tensor::from(applied),
        }
    }

    fn step(loss: f32, correct: Option<(i64, u64)>) -> (TrainStep, StagedStep) {
        let train = TrainStep {
            loss: Tensor::from(loss),
            objective: Tensor::from(loss),
            correct: correct.map(|(c, _)| Tensor::from(c)),
        };
        let staged = StagedStep {
            key: 0,
            lr_scale: 1.0,
            units: 7,
            samples: correct.map(|(_, n)| n),
        };
        (train, staged)
    }

    fn add(
        r: &mut StepRecords,
        at: u64,
        (train, staged): (TrainStep, StagedStep),
        stats: StepStats,
        alpha: Option<&Tensor>,
    ) {
        r.record(&train, &stats, alpha).unwrap();
        r.note(at, &staged);
    }

    #[test]
    fn records_come_back_in_order_and_the_buffer_empties() {
        let mut r = StepRecords::new(3, Device::Cpu);
        add(&mut r, 4, step(2.5, None), stats(0.5, 1.0), None);
        let alpha = Tensor::from_slice(&[9.5f32]);
        let nan = step(f32::NAN, Some((3, 8)));
        add(&mut r, 5, nan, stats(f32::INFINITY, 0.0), Some(&alpha));
        add(&mut r, 6, step(1.0, None), stats(0.1, 1.0), None);
        assert!(r.is_full());
        let got = r.take().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].step, got[0].loss, got[0].norm), (4, 2.5, 0.5));
        assert!(got[0].applied && got[0].alpha.is_none() && got[0].correct.is_none());
        assert!(got[1].loss.is_nan() && got[1].norm.is_infinite() && !got[1].applied);
        assert_eq!(
            (got[1].alpha, got[1].correct, got[1].units),
            (Some(9.5), Some((3, 8)), 7)
        );
        assert!(r.is_empty() && !r.is_full());
        add(&mut r, 7, step(3.0, None), stats(0.2, 1.0), None);
        assert_eq!(r.take().unwrap()[0].step, 7);
        assert!(r.take().unwrap().is_empty());
    }
}
