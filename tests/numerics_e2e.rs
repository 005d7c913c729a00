//! Non-finite numbers end to end: a forced NaN stops the run at its step (read at the next
//! check point, nothing saved after it) or is skipped and counted; a runaway alpha stops it.
mod common;

use common::runs::{
    assert_same_epochs, complete, epoch_metrics, finish, spawn, state_of, vision_config,
};
use common::tiny_config;
use fixclf::engine::metrics::{read_events, Event};
use serial_test::serial;
use std::collections::BTreeMap;
use std::path::Path;

#[test]
#[serial]
fn forced_nan_stops_at_its_step_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints every 4 steps, log lines every 10: a resume from step 8 or 12 must log
    // the same means at step 20 as the uninterrupted run (the log interval's sums are in
    // the checkpoint).
    let cfg = tiny_config(dir.path(), "nan", "epochs = 2\ncheckpoint_interval = 4")
        .display()
        .to_string();
    let run = dir.path().join("runs/nan");
    let args = ["train", "--config", &cfg, "-q"];
    let (code, stderr) = finish(spawn(&args, &[(fixclf::engine::NAN_ENV, "12")]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("diverged at epoch 1 step 12 (the loss is NaN)")
            && stderr.contains("last good checkpoint is kept in")
            && stderr.contains("on_nonfinite=skip"),
        "{stderr}"
    );
    assert_eq!(state_of(&run.join("last.safetensors")).step, 8);
    assert!(read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Diverged { step: 11, .. })));
    // The gradient alone non-finite: the same stop, at its step.
    let (code, stderr) = finish(spawn(
        &[&args[..], &["--resume"]].concat(),
        &[(fixclf::engine::NAN_ENV, "13:grad")],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("step 13 (the gradient norm is NaN)"),
        "{stderr}"
    );
    assert_eq!(state_of(&run.join("last.safetensors")).step, 12);
    // Without the NaN the run resumes from step 12 and ends like a run never stopped.
    complete(
        &[&args[..], &["--resume"]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    complete(
        &[&args[..], &["--set", "name=straight"]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    let straight = dir.path().join("runs/straight");
    assert_same_epochs(&epoch_metrics(&run), &epoch_metrics(&straight));
    let (a, b) = (logged_losses(&run), logged_losses(&straight));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (step, loss) in &a {
        assert!((loss - b[step]).abs() <= 1e-4 * b[step], "step {step}");
    }
}

/// A NaN between check points: the step's numbers are read at the next checkpoint (step 8
/// here, checkpoints every 4 steps, log lines every 10), which names step 6 and writes no
/// checkpoint after it: `last.safetensors` stays at step 4.
#[test]
#[serial]
fn a_nan_between_check_points_is_named_and_nothing_is_saved_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "late", "epochs = 1\ncheckpoint_interval = 4")
        .display()
        .to_string();
    let run = dir.path().join("runs/late");
    let (code, stderr) = finish(spawn(
        &["train", "--config", &cfg, "-q"],
        &[(fixclf::engine::NAN_ENV, "6")],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("diverged at epoch 1 step 6 (the loss is NaN)"),
        "{stderr}"
    );
    assert_eq!(state_of(&run.join("last.safetensors")).step, 4);
}

/// The mean training loss of each log line, by step (the last line of a step winning).
fn logged_losses(run: &Path) -> BTreeMap<u64, f64> {
    read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some((l.step, l.loss)),
            _ => None,
        })
        .collect()
}

#[test]
#[serial]
fn skipped_nan_steps_are_counted_and_a_run_of_them_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "skip", "epochs = 1\non_nonfinite = \"skip\"")
        .display()
        .to_string();
    let run = dir.path().join("runs/skip");
    let args = ["train", "--config", &cfg, "-q"];
    let (code, stderr) = finish(spawn(&args, &[(fixclf::engine::NAN_ENV, "4:grad")]));
    assert_eq!(code, 0, "{stderr}");
    let events = read_events(&run.join("metrics.jsonl")).unwrap();
    let skipped: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.skipped),
            _ => None,
        })
        .sum();
    assert_eq!(skipped, 1);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Epoch(ep) if ep.skipped_steps == 1 && ep.train_loss.is_some_and(f64::is_finite))));
    // NaN from step 3 on: ten skipped in a row, then a stop at step 12.
    let (code, stderr) = finish(spawn(
        &[&args[..], &["--force"]].concat(),
        &[(fixclf::engine::NAN_ENV, "3..")],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("step 12 (the loss is NaN, 10 non-finite steps in a row"),
        "{stderr}"
    );
}

#[test]
#[serial]
fn runaway_alpha_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = vision_config(dir.path()).display().to_string();
    let (code, stderr) = finish(spawn(
        &[
            "train",
            "--config",
            &cfg,
            "-q",
            "--set",
            "head.mode=fixed-orthogonal",
            "--set",
            "train.lr=1e7",
            "--set",
            "train.momentum=0",
        ],
        &[],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("alpha of the fixed classifier is") && stderr.contains("head.learn_alpha"),
        "{stderr}"
    );
}
