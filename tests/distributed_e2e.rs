//! Data-parallel training end to end: the binary launched as 2 ranks with the variables
//! torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT),
//! over loopback, on a port found by binding port 0. Two ranks at batch B / 2 must give the
//! single process's batch-B run (the LM, an image model without BatchNorm, and one with
//! synchronized BatchNorm), with the ranks' weights bitwise equal; a SIGTERM to one rank
//! stops both after the same step and the run resumes exactly; a killed rank is an error
//! within the timeout, and the group restarted with the next restart count resumes from the
//! last checkpoint.
mod common;

use common::ranks::{launch, run_ranks};
use common::runs::{epoch_metrics, finish, BIN};
use common::tiny_config;
use fixclf::engine::metrics::{read_events, Event};
use serial_test::serial;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn single(args: &[&str]) {
    let (code, stderr) = finish(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(code, 0, "{stderr}");
}

/// Per-epoch validation numbers equal to `rel` (relative).
fn assert_close(a: &BTreeMap<usize, (f64, f64)>, b: &BTreeMap<usize, (f64, f64)>, rel: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for ((ea, x), (_, y)) in a.iter().zip(b) {
        for (u, v) in [(x.0, y.0), (x.1, y.1)] {
            assert!((u - v).abs() <= rel * v.abs(), "epoch {ea}: {u} vs {v}");
        }
    }
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

fn comm(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("distributed.json")).unwrap()).unwrap()
}

fn lm_config(dir: &Path, extra: &str) -> PathBuf {
    tiny_config(
        dir,
        "lm",
        &format!("optimizer = \"sgd\"\nlr = 1.0\nclip = 0.25\n{extra}"),
    )
}

#[test]
#[serial]
fn lm_on_two_ranks_equals_one_process_and_ranks_end_bitwise_equal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lm_config(dir.path(), "epochs = 2");
    let cfg = cfg.to_str().unwrap();
    single(&["train", "--config", cfg, "--set", "name=one", "--quiet"]);
    for (rank, (code, err)) in run_ranks(&["train", "--config", cfg, "--set", "name=two"], 2, &[])
        .iter()
        .enumerate()
    {
        assert_eq!(*code, 0, "rank {rank}: {err}");
    }
    let runs = dir.path().join("runs");
    let (one, two) = (runs.join("one"), runs.join("two"));
    assert_close(&epoch_metrics(&two), &epoch_metrics(&one), 1e-5);
    let (a, b) = (summary(&one), summary(&two));
    for key in ["test_loss", "train_tokens"] {
        let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-5 * x.abs(), "{key}: {x} vs {y}");
    }
    // Rank 0 alone wrote the run folder; the ranks' weights matched bit for bit at the end.
    let c = comm(&two);
    assert_eq!(c["world_size"], 2);
    assert_eq!(c["steps"], b["steps"]);
    assert!(c["weights_digest"].as_str().is_some_and(|d| d.len() == 16));
    let floats = c["floats_per_step"].as_u64().unwrap();
    assert_eq!(c["bytes_per_step"].as_u64().unwrap(), 4 * floats);
    assert_eq!(floats as i64, a["params"]["trainable"].as_i64().unwrap());
}

#[test]
#[serial]
fn batch_not_divisible_by_the_ranks_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lm_config(dir.path(), "batch_size = 5");
    let out = run_ranks(&["train", "--config", cfg.to_str().unwrap()], 2, &[]);
    for (code, err) in &out {
        assert_eq!(*code, 2, "{err}");
        assert!(
            err.contains("lm.toml") && err.contains("train.batch_size") && err.contains("2 ranks"),
            "{err}"
        );
    }
    assert!(!dir.path().join("runs/lm").exists());
}

/// BatchNorm keeps per-rank batch statistics (as PyTorch DDP): not the single process's
/// numbers, but rank 0's running statistics reach every rank before every step and before
/// evaluation, so the ranks' models end equal (checked at the end of training).
#[test]
#[serial]
fn images_with_batchnorm_train_on_two_ranks_with_equal_models() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_image_config(dir.path(), "clip = 0.0");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("batch_norm = false", "batch_norm = true");
    std::fs::write(&cfg, text).unwrap();
    let args = ["train", "--config", cfg.to_str().unwrap()];
    for (code, err) in run_ranks(&args, 2, &[]) {
        assert_eq!(code, 0, "{err}");
    }
    let c = comm(&dir.path().join("runs/img"));
    assert!(c["buffer_bytes_per_step"].as_u64().unwrap() > 0, "{c}");
    assert!(c["weights_digest"].as_str().is_some());
}

/// Per-epoch mean training loss.
fn train_losses(run: &Path) -> Vec<f64> {
    read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Epoch(e) => e.train_loss,
            _ => None,
        })
        .collect()
}

/// Synchronized BatchNorm normalizes with the global batch's statistics, so a BatchNorm
/// CNN on 2 ranks at B / 2 gives the single process's batch-B run: training loss and
/// validation numbers per epoch to 1e-5 (the ranks' weights end bitwise equal: the
/// trainer compares their digest). Per-rank BatchNorm, the same run otherwise, does not.
#[test]
#[serial]
fn images_with_sync_batchnorm_on_two_ranks_equal_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_image_config(dir.path(), "clip = 0.0");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("batch_norm = false", "batch_norm = true")
        .replace("[vision]\n", "[vision]\nsync_batch_norm = true\n");
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap();
    single(&["train", "--config", cfg, "--set", "name=one", "--quiet"]);
    for name in ["two", "local"] {
        let sync = format!("vision.sync_batch_norm={}", name == "two");
        let args = [
            "train",
            "--config",
            cfg,
            "--set",
            &format!("name={name}"),
            "--set",
            &sync,
        ];
        for (code, err) in run_ranks(&args, 2, &[]) {
            assert_eq!(code, 0, "{name}: {err}");
        }
    }
    let runs = dir.path().join("runs");
    let (one, two, local) = (runs.join("one"), runs.join("two"), runs.join("local"));
    assert_close(&epoch_metrics(&two), &epoch_metrics(&one), 1e-5);
    let (a, b) = (train_losses(&one), train_losses(&two));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * x.abs(), "training loss {x} vs {y}");
    }
    let c = comm(&two);
    assert!(c["weights_digest"].as_str().is_some());
    // 3 layers of 4, 8, 16 channels: forward 2C + 1 values each, backward 2C.
    assert_eq!(c["sync_bn_allreduces_per_step"], 6, "{c}");
    assert_eq!(
        c["sync_bn_values_per_step"],
        9 + 17 + 33 + 8 + 16 + 32,
        "{c}"
    );
    assert_eq!(comm(&local)["sync_bn_allreduces_per_step"], 0);
    // Per-rank statistics (16 images a rank) train another network.
    let c = train_losses(&local);
    println!(
        "training loss per epoch: 1 process {a:?}, 2 ranks synchronized {b:?}, per rank {c:?}"
    );
    assert!(
        a.iter()
            .zip(&c)
            .any(|(x, y)| (x - y).abs() > 1e-4 * x.abs()),
        "{a:?} vs {c:?}"
    );
}

#[test]
#[serial]
fn images_without_batchnorm_on_two_ranks_equal_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_image_config(dir.path(), "clip = 0.0");
    let cfg = cfg.to_str().unwrap();
    single(&["train", "--config", cfg, "--set", "name=one", "--quiet"]);
    for (code, err) in run_ranks(&["train", "--config", cfg, "--set", "name=two"], 2, &[]) {
        assert_eq!(code, 0, "{err}");
    }
    let runs = dir.path().join("runs");
    let (one, two) = (runs.join("one"), runs.join("two"));
    assert_close(&epoch_metrics(&two), &epoch_metrics(&one), 1e-5);
    // Training accuracy counts every rank's predictions.
    let train_acc = |run: &Path| -> Vec<f64> {
        read_events(&run.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Event::Epoch(e) => e.train_acc,
                _ => None,
            })
            .collect()
    };
    assert_eq!(train_acc(&one), train_acc(&two));
    // The fixed matrix is never communicated: the gradients are the backbone's and alpha's.
    let c = comm(&two);
    let s = summary(&one);
    assert_eq!(
        c["floats_per_step"].as_i64().unwrap(),
        s["params"]["trainable"].as_i64().unwrap()
    );
}

/// Log lines in the run's metrics so far.
fn log_lines(run: &Path) -> usize {
    read_events(&run.join("metrics.jsonl"))
        .map(|ev| ev.iter().filter(|e| matches!(e, Event::Log(_))).count())
        .unwrap_or(0)
}

fn wait_for(what: &str, children: &mut [Child], done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        for c in children.iter_mut() {
            if let Some(status) = c.try_wait().unwrap() {
                panic!("a rank ended ({status}) before {what}");
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
#[serial]
fn sigterm_to_one_rank_stops_both_after_one_step_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lm_config(dir.path(), "epochs = 3\nlog_interval = 1");
    let cfg = cfg.to_str().unwrap();
    single(&["train", "--config", cfg, "--set", "name=one", "--quiet"]);
    let run = dir.path().join("runs/two");
    let args = ["train", "--config", cfg, "--set", "name=two"];
    let mut ranks = launch(&args, 2, &[]);
    wait_for("step 20", &mut ranks, || log_lines(&run) >= 20);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(ranks[1].id() as i32, libc::SIGTERM) },
        0
    );
    let out: Vec<(i32, String)> = ranks.into_iter().map(finish).collect();
    for (rank, (code, err)) in out.iter().enumerate() {
        assert_eq!(*code, 143, "rank {rank}: {err}");
        assert!(err.contains("interrupted by SIGTERM"), "rank {rank}: {err}");
    }
    // Both ranks name the same step (rank 0 with the checkpoint and the resume command, rank 1
    // only its step); rank 0 wrote the checkpoint of that step.
    let step_of = |err: &str| {
        let at = err.find(" step ").unwrap() + 6;
        err[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    assert_eq!(step_of(&out[0].1), step_of(&out[1].1));
    let state = common::runs::state_of(&run.join("last.safetensors"));
    assert_eq!(state.step.to_string(), step_of(&out[0].1));
    assert!(state.step > 0 && state.step < 3 * 42);
    for (code, err) in run_ranks(&[&args[..], &["--resume"]].concat(), 2, &[]) {
        assert_eq!(code, 0, "{err}");
    }
    let one = dir.path().join("runs/one");
    assert_close(&epoch_metrics(&run), &epoch_metrics(&one), 1e-5);
}

#[test]
#[serial]
fn a_killed_rank_is_an_error_and_the_restarted_group_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lm_config(
        dir.path(),
        "epochs = 3\nlog_interval = 1\ncheckpoint_interval = 10",
    );
    let cfg = cfg.to_str().unwrap();
    single(&["train", "--config", cfg, "--set", "name=one", "--quiet"]);
    let run = dir.path().join("runs/two");
    // As torchrun relaunches a failed group: the same command, `--resume` on it.
    let args = [
        "train",
        "--config",
        cfg,
        "--set",
        "name=two",
        "--set",
        "distributed.timeout_s=5",
        "--resume",
    ];
    let mut ranks = launch(&args, 2, &[("TORCHELASTIC_RESTART_COUNT", "0")]);
    wait_for("a checkpoint", &mut ranks, || {
        run.join("last.safetensors").exists() && log_lines(&run) >= 25
    });
    let start = Instant::now();
    ranks[1].kill().unwrap();
    let out: Vec<(i32, String)> = ranks.into_iter().map(finish).collect();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out[1].0, -9);
    let (code, err) = &out[0];
    assert_eq!(*code, 2, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("rank 0: ") && last.contains("timeout_s = 5"),
        "{err}"
    );
    let stopped = common::runs::state_of(&run.join("last.safetensors")).step;
    // The group restarted: the next attempt's store keys, from the last checkpoint.
    let out = run_ranks(&args, 2, &[("TORCHELASTIC_RESTART_COUNT", "1")]);
    for (code, err) in &out {
        assert_eq!(*code, 0, "{err}");
    }
    let resumed = read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .find_map(|e| match e {
            Event::Resume { step, .. } => Some(step),
            _ => None,
        });
    assert_eq!(resumed, Some(stopped));
    let one = dir.path().join("runs/one");
    assert_close(&epoch_metrics(&run), &epoch_metrics(&one), 1e-5);
}

/// What one step all-reduces at the paper's LM size (V = 33,278, 512 / 512, two layers),
/// counted by the code the trainer counts with, without training: every learned value's
/// gradient, never the fixed matrix.
#[test]
#[serial]
fn a_fixed_head_all_reduces_9x_fewer_floats_than_a_learned_one_at_paper_size() {
    use fixclf::classifier::{training_params, HeadConfig, HeadMode};
    use fixclf::distributed::sync::plan;
    use fixclf::lm::{LanguageModel, LmConfig};
    let floats = |mode: HeadMode| -> u64 {
        let head = HeadConfig {
            mode,
            ..HeadConfig::default()
        };
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        LanguageModel::new(&vs, &LmConfig::default(), &head, 33_278, None).unwrap();
        let params = training_params(&vs, 0.0, &head);
        plan(params.iter().map(|p| p.tensor.numel() as i64), 25 << 20).0
    };
    let learned = floats(HeadMode::Learned);
    let tied = floats(HeadMode::Tied);
    let fixed = floats(HeadMode::FixedOrthogonal);
    assert!((learned as f64 / 1e6 - 38.3).abs() < 0.05, "{learned}");
    assert!((fixed as f64 / 1e6 - 4.2).abs() < 0.05, "{fixed}");
    assert!(fixed < tied && tied < learned, "{fixed} {tied} {learned}");
    let ratio = learned as f64 / fixed as f64;
    // 38.30 M / 4.24 M: "9.1x" from the rounded figures, 9.04x exactly.
    assert!(ratio > 9.0 && ratio < 9.1, "{ratio}");
    println!("floats per step: learned {learned}, tied {tied}, fixed {fixed}");
}
