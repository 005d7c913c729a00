//! The typed experiment config: the single source of every hyperparameter. Loaded from TOML
//! (`configs/*.toml`), overridden field by field with `--set section.key=value`, validated
//! with errors that name the file and the field. Sections by concern, each with defaults:
//! `[train]` (the engine: optimizer, schedule, epochs, device), `[head]` (the classifier,
//! [`HeadConfig`]) and one task section (`[lm]`, [`LmConfig`], or `[vision]`,
//! [`VisionConfig`]). The `[train]` defaults are the paper's language-model recipe, so an LM
//! config only states what differs; image configs state their recipe.
pub use crate::classifier::{AlphaParam, HeadConfig, HeadMode, LossKind};
use crate::error::{Error, IoContext, Result};
pub use crate::lm::config::{InputEmbedding, LmConfig};
pub use crate::optim::OptimizerKind;
pub use crate::vision::config::VisionConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Run name: the run folder is `<runs_dir>/<name>`.
    pub name: String,
    /// Folder that holds run folders.
    pub runs_dir: PathBuf,
    pub train: TrainConfig,
    pub head: HeadConfig,
    /// The language-model task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lm: Option<LmConfig>,
    /// The image-classification task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision: Option<VisionConfig>,
    /// Where the config came from, for errors found after loading (see [`Origin`]).
    #[serde(skip)]
    pub origin: Origin,
}

/// The file (or `file (with --set)`) a config was loaded from, for messages about its fields
/// that only fail once the data is known. Not part of the config's value: two configs that
/// differ only in where they came from are equal.
#[derive(Debug, Clone, Default)]
pub struct Origin(pub String);

impl PartialEq for Origin {
    fn eq(&self, _: &Origin) -> bool {
        true
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "run".into(),
            runs_dir: "runs".into(),
            train: TrainConfig::default(),
            head: HeadConfig::default(),
            lm: None,
            vision: None,
            origin: Origin::default(),
        }
    }
}

/// How the learning rate changes over epochs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Divide by `lr_decay` after an epoch whose validation loss is not the best so far
    /// (PyTorch's word_language_model).
    Plateau,
    /// Divide by `lr_decay` after each epoch listed in `milestones` (He et al.'s CIFAR regime).
    MultiStep,
    /// Cosine annealing from `lr` towards 0 over all the steps of `epochs`, set before each
    /// step (a function of the step, so a resumed run follows the same curve).
    Cosine,
    /// Never change it.
    Constant,
}

/// What the trainer does with a step whose loss or gradient norm is NaN or infinite.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnNonFinite {
    /// Stop with the step number; `last.safetensors` is the last good checkpoint.
    #[default]
    Stop,
    /// Leave the weights as they were and go on (counted in the metrics); stop anyway after
    /// [`MAX_CONSECUTIVE_SKIPS`] skipped steps in a row.
    Skip,
}

/// The arithmetic of training and evaluation (`train.precision`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// float32 everywhere.
    #[default]
    Fp32,
    /// float32 tensors, matrix products and cuDNN on TF32 tensor cores (10-bit mantissa
    /// inputs, float32 sums). CUDA only: the CPU computes in float32 all the same.
    Tf32,
    /// Autocast to bfloat16 for the forward pass (products, LSTM; reductions and the
    /// softmax stay float32), weights and optimizer in float32.
    Bf16,
}

/// Consecutive non-finite steps after which `on_nonfinite = "skip"` stops all the same.
pub const MAX_CONSECUTIVE_SKIPS: u64 = 10;

/// The `[train]` section: what the engine needs, whatever the task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    /// Initial learning rate (the LM recipe: 20 for SGD; use about 1e-3 for Adam).
    pub lr: f64,
    /// SGD momentum (0: plain SGD).
    pub momentum: f64,
    /// Nesterov momentum (SGD with momentum > 0).
    pub nesterov: bool,
    pub schedule: Schedule,
    /// Divisor of the learning rate at each decay of the schedule (plateau, multi-step).
    pub lr_decay: f64,
    /// Epochs after which `multi-step` divides the learning rate.
    pub milestones: Vec<usize>,
    /// Gradient-norm clipping (0: off).
    pub clip: f64,
    /// Weight decay on the trained weights (L2 for sgd and adam, decoupled for adamw).
    pub weight_decay: f64,
    pub epochs: usize,
    /// Stop each epoch after this many steps (0: the whole training set). The next epoch
    /// continues where this one stopped, so short epochs still walk through the data.
    pub max_steps_per_epoch: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    /// Log every this many steps.
    pub log_interval: usize,
    /// Also write `last.safetensors` every this many steps (0: at epoch ends only).
    pub checkpoint_interval: usize,
    /// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// CPU threads for libtorch (0: libtorch's default).
    pub threads: usize,
    /// `stop` (default) or `skip` a step whose loss or gradient is NaN or infinite.
    pub on_nonfinite: OnNonFinite,
    /// `fp32` (default), `tf32` (CUDA tensor cores) or `bf16` (autocast).
    pub precision: Precision,
    /// On CUDA, capture the whole training step (forward, loss, backward, clipping, SGD
    /// update) in a CUDA graph per input shape and replay it: one launch instead of
    /// hundreds. Used for SGD on tasks whose steps read fixed buffers (the LM) while no
    /// NT-ASGD average is kept; other steps run eagerly. No effect on the CPU.
    pub cuda_graph: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: 20.0,
            momentum: 0.0,
            nesterov: false,
            schedule: Schedule::Plateau,
            lr_decay: 4.0,
            milestones: Vec::new(),
            clip: 0.25,
            weight_decay: 0.0,
            epochs: 40,
            max_steps_per_epoch: 0,
            batch_size: 20,
            eval_batch_size: 10,
            seed: 1111,
            log_interval: 200,
            checkpoint_interval: 0,
            device: "auto".into(),
            threads: 0,
            on_nonfinite: OnNonFinite::Stop,
            precision: Precision::Fp32,
            cuda_graph: true,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(origin, field, msg));
        for (field, v) in [
            ("train.epochs", self.epochs),
            ("train.batch_size", self.batch_size),
            ("train.eval_batch_size", self.eval_batch_size),
            ("train.log_interval", self.log_interval),
        ] {
            if v == 0 {
                return err(field, "must be a positive integer, got 0".into());
            }
        }
        for (field, v) in [("train.lr", self.lr), ("train.lr_decay", self.lr_decay)] {
            if !(v.is_finite() && v > 0.0) {
                return err(field, format!("must be a positive number, got {v}"));
            }
        }
        for (field, v) in [
            ("train.clip", self.clip),
            ("train.weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(field, format!("must be zero or positive, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return err(
                "train.momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if self.momentum > 0.0 && self.optimizer != OptimizerKind::Sgd {
            return err(
                "train.momentum",
                format!(
                    "momentum is an SGD setting; set it to 0 for optimizer {}",
                    self.optimizer.name()
                ),
            );
        }
        if self.nesterov && !(self.optimizer == OptimizerKind::Sgd && self.momentum > 0.0) {
            return err(
                "train.nesterov",
                "Nesterov needs optimizer = \"sgd\" and momentum > 0".into(),
            );
        }
        if self.schedule == Schedule::MultiStep && self.milestones.is_empty() {
            return err(
                "train.milestones",
                "the multi-step schedule needs epochs to decay after, e.g. [81, 122]".into(),
            );
        }
        if self.schedule != Schedule::MultiStep && !self.milestones.is_empty() {
            return err(
                "train.milestones",
                "only the multi-step schedule uses milestones; set schedule = \"multi-step\" \
                 or remove them"
                    .into(),
            );
        }
        let d = self.device.as_str();
        let cuda_n = d
            .strip_prefix("cuda:")
            .is_some_and(|i| i.parse::<usize>().is_ok());
        if !(["auto", "cpu", "cuda"].contains(&d) || cuda_n) {
            return err(
                "train.device",
                format!("`{d}`: use auto, cpu, cuda or cuda:N"),
            );
        }
        Ok(())
    }
}

/// Parses `text` (TOML) into a config; errors name `origin` and the field path.
pub fn from_toml_str(text: &str, origin: &str) -> Result<Config> {
    let value: toml::Value = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
    from_value(value, origin)
}

/// The sections of the fixclf 0.1 layout, and where they went.
const LEGACY_SECTIONS: [(&str, &str); 3] = [
    ("data", "[lm.data]"),
    ("model", "[lm.model]"),
    ("output", "[head] (input_embedding: lm.model)"),
];
/// `train` fields of fixclf 0.1 that belong to the language model now (`[lm]`).
const LEGACY_TRAIN_LM: [&str; 6] = ["bptt", "variable_bptt", "ar", "tar", "asgd", "nonmono"];

/// Checks that `name` (the value of `field`) names one folder inside another: not empty,
/// not `.` or `..` (which would put a run beside or above its runs folder), no separator,
/// no control character.
pub fn check_folder_name(origin: &str, field: &str, name: &str) -> Result<()> {
    let ok = !matches!(name, "" | "." | "..")
        && !name.contains(['/', '\\'])
        && !name.contains(char::is_control);
    if ok {
        return Ok(());
    }
    Err(Error::config(
        origin,
        field,
        format!(
            "`{}` is not a folder name: give a name without slashes or control characters, \
             other than `.` and `..`",
            name.escape_debug()
        ),
    ))
}

/// A config from a TOML tree (a file's, or a suite's base with a run's overrides), validated.
pub fn from_value(value: toml::Value, origin: &str) -> Result<Config> {
    if let Some(table) = value.as_table() {
        let old: Vec<String> = LEGACY_SECTIONS
            .iter()
            .filter(|(k, _)| table.contains_key(*k))
            .map(|(k, to)| format!("[{k}] to {to}"))
            .collect();
        if !old.is_empty() {
            return Err(Error::config(
                origin,
                "",
                format!(
                    "this config has the fixclf 0.1 layout; move {}, and train.bptt, \
                     variable_bptt, ar, tar, asgd, nonmono to [lm] (configs/README.md)",
                    old.join(", ")
                ),
            ));
        }
    }
    let mut cfg: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let msg = one_line(&e.inner().to_string());
        // toml's own message may end with the path that `field` already names.
        let msg = match msg.strip_suffix(&format!(" in `{field}`")) {
            Some(m) => m.to_string(),
            None => msg,
        };
        let fix = if msg.contains("unknown field") {
            "; remove it or fix its spelling (see configs/README.md)"
        } else {
            ""
        };
        Error::config(origin, field, format!("{msg}{fix}"))
    })?;
    cfg.validate(origin)?;
    cfg.origin = Origin(origin.to_string());
    Ok(cfg)
}

/// Rewrites a config of the fixclf 0.1 layout (as run folders of that version hold) into
/// today's; returns whether anything moved.
pub fn migrate_legacy(value: &mut toml::Value) -> bool {
    let Some(table) = value.as_table_mut() else {
        return false;
    };
    if !LEGACY_SECTIONS.iter().any(|(k, _)| table.contains_key(*k)) {
        return false;
    }
    let mut lm = toml::Table::new();
    if let Some(data) = table.remove("data") {
        lm.insert("data".into(), data);
    }
    let mut model = match table.remove("model") {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    if let Some(toml::Value::Table(mut output)) = table.remove("output") {
        if let Some(ie) = output.remove("input_embedding") {
            model.insert("input_embedding".into(), ie);
        }
        table.insert("head".into(), toml::Value::Table(output));
    }
    lm.insert("model".into(), toml::Value::Table(model));
    if let Some(toml::Value::Table(train)) = table.get_mut("train") {
        for key in LEGACY_TRAIN_LM {
            if let Some(v) = train.remove(key) {
                lm.insert(key.into(), v);
            }
        }
    }
    table.insert("lm".into(), toml::Value::Table(lm));
    true
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A TOML syntax error, located by line (the message itself names the key).
fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
        .unwrap_or(0);
    let msg = one_line(e.message());
    Error::config(
        origin,
        format!("line {line}"),
        format!("invalid TOML: {msg}"),
    )
}

/// Loads a config file and applies `--set key=value` overrides (dotted keys, TOML values;
/// a value that is not valid TOML is taken as a string).
pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
    let (value, origin) = read_toml(path, overrides)?;
    from_value(value, &origin)
}

/// Loads the `config.toml` of a run folder, written by this or an earlier fixclf (whose
/// layout is migrated).
pub fn load_run_config(path: &Path, overrides: &[String]) -> Result<Config> {
    let (mut value, origin) = read_toml(path, &[])?;
    migrate_legacy(&mut value);
    keep_canonical_orientation(&mut value);
    apply_overrides(&mut value, overrides)?;
    from_value(value, &origin)
}

/// A run folder's config written before `head.random_orientation` existed trained the
/// canonical Hadamard and simplex matrices: keep them (its checkpoints record them).
fn keep_canonical_orientation(value: &mut toml::Value) {
    let Some(table) = value.as_table_mut() else {
        return;
    };
    let head = table
        .entry("head")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(head) = head.as_table_mut() {
        head.entry("random_orientation")
            .or_insert(toml::Value::Boolean(false));
    }
}

fn read_toml(path: &Path, overrides: &[String]) -> Result<(toml::Value, String)> {
    let bytes = std::fs::read(path).at(path)?;
    let origin = path.display().to_string();
    let mut value = parse_toml_bytes(&bytes, &origin)?;
    apply_overrides(&mut value, overrides)?;
    let origin = if overrides.is_empty() {
        origin
    } else {
        format!("{origin} (with --set)")
    };
    Ok((value, origin))
}

/// Parses a TOML file's bytes into a tree; errors name `origin` and the line.
pub fn parse_toml_bytes(bytes: &[u8], origin: &str) -> Result<toml::Value> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].split(|&b| b == b'\n').count();
        Error::config(
            origin,
            format!("line {line}"),
            "not UTF-8 text; a config is a TOML text file",
        )
    })?;
    toml::from_str(text).map_err(|e| toml_error(origin, text, &e))
}

/// Parses a config file's bytes as [`load`] (`legacy` false) or [`load_run_config`]
/// (`legacy` true: the fixclf 0.1 layout is migrated) do, without overrides.
pub fn from_toml_bytes(bytes: &[u8], origin: &str, legacy: bool) -> Result<Config> {
    let mut value = parse_toml_bytes(bytes, origin)?;
    if legacy {
        migrate_legacy(&mut value);
        keep_canonical_orientation(&mut value);
    }
    from_value(value, origin)
}

/// Applies `key=value` overrides to a TOML tree.
pub fn apply_overrides(value: &mut toml::Value, overrides: &[String]) -> Result<()> {
    for ov in overrides {
        let (key, raw) = ov.split_once('=').ok_or_else(|| {
            Error::arg(
                "--set",
                format!("`{ov}` is not key=value (e.g. train.lr=1e-3)"),
            )
        })?;
        let key = key.trim();
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let mut node = &mut *value;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let table = node.as_table_mut().ok_or_else(|| {
                Error::arg(
                    "--set",
                    format!("`{key}`: `{}` is not a section", parts[..i].join(".")),
                )
            })?;
            if i + 1 == parts.len() {
                table.insert(part.to_string(), parsed.clone());
                break;
            }
            node = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
    }
    Ok(())
}

impl Config {
    /// Checks values serde cannot: sizes, probabilities, combinations.
    pub fn validate(&self, origin: &str) -> Result<()> {
        check_folder_name(origin, "name", &self.name)?;
        self.train.validate(origin)?;
        // The task first: it says which head modes make sense for it at all.
        self.validate_task(origin)?;
        self.head.validate(origin)
    }

    fn validate_task(&self, origin: &str) -> Result<()> {
        match (&self.lm, &self.vision) {
            (Some(lm), None) => lm.validate(origin, &self.train, &self.head),
            (None, Some(vision)) => vision.validate(origin, &self.head),
            (Some(_), Some(_)) => Err(Error::config(
                origin,
                "vision",
                "a config has one task: keep either [lm] or [vision]",
            )),
            (None, None) => Err(Error::config(
                origin,
                "lm",
                "the config names no task; add an [lm] section (configs/lm-wt2.toml) or a \
                 [vision] section (configs/vision/)",
            )),
        }
    }

    /// The language-model section (validated configs of that task have one).
    pub fn lm(&self) -> Result<&LmConfig> {
        self.lm
            .as_ref()
            .ok_or_else(|| Error::config(&self.name, "lm", "the config has no [lm] section"))
    }

    /// The image-classification section (validated configs of that task have one).
    pub fn vision(&self) -> Result<&VisionConfig> {
        self.vision.as_ref().ok_or_else(|| {
            Error::config(&self.name, "vision", "the config has no [vision] section")
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.name)
    }
}

#[cfg(test)]
mod tests;
