//! Running the fixclf binary from the end-to-end tests: spawn, wait, read a run's epochs
//! and checkpoint state, a tiny image config.
use fixclf::engine::metrics::{read_events, Event};
use fixclf::engine::{Checkpoint, TrainState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_fixclf");

pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fixclf")
}

/// Waits for the child; (exit code or -signal, stderr).
pub fn finish(child: Child) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    let out = child.wait_with_output().unwrap();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| -out.status.signal().unwrap_or(0));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Validation loss and accuracy (or perplexity) of each epoch, the last record of each
/// epoch winning (a resumed run repeats the epochs after its checkpoint).
pub fn epoch_metrics(run: &Path) -> BTreeMap<usize, (f64, f64)> {
    let mut m = BTreeMap::new();
    for e in read_events(&run.join("metrics.jsonl")).unwrap() {
        if let Event::Epoch(e) = e {
            let q = e.val_acc.or(e.val_ppl).unwrap();
            m.insert(e.epoch, (e.val_loss, q));
        }
    }
    m
}

pub fn assert_same_epochs(a: &BTreeMap<usize, (f64, f64)>, b: &BTreeMap<usize, (f64, f64)>) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for ((ea, x), (eb, y)) in a.iter().zip(b) {
        assert_eq!(ea, eb);
        for (u, v) in [(x.0, y.0), (x.1, y.1)] {
            assert!(
                (u - v).abs() <= 1e-4 * v.abs(),
                "epoch {ea}: {u} vs {v} (interrupted vs straight)"
            );
        }
    }
}

pub fn state_of(ckpt: &Path) -> TrainState {
    let c = Checkpoint::load(ckpt).unwrap();
    serde_json::from_str(c.meta("state").unwrap()).unwrap()
}

/// Runs to the end; checks success.
pub fn complete(args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = finish(spawn(&args, &[]));
    assert_eq!(code, 0, "{stderr}");
}

pub fn vision_config(dir: &Path) -> PathBuf {
    let text = format!(
        r#"name = "img"
runs_dir = "{runs}"

[vision]
crop_padding = 2
flip = true

[vision.data]
dataset = "synthetic"

[vision.data.synthetic]
classes = 4
train = 384
test = 64
channels = 1
size = 12
seed = 3

[vision.model]
arch = "small-cnn"
width = 8

[train]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4
schedule = "cosine"
clip = 0.0
epochs = 3
batch_size = 12
eval_batch_size = 64
log_interval = 1
checkpoint_interval = 1
threads = 1
"#,
        runs = dir.join("runs").display(),
    );
    let path = dir.join("img.toml");
    std::fs::write(&path, text).unwrap();
    path
}
