//! The task-agnostic training engine: the loop every task shares (epochs of steps, logging,
//! evaluation, best and last checkpoints, exact resume, divergence stop, learning-rate
//! schedule, NT-ASGD averaging, metrics, the summary). A task (the language model, image
//! classification) implements [`Task`]: it owns its data and model and says how to take one
//! training step's loss and how to evaluate; the engine owns everything else.
pub mod checkpoint;
mod console;
mod data_parallel;
pub mod metrics;
mod numerics;
mod resume;
pub mod run_dir;
pub mod settings;
pub mod step_records;
mod step_runner;
mod trainer;

pub use checkpoint::{save_safetensors, Checkpoint, CHECKPOINT_FORMAT};
pub use data_parallel::{fixed_matrix_digest, COMM_FILE};
pub use metrics::{
    ClassStats, Collapse, Evaluation, Event, MetricsLog, ParamReport, ShotAccuracy, Summary, Unit,
};
pub use numerics::{ALPHA_MAX, NAN_ENV};
pub use run_dir::{RunDir, TrainState, BEST, CONFIG_FILE, LAST, METRICS_FILE, SUMMARY_FILE};
pub use settings::{OnNonFinite, Precision, Schedule, TrainConfig, MAX_CONSECUTIVE_SKIPS};
pub use step_runner::CAPTURE_AFTER;
pub use trainer::{train, TrainOptions};

use crate::classifier::{Head, HeadMode};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use std::collections::HashMap;
use tch::{nn, Device, Tensor};

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl Split {
    pub fn parse(s: &str) -> Result<Split> {
        match s {
            "train" => Ok(Split::Train),
            "valid" => Ok(Split::Valid),
            "test" => Ok(Split::Test),
            other => Err(Error::arg(
                "--split",
                format!("`{other}`: use train, valid or test"),
            )),
        }
    }
}

/// One training step's loss, as the task computed it.
pub struct TrainStep {
    /// The loss value, 0-dim on the device (recorded there, read at the log interval).
    pub loss: Tensor,
    /// The scalar to backpropagate (its gradient is the loss's, regularizers included).
    pub objective: Tensor,
    /// Correctly classified samples (0-dim, on the device), where the task counts them.
    pub correct: Option<Tensor>,
}

/// What the host decided for the next step ([`Task::stage_step`]); its inputs wait in the
/// task's buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StagedStep {
    /// Steps with the same key have inputs of the same shapes in the same buffers (the
    /// LM: the BPTT length), so one captured CUDA graph replays them all.
    pub key: usize,
    /// Learning-rate multiplier for this step (variable BPTT), 1 otherwise.
    pub lr_scale: f64,
    /// Training data in this step, in the task's [`Unit`].
    pub units: usize,
    /// Samples whose predictions the step counts, where the task counts them.
    pub samples: Option<u64>,
}

/// One checkpoint metadata entry that identifies a task's model or data.
pub struct Identity {
    pub key: &'static str,
    pub value: String,
    /// What a mismatch means ("vocabulary"); None: recorded, not checked.
    pub checked_as: Option<&'static str>,
}

/// A task: its data, its model (backbone + [`Head`]) on a device, its training step and its
/// evaluation.
pub trait Task {
    /// `lm` or `vision`.
    fn name(&self) -> &'static str;
    fn unit(&self) -> Unit;
    fn var_store(&self) -> &nn::VarStore;
    fn device(&self) -> Device;
    fn head(&self) -> &Head;
    fn head_mode(&self) -> HeadMode;
    /// Number of classes C (the language model: its vocabulary).
    fn classes(&self) -> i64;
    fn params(&self) -> ParamReport;
    /// What [`ParamReport::classifier_share`] covers ("embedding + classifier").
    fn removable(&self) -> &'static str;
    /// A line about the data, for the console.
    fn describe_data(&self) -> String;
    /// Checkpoint metadata identifying the model and data, besides the engine's own.
    fn identity(&self) -> Vec<Identity>;
    /// Steps in a whole pass over the training data.
    fn steps_per_epoch(&self) -> usize;
    /// Starts (or resumes) epoch `epoch` (1-based) at `position` (as
    /// [`position`](Self::position) or [`next_epoch_position`](Self::next_epoch_position)
    /// gave it).
    fn start_epoch(&mut self, epoch: usize, position: usize);
    /// Chooses the next training batch and puts it in the task's input buffers, or None
    /// when the training data is exhausted. `rng` is the engine's seeded stream for the
    /// task's own random choices. Host work and copies only: no loss yet.
    fn stage_step(&mut self, rng: &mut StdRng) -> Option<StagedStep>;
    /// The loss of the staged batch, computed from the task's buffers and model alone
    /// (device work only, when [`capturable`](Self::capturable): the engine may capture it
    /// with the update in a CUDA graph and replay it for later steps of the same key).
    fn compute_step(&mut self, staged: &StagedStep) -> Result<TrainStep>;
    /// After the update: what the step hands to the next (the LM's hidden state) moves into
    /// the task's buffers (device work, captured with the step).
    fn finish_step(&mut self, _staged: &StagedStep) {}
    /// Whether [`compute_step`](Self::compute_step) and [`finish_step`](Self::finish_step)
    /// read and write only buffers that stay in place from step to step.
    fn capturable(&self) -> bool {
        false
    }
    /// Where in the training data the next step starts (saved in checkpoints).
    fn position(&self) -> usize;
    /// Data files skipped as unreadable in the current epoch (streamed image sets).
    fn skipped_files(&self) -> u64 {
        0
    }
    /// Where the next epoch starts: where this one stopped (an epoch cut short by
    /// `max_steps_per_epoch` does not replay the same batches), or a new pass over the data
    /// once this one reached its end.
    fn next_epoch_position(&self) -> usize;
    fn evaluate(&self, split: Split) -> Result<Evaluation>;
    /// What a step hands to the next within an epoch (the LM's hidden state), saved in
    /// `last.safetensors` so that a run resumed mid-epoch continues exactly.
    fn carried_state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }
    /// Restores what [`carried_state`](Self::carried_state) saved (read from `from`); called
    /// after [`start_epoch`](Self::start_epoch) when a run resumes inside an epoch.
    fn restore_carried_state(
        &mut self,
        _tensors: &HashMap<String, Tensor>,
        _from: &std::path::Path,
    ) -> Result<()> {
        Ok(())
    }
    /// NT-ASGD's `nonmono` when the task trains with averaged SGD.
    fn nt_asgd(&self) -> Option<usize> {
        None
    }
    /// Neural-collapse diagnostics of the training features after epoch `epoch` (1-based;
    /// `last_epoch`: the run's final one), or None when the task does not compute them this
    /// epoch (the task decides from its config) or at all (the default; the language model).
    fn collapse(&self, _epoch: usize, _last_epoch: bool) -> Result<Option<Collapse>> {
        Ok(None)
    }
}

/// The engine's checkpoint metadata of a task, its identity included.
pub fn identity_meta(task: &dyn Task) -> HashMap<String, String> {
    let mut m = HashMap::from([
        ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
        (
            "fixclf_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("mode".to_string(), task.head_mode().name().to_string()),
    ]);
    for id in task.identity() {
        m.insert(id.key.to_string(), id.value);
    }
    if let Some(spec) = fixed_spec_json(task.head()) {
        m.insert("fixed_matrix".to_string(), spec);
    }
    m
}

fn fixed_spec_json(head: &Head) -> Option<String> {
    head.fixed_spec()
        .and_then(|spec| serde_json::to_string(spec).ok())
}

/// Loads model weights from a checkpoint after checking it belongs to this task's model.
pub fn load_weights(task: &dyn Task, ckpt: &Checkpoint) -> Result<()> {
    ckpt.expect_meta("format", CHECKPOINT_FORMAT, "program")?;
    for id in task.identity() {
        if let Some(what) = id.checked_as {
            ckpt.expect_meta(id.key, &id.value, what)?;
        }
    }
    ckpt.expect_meta("mode", task.head_mode().name(), "head mode")?;
    if let Some(spec) = fixed_spec_json(task.head()) {
        ckpt.expect_meta(
            "fixed_matrix",
            &spec,
            "fixed matrix (kind, seed or embeddings file)",
        )?;
    }
    ckpt.copy_into(&task.var_store().variables())
}

/// The model's tensors in name order, as checkpoints store them.
pub fn model_tensors(task: &dyn Task) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = task.var_store().variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// What every task does before it builds its model: libtorch's thread count, the device, and
/// the seed its weights are initialized from (`train.seed`).
pub fn prepare(train: &TrainConfig) -> Result<Device> {
    if train.threads > 0 {
        tch::set_num_threads(train.threads as i32);
    }
    let device = resolve_device(&train.device)?;
    tch::manual_seed(train.seed as i64);
    Ok(device)
}

/// Picks the device named by the config (`auto`: CUDA when available).
pub fn resolve_device(name: &str) -> Result<Device> {
    let cuda = tch::Cuda::is_available();
    match name {
        "auto" => Ok(if cuda { Device::Cuda(0) } else { Device::Cpu }),
        "cpu" => Ok(Device::Cpu),
        _ if name.starts_with("cuda") => {
            if !cuda {
                return Err(Error::arg(
                    "device",
                    "CUDA is not available: this binary was built without the `cuda` feature \
                     or no GPU is visible; use --device cpu",
                ));
            }
            let idx = name
                .strip_prefix("cuda:")
                .map(|i| i.parse::<usize>())
                .transpose()
                .map_err(|_| Error::arg("device", format!("`{name}`: use cuda or cuda:N")))?
                .unwrap_or(0);
            Ok(Device::Cuda(idx))
        }
        _ => Err(Error::arg(
            "device",
            format!("`{name}`: use auto, cpu or cuda"),
        )),
    }
}

/// Sets the arithmetic of `precision` for what follows: TF32 on or off (CUDA's products and
/// cuDNN; a no-op on the CPU). bf16 is an autocast scope: [`evaluate_in`], and the trainer
/// around each step's forward pass.
pub fn set_precision(precision: Precision) -> Result<()> {
    crate::native::set_tf32(precision == Precision::Tf32)
}

/// `task.evaluate(split)` under `precision` (bf16: in an autocast scope).
pub fn evaluate_in(task: &dyn Task, split: Split, precision: Precision) -> Result<Evaluation> {
    set_precision(precision)?;
    if precision == Precision::Bf16 {
        crate::native::with_bf16_autocast(task.device(), || task.evaluate(split))?
    } else {
        task.evaluate(split)
    }
}

/// Evaluates a run's best checkpoint (else its last) on a split, with `task` built from the
/// run's config, in the precision it trained with.
pub fn eval_run(
    run: &RunDir,
    split: Split,
    task: &dyn Task,
    precision: Precision,
) -> Result<Evaluation> {
    let path = run.best_or_last().ok_or_else(|| {
        Error::arg(
            run.path.display().to_string(),
            "the run has no checkpoint yet (best.safetensors or last.safetensors)",
        )
    })?;
    load_weights(task, &Checkpoint::load(&path)?)?;
    evaluate_in(task, split, precision)
}
