//! End-to-end tests of the language model on a tiny corpus (CPU, seconds each).
//! They share libtorch's global seed, so they run one at a time.
mod common;

use common::{fixclf, tiny_config};
use fixclf::classifier::HeadConfig;
use fixclf::config;
use fixclf::engine::metrics::{read_events, Event};
use fixclf::engine::{load_weights, Checkpoint, TrainOptions};
use fixclf::lm::corpus::batchify;
use fixclf::lm::task::evaluate;
use fixclf::lm::{LanguageModel, LmConfig, LmTask};
use fixclf::tasks::train;
use serial_test::serial;
use tch::{nn, Device, Tensor};

fn events(run: &std::path::Path) -> Vec<Event> {
    read_events(&run.join("metrics.jsonl")).unwrap()
}

/// Logged training losses, in order.
fn logged_losses(run: &std::path::Path) -> Vec<f64> {
    events(run)
        .into_iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.loss),
            _ => None,
        })
        .collect()
}

fn quiet() -> TrainOptions {
    TrainOptions {
        quiet: true,
        ..Default::default()
    }
}

#[test]
#[serial]
fn tiny_model_overfits_tiny_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::load(&tiny_config(dir.path(), "fit", "epochs = 8"), &[]).unwrap();
    let s = train(&cfg, &quiet()).unwrap();
    let v = 18.0f64; // 17 words + <eos>
    let first = logged_losses(&cfg.run_dir())[0];
    assert!(first > 0.5 * v.ln(), "first logged loss {first}");
    assert!(
        s.best_val_loss < 0.4 * v.ln(),
        "val loss {} vs ln V {}",
        s.best_val_loss,
        v.ln()
    );
    let test_ppl = s.test_ppl.unwrap();
    assert!(test_ppl.is_finite() && test_ppl < 5.0, "{test_ppl}");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "best.safetensors",
        "last.safetensors",
        "summary.json",
    ] {
        assert!(cfg.run_dir().join(f).exists(), "{f}");
    }
}

#[test]
#[serial]
fn zero_output_layer_gives_perplexity_v() {
    let mut lm = LmConfig::default();
    lm.model.emb_size = 8;
    lm.model.hidden_size = 8;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = LanguageModel::new(&vs, &lm, &HeadConfig::default(), 50, None).unwrap();
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.starts_with("decoder.") {
                let _ = t.zero_();
            }
        }
    });
    let ids: Vec<u32> = (0..400).map(|i| (i * 7 % 50) as u32).collect();
    let loss = evaluate(&model, &batchify(&ids, 10, Device::Cpu), 35);
    assert!((loss.exp() - 50.0).abs() < 1e-3, "ppl {}", loss.exp());
}

#[test]
#[serial]
fn checkpoint_round_trip_gives_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config::load(&tiny_config(dir.path(), "rt", "epochs = 1"), &[]).unwrap();
    train(&cfg, &quiet()).unwrap();
    let a = lm_task(&cfg);
    let b = lm_task(&cfg);
    let ckpt = Checkpoint::load(&cfg.run_dir().join("best.safetensors")).unwrap();
    load_weights(&a, &ckpt).unwrap();
    load_weights(&b, &ckpt).unwrap();
    let ids = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6, 7, 8]).view([4, 2]);
    let la = a
        .model
        .logits(&a.model.forward(&ids, &a.model.zero_state(2), false).output);
    let lb = b
        .model
        .logits(&b.model.forward(&ids, &b.model.zero_state(2), false).output);
    assert!(la.equal(&lb));
    // And the loaded logits differ from a fresh model's (the load did something).
    let c = lm_task(&cfg);
    tch::manual_seed(99);
    let lc = c
        .model
        .logits(&c.model.forward(&ids, &c.model.zero_state(2), false).output);
    assert!(!la.equal(&lc));
}

#[test]
#[serial]
fn resume_continues_from_the_same_step_and_lr() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "max_steps_per_epoch = 5\nlr_decay = 2.0\noptimizer = \"sgd\"\nlr = 1.0";
    let path = tiny_config(dir.path(), "straight", extra);
    // Uninterrupted: 3 epochs.
    let straight = config::load(&path, &["train.epochs=3".into()]).unwrap();
    let s1 = train(&straight, &quiet()).unwrap();
    // Interrupted after 1 epoch, then resumed to 3.
    let first = config::load(&path, &["train.epochs=1".into(), "name=split".into()]).unwrap();
    train(&first, &quiet()).unwrap();
    let end1 = events(&first.run_dir())
        .into_iter()
        .rev()
        .find_map(|e| match e {
            Event::Epoch(e) => Some(e),
            _ => None,
        })
        .unwrap();
    let again = config::load(&path, &["train.epochs=3".into(), "name=split".into()]).unwrap();
    let opts = TrainOptions {
        resume: true,
        quiet: true,
        ..Default::default()
    };
    let s2 = train(&again, &opts).unwrap();
    let (epoch, step, lr) = events(&again.run_dir())
        .into_iter()
        .find_map(|e| match e {
            Event::Resume { epoch, step, lr } => Some((epoch, step, lr)),
            _ => None,
        })
        .unwrap();
    assert_eq!(step, end1.step);
    assert_eq!(epoch, 2);
    assert_eq!(lr, end1.lr);
    assert_eq!(s1.steps, s2.steps);
    // Same seeds per epoch: the resumed run reproduces the uninterrupted one.
    assert!(
        (s1.best_val_loss - s2.best_val_loss).abs() < 1e-6,
        "{} vs {}",
        s1.best_val_loss,
        s2.best_val_loss
    );
}

#[test]
#[serial]
fn nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_config(
        dir.path(),
        "nan",
        "optimizer = \"adam\"\nlr = 1e38\nclip = 0.0\ncheckpoint_interval = 1\nepochs = 1",
    );
    let (code, _, err) = fixclf(&["train", "--config", path.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("diverged") && err.contains("last.safetensors"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let run = dir.path().join("runs/nan");
    assert!(!run.join("summary.json").exists());
    Checkpoint::load(&run.join("last.safetensors")).unwrap();
}

#[test]
#[serial]
fn eval_command_reports_the_test_perplexity() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_config(dir.path(), "ev", "epochs = 1");
    let (code, out, err) = fixclf(&["train", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("| end of epoch   1") && out.contains("valid ppl"),
        "{out}"
    );
    let run = dir.path().join("runs/ev");
    let (code, out, err) = fixclf(&["eval", "--run", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test ppl"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let want = format!("{:.2}", summary["test_ppl"].as_f64().unwrap());
    assert_eq!(summary["task"], "lm");
    assert!(out.contains(&want), "{out} vs {want}");
}

#[test]
#[serial]
fn checkpoint_of_another_model_or_vocabulary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_config(dir.path(), "a", "epochs = 1");
    let cfg = config::load(&path, &[]).unwrap();
    train(&cfg, &quiet()).unwrap();
    let ckpt = Checkpoint::load(&cfg.run_dir().join("best.safetensors")).unwrap();
    // Another size.
    let other = config::load(
        &path,
        &[
            "lm.model.hidden_size=12".into(),
            "lm.model.emb_size=12".into(),
        ],
    )
    .unwrap();
    let e = load_weights(&lm_task(&other), &ckpt)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("another model") && e.contains("best.safetensors"),
        "{e}"
    );
    // Another head mode.
    let tied = config::load(&path, &["head.mode=tied".into()]).unwrap();
    let e = load_weights(&lm_task(&tied), &ckpt)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("head mode"), "{e}");
    // Another vocabulary.
    let data = dir.path().join("data2");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["train.txt", "valid.txt", "test.txt"] {
        std::fs::write(data.join(f), "other words here\n").unwrap();
    }
    let vocab = config::load(&path, &[format!("lm.data.dir=\"{}\"", data.display())]).unwrap();
    let e = load_weights(&lm_task(&vocab), &ckpt)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("another vocabulary"), "{e}");
}

/// Loss of the first and last logged intervals of a run.
fn first_and_last_loss(run: &std::path::Path) -> (f64, f64) {
    let losses = logged_losses(run);
    (losses[0], *losses.last().unwrap())
}

#[test]
#[serial]
fn fixed_orthogonal_lm_trains_with_nothing_trained_in_embedding_and_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_config(dir.path(), "orth", "epochs = 4\nlog_interval = 5");
    let cfg = config::load(&path, &["head.mode=fixed-orthogonal".into()]).unwrap();
    let s = train(&cfg, &quiet()).unwrap();
    let (first, last) = first_and_last_loss(&cfg.run_dir());
    assert!(last < first - 0.5, "loss {first} -> {last}");
    // Trainable: LSTM + bias (18 words) + alpha (1); fixed: the 18 x 16 matrix.
    let lstm = 2 * (4 * 16 * 16 * 2 + 8 * 16);
    assert_eq!(s.params.trainable, lstm + 18 + 1);
    assert_eq!(s.params.fixed, 18 * 16);
    assert!(s.final_alpha.unwrap() != 10.0);
    // The checkpoint holds no matrix, only how to rebuild it.
    let ckpt = Checkpoint::load(&cfg.run_dir().join("best.safetensors")).unwrap();
    let names: Vec<&String> = ckpt.tensors.keys().collect();
    assert!(names.iter().all(|n| !n.starts_with("encoder")), "{names:?}");
    assert!(ckpt.meta("fixed_matrix").unwrap().contains("orthogonal"));
    // Evaluation from the checkpoint reproduces the summary's test perplexity.
    let ppl = fixclf::tasks::eval_run(&cfg.run_dir(), "test", None)
        .unwrap()
        .ppl
        .unwrap();
    let want = s.test_ppl.unwrap();
    assert!((ppl - want).abs() < 1e-6 * ppl, "{ppl} vs {want}");
}

#[test]
#[serial]
fn fixed_pretrained_lm_trains_from_an_embeddings_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_config(dir.path(), "pre", "epochs = 4\nlog_interval = 5");
    // Vectors for the tiny vocabulary (plus an extra word the loader must ignore).
    let cfg0 = config::load(&path, &[]).unwrap();
    let vocab = fixclf::lm::task::load_corpus(lm_section(&cfg0))
        .unwrap()
        .vocab;
    let mut words: Vec<String> = vocab.words().to_vec();
    words.push("unused".into());
    let data: Vec<f32> = (0..words.len() * 16)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let npy = dir.path().join("vec.npy");
    fixclf::vectors::write_npy_with_vocab(
        &npy,
        &fixclf::vectors::WordVectors::new(words, 16, data),
    )
    .unwrap();
    let cfg = config::load(
        &path,
        &[
            "head.mode=fixed-word2vec".into(),
            format!("head.embeddings=\"{}\"", npy.display()),
        ],
    )
    .unwrap();
    train(&cfg, &quiet()).unwrap();
    let (first, last) = first_and_last_loss(&cfg.run_dir());
    assert!(last < first - 0.3, "loss {first} -> {last}");
    // A changed embeddings file no longer matches the checkpoint.
    let mut v = fixclf::vectors::read_any(&npy).unwrap();
    v.data[0] += 1.0;
    fixclf::vectors::write_npy_with_vocab(&npy, &v).unwrap();
    let e = fixclf::tasks::eval_run(&cfg.run_dir(), "test", None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("fixed matrix"), "{e}");
}

/// The `[lm]` section of a language-model config.
fn lm_section(cfg: &config::Config) -> &LmConfig {
    match &cfg.task {
        config::TaskConfig::Lm(lm) => lm,
        config::TaskConfig::Vision(_) => panic!("not a language-model config"),
    }
}

/// The task of an LM config, built as `fixclf train` builds it (device, seed, data, model).
fn lm_task(cfg: &config::Config) -> LmTask {
    let device = fixclf::engine::prepare(&cfg.train).unwrap();
    LmTask::new(lm_section(cfg), &cfg.train, &cfg.head, device).unwrap()
}
