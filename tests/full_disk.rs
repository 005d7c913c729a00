//! Writes that fail for lack of space: the command exits 2 with one line naming the file it
//! could not write, the previous files are intact and no temp file is left behind.
//!
//! A full disk is simulated portably (no root, no tmpfs): the child process runs under a
//! file-size limit (`RLIMIT_FSIZE`) with `SIGXFSZ` ignored, so a write past the limit fails
//! with `EFBIG` exactly where a full disk fails with `ENOSPC` (both go through
//! `fsutil::write_atomic`).
mod common;

use common::{fixclf, tiny_config};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// Runs fixclf with files limited to `limit` bytes; returns (exit code, stderr).
fn fixclf_limited(args: &[&str], limit: u64) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fixclf"));
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = cmd.output().expect("run fixclf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The failure's contract: exit 2, one error line naming a file under `dir` with `suffix`, the
/// full-disk fix, no panic; `dir` holds what it held before, minus nothing, plus no temp.
fn assert_failed_cleanly(
    code: i32,
    err: &str,
    dir: &Path,
    suffix: &str,
    before: &BTreeMap<PathBuf, Vec<u8>>,
) {
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Progress lines (fixclf embed) may come first; the error is the one last line.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(err.trim_end().lines().last(), Some(errors[0]), "{err}");
    let err = errors[0];
    assert!(err.contains("File too large"), "{err}");
    assert!(err.contains("free some space"), "{err}");
    let dir_name = dir.to_str().unwrap();
    let named = err
        .split_whitespace()
        .map(|w| w.trim_end_matches(':'))
        .any(|w| w.starts_with(dir_name) && w.len() > dir_name.len() + 1 && w.ends_with(suffix));
    assert!(named, "no file `{dir_name}/*{suffix}` named in: {err}");
    let after = snapshot(dir);
    for (path, bytes) in before {
        assert!(after.get(path) == Some(bytes), "{} changed", path.display());
    }
    let tmp: Vec<_> = after
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

#[test]
fn checkpoint_write_to_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "t", "epochs = 1");
    let cfg = cfg.to_str().unwrap();
    let (code, _, err) = fixclf(&["train", "--config", cfg, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let run = dir.path().join("runs/t");
    let before = snapshot(&run);
    // Room for the metrics lines of the resumed epoch, not for a checkpoint.
    let metrics = before[&run.join("metrics.jsonl")].len() as u64;
    let best = before[&run.join("best.safetensors")].len() as u64;
    let limit = metrics + 4096;
    assert!(
        limit < best,
        "the tiny model's checkpoint ({best} bytes) fits the limit"
    );
    let args = [
        "train",
        "--config",
        cfg,
        "--quiet",
        "--resume",
        "--set",
        "train.epochs=2",
    ];
    let (code, err) = fixclf_limited(&args, limit);
    // metrics.jsonl grows (it is appended to); everything else is as it was.
    let mut kept = before.clone();
    kept.remove(&run.join("metrics.jsonl"));
    assert_failed_cleanly(code, &err, &run, ".safetensors", &kept);
}

#[test]
fn embeddings_write_to_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::tiny_corpus(dir.path());
    let corpus = data.join("train.txt");
    let out = dir.path().join("emb");
    let base = out.join("pmi");
    let args = [
        "embed",
        "pmi",
        "--corpus",
        corpus.to_str().unwrap(),
        "--dim",
        "4",
        "--threads",
        "1",
        "--out",
        base.to_str().unwrap(),
        "--force",
    ];
    let (code, _, err) = fixclf(&args);
    assert_eq!(code, 0, "{err}");
    let before = snapshot(&out);
    // The .npy (header 128 bytes + data) does not fit.
    let (code, err) = fixclf_limited(&args, 100);
    assert_failed_cleanly(code, &err, &out, ".npy", &before);
    // Other embeddings (dim 6) whose .npy (560 bytes) and .vocab fit but not the .json
    // (about 1 KB): none of the three is replaced, so the .json still records the hashes of
    // the .npy and .vocab beside it.
    let dim6: Vec<&str> = args
        .iter()
        .map(|a| if *a == "4" { "6" } else { a })
        .collect();
    let (code, err) = fixclf_limited(&dim6, 700);
    assert_failed_cleanly(code, &err, &out, ".json", &before);
    // Nor does an export.
    let bin = out.join("pmi.bin");
    let npy = base.with_extension("npy");
    let export = [
        "embed",
        "export",
        "--input",
        npy.to_str().unwrap(),
        "--output",
        bin.to_str().unwrap(),
    ];
    let (code, err) = fixclf_limited(&export, 16);
    assert_failed_cleanly(code, &err, &out, "pmi.bin", &before);
    assert!(!bin.exists());
}

#[test]
fn report_write_to_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "r", "epochs = 1");
    let (code, _, err) = fixclf(&["train", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let run = dir.path().join("runs/r");
    let out = dir.path().join("report");
    let args = [
        "report",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = fixclf(&args);
    assert_eq!(code, 0, "{err}");
    let before = snapshot(&out);
    let (code, err) = fixclf_limited(&args, 64);
    assert_failed_cleanly(code, &err, &out, "", &before);
}
