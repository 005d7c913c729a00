//! Reading one run folder into a table row and plot curves: the config through
//! [`read_setup`] (the one place that knows the config's layout), `metrics.jsonl` through
//! [`super::digest`], `summary.json` through the typed metrics of [`crate::engine::metrics`].
//! The row is built from the metrics, then a finished run's summary is applied to it.
use super::digest::MetricsDigest;
use super::{curve_label, RunCurves, RunRow, Setup};
use crate::engine::metrics::{read_events, Summary};
use crate::engine::{RunDir, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE};
use crate::error::{Error, Result};
use crate::stats::{finite, median};
use std::path::Path;

/// What the report needs of a run's config.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RunSetup {
    pub name: String,
    /// An image-classification run (`[vision]`), not a language model.
    pub image: bool,
    /// The head's mode (`learned`, `fixed-orthogonal`, ...) and whether it is a fixed one.
    pub mode: String,
    pub fixed: bool,
    /// The network, as [`crate::vision::models::ModelConfig::describe`] names it, or
    /// `lstm-<layers>x<hidden>`.
    pub model: String,
    /// Image runs validated on the test split (`vision.data.valid_images = 0`).
    pub valid_is_test: bool,
    pub corpus: String,
    /// Training tokens used (0: all).
    pub train_tokens_limit: usize,
    pub emb_size: i64,
    pub hidden_size: i64,
    pub layers: i64,
    pub optimizer: String,
    pub lr: f64,
    pub epochs: usize,
    pub max_steps_per_epoch: usize,
    pub batch_size: usize,
    pub bptt: usize,
    pub device: String,
    /// libtorch threads (0: its default).
    pub threads: usize,
    pub seed: u64,
}

/// Reads the run's `config.toml` (of this or an earlier fixclf) into what the report needs
/// of it. The LSTM's sizes and the corpus are zero and the data set's name for image runs.
fn read_setup(cfg_path: &Path) -> Result<RunSetup> {
    use crate::config::TaskConfig;
    let cfg = crate::config::load_run_config(cfg_path, &[])?;
    let t = &cfg.train;
    let (corpus, train_tokens_limit, (emb_size, hidden_size, layers), bptt) = match &cfg.task {
        TaskConfig::Vision(v) => (v.data.dataset.name().to_string(), 0, (0, 0, 0), 0),
        TaskConfig::Lm(lm) => (
            lm.data.dir.display().to_string(),
            lm.data.train_tokens,
            (lm.model.emb_size, lm.model.hidden_size, lm.model.layers),
            lm.bptt,
        ),
    };
    let vision = match &cfg.task {
        TaskConfig::Vision(v) => Some(v),
        TaskConfig::Lm(_) => None,
    };
    Ok(RunSetup {
        name: cfg.name.clone(),
        image: vision.is_some(),
        mode: cfg.head.mode.name().to_string(),
        fixed: cfg.head.mode.is_fixed(),
        model: match vision {
            Some(v) => v.model.describe(),
            None => format!("lstm-{layers}x{hidden_size}"),
        },
        valid_is_test: vision.is_some_and(|v| v.data.valid_images == 0),
        corpus,
        train_tokens_limit,
        emb_size,
        hidden_size,
        layers,
        optimizer: t.optimizer.name().to_string(),
        lr: t.lr,
        epochs: t.epochs,
        max_steps_per_epoch: t.max_steps_per_epoch,
        batch_size: t.batch_size,
        bptt,
        device: t.device.clone(),
        threads: t.threads,
        seed: t.seed,
    })
}

/// What one run folder holds, read.
pub(super) struct LoadedRun {
    pub row: RunRow,
    pub curves: RunCurves,
    pub setup: RunSetup,
    /// The class count C, when the run records it.
    pub classes: Option<i64>,
}

/// The largest of the values (None when there is none).
fn max_of(v: impl Iterator<Item = f64>) -> Option<f64> {
    v.reduce(f64::max)
}

/// Reads a run folder: its config, its metrics so far and, once finished, its summary.
pub(super) fn load_run(path: &Path) -> Result<LoadedRun> {
    let run = RunDir::new(path);
    if !run.is_run() {
        return Err(Error::arg(
            path.display().to_string(),
            if path.exists() {
                "not a run folder (no config.toml); pass folders that `fixclf train` wrote (runs/<name>)"
            } else {
                "no such run folder; pass folders that `fixclf train` wrote (runs/<name>)"
            },
        ));
    }
    let setup = read_setup(&run.file(CONFIG_FILE))?;
    let metrics_path = run.file(METRICS_FILE);
    let events = if metrics_path.exists() {
        read_events(&metrics_path)?
    } else {
        Vec::new()
    };
    let m = MetricsDigest::of(&events);
    let summary_path = run.file(SUMMARY_FILE);
    let summary = if summary_path.exists() {
        Some(Summary::load(&summary_path)?)
    } else {
        None
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| setup.name.clone());
    let mut row = row_from_metrics(&name, path, &setup, &m, summary.as_ref());
    if let Some(s) = &summary {
        apply_summary(&mut row, s);
    }
    let curves = curves_of(&name, &setup, &m);
    let classes = summary.as_ref().and_then(|s| s.classes).or(m.classes);
    Ok(LoadedRun {
        row,
        curves,
        setup,
        classes,
    })
}

/// The row as the metrics logged so far give it (an unfinished run's row); the summary's
/// parameter counts and neural-collapse diagnostics are taken when it has them.
fn row_from_metrics(
    name: &str,
    path: &Path,
    setup: &RunSetup,
    m: &MetricsDigest,
    summary: Option<&Summary>,
) -> RunRow {
    let params = summary.map(|s| &s.params).or(m.params.as_ref());
    let last_epoch = m.epochs.values().next_back();
    let best = m.best_val();
    let epoch_secs: Vec<f64> = m
        .epochs
        .values()
        .filter_map(|r| finite(r.epoch_s))
        .collect();
    RunRow {
        run: name.to_string(),
        task: if setup.image { "vision" } else { "lm" }.into(),
        model: setup.model.clone(),
        data: setup.corpus.clone(),
        mode: setup.mode.clone(),
        params_total: params.map(|p| p.total),
        params_trainable: params.map(|p| p.trainable),
        params_fixed: params.map(|p| p.fixed),
        share_removed: params.and_then(|p| finite(p.share_removed)),
        best_val_ppl: best.map(|b| b.1),
        test_ppl: m.test.and_then(|t| finite(t.ppl?)),
        best_val_acc: m.best_val_acc(),
        test_acc: m.test.and_then(|t| finite(t.acc?)),
        test_top5: m.test.and_then(|t| finite(t.top5?)),
        final_train_acc: last_epoch.and_then(|r| finite(r.train_acc?)),
        delta_test_acc: None,
        epochs: Some(m.epochs.len()),
        wall_s: max_of(
            m.epochs
                .values()
                .map(|r| r.elapsed_s)
                .chain(m.logs.values().map(|l| l.elapsed_s))
                .filter(|x| x.is_finite()),
        ),
        epoch_s: (!epoch_secs.is_empty()).then(|| median(&epoch_secs)),
        train_tokens_per_s: last_epoch.and_then(|r| finite(r.throughput.tokens_per_s?)),
        train_images_per_s: last_epoch.and_then(|r| finite(r.throughput.images_per_s?)),
        peak_rss_mb: max_of(m.epochs.values().filter_map(|r| finite(r.peak_rss_mb))),
        status: if m.diverged { "diverged" } else { "unfinished" }.into(),
        train_tokens: last_epoch.and_then(|r| r.throughput.train_tokens),
        train_tokens_limit: setup.train_tokens_limit,
        train_images: last_epoch.and_then(|r| r.throughput.train_images),
        final_alpha: m.last_alpha(),
        best_val_loss: best.map(|b| b.0),
        test_loss: m.test.and_then(|t| finite(t.loss)),
        steps: m
            .logs
            .keys()
            .next_back()
            .copied()
            .max(last_epoch.map(|r| r.step)),
        optimizer_state_floats: None,
        checkpoint_bytes: None,
        params_learned_total: params.map(|p| p.learned_total),
        device: m.device.clone(),
        threads: (setup.threads > 0).then_some(setup.threads as i64),
        path: path.display().to_string(),
        seed: setup.seed,
        // Set when the report knows all its runs (names told apart, then the seed suffix
        // dropped).
        group: String::new(),
        collapse: super::collapse::CollapseCells::of(
            summary
                .and_then(|s| s.collapse.as_ref())
                .or(m.collapse.values().next_back()),
        ),
    }
}

/// A finished run: the summary's numbers replace the metrics' (a finite value in the
/// summary wins; where it has none, some fields keep what the metrics said).
fn apply_summary(row: &mut RunRow, s: &Summary) {
    row.status = "finished".into();
    row.best_val_ppl = s.best_val_ppl.and_then(finite).or(row.best_val_ppl);
    row.best_val_loss = finite(s.best_val_loss).or(row.best_val_loss);
    row.test_ppl = s.test_ppl.and_then(finite);
    row.best_val_acc = s.best_val_acc.and_then(finite).or(row.best_val_acc);
    row.test_acc = s.test_acc.and_then(finite);
    row.test_top5 = s.test_top5.and_then(finite);
    row.train_images_per_s = s
        .train_images_per_s
        .and_then(finite)
        .or(row.train_images_per_s);
    row.train_images = s.train_images.or(row.train_images);
    row.test_loss = finite(s.test_loss);
    row.epochs = Some(s.epochs);
    row.wall_s = finite(s.wall_s).or(row.wall_s);
    row.train_tokens_per_s = s
        .train_tokens_per_s
        .and_then(finite)
        .or(row.train_tokens_per_s);
    // The summary has the last process's peak; a resumed run had earlier ones.
    row.peak_rss_mb = max_of(
        finite(s.peak_rss_mb)
            .filter(|&x| x > 0.0)
            .into_iter()
            .chain(row.peak_rss_mb),
    );
    row.train_tokens = s.train_tokens.or(row.train_tokens);
    row.final_alpha = s.final_alpha.and_then(finite);
    row.steps = Some(s.steps);
    row.optimizer_state_floats = Some(s.optimizer_state_floats);
    row.checkpoint_bytes = Some(s.checkpoint_bytes);
    row.device = Some(s.device.clone());
    row.threads = Some(i64::from(s.threads));
}

/// The run's curves for the plots, from its metrics (alpha only for a fixed head).
fn curves_of(name: &str, setup: &RunSetup, m: &MetricsDigest) -> RunCurves {
    RunCurves {
        label: curve_label(name, &setup.mode),
        // Set when the report knows all its runs.
        group_label: String::new(),
        color: 0,
        fixed: setup.fixed,
        val_ppl: m
            .epochs
            .iter()
            .filter_map(|(e, r)| Some((*e as f64, r.val_ppl?)))
            .collect(),
        train_loss: m.logs.iter().map(|(s, l)| (*s as f64, l.loss)).collect(),
        alpha: if setup.fixed {
            m.alpha_by_step()
                .into_iter()
                .map(|(s, a)| (s as f64, a))
                .collect()
        } else {
            Vec::new()
        },
        train_err: m.error_curve(|r| r.train_acc),
        val_err: m.error_curve(|r| r.val_acc),
        valid_is_test: setup.valid_is_test,
        collapse: m.collapse.values().cloned().collect(),
    }
}

fn push_distinct<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The setup of the runs: the distinct values of each field.
pub(super) fn setup_of(runs: &[LoadedRun]) -> Setup {
    let mut s = Setup {
        runs: runs.len(),
        ..Setup::default()
    };
    for r in runs {
        let c = &r.setup;
        s.image_runs += usize::from(c.image);
        push_distinct(&mut s.corpus, c.corpus.clone());
        push_distinct(&mut s.model, c.model.clone());
        if let Some(v) = r.classes {
            push_distinct(&mut s.vocab, v);
        }
        push_distinct(&mut s.train_tokens_limit, c.train_tokens_limit);
        s.train_tokens_trained.push(r.row.train_tokens);
        push_distinct(&mut s.emb_size, c.emb_size);
        push_distinct(&mut s.hidden_size, c.hidden_size);
        push_distinct(&mut s.layers, c.layers);
        push_distinct(&mut s.optimizer, c.optimizer.clone());
        push_distinct(&mut s.lr, c.lr);
        push_distinct(&mut s.epochs, c.epochs);
        push_distinct(&mut s.max_steps_per_epoch, c.max_steps_per_epoch);
        push_distinct(&mut s.batch_size, c.batch_size);
        push_distinct(&mut s.bptt, c.bptt);
        push_distinct(
            &mut s.device,
            r.row.device.clone().unwrap_or_else(|| c.device.clone()),
        );
        push_distinct(&mut s.threads, r.row.threads.unwrap_or(c.threads as i64));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::testing::fake_run;
    use super::super::{build_report, render_csv, render_markdown, write_report, ReportTable};
    use super::*;
    use crate::classifier::HeadMode;

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
        assert_eq!(half.steps, Some(30));
        assert_eq!(half.wall_s, Some(31.0));
        // The median epoch: 30 s alone, 30 and 40 s for the two-epoch run.
        assert_eq!((half.epoch_s, t.runs[0].epoch_s), (Some(30.0), Some(35.0)));
        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert!(md.contains("| half (unfinished) | fixed-pmi |"), "{md}");
        assert!(md.contains("| 31.0 s | 30.0 |"), "{md}");
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        let row = csv.lines().nth(2).unwrap();
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[7], "", "test_ppl is empty: {row}");
        assert!(row.contains(",unfinished,"), "{row}");
        // The single-epoch run still draws its point.
        assert_eq!(t.curves[1].val_ppl.len(), 1);
        assert_eq!(t.curves[1].train_loss.len(), 3);
        assert_eq!(t.curves[1].alpha.len(), 3);
        assert!(out.join("val_ppl.png").exists() && out.join("alpha.svg").exists());
    }

    #[test]
    fn report_run_folder_without_metrics_or_with_nan() {
        let dir = tempfile::tempdir().unwrap();
        let run = fake_run(dir.path(), "nan", HeadMode::Learned, 1, true);
        // A summary with non-finite numbers, as serde_json writes them (null).
        let text = std::fs::read_to_string(run.join(SUMMARY_FILE)).unwrap();
        let mut s: crate::engine::Summary = serde_json::from_str(&text).unwrap();
        s.test_ppl = Some(f64::NAN);
        s.test_loss = f64::NAN;
        s.best_val_ppl = Some(f64::INFINITY);
        std::fs::write(run.join(SUMMARY_FILE), serde_json::to_string(&s).unwrap()).unwrap();
        let out = dir.path().join("o");
        let t = write_report(std::slice::from_ref(&run), &out, "t").unwrap();
        assert_eq!(t.runs[0].status, "finished");
        assert_eq!((t.runs[0].test_ppl, t.runs[0].test_loss), (None, None));
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
        assert!(out.join("params.png").exists() && out.join("alpha.png").exists());
    }

    /// The vocabulary comes from the class count the run records (none in fixclf 0.1 runs).
    #[test]
    fn vocabulary_from_the_recorded_class_count() {
        let dir = tempfile::tempdir().unwrap();
        let old = fake_run(dir.path(), "old", HeadMode::Learned, 1, false);
        let new = fake_run(dir.path(), "new", HeadMode::Tied, 1, false);
        let path = new.join(METRICS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            r#""event":"start","#,
            r#""classes":33278,"event":"start","#,
            1,
        );
        assert!(text.contains("33278"), "{text}");
        std::fs::write(&path, text).unwrap();
        let t = build_report(std::slice::from_ref(&old), "t").unwrap();
        assert!(t.setup.vocab.is_empty());
        assert!(!render_markdown(&t).contains("vocabulary"));
        let t = build_report(&[old, new], "t").unwrap();
        assert_eq!(t.setup.vocab, vec![33_278]);
        assert!(
            render_markdown(&t).contains("corpus `data/wikitext-2` (vocabulary 33278), using"),
            "{}",
            render_markdown(&t)
        );
    }
}
