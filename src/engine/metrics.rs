//! What a run records, as types: the events of `metrics.jsonl` ([`Event`], one JSON object a
//! line, tagged by `event`) and `summary.json` ([`Summary`]). The engine writes them and the
//! report reads them back with the same types, so no key is spelled twice. Task-specific
//! values (perplexity and tokens for the language model; accuracy and images for image
//! classification) are optional fields, absent from the JSON when `None`.
//!
//! Run folders written before these types (fixclf 0.1) use the same keys and still load.
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Parameter counts of a model, and the share its fixed head removes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParamReport {
    pub total: i64,
    pub trainable: i64,
    /// Values of fixed matrices (regenerated, not stored) and frozen scalars.
    pub fixed: i64,
    /// Parameters of the same network with everything learned (classifier, and for the
    /// language model its input embedding too).
    pub learned_total: i64,
    /// Share of `learned_total` that a fixed head can remove: the classifier (the language
    /// model: embedding + classifier, the paper's 34 M of 38 M).
    #[serde(alias = "learned_emb_classifier_share")]
    pub classifier_share: f64,
    /// Share of `learned_total` that this model does not train.
    pub share_removed: f64,
}

impl ParamReport {
    /// Counts the variables of `vs` (trainable or frozen) plus `fixed_matrix_numel` values of
    /// fixed matrices kept outside it; `learned_total` and `removable` (the parameters a fixed
    /// head replaces) come from the task's formula for the all-learned network.
    pub fn new(
        vs: &tch::nn::VarStore,
        fixed_matrix_numel: i64,
        learned_total: i64,
        removable: i64,
    ) -> ParamReport {
        let trainable: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        // Frozen variables (alpha when it is not learned) count as fixed parameters;
        // BatchNorm's running statistics are buffers, not parameters (as in PyTorch).
        let frozen: i64 = vs
            .variables()
            .iter()
            .filter(|(name, t)| !t.requires_grad() && !is_buffer(name))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        let fixed = frozen + fixed_matrix_numel;
        ParamReport {
            total: trainable + fixed,
            trainable,
            fixed,
            learned_total,
            classifier_share: removable as f64 / learned_total.max(1) as f64,
            share_removed: 1.0 - trainable as f64 / learned_total.max(1) as f64,
        }
    }

    /// One line for the console; `removable` names what `classifier_share` covers.
    pub fn describe(&self, mode: &str, removable: &str) -> String {
        let m = |n: i64| format!("{:.2} M", n as f64 / 1e6);
        format!(
            "parameters ({mode}): total {}, trainable {}, fixed {}; with a learned {removable} \
             this network has {}, {:.1}% of them in the {removable}; this mode trains {:.1}% fewer",
            m(self.total),
            m(self.trainable),
            m(self.fixed),
            m(self.learned_total),
            100.0 * self.classifier_share,
            100.0 * self.share_removed
        )
    }
}

/// Whether a variable is a buffer (BatchNorm's running statistics), not a parameter.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// The amount of training data, in the task's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Tokens,
    Images,
}

/// serde_json writes a non-finite `f64` as `null` (a loss that is NaN or infinite); read
/// such a `null` back as NaN instead of failing the whole file.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Counts and rates of training data: filled in the field of the run's [`Unit`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_s: Option<f64>,
}

impl Throughput {
    pub fn new(unit: Unit, count: u64, per_s: f64) -> Self {
        match unit {
            Unit::Tokens => Self {
                train_tokens: Some(count),
                tokens_per_s: Some(per_s),
                ..Self::default()
            },
            Unit::Images => Self {
                train_images: Some(count),
                images_per_s: Some(per_s),
                ..Self::default()
            },
        }
    }

    pub fn count(&self) -> Option<u64> {
        self.train_tokens.or(self.train_images)
    }

    pub fn per_s(&self) -> Option<f64> {
        self.tokens_per_s.or(self.images_per_s)
    }
}

/// Quality on one split: loss always; perplexity for the language model, accuracy (a
/// fraction) for image classification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
}

/// `log` event: the mean training loss over the last `log_interval` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    pub epoch: usize,
    pub step: u64,
    /// Step within the epoch, and the epoch's length.
    pub batch: usize,
    pub batches: usize,
    pub lr: f64,
    pub ms_per_batch: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppl: Option<f64>,
    /// Training accuracy over the interval (image classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
    #[serde(flatten)]
    pub throughput: Throughput,
    pub elapsed_s: f64,
    pub alpha: Option<f64>,
    /// Steps of the interval skipped for a non-finite loss or gradient (not in `loss`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `epoch` event: validation after an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochEvent {
    pub epoch: usize,
    pub step: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub val_loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_ppl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_top5: Option<f64>,
    /// Mean training loss and accuracy over the epoch's steps (absent in fixclf 0.1 runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_acc: Option<f64>,
    /// Learning rate after the epoch (the next epoch's, except under cosine: set per epoch).
    pub lr: f64,
    pub epoch_s: f64,
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub throughput: Throughput,
    pub alpha: Option<f64>,
    pub peak_rss_mb: f64,
    /// NT-ASGD averaging is on.
    #[serde(default)]
    pub asgd: bool,
    /// Steps skipped so far for a non-finite loss or gradient (`train.on_nonfinite`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_steps: u64,
    /// Image files skipped as unreadable in the epoch (`vision.data.skip_bad`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_files: u64,
}

/// `collapse` event: neural-collapse diagnostics (Papyan, Han & Donoho 2020) of the
/// training features after an epoch, computed by the task (image classification; see
/// `crate::vision::collapse` for the definitions). Values are NaN (`null` in JSON) where
/// undefined, e.g. NC1 when all class means coincide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collapse {
    pub epoch: usize,
    /// NC1: `tr(Sw Sb^+) / K`, within-class variability relative to between-class.
    #[serde(deserialize_with = "nan_if_null")]
    pub nc1: f64,
    /// NC2 equinorm: coefficient of variation (std / mean) of the centred class means' norms.
    #[serde(deserialize_with = "nan_if_null")]
    pub nc2_equinorm: f64,
    /// NC2 equiangularity: mean over class pairs of `|cos + 1/(K-1)|` of the centred means
    /// (0 exactly for a simplex equiangular tight frame).
    #[serde(deserialize_with = "nan_if_null")]
    pub nc2_equiangular: f64,
    /// NC3: `|| W/||W||_F - M/||M||_F ||_F^2`, classifier rows against centred means.
    #[serde(deserialize_with = "nan_if_null")]
    pub nc3: f64,
    /// Accuracy of the nearest class mean on the same features (a fraction).
    #[serde(deserialize_with = "nan_if_null")]
    pub ncc_acc: f64,
    /// Classes K with at least one sample (the ones measured), and samples S.
    pub classes: i64,
    pub samples: i64,
    /// NC2 of the classifier's rows (of the K classes, uncentred, as Papyan et al.):
    /// coefficient of variation of `||w_c||`, and mean over pairs of `|cos + 1/(K-1)|`.
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub nc2_w_equinorm: f64,
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub nc2_w_equiangular: f64,
    /// Kothapalli's NC2 `|| M M^T/||M M^T|| - (I - 11^T/K)/sqrt(K-1) ||_F` of the centred
    /// means, and the NC3 self-duality error (the same with `W M^T`).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub nc2_etf_error: f64,
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub nc3_duality_error: f64,
    /// NC4 (Papyan et al.): the share of samples whose classifier arg-max differs from
    /// their nearest class mean.
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub nc4: f64,
    /// The classifier's accuracy on the same samples (same weights).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub acc: f64,
    /// `train` or `test` (older runs: the training split).
    #[serde(default = "train_split")]
    pub split: String,
    /// The global mean is the mean of all samples (class-size weighted, Papyan et al.);
    /// false: the mean of the class means.
    #[serde(default)]
    pub weighted_mean: bool,
    /// Per class, in class order (the minority-collapse plot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<ClassStats>,
    /// Accuracy of many-, medium- and few-shot classes (by training images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<ShotAccuracy>,
    /// The same measures on the test split (same weights, test-split class means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Box<Collapse>>,
}

fn nan() -> f64 {
    f64::NAN
}

fn train_split() -> String {
    "train".into()
}

/// Per-class numbers of a split: samples, the norm of the centred class mean
/// `||mu_c - mu_G||` (null for a class without samples), the norm of the classifier's row
/// `||w_c||`, and the classifier's accuracy on the class (null without samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClassStats {
    pub count: Vec<i64>,
    pub mean_norm: Vec<Option<f64>>,
    pub row_norm: Vec<f64>,
    pub acc: Vec<Option<f64>>,
}

/// Mean per-class accuracy over many-shot (more than `many_above` training images),
/// few-shot (fewer than `few_below`) and medium-shot classes (the rest), the long-tailed
/// benchmarks' split; None for a group without classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ShotAccuracy {
    pub many_above: i64,
    pub few_below: i64,
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    pub many_classes: usize,
    pub medium_classes: usize,
    pub few_classes: usize,
}

impl Collapse {
    /// A result with only its identity set and every measure undefined (NaN).
    pub fn undefined(epoch: usize, classes: i64, samples: i64) -> Self {
        Self {
            epoch,
            nc1: f64::NAN,
            nc2_equinorm: f64::NAN,
            nc2_equiangular: f64::NAN,
            nc3: f64::NAN,
            ncc_acc: f64::NAN,
            classes,
            samples,
            nc2_w_equinorm: f64::NAN,
            nc2_w_equiangular: f64::NAN,
            nc2_etf_error: f64::NAN,
            nc3_duality_error: f64::NAN,
            nc4: f64::NAN,
            acc: f64::NAN,
            split: train_split(),
            weighted_mean: true,
            per_class: None,
            shots: None,
            test: None,
        }
    }
}

impl Collapse {
    /// One line for the console.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{}: NC1 {:.4} | NC2 equinorm {:.4} equiangular {:.4} (W {:.4} {:.4}) | NC3 {:.4} \
             | NC4 {:.4} | NCC acc {:.4}",
            self.split,
            self.nc1,
            self.nc2_equinorm,
            self.nc2_equiangular,
            self.nc2_w_equinorm,
            self.nc2_w_equiangular,
            self.nc3,
            self.nc4,
            self.ncc_acc
        );
        if let Some(s) = &self.shots {
            let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
            line += &format!(
                " | acc many {} medium {} few {}",
                f(s.many),
                f(s.medium),
                f(s.few)
            );
        }
        if let Some(t) = &self.test {
            line += &format!("\n| neural collapse: {}", t.describe());
        }
        line
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A fresh run starts.
    Start {
        params: ParamReport,
        device: String,
        /// Number of classes C (the language model: its vocabulary; absent in fixclf 0.1
        /// runs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<i64>,
        /// `lm` or `vision` (absent in fixclf 0.1 runs: `lm`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
    },
    Log(LogEvent),
    Epoch(EpochEvent),
    /// The best checkpoint on the test split.
    Test {
        #[serde(deserialize_with = "nan_if_null")]
        test_loss: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_ppl: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_acc: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_top5: Option<f64>,
    },
    /// Training continues from `last.safetensors`.
    Resume {
        epoch: usize,
        step: u64,
        lr: f64,
    },
    /// A non-finite loss, gradient or validation loss stopped training.
    Diverged {
        epoch: usize,
        step: u64,
        /// The offending value as text (JSON has no NaN).
        value: String,
    },
    /// Neural-collapse diagnostics of the training features after an epoch.
    Collapse(Collapse),
}

/// Appends one [`Event`] a line to `metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
    /// None: events are dropped (a data-parallel rank other than 0, which writes nothing).
    file: Option<std::fs::File>,
}

impl MetricsLog {
    /// Opens the file for appending; a torn last line (a process killed mid-write) is cut
    /// off first, so that the next event starts a line of its own.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .at(path)?;
        cut_torn_tail(&mut file).at(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// A log that writes nothing (the ranks of a data-parallel run other than 0).
    pub fn discard(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: None,
        }
    }

    pub fn write(&mut self, event: &Event) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut line = serde_json::to_string(event)
            .map_err(|e| Error::bad_file(&self.path, format!("cannot encode an event: {e}")))?;
        line.push('\n');
        file.write_all(line.as_bytes()).at(&self.path)
    }
}

/// Truncates the file after its last newline, if it does not end with one.
fn cut_torn_tail(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    // Lines are short (a few hundred bytes): look back in blocks until a newline shows up.
    let mut end = len;
    let mut buf = vec![0u8; 4096];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if end == len && buf[n - 1] == b'\n' {
            return Ok(());
        }
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return file.set_len(start + i as u64 + 1);
        }
        if start == 0 {
            return file.set_len(0);
        }
        end = start;
    }
}

/// Reads the events of a metrics file. A torn last line (a process killed mid-write) is
/// skipped; any other line that is not an event is an error naming the line.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).at(path)?;
    parse_events(&bytes, path)
}

/// Parses the lines of a `metrics.jsonl` (see [`read_events`]); `path` names the file in
/// errors.
pub fn parse_events(bytes: &[u8], path: &Path) -> Result<Vec<Event>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // Cut inside the last character: a torn last line, skipped below like any other.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(e) => {
            return Err(Error::bad_file(
                path,
                format!("not UTF-8 text ({e}); the file is damaged: delete the run folder"),
            ))
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "line {} is not a fixclf metrics event ({e}); the file is damaged: \
                         delete the line or the run folder",
                        i + 1
                    ),
                ))
            }
        }
    }
    Ok(events)
}

/// What a finished run reports (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub run: String,
    /// `lm` or `vision` (absent in fixclf 0.1 summaries: `lm`).
    #[serde(default = "default_task")]
    pub task: String,
    /// The head's mode, as in the config (`learned`, `fixed-orthogonal`, ...).
    pub mode: String,
    /// Number of classes C (the language model: its vocabulary; absent in fixclf 0.1
    /// summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<i64>,
    pub params: ParamReport,
    /// NaN (`null`) when no epoch was validated.
    #[serde(deserialize_with = "nan_if_null")]
    pub best_val_loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_val_ppl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_val_acc: Option<f64>,
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_ppl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_top5: Option<f64>,
    pub epochs: usize,
    pub steps: u64,
    pub wall_s: f64,
    pub train_s: f64,
    /// Training data seen, and its rate over training time (evaluation excluded), in the
    /// task's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images_per_s: Option<f64>,
    pub peak_rss_mb: f64,
    pub optimizer_state_floats: i64,
    pub checkpoint_bytes: u64,
    pub final_alpha: Option<f64>,
    pub device: String,
    pub threads: i32,
    /// The last neural-collapse diagnostics (after the final epoch; absent for tasks that
    /// do not compute them and in older summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse: Option<Collapse>,
}

fn default_task() -> String {
    "lm".into()
}

impl Summary {
    /// Reads `summary.json`, with an error that names the file and the fix.
    pub fn load(path: &Path) -> Result<Summary> {
        let bytes = std::fs::read(path).at(path)?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses a `summary.json`; `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Summary> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "not a fixclf run summary ({e}); delete it and run `fixclf eval` or train \
                     the run again with --resume to rewrite it"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests;
