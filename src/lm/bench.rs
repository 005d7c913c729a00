//! `fixclf bench lm`: training and evaluation speed of the language model at paper size on
//! random token ids (speed does not depend on them), one JSON line per output mode, with the
//! keys of `../shared/bench/torch_lm_bench.py` so that the two compare line by line.
use super::config::LmConfig;
use super::model::{LanguageModel, LstmState};
use crate::bench::{median, sorted_ms};
use crate::classifier::{HeadConfig, HeadMode};
use crate::error::{Error, Result};
use crate::optim::{self, OptimizerConfig, OptimizerKind};
use serde_json::json;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, Clone)]
pub struct LmBench {
    pub modes: Vec<HeadMode>,
    pub optimizer: OptimizerKind,
    pub threads: usize,
    pub steps: usize,
    pub warmup: usize,
    pub vocab: i64,
    pub emb: i64,
    pub hidden: i64,
    pub layers: i64,
    pub dropout: f64,
    pub batch: i64,
    pub eval_batch: i64,
    pub bptt: i64,
    pub device: Device,
    /// Arithmetic of the forward pass: TF32 products or bf16 autocast (`train.precision`).
    pub precision: crate::engine::Precision,
    /// Also measure the device time of the step's kernels with the profiler (CUDA).
    pub profile: bool,
}

impl Default for LmBench {
    fn default() -> Self {
        Self {
            modes: vec![HeadMode::Learned, HeadMode::Tied, HeadMode::FixedOrthogonal],
            optimizer: OptimizerKind::Sgd,
            threads: 0,
            steps: 10,
            warmup: 2,
            vocab: 33_278,
            emb: 512,
            hidden: 512,
            layers: 2,
            dropout: 0.5,
            batch: 20,
            eval_batch: 10,
            bptt: 35,
            device: Device::Cpu,
            precision: Default::default(),
            profile: false,
        }
    }
}

/// Parses a comma-separated mode list (`--modes`); `fixed` is the reference script's name
/// for `fixed-orthogonal`.
pub fn parse_modes(list: &str) -> Result<Vec<HeadMode>> {
    Ok(crate::bench::parse_modes("--modes", list)?
        .into_iter()
        .map(|(_, mode)| mode)
        .collect())
}

/// `f` in a bf16 autocast scope when the bench asks for it.
fn autocast_if<T>(b: &LmBench, f: impl FnOnce() -> T) -> Result<T> {
    if b.precision == crate::engine::Precision::Bf16 {
        crate::native::with_bf16_autocast(b.device, f)
    } else {
        Ok(f())
    }
}

/// Benchmarks one mode; returns the JSON line.
pub fn bench_mode(b: &LmBench, mode: HeadMode) -> Result<serde_json::Value> {
    crate::bench::set_threads(b.threads);
    crate::engine::set_precision(b.precision)?;
    tch::manual_seed(0);
    crate::memory::reset_peak_rss();
    let mut lm = LmConfig::default();
    lm.model.emb_size = b.emb;
    lm.model.hidden_size = b.hidden;
    lm.model.layers = b.layers;
    lm.model.dropout_input = b.dropout;
    lm.model.dropout_hidden = b.dropout;
    lm.model.dropout_output = b.dropout;
    let head = HeadConfig {
        mode,
        ..Default::default()
    };
    if mode.needs_embeddings() {
        return Err(Error::arg(
            "--modes",
            format!(
                "{mode} runs at the speed of fixed-orthogonal (same shapes); bench that instead"
            ),
        ));
    }
    let vs = nn::VarStore::new(b.device);
    let model = LanguageModel::new(&vs, &lm, &head, b.vocab, None)?;
    crate::memory::release_free_memory();
    let params = optim::params_of(&vs, |_| 0.0);
    let trainable: i64 = params.iter().map(|p| p.tensor.numel() as i64).sum();
    let lr = match b.optimizer {
        OptimizerKind::Sgd => 20.0,
        OptimizerKind::Adam | OptimizerKind::Adamw => 1e-3,
    };
    let mut opt = optim::build(
        &OptimizerConfig {
            kind: b.optimizer,
            lr,
            clip: 0.25,
            momentum: 0.0,
            nesterov: false,
        },
        params,
    );
    let opts = (Kind::Int64, b.device);
    let mut state = model.zero_state(b.batch);
    let mut times = Vec::new();
    let mut train_step = |state: &mut LstmState| -> Result<()> {
        let x = Tensor::randint(b.vocab, [b.bptt, b.batch], opts);
        let y = Tensor::randint(b.vocab, [b.bptt * b.batch], opts);
        let (f, loss) = autocast_if(b, || {
            let f = model.forward(&x, state, true);
            let loss = model.training_loss(&f.output, &y);
            (f, loss)
        })?;
        opt.backward_step(&loss.objective)?;
        *state = f.state.detach();
        crate::bench::sync(b.device);
        Ok(())
    };
    for step in 0..b.warmup + b.steps {
        let t0 = Instant::now();
        train_step(&mut state)?;
        if step >= b.warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    // The floor: the device time of a step's kernels (the profiler's sum over `steps`
    // steps), against which the measured step shows the launch and host overhead.
    let kernel_ms = if b.profile {
        let (done, us, _) = crate::native::device_time(b.device.is_cuda(), || {
            (0..b.steps).try_for_each(|_| train_step(&mut state))
        })?;
        done?;
        Some((us / 1e3 / b.steps.max(1) as f64 * 100.0).round() / 100.0)
    } else {
        None
    };
    let mut eval_times = Vec::new();
    tch::no_grad(|| -> Result<()> {
        let mut state = model.zero_state(b.eval_batch);
        for step in 0..b.warmup + b.steps {
            let x = Tensor::randint(b.vocab, [b.bptt, b.eval_batch], opts);
            let y = Tensor::randint(b.vocab, [b.bptt * b.eval_batch], opts);
            let t0 = Instant::now();
            let f = autocast_if(b, || {
                let f = model.forward(&x, &state, false);
                let _ = model.nll(&f.output, &y).double_value(&[]);
                f
            })?;
            state = f.state;
            if step >= b.warmup {
                eval_times.push(t0.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })?;
    let step_s = median(times.clone());
    let eval_s = median(eval_times.clone());
    Ok(json!({
        "impl": "fixclf",
        "torch": crate::bench::LIBTORCH_VERSION,
        "mode": mode.name(),
        "optimizer": b.optimizer.name(),
        "precision": format!("{:?}", b.precision).to_lowercase(),
        "threads": tch::get_num_threads(),
        "vocab": b.vocab, "emb": b.emb, "hidden": b.hidden, "layers": b.layers,
        "batch": b.batch, "bptt": b.bptt, "steps": b.steps,
        "trainable_params": trainable,
        "train_step_ms_median": (step_s * 1e5).round() / 100.0,
        "device_kernel_ms_per_step": kernel_ms,
        "train_tokens_per_s": ((b.bptt * b.batch) as f64 / step_s * 10.0).round() / 10.0,
        "eval_tokens_per_s": ((b.bptt * b.eval_batch) as f64 / eval_s * 10.0).round() / 10.0,
        "optimizer_state_floats": opt.state_numel(),
        // Every timed step, sorted (see `crate::bench::sorted_ms`).
        "train_step_ms_all": sorted_ms(&times),
        "eval_ms_all": sorted_ms(&eval_times),
        "peak_rss_mb": crate::memory::peak_rss_mb(),
    }))
}
