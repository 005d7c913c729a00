//! Reports over run folders: a results table (Markdown, CSV, JSON) and plots (PNG and SVG)
//! of validation perplexity, training loss, the learned scale alpha of the fixed
//! classifiers (the paper's Figure 1) and trainable vs fixed parameters.
//!
//! Everything is read from the run folders ([`load`]: `config.toml`, `metrics.jsonl`, and
//! `summary.json` once a run has finished); a run without `summary.json` is reported from
//! its metrics so far and marked unfinished. The table is rendered by [`table`], the plots by
//! [`plot`]. Every file is rendered in memory first and then written atomically, so an error
//! leaves no partial report file behind.
//!
//! CSV conventions: plain numbers without units (`share_removed` is a fraction in [0, 1],
//! as in `summary.json`; times in seconds, memory in MB), an empty cell for a missing or
//! non-finite value.
pub(crate) mod canvas;
mod cells;
mod charts;
mod collapse;
mod digest;
pub(crate) mod legend;
mod load;
mod plot;
pub mod seeds;
mod series;
mod table;
#[cfg(test)]
mod testing;

use crate::classifier::HeadMode;
use crate::error::{Error, Result};
use crate::fsutil::write_bytes_atomic;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use plot::PLOT_SIZE;
pub use table::{render_csv, render_markdown, setup_paragraph};

/// The CSV columns that come first in a language-model report, in this order (more follow,
/// see [`RunRow::csv_cells`]).
pub const CSV_COLUMNS: [&str; 12] = [
    "run",
    "mode",
    "params_total",
    "params_trainable",
    "params_fixed",
    "share_removed",
    "best_val_ppl",
    "test_ppl",
    "epochs",
    "wall_s",
    "train_tokens_per_s",
    "peak_rss_mb",
];

/// The CSV columns that come first in an image-classification report (`test_acc` a fraction).
pub const IMAGE_CSV_COLUMNS: [&str; 13] = [
    "run",
    "task",
    "model",
    "mode",
    "params_total",
    "params_trainable",
    "params_fixed",
    "share_removed",
    "test_acc",
    "epochs",
    "wall_s",
    "train_images_per_s",
    "peak_rss_mb",
];

/// The language-model columns a report over both tasks adds after [`IMAGE_CSV_COLUMNS`].
const LM_ONLY_COLUMNS: [&str; 5] = [
    "best_val_ppl",
    "test_ppl",
    "train_tokens_per_s",
    "train_tokens",
    "train_tokens_limit",
];

/// The image columns a language-model report leaves out.
const IMAGE_ONLY_COLUMNS: [&str; 7] = [
    "best_val_acc",
    "test_acc",
    "test_top5",
    "final_train_acc",
    "train_images",
    "train_images_per_s",
    "delta_test_acc",
];

/// Which runs a report is over: its columns and plots follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    LanguageModel,
    Image,
    /// Both: the image columns first, then the language model's.
    Mixed,
}

impl ReportKind {
    fn of(setup: &Setup) -> ReportKind {
        match setup.image_runs {
            0 => ReportKind::LanguageModel,
            n if n == setup.runs => ReportKind::Image,
            _ => ReportKind::Mixed,
        }
    }

    /// The plots of such a report, each written as `<name>.png` and `<name>.svg`.
    pub fn plots(self) -> &'static [&'static str] {
        match self {
            ReportKind::LanguageModel => &["val_ppl", "train_loss", "alpha", "params"],
            ReportKind::Image => &["error", "train_loss", "alpha", "params"],
            ReportKind::Mixed => &["val_ppl", "error", "train_loss", "alpha", "params"],
        }
    }
}

/// The plots of a language-model report (see [`ReportKind::plots`]).
pub const PLOTS: [&str; 4] = ["val_ppl", "train_loss", "alpha", "params"];

/// One run of the report: a row of the table (`results.csv`, `results.json`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RunRow {
    pub run: String,
    /// `lm` or `vision`.
    pub task: String,
    /// The network: `lstm-2x256`, `resnet-cifar-20`, `small-cnn-32`.
    pub model: String,
    /// The data set (`fashion-mnist`, `cifar10`) or the corpus folder.
    pub data: String,
    pub mode: String,
    pub params_total: Option<i64>,
    pub params_trainable: Option<i64>,
    pub params_fixed: Option<i64>,
    /// Share of the learned-output network's parameters this mode does not train (0..1).
    pub share_removed: Option<f64>,
    pub best_val_ppl: Option<f64>,
    pub test_ppl: Option<f64>,
    /// Validation accuracy of the best epoch, a fraction (image runs).
    pub best_val_acc: Option<f64>,
    /// Top-1 and top-5 accuracy of the best checkpoint on the test split, fractions.
    pub test_acc: Option<f64>,
    pub test_top5: Option<f64>,
    /// Training accuracy over the last epoch's steps (augmented batches, as trained).
    pub final_train_acc: Option<f64>,
    /// Test accuracy minus that of the learned-classifier run of the same model and data,
    /// in fractions (image runs; None without such a run).
    pub delta_test_acc: Option<f64>,
    pub epochs: Option<usize>,
    pub wall_s: Option<f64>,
    /// Median seconds of an epoch (its training and validation), over the epochs so far.
    pub epoch_s: Option<f64>,
    pub train_tokens_per_s: Option<f64>,
    pub train_images_per_s: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    /// `finished` (has `summary.json`), `unfinished` or `diverged`.
    pub status: String,
    /// Tokens trained on, over all epochs.
    pub train_tokens: Option<u64>,
    /// `data.train_tokens` of the config (0: the whole training split).
    pub train_tokens_limit: usize,
    /// Images trained on, over all epochs.
    pub train_images: Option<u64>,
    pub final_alpha: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub test_loss: Option<f64>,
    pub steps: Option<u64>,
    pub optimizer_state_floats: Option<i64>,
    pub checkpoint_bytes: Option<u64>,
    /// Parameters of the same network with a learned embedding and classifier.
    pub params_learned_total: Option<i64>,
    pub device: Option<String>,
    pub threads: Option<i64>,
    /// The run folder.
    pub path: String,
    /// `train.seed` of the run's config.
    pub seed: u64,
    /// The run's name without a `-seed<seed>` suffix: runs of one experiment under several
    /// seeds share it ([`seeds`]).
    pub group: String,
    /// The last neural-collapse diagnostics (image runs), in columns after the others.
    #[serde(flatten)]
    pub collapse: collapse::CollapseCells,
}

impl RunRow {
    /// Every cell of the row, by column name, in the language-model report's order.
    fn all_cells(&self) -> Vec<(&'static str, String)> {
        use cells::{opt, optf};
        vec![
            ("run", self.run.clone()),
            ("mode", self.mode.clone()),
            ("params_total", opt(self.params_total)),
            ("params_trainable", opt(self.params_trainable)),
            ("params_fixed", opt(self.params_fixed)),
            ("share_removed", optf(self.share_removed)),
            ("best_val_ppl", optf(self.best_val_ppl)),
            ("test_ppl", optf(self.test_ppl)),
            ("epochs", opt(self.epochs)),
            ("wall_s", optf(self.wall_s)),
            ("train_tokens_per_s", optf(self.train_tokens_per_s)),
            ("peak_rss_mb", optf(self.peak_rss_mb)),
            ("status", self.status.clone()),
            ("train_tokens", opt(self.train_tokens)),
            ("train_tokens_limit", self.train_tokens_limit.to_string()),
            ("final_alpha", optf(self.final_alpha)),
            ("best_val_loss", optf(self.best_val_loss)),
            ("test_loss", optf(self.test_loss)),
            ("steps", opt(self.steps)),
            ("optimizer_state_floats", opt(self.optimizer_state_floats)),
            ("checkpoint_bytes", opt(self.checkpoint_bytes)),
            ("params_learned_total", opt(self.params_learned_total)),
            ("device", self.device.clone().unwrap_or_default()),
            ("threads", opt(self.threads)),
            ("path", self.path.clone()),
            ("task", self.task.clone()),
            ("model", self.model.clone()),
            ("data", self.data.clone()),
            ("best_val_acc", optf(self.best_val_acc)),
            ("test_acc", optf(self.test_acc)),
            ("test_top5", optf(self.test_top5)),
            ("final_train_acc", optf(self.final_train_acc)),
            ("delta_test_acc", optf(self.delta_test_acc)),
            ("train_images", opt(self.train_images)),
            ("train_images_per_s", optf(self.train_images_per_s)),
            ("epoch_s", optf(self.epoch_s)),
            ("seed", self.seed.to_string()),
            ("group", self.group.clone()),
        ]
        .into_iter()
        .chain(self.collapse.csv_cells())
        .collect()
    }

    /// Every CSV column of a `kind` report with its cell: [`CSV_COLUMNS`] or
    /// [`IMAGE_CSV_COLUMNS`] first, then the rest; a report over one task leaves out the
    /// other task's columns.
    pub fn csv_cells(&self, kind: ReportKind) -> Vec<(&'static str, String)> {
        let mut cells = self.all_cells();
        let (first, drop): (Vec<&str>, &[&str]) = match kind {
            ReportKind::LanguageModel => (CSV_COLUMNS.to_vec(), &IMAGE_ONLY_COLUMNS),
            ReportKind::Image => (IMAGE_CSV_COLUMNS.to_vec(), &LM_ONLY_COLUMNS),
            ReportKind::Mixed => {
                let mut v = IMAGE_CSV_COLUMNS.to_vec();
                v.extend(LM_ONLY_COLUMNS);
                (v, &[])
            }
        };
        cells.retain(|(name, _)| !drop.contains(name) || first.contains(name));
        if kind == ReportKind::LanguageModel {
            // Neural collapse is measured on image runs only.
            let nc: Vec<&str> = collapse::CollapseCells::default()
                .csv_cells()
                .iter()
                .map(|c| c.0)
                .collect();
            cells.retain(|(name, _)| !nc.contains(name));
        }
        if kind == ReportKind::LanguageModel {
            // The image report's task and model columns close a language-model row.
            return cells;
        }
        let mut ordered: Vec<(&'static str, String)> = Vec::with_capacity(cells.len());
        for name in &first {
            if let Some(i) = cells.iter().position(|c| c.0 == *name) {
                ordered.push(cells.remove(i));
            }
        }
        ordered.extend(cells);
        ordered
    }

    /// Whether the run's head is a fixed classifier (it has an alpha).
    fn is_fixed(&self) -> bool {
        HeadMode::parse(&self.mode).is_some_and(HeadMode::is_fixed)
    }

    fn is_image(&self) -> bool {
        self.task == "vision"
    }
}

/// The experiment setup of the runs (corpus, model and training size), from their configs
/// and metrics; each field lists the distinct values.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Setup {
    pub runs: usize,
    /// How many of the runs are image-classification runs.
    pub image_runs: usize,
    pub corpus: Vec<String>,
    /// The networks (`lstm-2x256`, `resnet-cifar-20`).
    pub model: Vec<String>,
    /// Vocabulary size: the class count the runs record (`classes` in `metrics.jsonl` or
    /// `summary.json`); empty when no run records it (runs of fixclf 0.1).
    pub vocab: Vec<i64>,
    /// `data.train_tokens` (0: all).
    pub train_tokens_limit: Vec<usize>,
    /// Tokens actually trained on, per run (in the order of `runs`).
    pub train_tokens_trained: Vec<Option<u64>>,
    pub emb_size: Vec<i64>,
    pub hidden_size: Vec<i64>,
    pub layers: Vec<i64>,
    pub optimizer: Vec<String>,
    pub lr: Vec<f64>,
    /// `train.epochs` of the configs (planned epochs).
    pub epochs: Vec<usize>,
    /// `train.max_steps_per_epoch` (0: whole epochs).
    pub max_steps_per_epoch: Vec<usize>,
    pub batch_size: Vec<usize>,
    pub bptt: Vec<usize>,
    pub device: Vec<String>,
    /// libtorch threads (from the summary; the config's `train.threads` before it, 0: default).
    pub threads: Vec<i64>,
}

/// Training curves of one run, for the plots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunCurves {
    /// The legend label, [`curve_label`].
    pub label: String,
    /// The label of its group of seeds (its own label when it has no `-seed<s>` suffix).
    pub group_label: String,
    /// The run's color in every plot: one per run, or per experiment when runs are seeds
    /// of one (`<run>-seed<s>`).
    pub color: usize,
    pub fixed: bool,
    /// (epoch, validation perplexity).
    pub val_ppl: Vec<(f64, f64)>,
    /// (step, training loss of the `log` interval).
    pub train_loss: Vec<(f64, f64)>,
    /// (step, alpha).
    pub alpha: Vec<(f64, f64)>,
    /// (epoch, training error in percent over the epoch's steps), image runs.
    pub train_err: Vec<(f64, f64)>,
    /// (epoch, validation error in percent), image runs.
    pub val_err: Vec<(f64, f64)>,
    /// The validation split is the test split (`vision.data.valid_images = 0`).
    pub valid_is_test: bool,
    /// Neural-collapse diagnostics, by epoch.
    pub collapse: Vec<crate::engine::Collapse>,
}

/// The report: what `results.json` holds, plus the curves drawn in the plots.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportTable {
    pub title: String,
    pub kind: ReportKind,
    /// Under its fixclf 0.1 key in `results.json`.
    #[serde(rename = "scale")]
    pub setup: Setup,
    pub runs: Vec<RunRow>,
    /// Runs of one experiment under several seeds, averaged (none without such runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seed_groups: Vec<seeds::SeedGroup>,
    #[serde(skip)]
    pub curves: Vec<RunCurves>,
}

/// The legend label of a run: its name, with its mode appended unless the name already
/// contains it (`learned`, `lm-tied`, but `baseline (fixed-pmi)`).
pub fn curve_label(run: &str, mode: &str) -> String {
    if run.contains(mode) {
        run.to_string()
    } else {
        format!("{run} ({mode})")
    }
}

/// Reads the run folders into a report (no file is written).
pub fn build_report(runs: &[PathBuf], title: &str) -> Result<ReportTable> {
    if runs.is_empty() {
        return Err(Error::arg("runs", "give at least one run folder"));
    }
    let loaded = runs
        .iter()
        .map(|p| load::load_run(p))
        .collect::<Result<Vec<_>>>()?;
    let setup = load::setup_of(&loaded);
    let mut table = ReportTable {
        title: title.to_string(),
        kind: ReportKind::of(&setup),
        setup,
        runs: loaded.iter().map(|r| r.row.clone()).collect(),
        seed_groups: Vec::new(),
        curves: loaded.into_iter().map(|r| r.curves).collect(),
    };
    // Two folders with the same name (from different runs_dir) get told apart.
    let names: Vec<String> = table.runs.iter().map(|r| r.run.clone()).collect();
    for (i, row) in table.runs.iter_mut().enumerate() {
        if names.iter().filter(|n| **n == row.run).count() > 1 {
            let parent = Path::new(&row.path)
                .parent()
                .and_then(Path::file_name)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| (i + 1).to_string());
            row.run = format!("{parent}/{}", row.run);
            table.curves[i].label = curve_label(&row.run, &row.mode);
        }
    }
    let mut groups: Vec<String> = Vec::new();
    for (row, curves) in table.runs.iter_mut().zip(&mut table.curves) {
        row.group = seeds::group_name(&row.run, row.seed);
        curves.group_label = curve_label(&row.group, &row.mode);
        curves.color = groups
            .iter()
            .position(|g| *g == row.group)
            .unwrap_or_else(|| {
                groups.push(row.group.clone());
                groups.len() - 1
            });
    }
    fill_delta_test_acc(&mut table.runs);
    table.seed_groups = seeds::groups(&table.runs);
    Ok(table)
}

/// Sets each image run's test accuracy relative to the learned-classifier run of the same
/// model and data set (the paper's question: what does fixing the classifier cost?): the
/// one of the same seed when there is one, else the first.
fn fill_delta_test_acc(runs: &mut [RunRow]) {
    let learned: Vec<(String, String, u64, f64)> = runs
        .iter()
        .filter(|r| r.is_image() && r.mode == "learned")
        .filter_map(|r| Some((r.model.clone(), r.data.clone(), r.seed, r.test_acc?)))
        .collect();
    for r in runs.iter_mut().filter(|r| r.is_image()) {
        let same = |l: &&(String, String, u64, f64)| l.0 == r.model && l.1 == r.data;
        r.delta_test_acc = learned
            .iter()
            .filter(same)
            .find(|l| l.2 == r.seed)
            .or_else(|| learned.iter().find(same))
            .and_then(|l| Some(r.test_acc? - l.3));
    }
}

/// Writes `results.md`, `results.csv`, `results.json` and the plots (PNG + SVG) of the runs
/// into `out` (created if needed). Everything is rendered before the first file is written;
/// each file is written atomically.
pub fn write_report(runs: &[PathBuf], out: &Path, title: &str) -> Result<ReportTable> {
    let table = build_report(runs, title)?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        (out.join("results.md"), render_markdown(&table).into_bytes()),
        (out.join("results.csv"), render_csv(&table).into_bytes()),
        (
            out.join("results.json"),
            table::render_json(&table).into_bytes(),
        ),
    ];
    if !table.seed_groups.is_empty() {
        let csv = seeds::csv(&table.seed_groups);
        files.push((out.join("results-seeds.csv"), csv.into_bytes()));
    }
    for &name in table.kind.plots() {
        let (svg, png) = plot::render(&table, name).map_err(|e| {
            Error::bad_file(
                out.join(format!("{name}.svg")),
                format!("cannot draw the plot: {e}"),
            )
        })?;
        files.push((out.join(format!("{name}.png")), png));
        files.push((out.join(format!("{name}.svg")), svg.into_bytes()));
    }
    if collapse::has_data(&table) {
        let name = collapse::PLOT;
        let (svg, png) = collapse::render(&table).map_err(|e| {
            Error::bad_file(
                out.join(format!("{name}.svg")),
                format!("cannot draw the plot: {e}"),
            )
        })?;
        files.push((out.join(format!("{name}.png")), png));
        files.push((out.join(format!("{name}.svg")), svg.into_bytes()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for (path, bytes) in &files {
        write_bytes_atomic(path, bytes)?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests;
