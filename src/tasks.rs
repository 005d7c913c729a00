//! What the commands do with a config, whatever its task: build the task its section names,
//! then hand it to the engine (train, evaluate, count parameters).
use crate::config::{Config, TaskConfig};
use crate::engine::{self, Evaluation, ParamReport, RunDir, Split, Summary, Task, TrainOptions};
use crate::error::{Error, Result};
use crate::lm::LmTask;
use crate::vision::VisionTask;
use std::path::Path;

/// The task of a config, with its data loaded and its model built on the device of
/// `train.device`, its weights initialized from `train.seed` ([`engine::prepare`]).
pub fn build(cfg: &Config) -> Result<Box<dyn Task>> {
    let (train, head) = (&cfg.train, &cfg.head);
    let task: Result<Box<dyn Task>> = engine::prepare(train).and_then(|device| match &cfg.task {
        TaskConfig::Lm(lm) => {
            LmTask::new(lm, train, head, device).map(|t| Box::new(t) as Box<dyn Task>)
        }
        TaskConfig::Vision(vision) => {
            VisionTask::new(vision, train, head, device).map(|t| Box::new(t) as Box<dyn Task>)
        }
    });
    // A config field that only fails once the data is known (a simplex wider than the
    // features, a missing embeddings file) is named with the config file it came from.
    task.map_err(|e| match e {
        Error::Arg { arg, msg } if is_config_field(&arg) && !cfg.origin.0.is_empty() => {
            Error::config(&cfg.origin.0, arg, msg)
        }
        e => e,
    })
}

fn is_config_field(arg: &str) -> bool {
    ["head.", "lm.", "vision.", "train."]
        .iter()
        .any(|s| arg.starts_with(s))
}

/// Trains the run of `cfg` (see [`engine::train`]).
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<Summary> {
    let run = RunDir::new(cfg.run_dir());
    engine::train(&cfg.train, &cfg.head, &run, &cfg.to_toml(), opts, || {
        build(cfg)
    })
}

/// Evaluates a run folder's best checkpoint (else its last) on a split; `device` overrides
/// the run's `train.device`.
pub fn eval_run(run_dir: &Path, split: &str, device: Option<&str>) -> Result<Evaluation> {
    let split = Split::parse(split)?;
    let run = RunDir::new(run_dir);
    let cfg_path = run.file(engine::CONFIG_FILE);
    if !cfg_path.exists() {
        return Err(Error::arg(
            run_dir.display().to_string(),
            "not a run folder (no config.toml); pass the folder that `fixclf train` wrote",
        ));
    }
    let overrides: Vec<String> = device
        .map(|d| format!("train.device={d}"))
        .into_iter()
        .collect();
    let cfg = crate::config::load_run_config(&cfg_path, &overrides)?;
    let task = build(&cfg)?;
    engine::eval_run(&run, split, task.as_ref(), cfg.train.precision)
}

/// Parameter counts of a config's model, without training it.
pub fn describe_config(cfg: &Config) -> Result<(ParamReport, String)> {
    let task = build(cfg)?;
    Ok((task.params(), task.removable().to_string()))
}
