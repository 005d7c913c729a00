//! Bad input through the command line: each gives exit code 2 and one line on stderr that
//! names the file and the field, says each clause once, and leaves no run folder that looks
//! complete.
mod common;

use common::{fixclf, tiny_config};
use std::path::Path;

/// An error read once: one line, no panic, and no clause (of three words or more, between
/// `: ` and `; `) said twice, as when a cause is folded into its own context.
fn assert_read_once(err: &str) {
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    if let Some(c) = fixclf::fuzzing::repeated_clause(err) {
        panic!("`{c}` said twice in: {err}");
    }
}

/// Runs fixclf; asserts exit 2 and an error read once that contains every `want`.
fn fails(args: &[&str], want: &[&str]) -> String {
    let (code, _, err) = fixclf(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_read_once(&err);
    for w in want {
        assert!(err.contains(w), "{args:?}: `{w}` not in: {err}");
    }
    err
}

/// Runs `fixclf train` on a config; asserts exit 2 and a one-line error containing `want`.
fn train_fails(config: &Path, set: &[&str], want: &[&str]) -> String {
    let mut args = vec!["train", "--config", config.to_str().unwrap(), "--quiet"];
    for s in set {
        args.push("--set");
        args.push(s);
    }
    fails(&args, want)
}

#[test]
fn bad_config_values_name_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "bad", "");
    let name = cfg.to_str().unwrap();
    train_fails(
        &cfg,
        &["train.lrr=1"],
        &[name, "train.lrr", "unknown field"],
    );
    train_fails(
        &cfg,
        &["lm.model.layers=\"two\""],
        &[name, "lm.model.layers", "invalid type"],
    );
    train_fails(
        &cfg,
        &["lm.model.hidden_size=0"],
        &[name, "lm.model.hidden_size", "positive"],
    );
    train_fails(
        &cfg,
        &["lm.model.emb_size=-3"],
        &[name, "lm.model.emb_size"],
    );
    train_fails(&cfg, &["train.batch_size=0"], &[name, "train.batch_size"]);
    train_fails(&cfg, &["lm.bptt=-1"], &[name, "lm.bptt"]);
    train_fails(
        &cfg,
        &["head.mode=tied", "lm.model.hidden_size=32"],
        &[
            name,
            "head.mode",
            "tied needs lm.model.hidden_size == lm.model.emb_size",
        ],
    );
    train_fails(
        &cfg,
        &["head.mode=fixed-pmi"],
        &["head.embeddings", "fixclf embed"],
    );
    assert!(!dir.path().join("runs/bad").exists());
    // A syntax error names the line.
    std::fs::write(dir.path().join("broken.toml"), "[train]\nlr = = 3\n").unwrap();
    train_fails(
        &dir.path().join("broken.toml"),
        &[],
        &["broken.toml", "line 2"],
    );
    // A missing config file.
    train_fails(&dir.path().join("nope.toml"), &[], &["nope.toml"]);
}

#[test]
fn missing_or_empty_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "c", "");
    let missing = dir.path().join("nowhere");
    let set = format!("lm.data.dir=\"{}\"", missing.display());
    train_fails(
        &cfg,
        &[&set],
        &["nowhere/train.txt", "data/fetch.sh", "lm.data.dir"],
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for f in ["train.txt", "valid.txt", "test.txt"] {
        std::fs::write(empty.join(f), "\n \n").unwrap();
    }
    let set = format!("lm.data.dir=\"{}\"", empty.display());
    train_fails(&cfg, &[&set], &["empty/train.txt", "empty"]);
    assert!(
        !dir.path().join("runs/c").exists(),
        "bad input left a run folder"
    );
}

#[test]
fn missing_embeddings_file_for_a_pretrained_mode() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "p", "");
    train_fails(
        &cfg,
        &[
            "head.mode=fixed-word2vec",
            "head.embeddings=\"embeddings/none.npy\"",
        ],
        &[
            cfg.to_str().unwrap(),
            "head.embeddings",
            "none.npy",
            "fixclf embed word2vec",
        ],
    );
}

/// C > N + 1 is only known once the vocabulary is: the error still names the file and field.
#[test]
fn simplex_wider_than_the_features_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "s", "");
    train_fails(
        &cfg,
        &[
            "head.mode=fixed-simplex",
            "lm.model.hidden_size=4",
            "lm.model.emb_size=4",
        ],
        &[
            cfg.to_str().unwrap(),
            "head.mode",
            "C <= N + 1",
            "orthogonal",
        ],
    );
}

#[test]
fn unwritable_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "w", "epochs = 1");
    // A file where the runs folder should be: nothing can be created below it (even as root).
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let set = format!("runs_dir=\"{}\"", blocker.display());
    train_fails(&cfg, &[&set], &["file/w", "run folder"]);
}

#[test]
fn existing_run_needs_resume_or_force_and_truncated_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "t", "epochs = 1");
    let (code, _, err) = fixclf(&["train", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    train_fails(&cfg, &[], &["runs/t", "--resume", "--force"]);
    let run = dir.path().join("runs/t");
    for name in ["best.safetensors", "last.safetensors"] {
        let p = run.join(name);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    }
    fails(
        &["eval", "--run", run.to_str().unwrap()],
        &["best.safetensors", "truncated"],
    );
    fails(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--quiet",
            "--resume",
            "--set",
            "train.epochs=2",
        ],
        &["last.safetensors", "truncated"],
    );
    // Not a run folder at all.
    fails(
        &["eval", "--run", dir.path().to_str().unwrap()],
        &["not a run folder"],
    );
}

/// An I/O error says its cause once (it used to read `...: No such file or directory (os
/// error 2): No such file or directory (os error 2)`).
#[test]
fn io_errors_say_their_cause_once() {
    let err = fails(
        &["train", "--config", "/nonexistent.toml"],
        &["/nonexistent.toml"],
    );
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[vision.data]\ndataset = \"cifar10\"\ndir = \"nowhere\"\n[train]\nclip = 0.0\n",
    )
    .unwrap();
    let err = fails(
        &["params", "--config", cfg.to_str().unwrap()],
        &["cifar-10-binary.tar.gz"],
    );
    assert_eq!(err.matches("cannot be downloaded").count(), 1, "{err}");
    // A missing IDX folder says its fix once too.
    std::fs::write(
        &cfg,
        "[vision.data]\ndataset = \"fashion-mnist\"\ndir = \"nowhere\"\n[train]\nclip = 0.0\n",
    )
    .unwrap();
    let err = fails(
        &["params", "--config", cfg.to_str().unwrap()],
        &["nowhere/train-images-idx3-ubyte.gz", "make data-vision"],
    );
    assert_eq!(err.matches("make data-vision").count(), 1, "{err}");
}
