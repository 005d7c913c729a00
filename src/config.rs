//! The typed experiment config: the single source of every hyperparameter. Loaded from TOML
//! (`configs/*.toml`), overridden field by field with `--set section.key=value`, validated
//! with errors that name the file and the field. Sections by concern, each with defaults:
//! `[train]` (the engine: optimizer, schedule, epochs, device), `[head]` (the classifier,
//! [`HeadConfig`]) and one task section (`[lm]`, [`LmConfig`], or `[vision]`,
//! [`VisionConfig`]). The `[train]` defaults are the paper's language-model recipe, so an LM
//! config only states what differs; image configs state their recipe.
pub use crate::classifier::{AlphaParam, HeadConfig, HeadMode, LossKind};
use crate::distributed::DistributedConfig;
pub use crate::engine::{OnNonFinite, Precision, Schedule, TrainConfig, MAX_CONSECUTIVE_SKIPS};
use crate::error::{Error, IoContext, Result};
pub use crate::lm::config::{InputEmbedding, LmConfig};
pub use crate::optim::OptimizerKind;
pub use crate::vision::config::VisionConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A validated config: the engine's settings, the head, and one task's section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConfigFile", into = "ConfigFile")]
pub struct Config {
    /// Run name: the run folder is `<runs_dir>/<name>`.
    pub name: String,
    /// Folder that holds run folders.
    pub runs_dir: PathBuf,
    pub train: TrainConfig,
    pub head: HeadConfig,
    /// The task and its section (`[lm]` or `[vision]`).
    pub task: TaskConfig,
    /// How the ranks of a data-parallel launch communicate (`[distributed]`).
    pub distributed: DistributedConfig,
    /// Where the config came from, for errors found after loading (see [`Origin`]).
    pub origin: Origin,
}

/// The task a config trains, with its section. Every command that depends on the task
/// matches on this, so a new task is a new variant the compiler asks for everywhere.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskConfig {
    /// The language model (`[lm]`).
    Lm(LmConfig),
    /// Image classification (`[vision]`).
    Vision(VisionConfig),
}

/// A config file as written: the task sections are optional here, and exactly one is
/// required by [`Config`]'s validation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
    name: String,
    runs_dir: PathBuf,
    train: TrainConfig,
    head: HeadConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    lm: Option<LmConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vision: Option<VisionConfig>,
    #[serde(skip_serializing_if = "DistributedConfig::is_default")]
    distributed: DistributedConfig,
}

impl Default for ConfigFile {
    fn default() -> Self {
        Self {
            name: "run".into(),
            runs_dir: "runs".into(),
            train: TrainConfig::default(),
            head: HeadConfig::default(),
            lm: None,
            vision: None,
            distributed: DistributedConfig::default(),
        }
    }
}

impl TryFrom<ConfigFile> for Config {
    type Error = Error;

    /// Validated, with no file to name (serde's own entry point; [`from_value`] names it).
    fn try_from(file: ConfigFile) -> Result<Config> {
        Config::from_file(file, "")
    }
}

impl From<Config> for ConfigFile {
    fn from(cfg: Config) -> ConfigFile {
        let (lm, vision) = match cfg.task {
            TaskConfig::Lm(lm) => (Some(lm), None),
            TaskConfig::Vision(v) => (None, Some(v)),
        };
        ConfigFile {
            name: cfg.name,
            runs_dir: cfg.runs_dir,
            train: cfg.train,
            head: cfg.head,
            lm,
            vision,
            distributed: cfg.distributed,
        }
    }
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
    let file: ConfigFile = serde_path_to_error::deserialize(value).map_err(|e| {
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
    Config::from_file(file, origin)
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
    /// Checks values serde cannot (sizes, probabilities, combinations) and the one task
    /// section; errors name `origin` and the field.
    fn from_file(file: ConfigFile, origin: &str) -> Result<Config> {
        check_folder_name(origin, "name", &file.name)?;
        file.train.validate(origin)?;
        // The task first: it says which head modes make sense for it at all.
        let task = match (file.lm, file.vision) {
            (Some(lm), None) => {
                lm.validate(origin, &file.train, &file.head)?;
                TaskConfig::Lm(lm)
            }
            (None, Some(vision)) => {
                vision.validate(origin, &file.head)?;
                TaskConfig::Vision(vision)
            }
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    origin,
                    "vision",
                    "a config has one task: keep either [lm] or [vision]",
                ))
            }
            (None, None) => {
                return Err(Error::config(
                    origin,
                    "lm",
                    "the config names no task; add an [lm] section (configs/lm-wt2.toml) or a \
                     [vision] section (configs/vision/)",
                ))
            }
        };
        file.head.validate(origin)?;
        file.distributed.validate(origin)?;
        Ok(Config {
            name: file.name,
            runs_dir: file.runs_dir,
            train: file.train,
            head: file.head,
            task,
            distributed: file.distributed,
            origin: Origin(origin.to_string()),
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&ConfigFile::from(self.clone())).unwrap_or_default()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.name)
    }
}

#[cfg(test)]
mod tests;
