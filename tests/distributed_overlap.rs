//! `distributed.overlap = true` end to end: the gradient all-reduce overlapped with the
//! backward pass through c10d's Reducer, 2 ranks over loopback. It must train what the
//! all-reduce after the pass trains (the same weights, bit for bit) and what one process at
//! batch B trains (to 1e-5), with the ranks' weights bitwise equal at the end; a parameter
//! the loss does not reach is a one-line error naming it on every rank; a killed rank is a
//! one-line error on the other within the timeout, not a hang in the backward pass.
mod common;

use common::ranks::{launch, run_ranks};
use common::runs::{epoch_metrics, finish, BIN};
use common::tiny_config;
use serial_test::serial;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// torchrun's one thread per rank.
const ONE_THREAD: &[(&str, &str)] = &[("OMP_NUM_THREADS", "1")];

fn ranks_ok(args: &[&str]) {
    for (rank, (code, err)) in run_ranks(args, 2, ONE_THREAD).iter().enumerate() {
        assert_eq!(*code, 0, "rank {rank}: {err}");
    }
}

fn single(args: &[&str]) {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = finish(child);
    assert_eq!(code, 0, "{err}");
}

/// Per-epoch validation numbers equal to `rel` (relative).
fn assert_close(a: &BTreeMap<usize, (f64, f64)>, b: &BTreeMap<usize, (f64, f64)>, rel: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for ((epoch, x), (_, y)) in a.iter().zip(b) {
        for (u, v) in [(x.0, y.0), (x.1, y.1)] {
            assert!((u - v).abs() <= rel * v.abs(), "epoch {epoch}: {u} vs {v}");
        }
    }
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One process at batch B, 2 ranks with the all-reduce after the pass, 2 ranks with it
/// overlapped: the same validation numbers per epoch; the overlapped ranks end with equal
/// weights (the trainer compares their digests), the plain ranks' weights, and record what
/// they sent.
fn overlapped_equals_plain(cfg: &Path, runs: &Path) {
    let cfg = cfg.to_str().unwrap();
    single(&["train", "--config", cfg, "--set", "name=one", "--quiet"]);
    ranks_ok(&["train", "--config", cfg, "--set", "name=plain"]);
    let overlap = ["--set", "distributed.overlap=true", "--set", "name=overlap"];
    ranks_ok(&[&["train", "--config", cfg][..], &overlap].concat());
    let (one, plain, over) = (runs.join("one"), runs.join("plain"), runs.join("overlap"));
    assert_close(&epoch_metrics(&over), &epoch_metrics(&plain), 1e-5);
    assert_close(&epoch_metrics(&over), &epoch_metrics(&one), 1e-5);
    let (c, p) = (
        json(over.join("distributed.json")),
        json(plain.join("distributed.json")),
    );
    assert_eq!(c["overlap"], true, "{c}");
    assert_eq!(p["overlap"], false, "{p}");
    assert_eq!(c["floats_per_step"], p["floats_per_step"]);
    assert_eq!(c["steps"], json(over.join("summary.json"))["steps"]);
    assert!(c["weights_digest"].as_str().is_some_and(|d| d.len() == 16));
    // Over 2 ranks the Reducer's a/2 + b/2 is the plain all-reduce's (a + b) / 2 bit for
    // bit (halving is exact), and the sums are Gloo's either way: the same weights.
    assert_eq!(c["weights_digest"], p["weights_digest"]);
    assert!(c["buckets_per_step"].as_u64().unwrap() >= 1, "{c}");
}

#[test]
#[serial]
fn lm_overlapped_on_two_ranks_equals_the_plain_all_reduce_and_one_process() {
    let dir = tempfile::tempdir().unwrap();
    // Small buckets (the LM's 10 k values in several), so several all-reduces start
    // during the pass.
    let cfg = tiny_config(
        dir.path(),
        "lm",
        "optimizer = \"sgd\"\nlr = 1.0\nclip = 0.25\nepochs = 2",
    );
    let text = std::fs::read_to_string(&cfg).unwrap() + "\n[distributed]\nbucket_mb = 0.01\n";
    std::fs::write(&cfg, text).unwrap();
    overlapped_equals_plain(&cfg, &dir.path().join("runs"));
}

#[test]
#[serial]
fn image_model_overlapped_on_two_ranks_equals_the_plain_all_reduce_and_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_image_config(dir.path(), "");
    overlapped_equals_plain(&cfg, &dir.path().join("runs"));
}

/// The Reducer needs a gradient for every parameter at every step
/// (find_unused_parameters = false): alpha under the cosine loss gets none.
#[test]
#[serial]
fn a_parameter_without_gradient_is_a_one_line_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "lm", "epochs = 1");
    let cfg = cfg.to_str().unwrap();
    let args = [
        "train",
        "--config",
        cfg,
        "--set",
        "head.mode=fixed-orthogonal",
        "--set",
        "head.loss=cosine",
        "--set",
        "distributed.overlap=true",
    ];
    for (rank, (code, err)) in run_ranks(&args, 2, ONE_THREAD).iter().enumerate() {
        assert_ne!(*code, 0, "rank {rank}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains("received no gradient"))
            .unwrap_or_else(|| panic!("rank {rank}: {err}"));
        assert!(
            line.contains(&format!("rank {rank}"))
                && line.contains("alpha")
                && line.contains("distributed.overlap = false"),
            "{line}"
        );
    }
}

/// A rank killed while the other is training: the survivor's next collective (most often
/// a bucket's all-reduce inside the backward pass) fails within `distributed.timeout_s`,
/// and it exits with one line naming its rank.
#[test]
#[serial]
fn a_killed_rank_is_a_one_line_error_on_the_other_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "lm", "epochs = 100\nlog_interval = 1");
    let args = [
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        "distributed.overlap=true",
        "--set",
        "distributed.timeout_s=5",
    ];
    let mut ranks = launch(&args, 2, ONE_THREAD);
    let metrics = dir.path().join("runs/lm/metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no training after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Instant::now();
    ranks[1].kill().unwrap();
    let out: Vec<(i32, String)> = ranks.into_iter().map(finish).collect();
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(out[1].0, -9);
    let (code, err) = &out[0];
    assert_eq!(*code, 2, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("rank 0: ") && last.contains("timeout_s = 5"),
        "{err}"
    );
}
