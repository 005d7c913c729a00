//! A tiny suite end to end: embeddings, all five modes, the report; then the same suite
//! again, which must reuse every finished run instead of training it again.
mod common;

use common::{fixclf, tiny_corpus, tiny_lm_suite_head};
use serial_test::serial;
use std::path::{Path, PathBuf};

#[test]
#[serial]
fn tiny_suite_trains_reports_and_reuses_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_corpus(d);
    let head = tiny_lm_suite_head(d, "tiny", &data);
    let suite = format!(
        r#"title = "tiny suite"
{head}
[[embeddings]]
out = "{emb}/w2v"
kind = "word2vec"
dim = 16
window = 3
negative = 3
sample = 0.0
alpha = 0.025
epochs = 2
threads = 1
seed = 1

[[embeddings]]
out = "{emb}/pmi"
kind = "pmi"
dim = 16
window = 3
distance_weighted = false
cds = 0.75
neg = 1.0
eig_p = 0.5
oversample = 4
power_iters = 2
threads = 1
seed = 1

[base.lm.model]
emb_size = 16
hidden_size = 16
dropout_input = 0.0
dropout_hidden = 0.0
dropout_output = 0.0

[base.train]
optimizer = "adam"
lr = 0.01
epochs = 2
batch_size = 4
eval_batch_size = 4
log_interval = 5
threads = 1

[[runs]]
name = "learned"
set = ["head.mode=learned"]

[[runs]]
name = "tied"
set = ["head.mode=tied"]

[[runs]]
name = "fixed-orthogonal"
set = ["head.mode=fixed-orthogonal"]

[[runs]]
name = "fixed-word2vec"
set = ["head.mode=fixed-word2vec", "head.embeddings=\"{emb}/w2v.npy\""]

[[runs]]
name = "fixed-pmi"
set = ["head.mode=fixed-pmi", "head.embeddings=\"{emb}/pmi.npy\""]
"#,
        emb = d.join("emb").display(),
    );
    let path = d.join("tiny.toml");
    std::fs::write(&path, suite).unwrap();
    let (code, out, err) = fixclf(&["suite", "--config", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("| run learned: training"), "{out}");

    let report = d.join("reports/tiny");
    let csv = std::fs::read_to_string(report.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with(
        "run,mode,params_total,params_trainable,params_fixed,share_removed,best_val_ppl,test_ppl,epochs,wall_s,train_tokens_per_s,peak_rss_mb"
    ));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    let modes: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(
        modes,
        [
            "learned",
            "tied",
            "fixed-orthogonal",
            "fixed-word2vec",
            "fixed-pmi"
        ]
    );
    for r in &rows {
        for v in &r[2..12] {
            let x: f64 = v.parse().unwrap_or_else(|_| panic!("`{v}` in {r:?}"));
            assert!(x.is_finite(), "{r:?}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 5);
    assert!(std::fs::read_to_string(report.join("results.md"))
        .unwrap()
        .contains("| fixed-pmi"));
    for plot in ["val_ppl", "train_loss", "alpha", "params"] {
        let png = std::fs::read(report.join(format!("{plot}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{plot}.png");
        assert_eq!(&png[12..16], b"IHDR");
        let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert!(w >= 100, "{plot}.png width {w}");
        let svg = std::fs::read_to_string(report.join(format!("{plot}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{plot}.svg");
    }

    // Again: nothing is trained or computed anew.
    let before = std::fs::metadata(d.join("runs/tiny/learned/best.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let (code, out, err) = fixclf(&["suite", "--config", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("finished, reused").count(), 5, "{out}");
    assert_eq!(out.matches("up to date, reused").count(), 2, "{out}");
    let after = std::fs::metadata(d.join("runs/tiny/learned/best.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // An interrupted run (no summary.json yet, a last checkpoint) is resumed, not restarted.
    std::fs::remove_file(d.join("runs/tiny/tied/summary.json")).unwrap();
    let (code, out, err) = fixclf(&["suite", "--config", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("| run tied: resuming"), "{out}");
    assert_eq!(out.matches("finished, reused").count(), 4, "{out}");
    assert!(d.join("runs/tiny/tied/summary.json").exists());
}

/// A tiny image suite file (synthetic data, tiny CNN, 2 epochs) in `d`, with `head` lines
/// at the top and the `runs` entries; returns its path.
fn tiny_vision_suite(d: &Path, head: &str, runs: &str) -> PathBuf {
    let suite = format!(
        r#"name = "tiny-vision"
title = "tiny image suite"
runs_dir = "{runs_dir}"
reports_dir = "{reports}"
{head}

[base.vision]
crop_padding = 1

[base.vision.data]
dataset = "synthetic"

[base.vision.data.synthetic]
classes = 4
train = 192
test = 64
channels = 1
size = 8
seed = 5

[base.vision.model]
arch = "small-cnn"
width = 4

[base.train]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
schedule = "cosine"
epochs = 2
batch_size = 32
eval_batch_size = 64
log_interval = 2
threads = 1

{runs}"#,
        runs_dir = d.join("runs").display(),
        reports = d.join("reports").display(),
    );
    let path = d.join("tiny-vision.toml");
    std::fs::write(&path, suite).unwrap();
    path
}

/// `seeds`: every entry trains once per seed; the report adds the mean over the seeds and
/// the gap to the learned head paired seed by seed (`results-seeds.csv`, `results.md`);
/// `--only` with an entry's name trains all its seeds.
#[test]
#[serial]
fn suite_seeds_train_each_run_per_seed_and_report_the_spread() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = tiny_vision_suite(
        d,
        "seeds = [1, 2]",
        "[[runs]]\nname = \"learned\"\nset = [\"head.mode=learned\", \"train.epochs=1\"]\n\n\
         [[runs]]\nname = \"fixed\"\nset = [\"head.mode=fixed-orthogonal\", \"train.epochs=1\"]\n",
    );
    let suite = path.to_str().unwrap();
    let (code, out, err) = fixclf(&["suite", "--config", suite, "--quiet", "--only", "learned"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let runs = d.join("runs/tiny-vision");
    assert!(runs.join("learned-seed1/summary.json").exists());
    assert!(runs.join("learned-seed2/summary.json").exists());
    assert!(!runs.join("fixed-seed1").exists());
    let (code, out, err) = fixclf(&["suite", "--config", suite, "--quiet"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("finished, reused").count(), 2, "{out}");
    let summary = |run: &str, key: &str| -> f64 {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(runs.join(run).join("summary.json")).unwrap(),
        )
        .unwrap();
        s[key].as_f64().unwrap()
    };
    let acc = |run: &str| summary(run, "test_acc");
    // The two seeds trained differently.
    assert_ne!(
        summary("learned-seed1", "test_loss"),
        summary("learned-seed2", "test_loss")
    );
    let report = d.join("reports/tiny-vision");
    let csv = std::fs::read_to_string(report.join("results-seeds.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with("learned,vision,small-cnn-4,synthetic,learned,2,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("fixed,vision,small-cnn-4,synthetic,fixed-orthogonal,2,"),
        "{csv}"
    );
    let cells: Vec<&str> = lines[2].split(',').collect();
    let mean: f64 = cells[6].parse().unwrap();
    let want = 50.0 * (acc("fixed-seed1") + acc("fixed-seed2"));
    assert!((mean - want).abs() < 1e-6, "{mean} vs {want}");
    let delta: f64 = cells[8].parse().unwrap();
    let want = want - 50.0 * (acc("learned-seed1") + acc("learned-seed2"));
    assert!((delta - want).abs() < 1e-6, "{delta} vs {want}");
    assert_eq!((cells[10], cells[11]), ("2", "1 2"), "{csv}");
    let md = std::fs::read_to_string(report.join("results.md")).unwrap();
    assert!(md.contains("Over seeds"), "{md}");
    assert!(
        md.contains("| fixed | small-cnn-4 | fixed-orthogonal | 2 |"),
        "{md}"
    );
}

/// A tiny image suite (synthetic data, tiny CNN): the accuracy report (the image columns of
/// `results.csv`, one row per run, the error plot), and a second invocation reuses the runs.
#[test]
#[serial]
fn tiny_vision_suite_reports_accuracy_and_reuses_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = tiny_vision_suite(
        d,
        "",
        r#"[[runs]]
name = "cnn-learned"
set = ["head.mode=learned"]

[[runs]]
name = "cnn-fixed-orthogonal"
set = ["head.mode=fixed-orthogonal"]

[[runs]]
name = "cnn-fixed-simplex"
set = ["head.mode=fixed-simplex"]
"#,
    );
    let (code, out, err) = fixclf(&["suite", "--config", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{out}\n{err}");

    let report = d.join("reports/tiny-vision");
    let csv = std::fs::read_to_string(report.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[..13],
        [
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
            "peak_rss_mb"
        ]
    );
    assert!(!header.contains(&"test_ppl"), "{header:?}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let cell = |r: &[&str], name: &str| r[col(name)].to_string();
    let modes: Vec<String> = rows.iter().map(|r| cell(r, "mode")).collect();
    assert_eq!(modes, ["learned", "fixed-orthogonal", "fixed-simplex"]);
    for r in &rows {
        assert_eq!(
            [cell(r, "task"), cell(r, "model")],
            ["vision", "small-cnn-4"]
        );
        for v in &r[4..13] {
            let x: f64 = v.parse().unwrap_or_else(|_| panic!("`{v}` in {r:?}"));
            assert!(x.is_finite() && x >= 0.0, "{r:?}");
        }
        let acc: f64 = cell(r, "test_acc").parse().unwrap();
        assert!((0.0..=1.0).contains(&acc), "test_acc is a fraction: {r:?}");
        assert_eq!(cell(r, "epochs"), "2");
    }
    let md = std::fs::read_to_string(report.join("results.md")).unwrap();
    assert!(md.contains("| test acc (%) | vs learned (points)"), "{md}");
    assert!(
        md.contains("| cnn-fixed-simplex | small-cnn-4 | fixed-simplex |"),
        "{md}"
    );
    for plot in ["error", "train_loss", "alpha", "params"] {
        let png = std::fs::read(report.join(format!("{plot}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{plot}.png");
        assert_eq!(&png[12..16], b"IHDR");
        let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert!(w >= 100, "{plot}.png width {w}");
    }
    let error = std::fs::read_to_string(report.join("error.svg")).unwrap();
    assert!(error.contains("training error") && error.contains("cnn-fixed-simplex"));
    assert!(
        !report.join("val_ppl.png").exists(),
        "no perplexity plot for images"
    );

    let (code, out, err) = fixclf(&["suite", "--config", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("finished, reused").count(), 3, "{out}");
}

/// `--jobs 2`: the runs train in two `fixclf train` processes at once, each with its log;
/// the report covers both, a failing run is named with its error and log, and the same
/// command afterwards reuses the finished runs. `--only` reports the runs that have a folder.
#[test]
#[serial]
fn suite_jobs_train_runs_in_parallel_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_corpus(d);
    let suite = |extra: &str| {
        format!(
            r#"{head}
[base.lm.model]
emb_size = 16
hidden_size = 16

[base.train]
optimizer = "sgd"
lr = 1.0
epochs = 1
batch_size = 4
eval_batch_size = 4
log_interval = 5
threads = 1

[[runs]]
name = "learned"
set = ["head.mode=learned"]

[[runs]]
name = "fixed-orthogonal"
set = ["head.mode=fixed-orthogonal"]
{extra}"#,
            head = tiny_lm_suite_head(d, "par", &data),
        )
    };
    let path = d.join("par.toml");
    std::fs::write(&path, suite("")).unwrap();
    let cfg = path.to_str().unwrap();
    let (code, out, err) = fixclf(&["suite", "--config", cfg, "--jobs", "2"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("in process").count(), 2, "{out}");
    assert_eq!(out.matches(": finished in").count(), 2, "{out}");
    for run in ["learned", "fixed-orthogonal"] {
        assert!(d.join(format!("runs/par/{run}/summary.json")).exists());
        let log = std::fs::read_to_string(d.join(format!("runs/par/.jobs/{run}.log"))).unwrap();
        assert!(log.contains("End of training"), "{log}");
    }
    let csv = std::fs::read_to_string(d.join("reports/par/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // A run that fails (its embeddings file is missing) is named with its error; the
    // finished ones are reused.
    let bad = "\n[[runs]]\nname = \"bad\"\nset = [\"head.mode=fixed-word2vec\", \"head.embeddings=\\\"nowhere.npy\\\"\"]\n";
    std::fs::write(&path, suite(bad)).unwrap();
    let (code, out, err) = fixclf(&["suite", "--config", cfg, "--jobs", "2"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(out.matches("finished, reused").count(), 2, "{out}");
    assert!(
        err.contains("run bad failed (")
            && err.contains("nowhere.npy")
            && err.contains(".jobs/bad.log"),
        "{err}"
    );
    assert!(out.contains("| report of the runs so far in "), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The report so far: the two finished runs (the bad one stopped before its folder).
    let csv = std::fs::read_to_string(d.join("reports/par/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // `--only` in a fresh suite folder: the report covers the one run that has a folder.
    let only = d.join("only.toml");
    std::fs::write(&only, suite("").replace("name = \"par\"", "name = \"one\"")).unwrap();
    let (code, out, err) = fixclf(&[
        "suite",
        "--config",
        only.to_str().unwrap(),
        "--only",
        "learned",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let csv = std::fs::read_to_string(d.join("reports/one/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(!d.join("runs/one/fixed-orthogonal").exists());
}
