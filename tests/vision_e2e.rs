//! End-to-end tests of image classification on synthetic data (CPU, seconds each): every
//! head learns with the small CNN; the CIFAR models train on a few batches, checkpoint and
//! resume to the same numbers. They share libtorch's global seed, so they run one at a time.
mod common;

use common::fixclf;
use fixclf::config;
use fixclf::engine::metrics::{read_events, Event};
use fixclf::engine::TrainOptions;
use fixclf::tasks::train;
use serial_test::serial;
use std::path::{Path, PathBuf};

fn quiet() -> TrainOptions {
    TrainOptions {
        quiet: true,
        ..Default::default()
    }
}

/// A vision config on synthetic data under `dir`; `model` and `extra` are TOML lines for
/// `[vision.model]` and `[train]`.
fn vision_config(
    dir: &Path,
    name: &str,
    size: i64,
    channels: i64,
    model: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
runs_dir = "{runs}"

[vision]
crop_padding = 2
flip = true

[vision.data]
dataset = "synthetic"

[vision.data.synthetic]
classes = 4
train = 256
test = 128
channels = {channels}
size = {size}
seed = 3

[vision.model]
{model}

[head]
mode = "learned"

[train]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4
schedule = "cosine"
clip = 0.0
epochs = 3
batch_size = 32
eval_batch_size = 64
log_interval = 4
threads = 1
{extra}
"#,
        runs = dir.join("runs").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn epochs(run: &Path) -> Vec<fixclf::engine::metrics::EpochEvent> {
    read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Epoch(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
#[serial]
fn small_cnn_learns_synthetic_images_with_every_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = vision_config(dir.path(), "cnn", 16, 1, "arch = \"small-cnn\"", "");
    for mode in [
        "learned",
        "fixed-orthogonal",
        "fixed-hadamard",
        "fixed-simplex",
    ] {
        let cfg = config::load(
            &path,
            &[
                format!("head.mode={mode}"),
                format!("name=\"{mode}\""),
                "train.epochs=4".into(),
            ],
        )
        .unwrap();
        let s = train(&cfg, &quiet()).unwrap();
        let acc = s.test_acc.unwrap();
        // Chance is 0.25; four short epochs.
        assert!(acc > 0.8, "{mode}: test accuracy {acc}");
        assert_eq!(s.task, "vision");
        assert!(s.best_val_acc.is_some_and(|a| a > 0.25), "{mode}");
        assert_eq!(s.classes, Some(4));
        let e = epochs(&cfg.run_dir());
        assert_eq!(e.len(), 4);
        assert!(e[0].train_acc.is_some() && e[0].val_acc.is_some());
        assert!(s.train_images.unwrap() >= 4 * 256);
        if mode != "learned" {
            assert!(s.final_alpha.is_some(), "{mode}");
            // The fixed head trains no classifier weight (C x N), only alpha and the bias.
            let n = cfg_features(&cfg);
            assert_eq!(s.params.fixed, 4 * n, "{mode}");
            assert_eq!(
                s.params.learned_total - s.params.trainable,
                4 * n - 1,
                "{mode}"
            );
        }
    }
}

/// Neural-collapse diagnostics every epoch (`vision.collapse_every = 1`): one `collapse`
/// event per epoch with finite values, the last one in `summary.json`, and the report's
/// columns, table and plot.
#[test]
#[serial]
fn collapse_diagnostics_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = vision_config(dir.path(), "nc", 16, 1, "arch = \"small-cnn\"", "");
    let cfg = config::load(
        &path,
        &[
            "train.epochs=2".into(),
            "vision.collapse_every=1".into(),
            "head.mode=fixed-simplex".into(),
        ],
    )
    .unwrap();
    let s = train(&cfg, &quiet()).unwrap();
    let run = cfg.run_dir();
    let nc: Vec<_> = read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Collapse(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(nc.iter().map(|c| c.epoch).collect::<Vec<_>>(), [1, 2]);
    for c in &nc {
        assert_eq!((c.classes, c.samples), (4, 256), "{c:?}");
        for v in [c.nc1, c.nc2_equinorm, c.nc2_equiangular, c.nc3, c.ncc_acc] {
            assert!(v.is_finite() && v >= 0.0, "{c:?}");
        }
        assert!(c.ncc_acc <= 1.0, "{c:?}");
    }
    assert_eq!(s.collapse.as_ref(), nc.last());
    let text = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let loaded = fixclf::engine::Summary::load(&run.join("summary.json")).unwrap();
    assert!(text.contains("\"nc1\""), "{text}");
    assert_eq!(loaded.collapse, s.collapse);
    // Without collapse_every: after the last epoch only.
    let cfg = config::load(&path, &["train.epochs=2".into(), "name=last".into()]).unwrap();
    let s = train(&cfg, &quiet()).unwrap();
    assert_eq!(s.collapse.map(|c| c.epoch), Some(2));
    let out = dir.path().join("report");
    fixclf::report::write_report(&[run, cfg.run_dir()], &out, "nc").unwrap();
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",ncc_acc"), "{csv}");
    assert!(out.join("collapse.png").exists());
}

/// N of the backbone of a config.
fn cfg_features(cfg: &config::Config) -> i64 {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let b = fixclf::vision::models::build(
        &vs.root(),
        match &cfg.task {
            config::TaskConfig::Vision(v) => &v.model,
            config::TaskConfig::Lm(_) => panic!("not an image config"),
        },
        1,
    )
    .unwrap();
    b.features
}

/// A CIFAR model trains on a few synthetic batches; stopped after one epoch and resumed, it
/// gives the uninterrupted run's numbers.
#[test]
#[serial]
fn cifar_models_train_checkpoint_and_resume_exactly() {
    for (name, model) in [
        ("resnet", "arch = \"resnet-cifar\"\ndepth = 8"),
        ("densenet", "arch = \"densenet-bc\"\ndepth = 16\ngrowth = 4"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = vision_config(dir.path(), name, 32, 3, model, "max_steps_per_epoch = 3");
        // A run extended from 1 to 2 epochs follows the 2-epoch run's curve only under a
        // schedule that does not depend on the total (cosine anneals over all the epochs).
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "schedule = \"cosine\"",
            "schedule = \"multi-step\"\nmilestones = [1]\nlr_decay = 10.0",
        );
        std::fs::write(&path, text).unwrap();
        let straight = config::load(&path, &["train.epochs=2".into()]).unwrap();
        let s1 = train(&straight, &quiet()).unwrap();
        let first = config::load(&path, &["train.epochs=1".into(), "name=split".into()]).unwrap();
        train(&first, &quiet()).unwrap();
        let again = config::load(&path, &["train.epochs=2".into(), "name=split".into()]).unwrap();
        let opts = TrainOptions {
            resume: true,
            quiet: true,
            ..Default::default()
        };
        let s2 = train(&again, &opts).unwrap();
        assert_eq!(s1.steps, 6);
        assert_eq!(s1.steps, s2.steps);
        let (a, b) = (epochs(&straight.run_dir()), epochs(&again.run_dir()));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.val_loss - y.val_loss).abs() <= 1e-6 * x.val_loss.abs(),
                "{name}: epoch {} val loss {} vs {}",
                x.epoch,
                x.val_loss,
                y.val_loss
            );
            assert_eq!(x.val_acc, y.val_acc, "{name}");
        }
        assert!(again.run_dir().join("best.safetensors").exists());
    }
}

#[test]
#[serial]
fn eval_and_params_commands_work_for_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = vision_config(dir.path(), "ev", 16, 1, "arch = \"small-cnn\"", "");
    let (code, out, err) = fixclf(&[
        "train",
        "--config",
        path.to_str().unwrap(),
        "--set",
        "train.epochs=1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid acc"), "{out}");
    assert!(out.contains("| neural collapse: NC1 "), "{out}");
    let run = dir.path().join("runs/ev");
    let (code, out, err) = fixclf(&["eval", "--run", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test acc"), "{out}");
    let (code, out, err) = fixclf(&["params", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("classifier"), "{out}");
    // A word-vector head or a tied head makes no sense for images: refused with the field.
    for (set, field) in [
        ("head.mode=tied", "head.mode"),
        ("head.mode=fixed-pmi", "head.mode"),
    ] {
        let (code, _, err) = fixclf(&["train", "--config", path.to_str().unwrap(), "--set", set]);
        assert_eq!(code, 2);
        assert!(err.contains(field) && err.lines().count() == 1, "{err}");
    }
}
