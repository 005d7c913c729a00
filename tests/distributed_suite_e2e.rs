//! A suite under a launch: 2 ranks (torchrun's variables) run every run of a tiny LM suite
//! data-parallel; rank 0 alone computes the embeddings, decides how each run starts and
//! writes the report; a second launch reuses the finished runs and resumes an unfinished
//! one. `--jobs` and runs that need another process group are refused before any work.
mod common;

use common::ranks::run_ranks_output;
use common::{tiny_corpus, tiny_lm_suite_head};
use serial_test::serial;
use std::path::{Path, PathBuf};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A tiny suite: one word2vec embedding, a learned and a fixed-word2vec run, one epoch.
fn suite_file(d: &Path, runs: &str) -> PathBuf {
    let data = tiny_corpus(d);
    let head = tiny_lm_suite_head(d, "tiny", &data);
    let text = format!(
        r#"{head}
[[embeddings]]
out = "{emb}/w2v"
kind = "word2vec"
dim = 16
window = 3
negative = 3
sample = 0.0
alpha = 0.025
epochs = 1
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
epochs = 1
batch_size = 4
eval_batch_size = 4
log_interval = 5
threads = 1

{runs}"#,
        emb = d.join("emb").display(),
    );
    let path = d.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const RUNS: &str = r#"[[runs]]
name = "learned"
set = ["head.mode=learned"]

[[runs]]
name = "fixed-w2v"
set = ["head.mode=fixed-word2vec", "head.embeddings=\"EMB/w2v.npy\""]
"#;

/// Both ranks' (stdout, stderr), each rank having exited 0.
fn suite_on_two_ranks(path: &Path) -> Vec<(String, String)> {
    let out = run_ranks_output(&["suite", "--config", path.to_str().unwrap()], 2, &[]);
    out.into_iter()
        .enumerate()
        .map(|(rank, (code, stdout, stderr))| {
            assert_eq!(code, 0, "rank {rank}:\n{stdout}\n{stderr}");
            (stdout, stderr)
        })
        .collect()
}

#[test]
#[serial]
fn a_suite_on_two_ranks_trains_every_run_and_rank_0_alone_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runs = RUNS.replace("EMB", &d.join("emb").display().to_string());
    let path = suite_file(d, &runs);
    let out = suite_on_two_ranks(&path);
    let (talk, quiet) = (&out[0].0, &out[1].0);
    assert!(
        talk.contains("embeddings") && talk.contains("w2v: computed"),
        "{talk}"
    );
    assert!(talk.contains("| run learned: training"), "{talk}");
    assert!(talk.contains("| run fixed-w2v: training"), "{talk}");
    assert_eq!(talk.matches("| suite tiny done").count(), 1, "{talk}");
    assert!(talk.contains("on 2 ranks"), "{talk}");
    // Rank 1 trained (its share of every batch) but said and wrote nothing of its own.
    assert!(
        !quiet.contains("| run ") && !quiet.contains("| suite") && !quiet.contains("embeddings"),
        "{quiet}"
    );
    for run in ["learned", "fixed-w2v"] {
        let folder = d.join("runs/tiny").join(run);
        let summary = json(&folder.join("summary.json"));
        let comm = json(&folder.join("distributed.json"));
        assert_eq!(comm["world_size"], 2, "{run}: {comm}");
        // Counted per run, not over the runs the process trained before.
        assert_eq!(comm["steps"], summary["steps"], "{run}: {comm}");
        assert!(comm["weights_digest"].as_str().is_some(), "{run}: {comm}");
    }
    let csv = std::fs::read_to_string(d.join("reports/tiny/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("\nfixed-w2v,fixed-word2vec,"), "{csv}");

    // Again: rank 0 finds both runs finished and the embeddings up to date; every rank
    // skips them.
    let best = d.join("runs/tiny/learned/best.safetensors");
    let before = std::fs::metadata(&best).unwrap().modified().unwrap();
    let out = suite_on_two_ranks(&path);
    let talk = &out[0].0;
    assert_eq!(talk.matches("finished, reused").count(), 2, "{talk}");
    assert_eq!(talk.matches("up to date, reused").count(), 1, "{talk}");
    assert!(!talk.contains(": training"), "{talk}");
    assert!(out[1].0.is_empty(), "{}", out[1].0);
    assert_eq!(
        std::fs::metadata(&best).unwrap().modified().unwrap(),
        before
    );

    // A run without its summary (stopped after its last checkpoint) is resumed by all.
    std::fs::remove_file(d.join("runs/tiny/fixed-w2v/summary.json")).unwrap();
    let out = suite_on_two_ranks(&path);
    assert!(
        out[0].0.contains("| run fixed-w2v: resuming"),
        "{}",
        out[0].0
    );
    assert!(d.join("runs/tiny/fixed-w2v/summary.json").exists());
}

#[test]
#[serial]
fn jobs_and_runs_needing_another_group_are_refused_under_a_launch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runs = RUNS.replace("EMB", &d.join("emb").display().to_string());
    let path = suite_file(d, &runs);
    let cfg = path.to_str().unwrap();
    let out = run_ranks_output(&["suite", "--config", cfg, "--jobs", "2"], 2, &[]);
    for (code, _, err) in &out {
        assert_eq!(*code, 2, "{err}");
        assert!(
            err.starts_with("error: --jobs: 2 is refused under a launch"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The group is built once per process: a run with another timeout cannot use it.
    let runs = format!("{runs}\n[[runs]]\nname = \"slow\"\nset = [\"distributed.timeout_s=60\"]\n");
    let path = suite_file(d, &runs);
    let out = run_ranks_output(&["suite", "--config", path.to_str().unwrap()], 2, &[]);
    for (code, _, err) in &out {
        assert_eq!(*code, 2, "{err}");
        assert!(
            err.contains("[run slow]") && err.contains("distributed.timeout_s"),
            "{err}"
        );
    }
    assert!(!d.join("runs").exists() && !d.join("emb").exists());
}
