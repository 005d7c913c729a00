//! Fake run folders for the report tests, written as fixclf 0.1 wrote them (its JSON keys
//! and config layout), so the tests also check that old run folders still load.
use crate::classifier::HeadMode;
use crate::engine::{ParamReport, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE};
use serde_json::json;
use std::path::{Path, PathBuf};

/// A finished image run's row, small CNN on Fashion-MNIST.
pub fn image_row(run: &str, mode: &str) -> super::RunRow {
    super::RunRow {
        run: run.into(),
        task: "vision".into(),
        model: "small-cnn".into(),
        data: "fashion-mnist".into(),
        mode: mode.into(),
        status: "finished".into(),
        group: run.into(),
        ..Default::default()
    }
}

pub fn params(fixed_mode: bool) -> ParamReport {
    let learned_total = 4_000_000;
    let trainable = if fixed_mode { 1_000_000 } else { learned_total };
    let fixed = if fixed_mode { 1_500_000 } else { 0 };
    ParamReport {
        total: trainable + fixed,
        trainable,
        fixed,
        learned_total,
        classifier_share: 0.75,
        share_removed: 1.0 - trainable as f64 / learned_total as f64,
    }
}

/// Writes a fake run folder: config, metrics of `epochs` epochs (three `log` lines each,
/// and a torn last line as after a crash), and a summary when `finished`.
pub fn fake_run(dir: &Path, name: &str, mode: HeadMode, epochs: u64, finished: bool) -> PathBuf {
    fake_run_losses(dir, name, mode, epochs, finished, (6.5, 0.2))
}

/// [`fake_run`] whose validation loss after epoch `e` is `start - e * drop`.
pub fn fake_run_losses(
    dir: &Path,
    name: &str,
    mode: HeadMode,
    epochs: u64,
    finished: bool,
    (start, drop): (f64, f64),
) -> PathBuf {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let embeddings = if mode.needs_embeddings() {
        "embeddings = \"embeddings/w2v.npy\"\n"
    } else {
        ""
    };
    let cfg = format!(
        "name = \"{name}\"\n[data]\ntrain_tokens = 50000\n[model]\n[output]\nmode = \"{}\"\n\
         {embeddings}[train]\nepochs = {epochs}\nthreads = 2\nbptt = 35\n",
        mode.name()
    );
    std::fs::write(run.join(CONFIG_FILE), cfg).unwrap();
    let fixed = mode.is_fixed();
    let alpha = |s: u64| fixed.then_some(10.0 + s as f64 * 0.1);
    let mut lines = vec![json!({"event": "start", "params": params(fixed), "device": "Cpu"})];
    let mut step = 0;
    for e in 1..=epochs {
        for b in 1..=3 {
            step += 10;
            lines.push(
                json!({"event": "log", "epoch": e, "step": step, "batch": 10 * b,
                "batches": 30, "lr": 20.0, "ms_per_batch": 5.0,
                "loss": 7.0 - step as f64 * 0.01, "ppl": 1000.0, "tokens_per_s": 5000.0,
                "elapsed_s": step as f64, "alpha": alpha(step)}),
            );
        }
        let val_loss = start - e as f64 * drop;
        lines.push(json!({"event": "epoch", "epoch": e, "step": step,
            "val_loss": val_loss, "val_ppl": val_loss.exp(), "lr": 20.0,
            "epoch_s": 20.0 + 10.0 * e as f64, "elapsed_s": step as f64 + 1.0, "train_tokens": step * 700,
            "tokens_per_s": 6000.0, "alpha": alpha(step), "peak_rss_mb": 300.0 + e as f64,
            "asgd": false}));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(run.join(METRICS_FILE), format!("{text}{{\"event\": \"lo")).unwrap();
    if finished {
        let best = start - epochs as f64 * drop;
        let s = json!({
            "run": name,
            "mode": mode.name(),
            "params": params(fixed),
            "best_val_loss": best,
            "best_val_ppl": best.exp(),
            "test_loss": best + 0.05,
            "test_ppl": (best + 0.05).exp(),
            "epochs": epochs,
            "steps": step,
            "train_tokens": step * 700,
            "wall_s": 95.5,
            "train_s": 90.0,
            "train_tokens_per_s": 6100.0,
            "peak_rss_mb": 512.0,
            "optimizer_state_floats": 0,
            "checkpoint_bytes": 16_000_000,
            "final_alpha": alpha(step),
            "device": "Cpu",
            "threads": 2,
        });
        std::fs::write(
            run.join(SUMMARY_FILE),
            serde_json::to_string_pretty(&s).unwrap(),
        )
        .unwrap();
    }
    run
}

/// Five finished runs of six epochs, one per mode, their perplexities a decade apart.
pub fn five_runs(dir: &Path) -> Vec<std::path::PathBuf> {
    use HeadMode::*;
    [
        ("learned", Learned, 7.2),
        ("tied", Tied, 7.3),
        ("fixed-orthogonal", FixedOrthogonal, 8.9),
        ("fixed-word2vec", FixedWord2vec, 7.0),
        ("fixed-pmi", FixedPmi, 7.9),
    ]
    .into_iter()
    .map(|(name, mode, start)| fake_run_losses(dir, name, mode, 6, true, (start, 0.4)))
    .collect()
}

/// The size and RGBA pixels of a PNG.
pub fn png_pixels(bytes: &[u8]) -> ((u32, u32), Vec<u8>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let p = resvg::tiny_skia::Pixmap::decode_png(bytes).unwrap();
    ((p.width(), p.height()), p.data().to_vec())
}
