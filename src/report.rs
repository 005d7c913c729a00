//! Reports over run folders: a results table (Markdown, CSV, JSON) and plots (PNG and SVG)
//! of validation perplexity, training loss, the learned scale alpha of the fixed
//! classifiers (the paper's Figure 1) and trainable vs fixed parameters.
//!
//! Everything is read from the run folders (`config.toml`, `metrics.jsonl`, and
//! `summary.json` once a run has finished); a run without `summary.json` is reported from
//! its metrics so far and marked unfinished. Every file is rendered in memory first and
//! then written atomically, so an error leaves no partial report file behind.
//!
//! Text in the plots is drawn with plotters' `ab_glyph` backend and DejaVu Sans, bundled
//! in the binary (`assets/fonts/DejaVuSans.ttf`, Bitstream Vera license with public-domain
//! DejaVu changes; see `assets/fonts/DejaVuSans-LICENSE.txt`): no system font, fontconfig
//! or other system library is needed, at build time or at run time.
//!
//! CSV conventions: plain numbers without units (`share_removed` is a fraction in [0, 1],
//! as in `summary.json`; times in seconds, memory in MB), an empty cell for a missing or
//! non-finite value.
use crate::config::Config;
use crate::engine::{ParamReport, RunDir, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE};
use crate::error::{Error, Result};
use crate::fsutil::write_bytes_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The CSV columns that come first, in this order (more follow, see [`RunRow::csv_cells`]).
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

/// The plots written by [`write_report`], each as `<name>.png` and `<name>.svg`.
pub const PLOTS: [&str; 4] = ["val_ppl", "train_loss", "alpha", "params"];

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const PLOT_SIZE: (u32, u32) = (960, 600);

/// One run of the report: a row of the table (`results.csv`, `results.json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRow {
    pub run: String,
    pub mode: String,
    pub params_total: Option<i64>,
    pub params_trainable: Option<i64>,
    pub params_fixed: Option<i64>,
    /// Share of the learned-output network's parameters this mode does not train (0..1).
    pub share_removed: Option<f64>,
    pub best_val_ppl: Option<f64>,
    pub test_ppl: Option<f64>,
    pub epochs: Option<usize>,
    pub wall_s: Option<f64>,
    pub train_tokens_per_s: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    /// `finished` (has `summary.json`), `unfinished` or `diverged`.
    pub status: String,
    /// Tokens trained on, over all epochs.
    pub train_tokens: Option<u64>,
    /// `data.train_tokens` of the config (0: the whole training split).
    pub train_tokens_limit: usize,
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
}

impl RunRow {
    /// Every CSV column with its cell, [`CSV_COLUMNS`] first.
    pub fn csv_cells(&self) -> Vec<(&'static str, String)> {
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
        ]
    }

    fn is_fixed(&self) -> bool {
        self.mode.starts_with("fixed")
    }
}

/// The setup of the runs, from their configs; each field lists the distinct values.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Scale {
    pub runs: usize,
    pub corpus: Vec<String>,
    /// Vocabulary size, derived from the parameter counts (when the run has started).
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
    pub label: String,
    pub fixed: bool,
    /// (epoch, validation perplexity).
    pub val_ppl: Vec<(f64, f64)>,
    /// (step, training loss of the `log` interval).
    pub train_loss: Vec<(f64, f64)>,
    /// (step, alpha).
    pub alpha: Vec<(f64, f64)>,
}

/// The report: what `results.json` holds, plus the curves drawn in the plots.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportTable {
    pub title: String,
    pub scale: Scale,
    pub runs: Vec<RunRow>,
    #[serde(skip)]
    pub curves: Vec<RunCurves>,
}

/// What one run folder holds, read.
struct LoadedRun {
    row: RunRow,
    curves: RunCurves,
    cfg: Config,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn optf(v: Option<f64>) -> String {
    v.and_then(finite)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn get_f64(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).and_then(finite)
}

fn get_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

#[derive(Default, Clone)]
struct EpochRec {
    step: Option<u64>,
    val_loss: Option<f64>,
    val_ppl: Option<f64>,
    elapsed_s: Option<f64>,
    train_tokens: Option<u64>,
    tokens_per_s: Option<f64>,
    alpha: Option<f64>,
    peak_rss_mb: Option<f64>,
}

type LogRec = (Option<f64>, Option<f64>, Option<f64>);

/// What `metrics.jsonl` says. Later lines win over earlier ones for the same step or epoch
/// (a resumed run repeats the steps after its last checkpoint).
#[derive(Default)]
struct MetricsDigest {
    params: Option<ParamReport>,
    device: Option<String>,
    /// By step: (loss, alpha, elapsed_s).
    logs: BTreeMap<u64, LogRec>,
    epochs: BTreeMap<u64, EpochRec>,
    test: Option<(Option<f64>, Option<f64>)>,
    diverged: bool,
}

impl MetricsDigest {
    fn of(events: &[Value]) -> MetricsDigest {
        let mut d = MetricsDigest::default();
        for e in events {
            match e.get("event").and_then(Value::as_str) {
                Some("start") => {
                    d.params = e
                        .get("params")
                        .and_then(|p| serde_json::from_value(p.clone()).ok());
                    d.device = e.get("device").and_then(Value::as_str).map(String::from);
                    d.diverged = false;
                }
                Some("log") => {
                    if let Some(step) = get_u64(e, "step") {
                        d.logs.insert(
                            step,
                            (
                                get_f64(e, "loss"),
                                get_f64(e, "alpha"),
                                get_f64(e, "elapsed_s"),
                            ),
                        );
                    }
                }
                Some("epoch") => {
                    if let Some(epoch) = get_u64(e, "epoch") {
                        d.epochs.insert(
                            epoch,
                            EpochRec {
                                step: get_u64(e, "step"),
                                val_loss: get_f64(e, "val_loss"),
                                val_ppl: get_f64(e, "val_ppl"),
                                elapsed_s: get_f64(e, "elapsed_s"),
                                train_tokens: get_u64(e, "train_tokens"),
                                tokens_per_s: get_f64(e, "tokens_per_s"),
                                alpha: get_f64(e, "alpha"),
                                peak_rss_mb: get_f64(e, "peak_rss_mb"),
                            },
                        );
                        // Epochs after this one belong to an abandoned timeline.
                        d.epochs.retain(|&k, _| k <= epoch);
                    }
                }
                Some("resume") => d.diverged = false,
                Some("diverged") => d.diverged = true,
                Some("test") => d.test = Some((get_f64(e, "test_loss"), get_f64(e, "test_ppl"))),
                _ => {}
            }
        }
        d
    }

    fn best_val(&self) -> Option<(f64, f64)> {
        self.epochs
            .values()
            .filter_map(|r| Some((r.val_loss?, r.val_ppl?)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    fn last_alpha(&self) -> Option<f64> {
        let from_log = self
            .logs
            .iter()
            .rev()
            .find_map(|(s, l)| l.1.map(|a| (*s, a)));
        let from_epoch = self
            .epochs
            .values()
            .rev()
            .find_map(|r| Some((r.step.unwrap_or(0), r.alpha?)));
        match (from_log, from_epoch) {
            (Some(a), Some(b)) => Some(if b.0 >= a.0 { b.1 } else { a.1 }),
            (a, b) => a.or(b).map(|x| x.1),
        }
    }
}

fn load_run(path: &Path) -> Result<LoadedRun> {
    let run = RunDir::new(path);
    let cfg_path = run.file(CONFIG_FILE);
    if !path.is_dir() || !cfg_path.is_file() {
        return Err(Error::arg(
            path.display().to_string(),
            if path.exists() {
                "not a run folder (no config.toml); pass folders that `fixclf train` wrote (runs/<name>)"
            } else {
                "no such run folder; pass folders that `fixclf train` wrote (runs/<name>)"
            },
        ));
    }
    let cfg = crate::config::load_run_config(&cfg_path, &[])?;
    let metrics_path = run.file(METRICS_FILE);
    let events = if metrics_path.exists() {
        crate::engine::metrics::read_events(&metrics_path)?
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    let m = MetricsDigest::of(&events);
    let summary_path = run.file(SUMMARY_FILE);
    // Read field by field: serde_json writes a NaN (a run that never validated) as null.
    let summary: Option<Value> = if summary_path.exists() {
        let text =
            std::fs::read_to_string(&summary_path).map_err(|e| Error::io(&summary_path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Error::bad_file(
                &summary_path,
                format!("not a fixclf summary ({e}); delete it to report the run as unfinished"),
            )
        })?;
        if !v.is_object() {
            return Err(Error::bad_file(
                &summary_path,
                "not a fixclf summary (not a JSON object); delete it to report the run as unfinished",
            ));
        }
        Some(v)
    } else {
        None
    };
    let summary_params: Option<ParamReport> = summary
        .as_ref()
        .and_then(|s| s.get("params"))
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| cfg.name.clone());
    let mode = cfg.head.mode.name().to_string();
    let params = summary_params.as_ref().or(m.params.as_ref());
    let last_epoch = m.epochs.values().next_back();
    let last_elapsed = m
        .epochs
        .values()
        .filter_map(|r| r.elapsed_s)
        .chain(m.logs.values().filter_map(|l| l.2))
        .fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| a.max(x)))
        });
    let best = m.best_val();
    let mut row = RunRow {
        run: name.clone(),
        mode: mode.clone(),
        params_total: params.map(|p| p.total),
        params_trainable: params.map(|p| p.trainable),
        params_fixed: params.map(|p| p.fixed),
        share_removed: params.and_then(|p| finite(p.share_removed)),
        best_val_ppl: best.map(|b| b.1),
        test_ppl: m.test.and_then(|t| t.1),
        epochs: Some(m.epochs.len()),
        wall_s: last_elapsed,
        train_tokens_per_s: last_epoch.and_then(|r| r.tokens_per_s),
        peak_rss_mb: m
            .epochs
            .values()
            .filter_map(|r| r.peak_rss_mb)
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| a.max(x)))
            }),
        status: if m.diverged { "diverged" } else { "unfinished" }.into(),
        train_tokens: last_epoch.and_then(|r| r.train_tokens),
        train_tokens_limit: cfg.lm.as_ref().unwrap().data.train_tokens,
        final_alpha: m.last_alpha(),
        best_val_loss: best.map(|b| b.0),
        test_loss: m.test.and_then(|t| t.0),
        steps: m
            .logs
            .keys()
            .next_back()
            .copied()
            .max(last_epoch.and_then(|r| r.step)),
        optimizer_state_floats: None,
        checkpoint_bytes: None,
        params_learned_total: params.map(|p| p.learned_total),
        device: m.device.clone(),
        threads: (cfg.train.threads > 0).then_some(cfg.train.threads as i64),
        path: path.display().to_string(),
    };
    if let Some(s) = &summary {
        let f = |k: &str| get_f64(s, k);
        row.status = "finished".into();
        row.best_val_ppl = f("best_val_ppl").or(row.best_val_ppl);
        row.best_val_loss = f("best_val_loss").or(row.best_val_loss);
        row.test_ppl = f("test_ppl");
        row.test_loss = f("test_loss");
        row.epochs = get_u64(s, "epochs").map(|e| e as usize).or(row.epochs);
        row.wall_s = f("wall_s").or(row.wall_s);
        row.train_tokens_per_s = f("train_tokens_per_s").or(row.train_tokens_per_s);
        // The summary has the last process's peak; a resumed run had earlier ones.
        row.peak_rss_mb = match (f("peak_rss_mb").filter(|&x| x > 0.0), row.peak_rss_mb) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        row.train_tokens = get_u64(s, "train_tokens").or(row.train_tokens);
        row.final_alpha = f("final_alpha");
        row.steps = get_u64(s, "steps").or(row.steps);
        row.optimizer_state_floats = s.get("optimizer_state_floats").and_then(Value::as_i64);
        row.checkpoint_bytes = get_u64(s, "checkpoint_bytes");
        row.device = s
            .get("device")
            .and_then(Value::as_str)
            .map(String::from)
            .or(row.device);
        row.threads = s.get("threads").and_then(Value::as_i64).or(row.threads);
    }
    let fixed = cfg.head.mode.is_fixed();
    let mut alpha: BTreeMap<u64, f64> = m
        .epochs
        .values()
        .filter_map(|r| Some((r.step?, r.alpha?)))
        .collect();
    alpha.extend(m.logs.iter().filter_map(|(s, l)| Some((*s, l.1?))));
    let curves = RunCurves {
        label: format!("{name} ({mode})"),
        fixed,
        val_ppl: m
            .epochs
            .iter()
            .filter_map(|(e, r)| Some((*e as f64, r.val_ppl?)))
            .collect(),
        train_loss: m
            .logs
            .iter()
            .filter_map(|(s, l)| Some((*s as f64, l.0?)))
            .collect(),
        alpha: if fixed {
            alpha.into_iter().map(|(s, a)| (s as f64, a)).collect()
        } else {
            Vec::new()
        },
    };
    Ok(LoadedRun { row, curves, cfg })
}

/// Vocabulary size from the parameter count of the learned-output network.
fn vocab_of(cfg: &Config, learned_total: i64) -> Option<i64> {
    let (e, h, l) = (
        cfg.lm.as_ref().unwrap().model.emb_size,
        cfg.lm.as_ref().unwrap().model.hidden_size,
        cfg.lm.as_ref().unwrap().model.layers,
    );
    let lstm: i64 = (0..l)
        .map(|i| 4 * h * (if i == 0 { e } else { h }) + 4 * h * h + 8 * h)
        .sum();
    let rest = learned_total - lstm;
    let per_word = e + h + 1;
    (rest > 0 && rest % per_word == 0).then_some(rest / per_word)
}

fn push_distinct<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn scale_of(runs: &[LoadedRun]) -> Scale {
    let mut s = Scale {
        runs: runs.len(),
        ..Scale::default()
    };
    for r in runs {
        let c = &r.cfg;
        push_distinct(
            &mut s.corpus,
            c.lm.as_ref().unwrap().data.dir.display().to_string(),
        );
        if let Some(v) = r
            .row
            .params_learned_total
            .and_then(|total| vocab_of(c, total))
        {
            push_distinct(&mut s.vocab, v);
        }
        push_distinct(
            &mut s.train_tokens_limit,
            c.lm.as_ref().unwrap().data.train_tokens,
        );
        s.train_tokens_trained.push(r.row.train_tokens);
        push_distinct(&mut s.emb_size, c.lm.as_ref().unwrap().model.emb_size);
        push_distinct(&mut s.hidden_size, c.lm.as_ref().unwrap().model.hidden_size);
        push_distinct(&mut s.layers, c.lm.as_ref().unwrap().model.layers);
        let opt = serde_json::to_value(c.train.optimizer)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        push_distinct(&mut s.optimizer, opt);
        push_distinct(&mut s.lr, c.train.lr);
        push_distinct(&mut s.epochs, c.train.epochs);
        push_distinct(&mut s.max_steps_per_epoch, c.train.max_steps_per_epoch);
        push_distinct(&mut s.batch_size, c.train.batch_size);
        push_distinct(&mut s.bptt, c.lm.as_ref().unwrap().bptt);
        push_distinct(
            &mut s.device,
            r.row
                .device
                .clone()
                .unwrap_or_else(|| c.train.device.clone()),
        );
        push_distinct(
            &mut s.threads,
            r.row.threads.unwrap_or(c.train.threads as i64),
        );
    }
    s
}

/// Reads the run folders into a report (no file is written).
pub fn build_report(runs: &[PathBuf], title: &str) -> Result<ReportTable> {
    if runs.is_empty() {
        return Err(Error::arg("runs", "give at least one run folder"));
    }
    let loaded = runs
        .iter()
        .map(|p| load_run(p))
        .collect::<Result<Vec<_>>>()?;
    let mut table = ReportTable {
        title: title.to_string(),
        scale: scale_of(&loaded),
        runs: loaded.iter().map(|r| r.row.clone()).collect(),
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
            table.curves[i].label = format!("{} ({})", row.run, row.mode);
        }
    }
    Ok(table)
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
            format!(
                "{}\n",
                serde_json::to_string_pretty(&table).unwrap_or_default()
            )
            .into_bytes(),
        ),
    ];
    for name in PLOTS {
        let plot = match name {
            "val_ppl" => Plot::ValPpl,
            "train_loss" => Plot::TrainLoss,
            "alpha" => Plot::Alpha,
            _ => Plot::Params,
        };
        let png_path = out.join(format!("{name}.png"));
        let png = render_png(&table, plot, PLOT_SIZE)
            .map_err(|e| Error::bad_file(&png_path, format!("cannot draw the plot: {e}")))?;
        let svg_path = out.join(format!("{name}.svg"));
        let svg = render_svg(&table, plot, PLOT_SIZE)
            .map_err(|e| Error::bad_file(&svg_path, format!("cannot draw the plot: {e}")))?;
        files.push((png_path, png));
        files.push((svg_path, svg.into_bytes()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for (path, bytes) in &files {
        write_bytes_atomic(path, bytes)?;
    }
    Ok(table)
}

// ---------------------------------------------------------------------------------------
// Text: Markdown and CSV.

fn fmt_millions(n: Option<i64>) -> String {
    n.map(|n| format!("{:.2}", n as f64 / 1e6))
        .unwrap_or_else(|| "–".into())
}

fn fmt_f(v: Option<f64>, decimals: usize) -> String {
    v.and_then(finite)
        .map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "–".into())
}

/// A count with a unit prefix: 950, 12.3 k, 2.09 M, 1.10 G.
fn fmt_count(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Seconds as `12.3 s`, `4m 05s` or `2h 03m`.
fn fmt_duration(s: Option<f64>) -> String {
    let Some(s) = s.and_then(finite) else {
        return "–".into();
    };
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let t = s.round() as u64;
        format!("{}m {:02}s", t / 60, t % 60)
    } else {
        let t = (s / 60.0).round() as u64;
        format!("{}h {:02}m", t / 60, t % 60)
    }
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" / ")
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The scale paragraph of `results.md`.
pub fn scale_paragraph(s: &Scale) -> String {
    let limit = if s.train_tokens_limit.iter().all(|&n| n == 0) {
        "all training tokens (data.train_tokens = 0)".to_string()
    } else {
        let v: Vec<String> = s
            .train_tokens_limit
            .iter()
            .map(|&n| {
                if n == 0 {
                    "all".into()
                } else {
                    fmt_count(n as f64)
                }
            })
            .collect();
        format!(
            "the first {} training tokens (data.train_tokens)",
            v.join(" / ")
        )
    };
    let trained: Vec<u64> = s.train_tokens_trained.iter().flatten().copied().collect();
    let trained = match (trained.iter().min(), trained.iter().max()) {
        (Some(&lo), Some(&hi)) if lo == hi => format!("{} tokens", fmt_count(lo as f64)),
        (Some(&lo), Some(&hi)) => {
            format!(
                "{} to {} tokens",
                fmt_count(lo as f64),
                fmt_count(hi as f64)
            )
        }
        _ => "no tokens yet".into(),
    };
    let vocab = if s.vocab.is_empty() {
        String::new()
    } else {
        format!(" (vocabulary {})", join(&s.vocab))
    };
    let steps = if s.max_steps_per_epoch.iter().all(|&n| n == 0) {
        String::new()
    } else {
        let v: Vec<String> = s
            .max_steps_per_epoch
            .iter()
            .map(|&n| if n == 0 { "all".into() } else { n.to_string() })
            .collect();
        format!(", at most {} steps per epoch", v.join(" / "))
    };
    let threads: Vec<String> = s
        .threads
        .iter()
        .map(|&t| {
            if t == 0 {
                "default".into()
            } else {
                t.to_string()
            }
        })
        .collect();
    format!(
        "**Scale.** {} run{} on corpus `{}`{vocab}, using {limit}; tokens actually trained \
         (all epochs): {trained}. Model: embedding {}, hidden {}, {} LSTM layer(s). Optimizer \
         {} (lr {}), {} epoch(s) planned{steps}, batch {}, BPTT {}. Device {}, {} thread(s).",
        s.runs,
        if s.runs == 1 { "" } else { "s" },
        s.corpus.join("`, `"),
        join(&s.emb_size),
        join(&s.hidden_size),
        join(&s.layers),
        s.optimizer.join(" / "),
        join(&s.lr),
        join(&s.epochs),
        join(&s.batch_size),
        join(&s.bptt),
        s.device.join(" / "),
        threads.join(" / "),
    )
}

/// The whole `results.md`: title, scale paragraph, results table, alpha of the fixed runs.
pub fn render_markdown(t: &ReportTable) -> String {
    let mut md = format!("# {}\n\n{}\n\n", t.title, scale_paragraph(&t.scale));
    md.push_str(
        "| run | mode | params total (M) | trainable (M) | fixed (M) | removed (%) | best val ppl \
         | test ppl | epochs | wall time | train tokens/s | peak mem (MB) |\n",
    );
    md.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in &t.runs {
        let run = match r.status.as_str() {
            "finished" => md_escape(&r.run),
            other => format!("{} ({other})", md_escape(&r.run)),
        };
        md.push_str(&format!(
            "| {run} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.mode,
            fmt_millions(r.params_total),
            fmt_millions(r.params_trainable),
            fmt_millions(r.params_fixed),
            fmt_f(r.share_removed.map(|x| 100.0 * x), 1),
            fmt_f(r.best_val_ppl, 2),
            fmt_f(r.test_ppl, 2),
            opt(r.epochs),
            fmt_duration(r.wall_s),
            fmt_f(r.train_tokens_per_s, 0),
            fmt_f(r.peak_rss_mb, 0),
        ));
    }
    let fixed: Vec<&RunRow> = t.runs.iter().filter(|r| r.is_fixed()).collect();
    if !fixed.is_empty() {
        md.push('\n');
        for r in fixed {
            md.push_str(&format!(
                "- {} ({}): final alpha {}\n",
                md_escape(&r.run),
                r.mode,
                fmt_f(r.final_alpha, 3)
            ));
        }
    }
    if t.runs.iter().any(|r| r.status != "finished") {
        md.push_str(
            "\nRuns marked unfinished have no summary.json yet: their numbers come from the \
             metrics logged so far (no test perplexity).\n",
        );
    }
    md.push_str(&format!(
        "\nPlots: {}.\n",
        PLOTS
            .iter()
            .map(|p| format!("[{p}]({p}.png)"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The whole `results.csv`: a header and one row per run.
pub fn render_csv(t: &ReportTable) -> String {
    let header: Vec<&str> = match t.runs.first() {
        Some(r) => r.csv_cells().iter().map(|c| c.0).collect(),
        None => CSV_COLUMNS.to_vec(),
    };
    let mut csv = header.join(",");
    csv.push('\n');
    for r in &t.runs {
        let cells: Vec<String> = r.csv_cells().iter().map(|c| csv_cell(&c.1)).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}

// ---------------------------------------------------------------------------------------
// Plots.

#[derive(Debug, Clone, Copy)]
enum Plot {
    ValPpl,
    TrainLoss,
    Alpha,
    Params,
}

/// An error while drawing, as text.
#[derive(Debug)]
struct PlotError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type PlotResult = std::result::Result<(), PlotError>;

/// Registers the bundled font under the family names plotters asks for (once).
fn ensure_fonts() -> std::result::Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        ["sans-serif", "serif", "monospace", "DejaVu Sans"]
            .iter()
            .all(|name| plotters::style::register_font(name, FontStyle::Normal, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError("the bundled font could not be loaded".into()))
    }
}

/// Tableau 10: distinguishable line colors.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The bitmap backend with text drawn glyph by glyph from the bundled font: plotters'
/// `ab_glyph` text ignores the glyphs' side bearings (uneven letter spacing); this lays
/// text out glyph by glyph, at the size plotters measures it with.
struct TextBitmap<'a> {
    inner: BitMapBackend<'a>,
    font: ab_glyph::FontRef<'static>,
}

type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;
type BackendResult<T = ()> =
    std::result::Result<T, plotters_backend::DrawingErrorKind<BitmapError>>;

impl TextBitmap<'_> {
    /// The font at plotters' text size: `size` pixels from descent to ascent (the size the
    /// chart layout measures text with; the SVG backend writes `font-size: size / 1.24`).
    fn scaled(&self, size: f64) -> ab_glyph::PxScaleFont<&ab_glyph::FontRef<'static>> {
        use ab_glyph::Font;
        (&self.font).into_scaled(ab_glyph::PxScale::from(size as f32))
    }

    /// Glyphs of a line of text at their pen positions (baseline at the ascent), and the
    /// line's width and height.
    fn layout(&self, text: &str, size: f64) -> (Vec<ab_glyph::Glyph>, f32, f32) {
        use ab_glyph::ScaleFont;
        let font = self.scaled(size);
        let mut glyphs = Vec::with_capacity(text.len());
        let mut x = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                x += font.kern(p, id);
            }
            glyphs
                .push(id.with_scale_and_position(font.scale(), ab_glyph::point(x, font.ascent())));
            x += font.h_advance(id);
            prev = Some(id);
        }
        (glyphs, x, font.height())
    }
}

impl DrawingBackend for TextBitmap<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> BackendResult {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> BackendResult {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> BackendResult {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> BackendResult {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> BackendResult {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> BackendResult {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> BackendResult {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> BackendResult {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> BackendResult {
        self.inner.blit_bitmap(pos, size, src)
    }
    fn estimate_text_size<TStyle: plotters_backend::BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> BackendResult<(u32, u32)> {
        let (_, w, h) = self.layout(text, style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }
    fn draw_text<TStyle: plotters_backend::BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> BackendResult {
        use ab_glyph::Font;
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let (glyphs, w, h) = self.layout(text, style.size());
        let (w, h) = (w.round() as i32, h.round() as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (width, height) = self.get_size();
        let mut pixels = Vec::new();
        for g in glyphs {
            if let Some(outline) = self.font.outline_glyph(g) {
                let b = outline.px_bounds();
                let (x0, y0) = (b.min.x.floor() as i32, b.min.y.floor() as i32);
                outline.draw(|x, y, cov| {
                    if cov > 0.0 {
                        pixels.push((x0 + x as i32, y0 + y as i32, cov.min(1.0)));
                    }
                });
            }
        }
        for (x, y, cov) in pixels {
            let (x, y) = trans.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < width as i32 && y >= 0 && y < height as i32 {
                let c = BackendColor {
                    alpha: color.alpha * cov as f64,
                    rgb: color.rgb,
                };
                self.inner.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}

fn render_png(
    t: &ReportTable,
    plot: Plot,
    (w, h): (u32, u32),
) -> std::result::Result<Vec<u8>, PlotError> {
    ensure_fonts()?;
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let font = ab_glyph::FontRef::try_from_slice(FONT)
            .map_err(|e| PlotError(format!("the bundled font: {e}")))?;
        let root = TextBitmap {
            inner: BitMapBackend::with_buffer(&mut buf, (w, h)),
            font,
        }
        .into_drawing_area();
        draw_plot(t, plot, &root)?;
        root.present()?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| PlotError(format!("PNG encoding: {e}")))?;
        writer
            .write_image_data(&buf)
            .map_err(|e| PlotError(format!("PNG encoding: {e}")))?;
    }
    Ok(png_bytes)
}

fn render_svg(
    t: &ReportTable,
    plot: Plot,
    size: (u32, u32),
) -> std::result::Result<String, PlotError> {
    ensure_fonts()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_plot(t, plot, &root)?;
        root.present()?;
    }
    Ok(svg)
}

fn draw_plot<DB: DrawingBackend>(
    t: &ReportTable,
    plot: Plot,
    root: &DrawingArea<DB, Shift>,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let title = |what: &str| {
        if t.title.is_empty() {
            what.to_string()
        } else {
            format!("{what} — {}", t.title)
        }
    };
    match plot {
        Plot::ValPpl => {
            let series: Vec<(String, &[(f64, f64)])> = t
                .curves
                .iter()
                .map(|c| (c.label.clone(), c.val_ppl.as_slice()))
                .collect();
            draw_lines(
                root,
                &title("Validation perplexity"),
                "epoch",
                "validation perplexity (log scale)",
                &series,
                true,
                "no finished epoch in these runs yet",
            )
        }
        Plot::TrainLoss => {
            let series: Vec<(String, &[(f64, f64)])> = t
                .curves
                .iter()
                .map(|c| (c.label.clone(), c.train_loss.as_slice()))
                .collect();
            draw_lines(
                root,
                &title("Training loss"),
                "training step",
                "training loss (mean of each log interval)",
                &series,
                false,
                "no training loss logged yet (train.log_interval)",
            )
        }
        Plot::Alpha => {
            let series: Vec<(String, &[(f64, f64)])> = t
                .curves
                .iter()
                .filter(|c| c.fixed)
                .map(|c| (c.label.clone(), c.alpha.as_slice()))
                .collect();
            let note = if series.is_empty() {
                "no fixed-classifier run: alpha exists only in the fixed modes"
            } else {
                "no alpha logged yet"
            };
            draw_lines(
                root,
                &title("Scale alpha of the fixed classifier"),
                "training step",
                "alpha",
                &series,
                false,
                note,
            )
        }
        Plot::Params => draw_params(root, &title("Parameters"), &t.runs),
    }
}

fn draw_note<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    note: &str,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = root.dim_in_pixel();
    let center = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 30),
        ("sans-serif", 28)
            .into_font()
            .into_text_style(root)
            .pos(center),
    ))?;
    root.draw(&Text::new(
        note.to_string(),
        (w as i32 / 2, h as i32 / 2),
        ("sans-serif", 21)
            .into_font()
            .color(&RGBColor(90, 90, 90))
            .pos(center),
    ))?;
    Ok(())
}

/// A padded range around `lo..hi` (a point gets a range around it).
fn padded(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        let (lo, hi) = (lo.max(1e-12), hi.max(1e-12));
        if hi / lo < 1.05 {
            (lo / 1.1, hi * 1.1)
        } else {
            (lo / 1.05, hi * 1.05)
        }
    } else if hi - lo < 1e-9 * (1.0 + hi.abs()) {
        let d = if hi.abs() >= 1.0 { 0.5 } else { 0.1 };
        (lo - d, hi + d)
    } else {
        let d = 0.05 * (hi - lo);
        (lo - d, hi + d)
    }
}

/// The fewest decimals that write every value exactly (up to 6).
fn decimals_needed(values: &[f64]) -> usize {
    (0..6)
        .find(|&d| {
            let f = 10f64.powi(d as i32);
            values
                .iter()
                .all(|v| ((v * f) - (v * f).round()).abs() < 1e-6 * (v * f).abs().max(1.0))
        })
        .unwrap_or(6)
}

/// A label formatter for an axis with these ticks: as many decimals as the ticks need,
/// `k` / `M` for large values.
fn tick_formatter(ticks: &[f64]) -> impl Fn(&f64) -> String {
    let top = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    let (div, suffix) = if top >= 1e7 {
        (1e6, "M")
    } else if top >= 1e5 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let scaled: Vec<f64> = ticks.iter().map(|t| t / div).collect();
    let d = decimals_needed(&scaled);
    move |v: &f64| {
        if v.abs() < 1e-12 * div {
            "0".to_string()
        } else {
            format!("{:.d$}{suffix}", v / div)
        }
    }
}

/// Round tick values covering `lo..hi` (about `target` of them, `min_step` apart at least).
fn nice_ticks(lo: f64, hi: f64, target: usize, min_step: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag)
        .max(min_step);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks for a log axis over `lo..hi` (values > 0): 1-2-5 per decade over a wide range,
/// round linear ticks within about a decade.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if hi / lo < 10.0 {
        return nice_ticks(lo, hi, 6, 0.0);
    }
    let decades = (hi / lo).log10();
    let mantissas: &[f64] = if decades > 4.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut ticks = Vec::new();
    let mut d = 10f64.powf(lo.log10().floor());
    while d <= hi {
        for m in mantissas {
            let v = m * d;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        d *= 10.0;
    }
    ticks
}

/// Where the legend covers the fewest points: the emptier top corner.
fn legend_corner(
    points: &[(f64, f64)],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let (xm, ym) = ((x0 + x1) / 2.0, y0 + 0.55 * (y1 - y0));
    let upper = points.iter().filter(|p| p.1 > ym);
    let (left, right) = upper.fold(
        (0, 0),
        |(l, r), p| if p.0 < xm { (l + 1, r) } else { (l, r + 1) },
    );
    if right <= left {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::UpperLeft
    }
}

/// A linear f64 axis whose ticks are given (plotters' `WithKeyPoints` over f64 cannot be
/// formatted by a custom label formatter).
#[derive(Clone)]
struct TickedAxis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Self { lo, hi, ticks }
    }
}

impl plotters::coord::ranged1d::Ranged for TickedAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        if self.hi == self.lo {
            return (limit.0 + limit.1) / 2;
        }
        let t = (v - self.lo) / (self.hi - self.lo);
        let len = (limit.1 - limit.0) as f64;
        if !t.is_finite() {
            return if t > 0.0 { limit.1 } else { limit.0 };
        }
        limit.0 + (len * t).round() as i32
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Line chart of several runs (markers on every point when a run has few, so that a
/// single point still shows). A log y axis is drawn as ln(y) with ticks labelled in y.
fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, &[(f64, f64)])],
    log_y: bool,
    empty_note: &str,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let keep = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > 0.0);
    let to_chart = |p: (f64, f64)| if log_y { (p.0, p.1.ln()) } else { p };
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(label, pts)| {
            let pts = pts.iter().copied().filter(keep).collect();
            (label.as_str(), pts)
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return draw_note(root, title, empty_note);
    }
    let fold = |f: fn(f64, f64) -> f64, init: f64, y: bool| {
        all.iter().map(|p| if y { p.1 } else { p.0 }).fold(init, f)
    };
    let (x0, x1) = padded(
        fold(f64::min, f64::MAX, false),
        fold(f64::max, f64::MIN, false),
        false,
    );
    let (v0, v1) = padded(
        fold(f64::min, f64::MAX, true),
        fold(f64::max, f64::MIN, true),
        log_y,
    );
    // Epochs and steps are whole numbers: no ticks between them.
    let whole_x = all.iter().all(|p| p.0.fract() == 0.0);
    let x_ticks = nice_ticks(x0, x1, 10, if whole_x { 1.0 } else { 0.0 });
    let (y0, y1, y_ticks) = if log_y {
        let ticks = log_ticks(v0, v1).into_iter().map(f64::ln).collect();
        (v0.ln(), v1.ln(), ticks)
    } else {
        (v0, v1, nice_ticks(v0, v1, 8, 0.0))
    };
    let x_label = tick_formatter(&x_ticks);
    let y_label = {
        let values: Vec<f64> = y_ticks
            .iter()
            .map(|&t| if log_y { t.exp() } else { t })
            .collect();
        let f = tick_formatter(&values);
        move |v: &f64| f(&if log_y { v.exp() } else { *v })
    };
    let chart_points: Vec<(f64, f64)> = all.iter().map(|&p| to_chart(p)).collect();
    let corner = legend_corner(&chart_points, (x0, x1), (y0, y1));
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            TickedAxis::new(x0, x1, x_ticks),
            TickedAxis::new(y0, y1, y_ticks),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = pts.iter().map(|&p| to_chart(p)).collect();
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        if pts.len() <= 60 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .position(corner)
        .draw()?;
    Ok(())
}

/// Stacked bars of trainable and fixed parameters (millions) per run, labelled by mode.
fn draw_params<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    runs: &[RunRow],
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let rows: Vec<&RunRow> = runs
        .iter()
        .filter(|r| r.params_trainable.is_some() && r.params_fixed.is_some())
        .collect();
    if rows.is_empty() {
        return draw_note(root, title, "no parameter counts: no run has started");
    }
    let m = |n: Option<i64>| n.unwrap_or(0) as f64 / 1e6;
    // Label by mode; by run when two runs share a mode.
    let modes_unique = rows
        .iter()
        .enumerate()
        .all(|(i, r)| rows.iter().skip(i + 1).all(|o| o.mode != r.mode));
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            if modes_unique {
                r.mode.clone()
            } else {
                r.run.clone()
            }
        })
        .collect();
    let n = rows.len();
    let top = rows
        .iter()
        .map(|r| m(r.params_trainable) + m(r.params_fixed))
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.18;
    let centers: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
    let y_ticks = nice_ticks(0.0, top, 8, 0.0);
    let y_label = tick_formatter(&y_ticks);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            TickedAxis::new(0.0, n as f64, centers),
            TickedAxis::new(0.0, top, y_ticks.clone()),
        )?;
    let label_of = |v: &f64| {
        let i = (v - 0.5).round();
        if i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&label_of)
        .y_label_formatter(&y_label)
        .y_desc("parameters (millions)")
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let (trainable_c, fixed_c) = (color(0), RGBColor(190, 190, 190));
    let bar = |i: usize, y0: f64, y1: f64, c: RGBColor| {
        Rectangle::new([(i as f64 + 0.2, y0), (i as f64 + 0.8, y1)], c.filled())
    };
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, r)| bar(i, 0.0, m(r.params_trainable), trainable_c)),
        )?
        .label("trainable")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], trainable_c.filled()));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let t = m(r.params_trainable);
            bar(i, t, t + m(r.params_fixed), fixed_c)
        }))?
        .label("fixed (not trained)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], fixed_c.filled()));
    let text_style = ("sans-serif", 16)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let t = m(r.params_trainable);
        let text = match r.share_removed.filter(|s| *s > 0.0005) {
            Some(s) => format!("{t:.2} M trainable ({:.0}% fewer)", 100.0 * s),
            None => format!("{t:.2} M trainable"),
        };
        Text::new(
            text,
            (i as f64 + 0.5, t + m(r.params_fixed) + top * 0.01),
            text_style.clone(),
        )
    }))?;
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeadMode;
    use crate::engine::Summary;
    use serde_json::json;

    fn params(fixed_mode: bool) -> ParamReport {
        let learned_total = 4_000_000;
        let trainable = if fixed_mode { 1_000_000 } else { learned_total };
        let fixed = if fixed_mode { 1_500_000 } else { 0 };
        ParamReport {
            total: trainable + fixed,
            trainable,
            fixed,
            learned_total,
            classifier_share: 0.75,
            share_removed: 1.0 - trainable as f64 / learned_total as f64,
        }
    }

    /// Writes a fake run folder: config, metrics of `epochs` epochs, and a summary when
    /// `finished`.
    fn fake_run(dir: &Path, name: &str, mode: HeadMode, epochs: u64, finished: bool) -> PathBuf {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        let mut cfg = Config {
            name: name.into(),
            lm: Some(Default::default()),
            ..Config::default()
        };
        cfg.head.mode = mode;
        if mode.needs_embeddings() {
            cfg.head.embeddings = "embeddings/w2v.npy".into();
        }
        cfg.lm.as_mut().unwrap().data.train_tokens = 50_000;
        cfg.train.epochs = epochs as usize;
        cfg.train.threads = 2;
        std::fs::write(run.join(CONFIG_FILE), cfg.to_toml()).unwrap();
        let fixed = mode.is_fixed();
        let alpha = |s: u64| fixed.then_some(10.0 + s as f64 * 0.1);
        let mut lines = vec![json!({"event": "start", "params": params(fixed), "device": "Cpu"})];
        let mut step = 0;
        for e in 1..=epochs {
            for _ in 0..3 {
                step += 10;
                lines.push(
                    json!({"event": "log", "epoch": e, "step": step, "batch": 10,
                    "lr": 20.0, "ms_per_batch": 5.0, "loss": 7.0 - step as f64 * 0.01,
                    "ppl": 1000.0, "tokens_per_s": 5000.0, "elapsed_s": step as f64,
                    "alpha": alpha(step)}),
                );
            }
            let val_loss = 6.5 - e as f64 * 0.2;
            lines.push(json!({"event": "epoch", "epoch": e, "step": step,
                "val_loss": val_loss, "val_ppl": val_loss.exp(), "lr": 20.0,
                "epoch_s": 30.0, "elapsed_s": step as f64 + 1.0, "train_tokens": step * 700,
                "tokens_per_s": 6000.0, "alpha": alpha(step), "peak_rss_mb": 300.0 + e as f64,
                "asgd": false}));
        }
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        // A torn last line, as after a crash.
        std::fs::write(run.join(METRICS_FILE), format!("{text}{{\"event\": \"lo")).unwrap();
        if finished {
            let best = 6.5 - epochs as f64 * 0.2;
            let s = Summary {
                run: name.into(),
                task: "lm".into(),
                mode: mode.name().into(),
                classes: Some(33_278),
                params: params(fixed),
                best_val_loss: best,
                best_val_ppl: Some(best.exp()),
                best_val_acc: None,
                test_loss: best + 0.05,
                test_ppl: Some((best + 0.05).exp()),
                test_acc: None,
                test_top5: None,
                epochs: epochs as usize,
                steps: step,
                train_tokens: Some(step * 700),
                train_images: None,
                train_images_per_s: None,
                wall_s: 95.5,
                train_s: 90.0,
                train_tokens_per_s: Some(6100.0),
                peak_rss_mb: 512.0,
                optimizer_state_floats: 0,
                checkpoint_bytes: 16_000_000,
                final_alpha: alpha(step),
                device: "Cpu".into(),
                threads: 2,
            };
            std::fs::write(
                run.join(SUMMARY_FILE),
                serde_json::to_string_pretty(&s).unwrap(),
            )
            .unwrap();
        }
        run
    }

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        (w, h)
    }

    fn decode_png(bytes: &[u8]) -> Vec<u8> {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        buf
    }

    #[test]
    fn report_of_three_runs_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let runs = vec![
            fake_run(dir.path(), "lm-learned", HeadMode::Learned, 3, true),
            fake_run(dir.path(), "lm-tied", HeadMode::Tied, 3, true),
            fake_run(dir.path(), "lm-fixed", HeadMode::FixedOrthogonal, 3, true),
        ];
        let out = dir.path().join("reports").join("quick");
        let t = write_report(&runs, &out, "quick").unwrap();
        assert_eq!(t.runs.len(), 3);

        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header[..CSV_COLUMNS.len()], CSV_COLUMNS, "{}", lines[0]);
        assert!(header.contains(&"final_alpha") && header.contains(&"train_tokens"));
        assert!(!csv.contains("NaN") && !csv.to_lowercase().contains("inf"));
        for line in &lines[1..] {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{line}");
            for c in &cells[2..CSV_COLUMNS.len()] {
                let v: f64 = c.parse().unwrap_or_else(|_| panic!("`{c}` in {line}"));
                assert!(v.is_finite(), "{line}");
            }
        }
        assert!(lines[1].starts_with("lm-learned,learned,4000000,4000000,0,0,"));
        assert!(lines[3].starts_with("lm-fixed,fixed-orthogonal,2500000,1000000,1500000,0.75,"));
        let alpha_col = header.iter().position(|h| *h == "final_alpha").unwrap();
        assert_eq!(lines[1].split(',').nth(alpha_col), Some(""));
        assert_eq!(lines[3].split(',').nth(alpha_col), Some("19"));

        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(json["title"], "quick");
        assert_eq!(json["runs"].as_array().unwrap().len(), 3);
        assert_eq!(json["runs"][2]["mode"], "fixed-orthogonal");
        assert_eq!(json["runs"][0]["status"], "finished");
        assert_eq!(json["scale"]["train_tokens_limit"], json!([50000]));
        assert_eq!(json["scale"]["threads"], json!([2]));

        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert_eq!(md, render_markdown(&t));
        assert!(md.contains("| run | mode | params total (M)"), "{md}");
        assert!(
            md.contains("| lm-fixed | fixed-orthogonal | 2.50 | 1.00 | 1.50 | 75.0 |"),
            "{md}"
        );
        assert!(
            md.contains("lm-fixed (fixed-orthogonal): final alpha 19.000"),
            "{md}"
        );
        assert!(
            md.contains("**Scale.** 3 runs on corpus `data/wikitext-2`"),
            "{md}"
        );
        assert!(md.contains("first 50.0 k training tokens"), "{md}");
        assert!(md.contains("Device Cpu, 2 thread(s)"), "{md}");

        for name in PLOTS {
            let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
            assert_eq!(png_size(&png), PLOT_SIZE, "{name}");
            let pixels = decode_png(&png);
            assert_eq!(pixels.len(), (PLOT_SIZE.0 * PLOT_SIZE.1 * 3) as usize);
            // Not a blank canvas: some dark pixels (text, axes).
            assert!(
                pixels.chunks(3).any(|p| p.iter().all(|&c| c < 80)),
                "{name}"
            );
            let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
            assert!(svg.contains("<svg") && svg.contains("<text"), "{name}");
        }
        let legend = std::fs::read_to_string(out.join("val_ppl.svg")).unwrap();
        assert!(legend.contains("lm-tied (tied)"));
        // No temp files left.
        let names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3 + 2 * PLOTS.len(), "{names:?}");
    }

    #[test]
    fn report_unfinished_run_from_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let runs = vec![
            fake_run(dir.path(), "done", HeadMode::FixedWord2vec, 2, true),
            fake_run(dir.path(), "half", HeadMode::FixedPmi, 1, false),
        ];
        let out = dir.path().join("r");
        let t = write_report(&runs, &out, "partial").unwrap();
        let half = &t.runs[1];
        assert_eq!(half.status, "unfinished");
        assert_eq!(half.mode, "fixed-pmi");
        assert_eq!(half.epochs, Some(1));
        assert_eq!(half.test_ppl, None);
        assert!((half.best_val_ppl.unwrap() - 6.3f64.exp()).abs() < 1e-9);
        assert_eq!(half.final_alpha, Some(13.0));
        assert_eq!(half.params_trainable, Some(1_000_000));
        assert_eq!(half.peak_rss_mb, Some(301.0));
        assert_eq!(half.train_tokens, Some(30 * 700));
        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert!(md.contains("| half (unfinished) | fixed-pmi |"), "{md}");
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        let row = csv.lines().nth(2).unwrap();
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[7], "", "test_ppl is empty: {row}");
        assert!(row.contains(",unfinished,"), "{row}");
        // The single-epoch run still draws its point.
        assert_eq!(t.curves[1].val_ppl.len(), 1);
        assert!(out.join("val_ppl.png").exists() && out.join("alpha.svg").exists());
    }

    #[test]
    fn report_run_folder_without_metrics_or_with_nan() {
        let dir = tempfile::tempdir().unwrap();
        let run = fake_run(dir.path(), "nan", HeadMode::Learned, 1, true);
        // A summary with non-finite numbers, as serde_json writes them (null).
        let text = std::fs::read_to_string(run.join(SUMMARY_FILE)).unwrap();
        let mut s: Summary = serde_json::from_str(&text).unwrap();
        s.test_ppl = Some(f64::NAN);
        s.test_loss = f64::NAN;
        s.best_val_ppl = Some(f64::INFINITY);
        std::fs::write(run.join(SUMMARY_FILE), serde_json::to_string(&s).unwrap()).unwrap();
        let out = dir.path().join("o");
        let t = write_report(std::slice::from_ref(&run), &out, "t").unwrap();
        assert_eq!(t.runs[0].status, "finished");
        assert_eq!(t.runs[0].test_ppl, None);
        // The best validation perplexity falls back to the metrics.
        assert!((t.runs[0].best_val_ppl.unwrap() - 6.3f64.exp()).abs() < 1e-9);
        // Non-finite values set by hand are empty cells too.
        let mut row = t.runs[0].clone();
        row.best_val_ppl = Some(f64::INFINITY);
        row.wall_s = Some(f64::NAN);
        let t2 = ReportTable {
            runs: vec![row],
            ..t.clone()
        };
        let csv = render_csv(&t2);
        assert!(!csv.contains("NaN") && !csv.contains("inf"), "{csv}");
        let cells: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        assert_eq!((cells[6], cells[7], cells[9]), ("", "", ""), "{csv}");
        // A run folder with neither metrics nor summary is still reported.
        std::fs::remove_file(run.join(METRICS_FILE)).unwrap();
        std::fs::remove_file(run.join(SUMMARY_FILE)).unwrap();
        let t = write_report(&[run], &out, "t").unwrap();
        assert_eq!(t.runs[0].status, "unfinished");
        assert_eq!(t.runs[0].params_total, None);
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("nan,learned,,,,,,,0,"),
            "{csv}"
        );
        // Empty plots still draw (with a note).
        let png = std::fs::read(out.join("params.png")).unwrap();
        assert_eq!(png_size(&png), PLOT_SIZE);
    }

    #[test]
    fn report_rejects_a_folder_that_is_not_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let good = fake_run(dir.path(), "good", HeadMode::Tied, 1, true);
        let bad = dir.path().join("not-a-run");
        std::fs::create_dir_all(&bad).unwrap();
        let out = dir.path().join("out");
        let e = write_report(&[good.clone(), bad.clone()], &out, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not-a-run") && e.contains("config.toml"), "{e}");
        assert!(!out.exists(), "no report files on error");
        let e = write_report(&[dir.path().join("missing")], &out, "x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing") && e.contains("no such run folder"),
            "{e}"
        );
        let e = write_report(&[], &out, "x").unwrap_err().to_string();
        assert!(e.contains("at least one"), "{e}");
        // A corrupt summary names the file.
        std::fs::write(good.join(SUMMARY_FILE), "{").unwrap();
        let e = write_report(&[good], &out, "x").unwrap_err().to_string();
        assert!(e.contains("summary.json"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn report_metrics_of_a_resumed_run_keep_the_last_timeline() {
        let events = vec![
            json!({"event": "start", "params": params(true), "device": "Cpu"}),
            json!({"event": "log", "step": 10, "loss": 7.0, "alpha": 10.0}),
            json!({"event": "epoch", "epoch": 1, "step": 10, "val_loss": 6.0, "val_ppl": 403.4}),
            json!({"event": "log", "step": 20, "loss": 6.5, "alpha": 11.0}),
            json!({"event": "epoch", "epoch": 2, "step": 20, "val_loss": 5.9, "val_ppl": 365.0}),
            json!({"event": "diverged", "epoch": 3, "step": 25, "value": "NaN"}),
            // Resumed from the end of epoch 1: steps 11..20 and epoch 2 again.
            json!({"event": "resume", "epoch": 2, "step": 10, "lr": 20.0}),
            json!({"event": "log", "step": 20, "loss": 6.4, "alpha": 12.0}),
            json!({"event": "epoch", "epoch": 2, "step": 20, "val_loss": 5.8, "val_ppl": 330.3}),
        ];
        let m = MetricsDigest::of(&events);
        assert!(!m.diverged);
        assert_eq!(m.logs.len(), 2);
        assert_eq!(m.logs[&20].0, Some(6.4));
        assert_eq!(m.epochs.len(), 2);
        assert_eq!(m.best_val(), Some((5.8, 330.3)));
        assert_eq!(m.last_alpha(), Some(12.0));
        assert_eq!(m.params.as_ref().map(|p| p.fixed), Some(1_500_000));
    }

    #[test]
    fn report_formats() {
        assert_eq!(fmt_duration(Some(5.25)), "5.2 s");
        assert_eq!(fmt_duration(Some(245.0)), "4m 05s");
        assert_eq!(fmt_duration(Some(7380.0)), "2h 03m");
        assert_eq!(fmt_duration(Some(f64::NAN)), "–");
        assert_eq!(fmt_count(2_088_628.0), "2.09 M");
        assert_eq!(
            nice_ticks(0.0, 43.0, 8, 0.0),
            vec![0.0, 10.0, 20.0, 30.0, 40.0]
        );
        assert_eq!(
            log_ticks(140.0, 420.0),
            vec![150.0, 200.0, 250.0, 300.0, 350.0, 400.0]
        );
        assert_eq!(
            log_ticks(30.0, 2000.0),
            vec![50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
        assert_eq!(nice_ticks(0.5, 1.5, 10, 1.0), vec![1.0]);
        let f = tick_formatter(&[0.0, 2.5, 5.0]);
        assert_eq!(
            (f(&0.0), f(&2.5), f(&5.0000000001)),
            ("0".into(), "2.5".into(), "5.0".into())
        );
        let f = tick_formatter(&[150.00000000001, 200.0]);
        assert_eq!(f(&150.00000000001), "150");
        let f = tick_formatter(&[0.0, 100_000.0, 200_000.0]);
        assert_eq!(f(&100_000.0), "100k");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(optf(Some(f64::NAN)), "");
        assert_eq!(optf(Some(1.5)), "1.5");
        let cfg = Config {
            lm: Some(Default::default()),
            ..Config::default()
        };
        // 33,278 words at the paper's size.
        let (v, e, h) = (33_278i64, 512i64, 512i64);
        let lstm = 2 * (4 * h * e + 4 * h * h + 8 * h);
        assert_eq!(vocab_of(&cfg, lstm + v * (e + h + 1)), Some(v));
    }
}
