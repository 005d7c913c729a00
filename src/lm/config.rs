//! The `[lm]` section: the language model's data (`[lm.data]`), network (`[lm.model]`) and
//! training options that only a language model has (truncated BPTT, AR/TAR, NT-ASGD).
use crate::classifier::{HeadConfig, HeadMode};
use crate::engine::TrainConfig;
use crate::error::{Error, Result};
use crate::optim::OptimizerKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LmConfig {
    pub data: LmDataConfig,
    pub model: LstmConfig,
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
}

impl Default for LmConfig {
    fn default() -> Self {
        Self {
            data: LmDataConfig::default(),
            model: LstmConfig::default(),
            bptt: 35,
            variable_bptt: false,
            ar: 0.0,
            tar: 0.0,
            asgd: false,
            nonmono: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LmDataConfig {
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

impl Default for LmDataConfig {
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

impl LmDataConfig {
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

/// The input embedding of the fixed head modes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InputEmbedding {
    /// The fixed matrix is also the input embedding (no trained weights in embedding +
    /// classifier, as in the paper).
    Fixed,
    /// A learned input embedding, whatever the head.
    Learned,
}

/// The `[lm.model]` section: embedding, LSTM and dropouts. The defaults are the paper's
/// (512 / 512, 2 layers, dropout 0.5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LstmConfig {
    /// Word embedding size (the paper: 512).
    pub emb_size: i64,
    /// LSTM hidden size = classifier input size N (the paper: 512).
    pub hidden_size: i64,
    /// LSTM layers (the paper: 2).
    pub layers: i64,
    /// Input embedding of the fixed head modes (learned and tied always learn it).
    pub input_embedding: InputEmbedding,
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

impl Default for LstmConfig {
    fn default() -> Self {
        Self {
            emb_size: 512,
            hidden_size: 512,
            layers: 2,
            input_embedding: InputEmbedding::Fixed,
            dropout_input: 0.5,
            dropout_hidden: 0.5,
            dropout_output: 0.5,
            dropout_embedding: 0.0,
            weight_drop: 0.0,
        }
    }
}

impl LmConfig {
    /// Checks the section and how it combines with `[train]` and `[head]`.
    pub fn validate(&self, origin: &str, train: &TrainConfig, head: &HeadConfig) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(origin, field, msg));
        let m = &self.model;
        for (field, v) in [
            ("lm.model.emb_size", m.emb_size),
            ("lm.model.hidden_size", m.hidden_size),
            ("lm.model.layers", m.layers),
        ] {
            if v <= 0 {
                return err(field, format!("must be a positive integer, got {v}"));
            }
        }
        for (field, p) in [
            ("lm.model.dropout_input", m.dropout_input),
            ("lm.model.dropout_hidden", m.dropout_hidden),
            ("lm.model.dropout_output", m.dropout_output),
            ("lm.model.dropout_embedding", m.dropout_embedding),
            ("lm.model.weight_drop", m.weight_drop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return err(field, format!("must be a probability in [0, 1), got {p}"));
            }
        }
        if self.bptt == 0 {
            return err("lm.bptt", "must be a positive integer, got 0".into());
        }
        for (field, v) in [("lm.ar", self.ar), ("lm.tar", self.tar)] {
            if !(v.is_finite() && v >= 0.0) {
                return err(field, format!("must be zero or positive, got {v}"));
            }
        }
        if self.asgd && train.optimizer != OptimizerKind::Sgd {
            return err(
                "lm.asgd",
                "averaged SGD needs train.optimizer = \"sgd\"".into(),
            );
        }
        if head.mode == HeadMode::Tied && m.emb_size != m.hidden_size {
            return err(
                "head.mode",
                format!(
                    "tied needs lm.model.hidden_size == lm.model.emb_size (got {} and {}); set \
                     both to the same size",
                    m.hidden_size, m.emb_size
                ),
            );
        }
        if head.mode.is_fixed()
            && m.input_embedding == InputEmbedding::Fixed
            && m.emb_size != m.hidden_size
        {
            return err(
                "lm.model.input_embedding",
                format!(
                    "a fixed matrix serves as input embedding only when lm.model.emb_size == \
                     lm.model.hidden_size (got {} and {}); set them equal or use \
                     input_embedding = \"learned\"",
                    m.emb_size, m.hidden_size
                ),
            );
        }
        Ok(())
    }
}
