//! Tiny corpora and configs for the end-to-end tests.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

pub mod ranks;
pub mod runs;

/// A small, very regular corpus (about 20 words) that a tiny LSTM can learn.
pub fn tiny_corpus(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let subjects = ["the cat", "a dog", "the bird", "my fish"];
    let verbs = ["sees", "likes", "eats", "finds"];
    let objects = ["the mat", "a ball", "some food", "the tree"];
    let mut lines = Vec::new();
    for i in 0..240 {
        lines.push(format!(
            "{} {} {} .",
            subjects[i % 4],
            verbs[(i / 4) % 4],
            objects[(i / 16) % 4]
        ));
    }
    let text = lines.join("\n") + "\n";
    std::fs::write(data.join("train.txt"), &text).unwrap();
    std::fs::write(data.join("valid.txt"), lines[..60].join("\n") + "\n").unwrap();
    std::fs::write(data.join("test.txt"), lines[60..120].join("\n") + "\n").unwrap();
    data
}

/// The opening of a tiny language-model suite file: its name, run and report folders in
/// `dir`, BPTT 10, the corpus `data` with its caches in `dir`. The test adds the model, the
/// training and the runs.
pub fn tiny_lm_suite_head(dir: &Path, name: &str, data: &Path) -> String {
    format!(
        r#"name = "{name}"
runs_dir = "{runs}"
reports_dir = "{reports}"

[base.lm]
bptt = 10

[base.lm.data]
dir = "{data}"
cache_dir = "{cache}"
"#,
        runs = dir.join("runs").display(),
        reports = dir.join("reports").display(),
        data = data.display(),
        cache = dir.join("cache").display(),
    )
}

/// Keys of `extra` that belong to `[lm]` rather than `[train]`.
const LM_KEYS: [&str; 6] = ["bptt", "variable_bptt", "ar", "tar", "asgd", "nonmono"];

/// A config for a tiny model on the tiny corpus, with everything under `dir`. `extra`
/// holds `key = value` lines for `[train]` (or `[lm]`: bptt, ar, asgd, ...) that replace the
/// defaults below.
pub fn tiny_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let data = tiny_corpus(dir);
    let mut train: Vec<(String, String)> = [
        ("optimizer", "\"adam\""),
        ("lr", "0.01"),
        ("lr_decay", "1.0"),
        ("clip", "1.0"),
        ("epochs", "2"),
        ("batch_size", "4"),
        ("eval_batch_size", "4"),
        ("log_interval", "10"),
        ("threads", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for line in extra.lines().filter(|l| l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match train.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => train.push((k, v)),
        }
    }
    if !train.iter().any(|(k, _)| k == "bptt") {
        train.push(("bptt".into(), "10".into()));
    }
    let (lm, train): (Vec<_>, Vec<_>) = train
        .iter()
        .partition(|(k, _)| LM_KEYS.contains(&k.as_str()));
    let lm: Vec<String> = lm.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let train: Vec<String> = train.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let text = format!(
        r#"name = "{name}"
runs_dir = "{runs}"

[lm]
{lm}

[lm.data]
dir = "{data}"
cache_dir = "{cache}"

[lm.model]
emb_size = 16
hidden_size = 16
layers = 2
dropout_input = 0.0
dropout_hidden = 0.0
dropout_output = 0.0

[train]
{train}
"#,
        runs = dir.join("runs").display(),
        data = data.display(),
        cache = dir.join("cache").display(),
        train = train.join("\n"),
        lm = lm.join("\n"),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A config for a small CNN without BatchNorm on tiny synthetic images (the data-parallel
/// tests: no per-rank batch statistics), with everything under `dir`; `train_extra` holds
/// more `key = value` lines for `[train]`.
pub fn tiny_image_config(dir: &Path, train_extra: &str) -> PathBuf {
    let text = format!(
        r#"name = "img"
runs_dir = "{runs}"

[vision]
crop_padding = 0
flip = false

[vision.data]
dataset = "synthetic"

[vision.data.synthetic]
classes = 4
train = 256
test = 128
channels = 1
size = 12
seed = 3

[vision.model]
arch = "small-cnn"
width = 4
batch_norm = false

[head]
mode = "fixed-orthogonal"

[train]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 1e-4
epochs = 2
batch_size = 32
eval_batch_size = 50
log_interval = 4
threads = 1
{train_extra}
"#,
        runs = dir.join("runs").display(),
    );
    let path = dir.join("img.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the fixclf binary; returns (exit code, stdout, stderr).
pub fn fixclf(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixclf"))
        .args(args)
        .output()
        .expect("run fixclf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
