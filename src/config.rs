//! The typed experiment config: the single source of every hyperparameter. Loaded from TOML
//! (`configs/*.toml`), overridden field by field with `--set section.key=value`, validated
//! with errors that name the file and the field. Every field has a default, so a config
//! file only states what differs from the PyTorch word_language_model recipe.
pub use crate::classifier::LossKind;
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Run name: the run folder is `<runs_dir>/<name>`.
    pub name: String,
    /// Folder that holds run folders.
    pub runs_dir: PathBuf,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub output: OutputConfig,
    pub train: TrainConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "run".into(),
            runs_dir: "runs".into(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            output: OutputConfig::default(),
            train: TrainConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Folder with `train.txt`, `valid.txt`, `test.txt` (one sentence or paragraph a line).
    pub dir: PathBuf,
    /// The vocabulary (`tokenizer.json`); built from the three files when missing.
    /// Empty: `<cache_dir>/<corpus folder name>-tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Where token-id caches and built tokenizers go.
    pub cache_dir: PathBuf,
    /// Use only the first N training tokens (0: all). For quick, reduced-scale runs.
    pub train_tokens: usize,
    /// Use only the first N validation tokens (0: all).
    pub valid_tokens: usize,
    /// Use only the first N test tokens (0: all).
    pub test_tokens: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: "data/wikitext-2".into(),
            tokenizer: PathBuf::new(),
            cache_dir: "data/cache".into(),
            train_tokens: 0,
            valid_tokens: 0,
            test_tokens: 0,
        }
    }
}

impl DataConfig {
    pub fn tokenizer_path(&self) -> PathBuf {
        if !self.tokenizer.as_os_str().is_empty() {
            return self.tokenizer.clone();
        }
        let corpus = self
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "corpus".into());
        self.cache_dir.join(format!("{corpus}-tokenizer.json"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Word embedding size (the paper: 512).
    pub emb_size: i64,
    /// LSTM hidden size = classifier input size N (the paper: 512).
    pub hidden_size: i64,
    /// LSTM layers (the paper: 2).
    pub layers: i64,
    /// Dropout on the embedded input.
    pub dropout_input: f64,
    /// Dropout between LSTM layers.
    pub dropout_hidden: f64,
    /// Dropout on the LSTM output, before the classifier.
    pub dropout_output: f64,
    /// Embedding dropout (Merity et al. 2017): drops whole words from the embedding matrix.
    pub dropout_embedding: f64,
    /// Weight-drop (DropConnect) on the hidden-to-hidden LSTM weights (Merity et al. 2017).
    pub weight_drop: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            emb_size: 512,
            hidden_size: 512,
            layers: 2,
            dropout_input: 0.5,
            dropout_hidden: 0.5,
            dropout_output: 0.5,
            dropout_embedding: 0.0,
            weight_drop: 0.0,
        }
    }
}

/// The output layer of the language model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum OutputMode {
    /// Own embedding, own `Linear` with bias.
    Learned,
    /// Output weight is the input embedding (Press & Wolf 2017), own bias.
    Tied,
    /// Fixed random matrix with orthonormal columns, unit rows.
    FixedOrthogonal,
    /// Fixed truncated Hadamard matrix (fast transform).
    FixedHadamard,
    /// Fixed simplex equiangular tight frame (needs V <= N + 1).
    FixedSimplex,
    /// Fixed word2vec vectors (`output.embeddings`).
    FixedWord2vec,
    /// Fixed PPMI + SVD vectors (`output.embeddings`).
    FixedPmi,
    /// Fixed vectors from any supported file (`output.embeddings`).
    FixedPretrained,
}

impl OutputMode {
    pub const ALL: [OutputMode; 8] = [
        OutputMode::Learned,
        OutputMode::Tied,
        OutputMode::FixedOrthogonal,
        OutputMode::FixedHadamard,
        OutputMode::FixedSimplex,
        OutputMode::FixedWord2vec,
        OutputMode::FixedPmi,
        OutputMode::FixedPretrained,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutputMode::Learned => "learned",
            OutputMode::Tied => "tied",
            OutputMode::FixedOrthogonal => "fixed-orthogonal",
            OutputMode::FixedHadamard => "fixed-hadamard",
            OutputMode::FixedSimplex => "fixed-simplex",
            OutputMode::FixedWord2vec => "fixed-word2vec",
            OutputMode::FixedPmi => "fixed-pmi",
            OutputMode::FixedPretrained => "fixed-pretrained",
        }
    }

    pub fn parse(s: &str) -> Option<OutputMode> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn is_fixed(self) -> bool {
        !matches!(self, OutputMode::Learned | OutputMode::Tied)
    }

    /// Modes whose matrix comes from an embeddings file.
    /// The fixed matrix of a fixed mode.
    pub fn fixed_kind(self) -> Option<crate::classifier::FixedKind> {
        use crate::classifier::FixedKind;
        match self {
            OutputMode::Learned | OutputMode::Tied => None,
            OutputMode::FixedOrthogonal => Some(FixedKind::Orthogonal),
            OutputMode::FixedHadamard => Some(FixedKind::Hadamard),
            OutputMode::FixedSimplex => Some(FixedKind::Simplex),
            OutputMode::FixedWord2vec | OutputMode::FixedPmi | OutputMode::FixedPretrained => {
                Some(FixedKind::Pretrained)
            }
        }
    }

    pub fn needs_embeddings(self) -> bool {
        matches!(
            self,
            OutputMode::FixedWord2vec | OutputMode::FixedPmi | OutputMode::FixedPretrained
        )
    }
}

impl std::fmt::Display for OutputMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InputEmbedding {
    /// For fixed modes: the fixed matrix is also the input embedding (no trained weights in
    /// embedding + classifier, as in the paper).
    Fixed,
    /// A learned input embedding, whatever the output layer.
    Learned,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub mode: OutputMode,
    /// Input embedding of the fixed modes (learned and tied always learn it).
    pub input_embedding: InputEmbedding,
    /// Embeddings file for fixed-word2vec / fixed-pmi / fixed-pretrained
    /// (`.npy` + `.vocab`, word2vec `.txt`/`.bin`, GloVe `.txt`).
    pub embeddings: PathBuf,
    /// Seed of the random fixed matrices (orthogonal, hadamard sign flips).
    pub matrix_seed: u64,
    /// Initial value of the learned scale alpha (inverse softmax temperature).
    pub alpha_init: f64,
    /// Learn alpha (true) or keep it fixed at `alpha_init` (the paper's ablation: 0.1, 1, 10).
    pub learn_alpha: bool,
    /// Weight decay on alpha (the paper uses the classifier's weight decay).
    pub alpha_weight_decay: f64,
    /// Learned bias on the fixed classifier's logits.
    pub bias: bool,
    /// Loss of the fixed classifier: `cross-entropy`, or the paper's `cosine` angle loss.
    pub loss: LossKind,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            mode: OutputMode::Learned,
            input_embedding: InputEmbedding::Fixed,
            embeddings: PathBuf::new(),
            matrix_seed: 0,
            alpha_init: 10.0,
            learn_alpha: true,
            alpha_weight_decay: 0.0,
            bias: true,
            loss: LossKind::CrossEntropy,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    /// Initial learning rate (PyTorch example: 20 for SGD; use about 1e-3 for Adam).
    pub lr: f64,
    /// Divide the learning rate by this when validation loss does not improve (1: never).
    pub lr_decay: f64,
    /// Gradient-norm clipping (0: off).
    pub clip: f64,
    /// L2 weight decay on the trained weights.
    pub weight_decay: f64,
    pub epochs: usize,
    /// Stop each epoch after this many steps (0: the whole training set).
    pub max_steps_per_epoch: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// Truncated-BPTT length.
    pub bptt: usize,
    /// Variable BPTT length (Merity et al. 2017): bptt, halved with probability 0.05, then
    /// jittered with std 5; the learning rate is scaled by len / bptt.
    pub variable_bptt: bool,
    /// Activation regularization (AR) coefficient on the last layer's dropped output.
    pub ar: f64,
    /// Temporal activation regularization (TAR) coefficient on the last layer's output.
    pub tar: f64,
    /// Non-monotonically triggered averaged SGD (Merity et al. 2017), SGD only.
    pub asgd: bool,
    /// NT-ASGD trigger: switch when validation is no better than `nonmono` epochs ago.
    pub nonmono: usize,
    pub seed: u64,
    /// Log every this many steps.
    pub log_interval: usize,
    /// Also write `last.safetensors` every this many steps (0: at epoch ends only).
    pub checkpoint_interval: usize,
    /// `auto` (CUDA when available), `cpu` or `cuda`.
    pub device: String,
    /// CPU threads for libtorch (0: libtorch's default).
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: 20.0,
            lr_decay: 4.0,
            clip: 0.25,
            weight_decay: 0.0,
            epochs: 40,
            max_steps_per_epoch: 0,
            batch_size: 20,
            eval_batch_size: 10,
            bptt: 35,
            variable_bptt: false,
            ar: 0.0,
            tar: 0.0,
            asgd: false,
            nonmono: 5,
            seed: 1111,
            log_interval: 200,
            checkpoint_interval: 0,
            device: "auto".into(),
            threads: 0,
        }
    }
}

/// Parses `text` (TOML) into a config; errors name `origin` and the field path.
pub fn from_toml_str(text: &str, origin: &str) -> Result<Config> {
    let value: toml::Value = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
    from_value(value, origin)
}

fn from_value(value: toml::Value, origin: &str) -> Result<Config> {
    let cfg: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let msg = one_line(&e.inner().to_string());
        let fix = if msg.contains("unknown field") {
            "; remove it or fix its spelling (see configs/README.md)"
        } else {
            ""
        };
        Error::config(origin, field, format!("{msg}{fix}"))
    })?;
    cfg.validate(origin)?;
    Ok(cfg)
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
    let text = std::fs::read_to_string(path).at(path)?;
    let origin = path.display().to_string();
    let mut value: toml::Value =
        toml::from_str(&text).map_err(|e| toml_error(&origin, &text, &e))?;
    apply_overrides(&mut value, overrides)?;
    let origin = if overrides.is_empty() {
        origin
    } else {
        format!("{origin} (with --set)")
    };
    from_value(value, &origin)
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
        let err = |field: &str, msg: String| Err(Error::config(origin, field, msg));
        if self.name.is_empty() || self.name.contains('/') || self.name.contains('\\') {
            return err(
                "name",
                format!(
                    "`{}` must be a non-empty folder name without slashes",
                    self.name
                ),
            );
        }
        let m = &self.model;
        for (field, v) in [
            ("model.emb_size", m.emb_size),
            ("model.hidden_size", m.hidden_size),
            ("model.layers", m.layers),
        ] {
            if v <= 0 {
                return err(field, format!("must be a positive integer, got {v}"));
            }
        }
        for (field, p) in [
            ("model.dropout_input", m.dropout_input),
            ("model.dropout_hidden", m.dropout_hidden),
            ("model.dropout_output", m.dropout_output),
            ("model.dropout_embedding", m.dropout_embedding),
            ("model.weight_drop", m.weight_drop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return err(field, format!("must be a probability in [0, 1), got {p}"));
            }
        }
        let t = &self.train;
        for (field, v) in [
            ("train.epochs", t.epochs),
            ("train.batch_size", t.batch_size),
            ("train.eval_batch_size", t.eval_batch_size),
            ("train.bptt", t.bptt),
            ("train.log_interval", t.log_interval),
        ] {
            if v == 0 {
                return err(field, "must be a positive integer, got 0".into());
            }
        }
        for (field, v) in [("train.lr", t.lr), ("train.lr_decay", t.lr_decay)] {
            if !(v.is_finite() && v > 0.0) {
                return err(field, format!("must be a positive number, got {v}"));
            }
        }
        for (field, v) in [
            ("train.clip", t.clip),
            ("train.weight_decay", t.weight_decay),
            ("train.ar", t.ar),
            ("train.tar", t.tar),
            ("output.alpha_weight_decay", self.output.alpha_weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(field, format!("must be zero or positive, got {v}"));
            }
        }
        if t.asgd && t.optimizer != OptimizerKind::Sgd {
            return err(
                "train.asgd",
                "averaged SGD needs train.optimizer = \"sgd\"".into(),
            );
        }
        if !["auto", "cpu", "cuda"].contains(&t.device.as_str()) && !t.device.starts_with("cuda:") {
            return err(
                "train.device",
                format!("`{}`: use auto, cpu, cuda or cuda:N", t.device),
            );
        }
        let o = &self.output;
        if !(o.alpha_init.is_finite() && o.alpha_init > 0.0) {
            return err(
                "output.alpha_init",
                format!("must be a positive number, got {}", o.alpha_init),
            );
        }
        if o.mode == OutputMode::Tied && m.emb_size != m.hidden_size {
            return err(
                "output.mode",
                format!(
                    "tied needs model.hidden_size == model.emb_size (got {} and {}); set both to the same size",
                    m.hidden_size, m.emb_size
                ),
            );
        }
        if o.mode.is_fixed()
            && o.input_embedding == InputEmbedding::Fixed
            && m.emb_size != m.hidden_size
        {
            return err(
                "output.input_embedding",
                format!(
                    "a fixed matrix serves as input embedding only when model.emb_size == model.hidden_size \
                     (got {} and {}); set them equal or use input_embedding = \"learned\"",
                    m.emb_size, m.hidden_size
                ),
            );
        }
        if o.mode.needs_embeddings() && o.embeddings.as_os_str().is_empty() {
            return err(
                "output.embeddings",
                format!(
                    "mode {} needs an embeddings file (make one with `fixclf embed`)",
                    o.mode
                ),
            );
        }
        if o.loss == LossKind::Cosine && !o.mode.is_fixed() {
            return err(
                "output.loss",
                "the cosine loss needs a fixed output mode".into(),
            );
        }
        Ok(())
    }

    /// The fixed classifier's settings, from `[output]`.
    pub fn fixed_classifier(&self) -> crate::classifier::FixedClassifierConfig {
        crate::classifier::FixedClassifierConfig {
            alpha_init: self.output.alpha_init,
            learn_alpha: self.output.learn_alpha,
            bias: self.output.bias,
            loss: self.output.loss,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_pytorch_example_recipe() {
        let c = from_toml_str("", "x.toml").unwrap();
        assert_eq!(c.train.lr, 20.0);
        assert_eq!(c.train.clip, 0.25);
        assert_eq!(c.train.bptt, 35);
        assert_eq!(c.train.batch_size, 20);
        assert_eq!(c.train.eval_batch_size, 10);
        assert_eq!(c.model.dropout_output, 0.5);
        // Round trip through the resolved TOML.
        assert_eq!(from_toml_str(&c.to_toml(), "y").unwrap(), c);
    }

    #[test]
    fn unknown_key_names_file_and_field() {
        let e = from_toml_str("[train]\nlrr = 3\n", "configs/a.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("configs/a.toml") && e.contains("train.lrr") && e.contains("unknown field"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_field() {
        let e = from_toml_str("[model]\nlayers = \"two\"\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.layers") && e.contains("invalid type"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        for (text, field) in [
            ("[model]\nhidden_size = 0", "model.hidden_size"),
            ("[model]\nemb_size = -5", "model.emb_size"),
            ("[train]\nbatch_size = 0", "train.batch_size"),
            ("[train]\nlr = -1.0", "train.lr"),
            ("[model]\ndropout_output = 1.5", "model.dropout_output"),
            (
                "[output]\nmode = \"tied\"\n[model]\nemb_size = 256",
                "output.mode",
            ),
            ("[output]\nmode = \"fixed-pmi\"", "output.embeddings"),
            ("[output]\nmode = \"nope\"", "output.mode"),
        ] {
            let e = from_toml_str(text, "c.toml").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("c.toml"), "{text}: {e}");
        }
    }

    #[test]
    fn overrides_set_nested_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "name = \"a\"\n[train]\nlr = 1.0\n").unwrap();
        let c = load(
            &p,
            &[
                "train.lr=0.5".into(),
                "output.mode=fixed-orthogonal".into(),
                "model.layers=3".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.train.lr, 0.5);
        assert_eq!(c.output.mode, OutputMode::FixedOrthogonal);
        assert_eq!(c.model.layers, 3);
        let e = load(&p, &["train.bogus=1".into()]).unwrap_err().to_string();
        assert!(e.contains("train.bogus") && e.contains("--set"), "{e}");
        let e = load(&p, &["nonsense".into()]).unwrap_err().to_string();
        assert!(e.contains("--set"), "{e}");
    }
}
