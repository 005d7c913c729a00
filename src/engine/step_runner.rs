//! One training step of the trainer: the task's staged batch through forward, loss,
//! backward, clipping and the update, with its numbers recorded on the device. Eagerly, or
//! on CUDA (`train.cuda_graph`) captured once per step key in a CUDA graph and replayed:
//! one launch instead of the hundreds a step queues. Both run the same code: a capture
//! records the eager step's kernels. Steps whose shapes come once (the LM's last, shorter
//! window of an epoch) stay eager until seen [`CAPTURE_AFTER`] times.
use super::settings::Precision;
use super::trainer::Trainer;
use super::StagedStep;
use crate::error::Result;
use crate::optim::OptimizerKind;

/// Eager steps of a key before its capture (the last on the graph's side stream, so that
/// libraries set up their per-stream state outside the capture).
pub const CAPTURE_AFTER: usize = 3;

/// The captured steps, by key, and how often each key was seen.
#[derive(Default)]
pub struct StepGraphs {
    #[cfg(feature = "cuda")]
    seen: std::collections::HashMap<usize, usize>,
    #[cfg(feature = "cuda")]
    graphs: std::collections::HashMap<usize, crate::native::graph::CudaGraph>,
}

impl Trainer<'_> {
    /// Whether this step may run from a CUDA graph: a CUDA device and `train.cuda_graph`,
    /// a task whose steps read fixed buffers, SGD (Adam's step reads only device numbers
    /// too, but its capture has not been checked on a GPU yet: it runs eagerly), no NT-ASGD
    /// average (its weight changes every step), no forced NaN.
    fn graph_eligible(&self) -> bool {
        cfg!(feature = "cuda")
            && self.settings.cuda_graph
            && self.task.device().is_cuda()
            && self.task.capturable()
            && self.settings.optimizer == OptimizerKind::Sgd
            && self.averages.is_none()
            && !self.nan_injection.active()
            // A data-parallel step waits for the other ranks on the host.
            && crate::distributed::current().is_none()
    }

    /// Runs the staged step (eagerly or from its graph) and tells the records of it.
    pub(super) fn run_step(&mut self, staged: &StagedStep) -> Result<()> {
        if self.graph_eligible() {
            self.graph_step(staged)?;
        } else {
            self.eager_step(staged)?;
        }
        self.records.note(self.st.step, staged);
        Ok(())
    }

    /// Forward and loss (under bf16 autocast when asked), the update, the hand-over to
    /// the next step, the numbers into the records: device work only.
    fn eager_step(&mut self, staged: &StagedStep) -> Result<()> {
        let device = self.task.device();
        let mut step = if self.settings.precision == Precision::Bf16 {
            crate::native::with_bf16_autocast(device, || self.task.compute_step(staged))??
        } else {
            self.task.compute_step(staged)?
        };
        self.nan_injection.apply(self.st.step + 1, &mut step);
        let stats = self
            .opt
            .step_guarded(&step.objective, staged.lr_scale, Some(&step.loss))?;
        self.task.finish_step(staged);
        let alpha = self.task.head().alpha_tensor();
        self.records.record(&step, &stats, alpha.as_ref())
    }

    #[cfg(not(feature = "cuda"))]
    fn graph_step(&mut self, staged: &StagedStep) -> Result<()> {
        self.eager_step(staged)
    }

    /// Replays the key's graph, or runs the step eagerly while the key is new, or captures
    /// it (then replays it: a capture runs nothing).
    #[cfg(feature = "cuda")]
    fn graph_step(&mut self, staged: &StagedStep) -> Result<()> {
        use crate::native::graph::CudaGraph;
        // The learning rate goes into its device tensor outside the graph, which reads it.
        self.opt.prepare_step(staged.lr_scale);
        let seen = {
            let n = self.graphs.seen.entry(staged.key).or_insert(0);
            *n += 1;
            *n
        };
        if let Some(g) = self.graphs.graphs.get(&staged.key) {
            if g.is_captured() {
                g.replay()?;
                self.opt.count_replayed_step();
                return Ok(());
            }
        }
        if seen < CAPTURE_AFTER {
            return self.eager_step(staged);
        }
        let mut graph = match self.graphs.graphs.remove(&staged.key) {
            Some(g) => g,
            None => CudaGraph::new()?,
        };
        let out = if seen == CAPTURE_AFTER {
            graph.on_side_stream(|| self.eager_step(staged))
        } else {
            let captured = graph
                .capture(|| self.eager_step(staged))
                .and_then(|()| graph.replay());
            if captured.is_ok() && !self.quiet {
                println!(
                    "| training step of key {} captured in a CUDA graph",
                    staged.key
                );
            }
            captured
        };
        self.graphs.graphs.insert(staged.key, graph);
        out
    }
}
