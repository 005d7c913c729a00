//! What the commands do with a config, whatever its task: build the task its section names,
//! then hand it to the engine (train, evaluate, count parameters).
use crate::config::{Config, TaskConfig};
use crate::distributed;
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

/// Trains the run of `cfg` (see [`engine::train`]). Launched by torchrun (or with its
/// variables), this process is one rank of a data-parallel run: it joins the process
/// group first, on CUDA device `LOCAL_RANK`, and only rank 0 talks.
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<Summary> {
    let Some(launched) = join_launch(cfg)? else {
        let run = RunDir::new(cfg.run_dir());
        return engine::train(&cfg.train, &cfg.head, &run, &cfg.to_toml(), opts, || {
            build(cfg)
        });
    };
    let (rank_cfg, group) = launched;
    let run = RunDir::new(cfg.run_dir());
    let opts = TrainOptions {
        quiet: opts.quiet || group.rank != 0,
        ..opts.clone()
    };
    // The run folder records the config as given (`auto`, not rank 0's `cuda:0`).
    engine::train(
        &rank_cfg.train,
        &cfg.head,
        &run,
        &cfg.to_toml(),
        &opts,
        || build(&rank_cfg),
    )
}

/// The process group of a torchrun-style launch, joined, with the config this rank
/// trains (its CUDA device the rank's own); None for a process alone. Every rank must
/// have the same config (a hash of it is compared).
fn join_launch(cfg: &Config) -> Result<Option<(Config, &'static distributed::ProcessGroup)>> {
    let Some((cfg, group)) = join_group(cfg)? else {
        return Ok(None);
    };
    // The config as given (before the rank's own device), as the ranks should share it.
    let mut shared = cfg.clone();
    shared.train.device = String::new();
    distributed::sync::check_same(
        group,
        "config",
        distributed::sync::digest(shared.to_toml().as_bytes()),
        "launch every rank with the same --config and --set",
    )?;
    Ok(Some((cfg, group)))
}

/// The process group of a launch for `cfg`'s `[distributed]` settings and device (built
/// by the first call of the process, the same group after: see
/// [`distributed::init_from_env`]), with `cfg` on this rank's device; None alone. A
/// mismatch with the group's settings names `cfg`'s file.
pub fn join_group(cfg: &Config) -> Result<Option<(Config, &'static distributed::ProcessGroup)>> {
    if distributed::Launch::from_env()?.is_none() {
        return Ok(None);
    }
    let mut cfg = cfg.clone();
    if let Some(device) = distributed::local_device(&cfg.train.device)? {
        cfg.train.device = device;
    }
    let device = engine::resolve_device(&cfg.train.device)?;
    let group = distributed::init_from_env(&cfg.distributed, device).map_err(|e| match e {
        Error::Config { file, field, msg }
            if file == "[distributed]" && !cfg.origin.0.is_empty() =>
        {
            Error::config(&cfg.origin.0, field, msg)
        }
        e => e,
    })?;
    Ok(group.map(|g| (cfg, g)))
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
