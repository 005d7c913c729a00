//! `fixclf bench vision`: training and evaluation speed of the CIFAR ResNet (option-B
//! shortcuts) with a learned or a fixed head, on random images (speed does not depend on
//! them), one JSON line per (model, head) with the keys of the PyTorch reference
//! `../shared/bench/torch_vision_bench.py`, in its order, then fixclf's extras.
//!
//! What is timed is what training runs: the backbone of [`crate::vision::models`], the head of
//! [`crate::vision::task::build_head`], the loss of [`crate::classifier::Head::training_loss`] and the
//! trainer's optimizer ([`crate::classifier::training_params`], SGD momentum 0.9, weight decay
//! 1e-4, lr 0.1, as the reference). Like the reference, one batch stays on the device for
//! every step (no data loading or augmentation), so the two time the same work.
//!
//! The reference's `fixed` head has a dense `Q` with orthonormal rows (C <= N); here `fixed`
//! is `fixed-orthogonal`, the same kind of matrix, also stored densely at these sizes. Any
//! other fixed mode can be named (`fixed-hadamard`, `fixed-simplex`).
use crate::bench::head_step::{OPTIMIZER, WEIGHT_DECAY};
use crate::bench::measure::{set_threads, sync, timed_steps, Measure, RunArgs};
use crate::bench::{ordered_json, round, sorted_ms, LIBTORCH_VERSION};
use crate::classifier::{HeadConfig, HeadMode};
use crate::engine::ParamReport;
use crate::error::{Error, Result};
use crate::optim;
use crate::stats::median;
use crate::vision::models::{self, Arch, MemoryFormat, ModelConfig};
use crate::vision::task::build_head;
use serde_json::json;
use std::time::Instant;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// `fixclf bench vision`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct VisionArgs {
    /// Comma-separated ResNet depths (6n+2).
    #[arg(long, default_value = "20,56")]
    pub depths: String,
    /// Comma-separated heads (`fixed` = fixed-orthogonal; any fixed mode but the
    /// pretrained ones).
    #[arg(long, default_value = "learned,fixed")]
    pub heads: String,
    #[arg(long, default_value_t = 10)]
    pub classes: i64,
    #[arg(long, default_value_t = 3)]
    pub channels: i64,
    /// Image height and width.
    #[arg(long, default_value_t = 32)]
    pub size: i64,
    #[arg(long, default_value_t = 128)]
    pub batch: i64,
    /// Layout of images and convolution weights, as `vision.memory_format` (compare
    /// with the reference's `--channels-last`).
    #[arg(long, value_enum, default_value_t = MemoryFormat::Contiguous)]
    pub memory_format: MemoryFormat,
    #[command(flatten)]
    pub common: RunArgs,
}

impl VisionArgs {
    /// The bench these flags describe (an error naming the flag that is wrong).
    pub fn bench(&self) -> Result<VisionBench> {
        Ok(VisionBench {
            depths: crate::bench::parse_counts("--depths", &self.depths)?,
            heads: crate::bench::parse_modes("--heads", &self.heads)?,
            classes: self.classes,
            channels: self.channels,
            size: self.size,
            batch: self.batch,
            measure: self.common.measure()?,
            memory_format: self.memory_format,
        })
    }
}

/// The reference's settings (its defaults, and its optimizer).
#[derive(Debug, Clone)]
pub struct VisionBench {
    pub depths: Vec<i64>,
    /// Each head with the name it was given (`fixed` pairs with the reference's lines).
    pub heads: Vec<(String, HeadMode)>,
    pub classes: i64,
    pub channels: i64,
    pub size: i64,
    pub batch: i64,
    /// The time budget holds for the timed training steps and, again, the evaluation steps.
    pub measure: Measure,
    /// As `vision.memory_format`.
    pub memory_format: MemoryFormat,
}

impl Default for VisionBench {
    fn default() -> Self {
        Self {
            depths: vec![20, 56],
            heads: vec![
                ("learned".into(), HeadMode::Learned),
                ("fixed".into(), HeadMode::FixedOrthogonal),
            ],
            classes: 10,
            channels: 3,
            size: 32,
            batch: 128,
            measure: Measure::default(),
            memory_format: MemoryFormat::Contiguous,
        }
    }
}

/// The keys of the reference's JSON lines, in its order (the dict literal of `bench()` in
/// `../shared/bench/torch_vision_bench.py`); [`bench_one`] writes them first.
pub const REFERENCE_KEYS: [&str; 16] = [
    "impl",
    "torch",
    "device",
    "model",
    "mode",
    "threads",
    "batch",
    "image",
    "classes",
    "steps",
    "params_total",
    "params_trainable",
    "train_step_ms_median",
    "train_images_per_s",
    "eval_images_per_s",
    "train_step_ms_all",
];

/// Benchmarks the ResNet of `depth` with one head; returns the JSON line.
pub fn bench_one(b: &VisionBench, depth: i64, head: &(String, HeadMode)) -> Result<String> {
    let (head_name, mode) = (head.0.as_str(), head.1);
    if mode.needs_embeddings() || mode == HeadMode::Tied {
        return Err(Error::arg(
            "--heads",
            format!("{mode} does not apply to random images; use learned, fixed, fixed-hadamard or fixed-simplex"),
        ));
    }
    let model = ModelConfig {
        depth,
        ..ModelConfig::new(Arch::ResnetCifar)
    };
    model.validate("--depths")?;
    let m = &b.measure;
    set_threads(m.threads);
    tch::manual_seed(0);
    crate::memory::reset_peak_rss();
    let head_cfg = HeadConfig {
        mode,
        ..Default::default()
    };
    head_cfg.validate("--heads")?;
    let vs = nn::VarStore::new(m.device);
    let format = b.memory_format;
    let backbone = models::build(&(vs.root() / "backbone"), &model, b.channels)?
        .with_memory_format(&vs, format);
    let head = build_head(
        &(vs.root() / "head"),
        &head_cfg,
        b.classes,
        backbone.features,
    )?;
    let report = ParamReport::new(&vs, head.fixed_numel(), 0, 0);
    let params = crate::classifier::training_params(&vs, WEIGHT_DECAY, &head_cfg);
    let mut opt = optim::build(&OPTIMIZER, params);
    crate::memory::release_free_memory();

    let x = Tensor::randn(
        [b.batch, b.channels, b.size, b.size],
        (Kind::Float, m.device),
    );
    let y = Tensor::randint(b.classes, [b.batch], (Kind::Int64, m.device));
    let times = timed_steps(m, || {
        sync(m.device);
        let t0 = Instant::now();
        let features = backbone.forward_t(&x, true);
        let loss = head.training_loss(&features, &y);
        opt.backward_step(&loss.objective)?;
        sync(m.device);
        Ok(t0.elapsed().as_secs_f64())
    })?;
    let eval_times = tch::no_grad(|| {
        timed_steps(m, || {
            sync(m.device);
            let t0 = Instant::now();
            // As the reference: argmax, sum and a host read, so that the work is waited for.
            let _ = head
                .logits(&backbone.forward_t(&x, false))
                .argmax(-1, false)
                .sum(Kind::Int64)
                .int64_value(&[]);
            Ok(t0.elapsed().as_secs_f64())
        })
    })?;
    let (step_s, eval_s) = (median(&times), median(&eval_times));
    let batch = b.batch as f64;
    Ok(ordered_json(&[
        ("impl", json!("fixclf")),
        ("torch", json!(LIBTORCH_VERSION)),
        ("device", json!(m.device_name)),
        ("model", json!(format!("resnet{depth}"))),
        ("mode", json!(head_name)),
        ("threads", json!(tch::get_num_threads())),
        ("batch", json!(b.batch)),
        ("image", json!([b.channels, b.size, b.size])),
        ("classes", json!(b.classes)),
        ("steps", json!(m.steps)),
        ("params_total", json!(report.total)),
        ("params_trainable", json!(report.trainable)),
        ("train_step_ms_median", json!(round(step_s * 1e3, 2))),
        ("train_images_per_s", json!(round(batch / step_s, 1))),
        ("eval_images_per_s", json!(round(batch / eval_s, 1))),
        ("train_step_ms_all", json!(sorted_ms(&times))),
        // fixclf's extras.
        ("head", json!(mode.name())),
        ("memory_format", json!(format.name())),
        ("warmup", json!(m.warmup)),
        ("eval_step_ms_median", json!(round(eval_s * 1e3, 2))),
        ("eval_ms_all", json!(sorted_ms(&eval_times))),
        ("optimizer_state_floats", json!(opt.state_numel())),
        ("peak_rss_mb", json!(round(crate::memory::peak_rss_mb(), 1))),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn vision_bench_line_has_the_reference_keys_in_order() {
        let b = VisionBench {
            batch: 2,
            size: 8,
            measure: Measure {
                steps: 1,
                warmup: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        for head in &b.heads {
            let line = bench_one(&b, 8, head).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            let at: Vec<usize> = REFERENCE_KEYS
                .iter()
                .map(|k| line.find(&format!("\"{k}\":")).unwrap())
                .collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
            assert!(
                line.find("\"head\":").unwrap() > at[15],
                "extras come last: {line}"
            );
            assert_eq!(v["mode"], head.0.as_str());
            assert_eq!(v["train_step_ms_all"].as_array().unwrap().len(), 1);
        }
        // ResNet-8 (n = 1): learned head 64 x 10 + 10; the fixed head adds alpha and Q.
        let learned = bench_one(&b, 8, &b.heads[0]).unwrap();
        let fixed = bench_one(&b, 8, &b.heads[1]).unwrap();
        let n = |l: &str, k: &str| {
            serde_json::from_str::<Value>(l).unwrap()[k]
                .as_i64()
                .unwrap()
        };
        assert_eq!(
            n(&fixed, "params_trainable"),
            n(&learned, "params_trainable") - 640 + 1
        );
        assert_eq!(n(&fixed, "params_total"), n(&learned, "params_total") + 1);
        let e = bench_one(&b, 21, &b.heads[0]).unwrap_err().to_string();
        assert!(e.contains("--depths") && e.contains("6n+2"), "{e}");
    }
}
