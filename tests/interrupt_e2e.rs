//! Interrupts and exact resume, end to end on the binary: a tiny LM run (also one that
//! averages, NT-ASGD) and a tiny image run are sent SIGINT, SIGTERM, a double SIGINT and
//! SIGKILL at several steps (mid-epoch and across epoch ends), resumed each time, and must
//! end with the per-epoch validation numbers of an uninterrupted run. Also: a checkpoint
//! killed while being written, a suite, `embed word2vec` and `embed pmi` interrupted. (Forced NaNs and a
//! runaway alpha: numerics_e2e.rs.)
//!
//! Every run checkpoints at every step (`checkpoint_interval = 1`) and logs every step, so
//! the test can wait for the child to reach a step (its `log` lines in `metrics.jsonl`).
mod common;

use common::runs::{
    assert_same_epochs, complete, epoch_metrics, finish, spawn, state_of, vision_config,
};
use common::{tiny_config, tiny_corpus, tiny_lm_suite_head};
use fixclf::engine::metrics::{read_events, Event};
use fixclf::engine::Checkpoint;
use serial_test::serial;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({sig})");
}

fn log_steps(run: &Path) -> usize {
    read_events(&run.join("metrics.jsonl"))
        .map(|ev| ev.iter().filter(|e| matches!(e, Event::Log(_))).count())
        .unwrap_or(0)
}

/// Waits until the run's metrics hold at least `n` log lines (steps, counting repeats).
fn wait_for_steps(child: &mut Child, run: &Path, n: usize) {
    let start = Instant::now();
    while log_steps(run) < n {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("fixclf ended ({status}) before step {n}");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no step {n}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The command the interrupt message says resumes the run, with the binary's path.
fn resume_command(stderr: &str) -> Vec<String> {
    let cmd = stderr
        .lines()
        .find_map(|l| l.split_once("resume with: ").map(|(_, c)| c.to_string()))
        .unwrap_or_else(|| panic!("no resume command in: {stderr}"));
    let mut words: Vec<String> = cmd.split_whitespace().map(String::from).collect();
    assert_eq!(words[0], "fixclf");
    words.remove(0);
    words
}

/// One interruption: run `args` until `at` log lines exist, send `sig` (`twice`: two at
/// once), check the exit code and message; returns the resume arguments from the message.
fn interrupt_at(
    args: &[&str],
    run: &Path,
    at: usize,
    sig: i32,
    twice: bool,
) -> Option<Vec<String>> {
    let mut child = spawn(args, &[]);
    wait_for_steps(&mut child, run, at);
    signal(&child, sig);
    if twice {
        signal(&child, sig);
    }
    let (code, stderr) = finish(child);
    if sig == libc::SIGKILL {
        assert_eq!(code, -libc::SIGKILL, "{stderr}");
        return None;
    }
    let want = 128 + sig;
    assert_eq!(code, want, "exit code after signal {sig}: {stderr}");
    if twice && !stderr.contains("resume with") {
        // The second signal won the race: an immediate exit, no message.
        return None;
    }
    let name = if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    let line = stderr.lines().last().unwrap();
    assert!(
        line.contains(&format!("interrupted by {name} at epoch"))
            && line.contains("checkpoint saved to")
            && line.contains("last.safetensors"),
        "{stderr}"
    );
    // The checkpoint is at the step the message names.
    let st = state_of(&run.join("last.safetensors"));
    assert!(
        line.contains(&format!("epoch {} step {};", st.epoch, st.step)),
        "{line} vs {st:?}"
    );
    Some(resume_command(&stderr))
}

/// Runs straight, then interrupted at `points` (log lines, signal, twice) and resumed after
/// each; the per-epoch validation numbers must agree.
fn check_interrupted_equals_straight(
    straight: &[&str],
    run_straight: &Path,
    interrupted: &[&str],
    run: &Path,
    points: &[(usize, i32, bool)],
) {
    complete(&straight.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let config = run.join("config.toml").display().to_string();
    let fallback: Vec<String> = ["train", "--config", &config, "--resume", "-q"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut args: Vec<String> = interrupted.iter().map(|s| s.to_string()).collect();
    for &(at, sig, twice) in points {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        args = interrupt_at(&a, run, at, sig, twice).unwrap_or_else(|| fallback.clone());
        // Whatever the moment of the kill, the checkpoint on disk is complete.
        Checkpoint::load(&run.join("last.safetensors")).unwrap();
    }
    complete(&args);
    assert!(run.join("summary.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(run)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_same_epochs(&epoch_metrics(run), &epoch_metrics(run_straight));
}

/// The tiny LM with dropout and variable BPTT on: every random stream is in use.
fn lm_config(dir: &Path) -> PathBuf {
    tiny_config(
        dir,
        "lm",
        "epochs = 3\nlog_interval = 1\ncheckpoint_interval = 1\nvariable_bptt = true",
    )
}

const LM_RANDOM: [&str; 6] = [
    "--set",
    "lm.model.dropout_hidden=0.3",
    "--set",
    "lm.model.dropout_output=0.3",
    "--set",
    "lm.model.dropout_input=0.2",
];

#[test]
#[serial]
fn lm_interrupted_anywhere_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lm_config(dir.path()).display().to_string();
    let runs = dir.path().join("runs");
    let mut straight = vec!["train", "--config", &cfg, "-q", "--set", "name=straight"];
    straight.extend(LM_RANDOM);
    let mut interrupted = vec!["train", "--config", &cfg, "-q"];
    interrupted.extend(LM_RANDOM);
    // About 30 steps an epoch: mid-epoch 1, early epoch 2 (after a validation), a double
    // Ctrl-C, and a kill in epoch 3.
    check_interrupted_equals_straight(
        &straight,
        &runs.join("straight"),
        &interrupted,
        &runs.join("lm"),
        &[
            (5, libc::SIGINT, false),
            (36, libc::SIGTERM, false),
            (48, libc::SIGINT, true),
            (70, libc::SIGKILL, false),
        ],
    );
}

/// NT-ASGD: SGD at a large rate on the tiny corpus makes epoch 3's validation no better
/// than epoch 2's, so averaging starts after epoch 3 (42 steps an epoch). Interrupted while
/// averaging (mid-epoch 4, early epoch 5, a kill in epoch 6) and resumed, the averages come
/// back from the checkpoint: the validation of the averaged model must match.
#[test]
#[serial]
fn lm_averaging_interrupted_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        dir.path(),
        "asgd",
        "optimizer = \"sgd\"\nlr = 30\nclip = 0.25\nepochs = 6\nlog_interval = 1\n\
         checkpoint_interval = 1\nasgd = true\nnonmono = 1",
    )
    .display()
    .to_string();
    let runs = dir.path().join("runs");
    let straight = ["train", "--config", &cfg, "-q", "--set", "name=straight"];
    check_interrupted_equals_straight(
        &straight,
        &runs.join("straight"),
        &["train", "--config", &cfg, "-q"],
        &runs.join("asgd"),
        &[
            (140, libc::SIGINT, false),
            (172, libc::SIGTERM, false),
            (230, libc::SIGKILL, false),
        ],
    );
    // The averaging did start before the first interruption, in both runs.
    for run in ["straight", "asgd"] {
        let asgd: Vec<(usize, bool)> = read_events(&runs.join(run).join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Event::Epoch(e) => Some((e.epoch, e.asgd)),
                _ => None,
            })
            .collect();
        let first = asgd.iter().find(|(_, on)| *on).map(|(epoch, _)| *epoch);
        assert!(first.is_some_and(|e| e <= 4), "{run}: {asgd:?}");
    }
}

#[test]
#[serial]
fn image_run_interrupted_anywhere_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = vision_config(dir.path()).display().to_string();
    let runs = dir.path().join("runs");
    // 32 steps an epoch. In NHWC too: checkpoints hold NCHW values, copied back into NHWC
    // weights on resume.
    for (layout, straight, img) in [
        ("contiguous", "straight", "img"),
        ("channels-last", "straight-nhwc", "img-nhwc"),
    ] {
        let format = format!("vision.memory_format={layout}");
        let (straight_name, img_name) = (format!("name={straight}"), format!("name={img}"));
        check_interrupted_equals_straight(
            &[
                "train",
                "--config",
                &cfg,
                "-q",
                "--set",
                &straight_name,
                "--set",
                &format,
            ],
            &runs.join(straight),
            &[
                "train", "--config", &cfg, "-q", "--set", &img_name, "--set", &format,
            ],
            &runs.join(img),
            &[
                (7, libc::SIGTERM, false),
                (33, libc::SIGINT, false),
                (50, libc::SIGKILL, false),
            ],
        );
    }
}

/// What a kill -9 in the middle of writing leaves: a partial temp file beside the complete
/// checkpoint, and a torn last line of metrics. Resuming ignores and removes the temp file,
/// cuts the torn line, and ends like the uninterrupted run.
#[test]
#[serial]
fn kill_while_writing_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = lm_config(dir.path()).display().to_string();
    let run = dir.path().join("runs/lm");
    let base = ["train", "--config", &cfg, "-q", "--set", "train.epochs=2"];
    let mut straight = base.to_vec();
    straight.extend(["--set", "name=straight"]);
    complete(&straight.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    interrupt_at(&base, &run, 12, libc::SIGKILL, false);
    let last = run.join("last.safetensors");
    let bytes = std::fs::read(&last).unwrap();
    let torn = run.join("last.safetensors.4242.tmp");
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    let metrics = run.join("metrics.jsonl");
    let mut m = std::fs::read(&metrics).unwrap();
    m.extend_from_slice(b"{\"event\":\"log\",\"epo");
    std::fs::write(&metrics, m).unwrap();
    // The report reads the run as it is.
    let (code, _, stderr) = common::fixclf(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        dir.path().join("rep").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mut resume = base.to_vec();
    resume.push("--resume");
    complete(&resume.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(!torn.exists());
    read_events(&metrics).unwrap();
    assert_same_epochs(
        &epoch_metrics(&run),
        &epoch_metrics(&dir.path().join("runs/straight")),
    );
}

#[test]
#[serial]
fn suite_interrupted_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_corpus(d);
    let suite = d.join("suite.toml");
    std::fs::write(
        &suite,
        format!(
            r#"{head}
[base.lm.model]
emb_size = 16
hidden_size = 16

[base.train]
optimizer = "adam"
lr = 0.01
epochs = 2
batch_size = 4
eval_batch_size = 4
log_interval = 1
checkpoint_interval = 1
threads = 1

[[runs]]
name = "a"

[[runs]]
name = "b"
set = ["head.mode=tied"]
"#,
            head = tiny_lm_suite_head(d, "s", &data),
        ),
    )
    .unwrap();
    let suite_s = suite.display().to_string();
    let args = ["suite", "--config", &suite_s, "-q"];
    let run_a = d.join("runs/s/a");
    let mut child = spawn(&args, &[]);
    wait_for_steps(&mut child, &run_a, 20);
    signal(&child, libc::SIGINT);
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    let line = stderr.lines().last().unwrap();
    assert!(
        line.contains("interrupted by SIGINT")
            && line.ends_with(&format!("resume with: fixclf suite --config {suite_s}")),
        "{stderr}"
    );
    assert!(!run_a.join("summary.json").exists());
    // The report so far: run a, unfinished (b has no folder yet).
    let csv = std::fs::read_to_string(d.join("reports/s/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains(",unfinished,"), "{csv}");
    let mut again = resume_command(&stderr);
    again.push("-q".into());
    complete(&again);
    assert!(run_a.join("summary.json").exists() && d.join("runs/s/b/summary.json").exists());
    assert!(read_events(&run_a.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Resume { .. })));
}

/// `fixclf embed <tool>` with `args`, stopped by SIGTERM after 700 ms: exit 143, the
/// message, and nothing in the output folder.
fn check_embed_interrupted(tool: &str, corpus: &Path, args: &[&str]) {
    let dir = corpus.parent().unwrap();
    let out = dir.join(format!("emb-{tool}/vectors"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut argv = vec!["embed", tool, "--corpus", corpus.to_str().unwrap()];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--threads", "1", "--out", out.to_str().unwrap()]);
    let mut child = spawn(&argv, &[]);
    // The first line (corpus loaded) comes after the signal handlers are installed: a fixed
    // delay from the start can fall before them on a loaded machine.
    let stderr_pipe = child.stderr.take().unwrap();
    let (first_line, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
        {
            let _ = first_line.send(());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    lines
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{tool} printed nothing"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "{tool} ended too soon");
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    let code = status.code().unwrap_or(-1);
    assert_eq!(code, 143, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{tool}: interrupted by SIGTERM; nothing was written"
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 0);
}

#[test]
#[serial]
fn embed_interrupted_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    // 400k tokens over 50 words: 200 word2vec epochs on one thread take far longer than
    // the test waits.
    let line: String = (0..20).map(|i| format!("w{} ", (i * 7) % 50)).collect();
    std::fs::write(&corpus, format!("{line}\n").repeat(20_000)).unwrap();
    check_embed_interrupted("word2vec", &corpus, &["--dim", "16", "--epochs", "200"]);
    // 2,000 words: 100,000 power iterations of the randomized SVD take minutes.
    let corpus = dir.path().join("corpus-2k.txt");
    let words: Vec<String> = (0..200_000u64)
        .map(|i| format!("w{}", (i * 7919 + i / 2000) % 2000))
        .collect();
    let text: String = words.chunks(20).map(|l| l.join(" ") + "\n").collect();
    std::fs::write(&corpus, text).unwrap();
    check_embed_interrupted("pmi", &corpus, &["--dim", "32", "--power-iters", "100000"]);
}
