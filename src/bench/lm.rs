//! `fixclf bench lm`: training and evaluation speed of the language model at paper size on
//! random token ids (speed does not depend on them), one JSON line per output mode, with the
//! keys of `../shared/bench/torch_lm_bench.py` so that the two compare line by line.
use crate::bench::measure::{self, timed_steps, Measure, RunArgs};
use crate::bench::sorted_ms;
use crate::classifier::{HeadConfig, HeadMode};
use crate::error::{Error, Result};
use crate::lm::config::LmConfig;
use crate::lm::model::{LanguageModel, LstmState};
use crate::optim::{self, OptimizerConfig, OptimizerKind};
use crate::stats::median;
use serde_json::json;
use std::time::Instant;
use tch::{nn, Kind, Tensor};

/// `fixclf bench lm`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LmArgs {
    /// Comma-separated output modes (`fixed` = fixed-orthogonal).
    #[arg(long, default_value = "learned,tied,fixed-orthogonal")]
    pub modes: String,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    #[arg(long, default_value_t = 33_278)]
    pub vocab: i64,
    #[arg(long, default_value_t = 512)]
    pub emb: i64,
    #[arg(long, default_value_t = 512)]
    pub hidden: i64,
    /// Arithmetic of the step and the evaluation (as `train.precision`).
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: crate::engine::Precision,
    /// Also report the device time of a step's kernels (the profiler; CUDA only): the
    /// floor the step's time is compared with.
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    pub common: RunArgs,
}

impl LmArgs {
    /// The bench these flags describe (an error naming the flag that is wrong).
    pub fn bench(&self) -> Result<LmBench> {
        let measure = self.common.measure()?;
        if self.profile && !measure.device.is_cuda() {
            return Err(Error::arg(
                "--profile",
                "the device time of kernels needs --device cuda",
            ));
        }
        Ok(LmBench {
            precision: self.precision,
            profile: self.profile,
            modes: parse_modes(&self.modes)?,
            optimizer: self.optimizer,
            measure,
            vocab: self.vocab,
            emb: self.emb,
            hidden: self.hidden,
            ..Default::default()
        })
    }
}

#[derive(Debug, Clone)]
pub struct LmBench {
    pub modes: Vec<HeadMode>,
    pub optimizer: OptimizerKind,
    /// The time budget holds for the timed training steps and, again, the evaluation steps.
    pub measure: Measure,
    pub vocab: i64,
    pub emb: i64,
    pub hidden: i64,
    pub layers: i64,
    pub dropout: f64,
    pub batch: i64,
    pub eval_batch: i64,
    pub bptt: i64,
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
            measure: Measure::default(),
            vocab: 33_278,
            emb: 512,
            hidden: 512,
            layers: 2,
            dropout: 0.5,
            batch: 20,
            eval_batch: 10,
            bptt: 35,
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
        crate::native::with_bf16_autocast(b.measure.device, f)
    } else {
        Ok(f())
    }
}

/// The language model of the bench's sizes (dropout as training applies it).
fn lm_config(b: &LmBench) -> LmConfig {
    let mut lm = LmConfig::default();
    lm.model.emb_size = b.emb;
    lm.model.hidden_size = b.hidden;
    lm.model.layers = b.layers;
    lm.model.dropout_input = b.dropout;
    lm.model.dropout_hidden = b.dropout;
    lm.model.dropout_output = b.dropout;
    lm
}

/// The optimizer of the reference script: SGD at lr 20, or Adam(W) at 1e-3; clipping 0.25.
fn optimizer(kind: OptimizerKind, params: Vec<optim::Param>) -> Box<dyn optim::Optimizer> {
    let lr = match kind {
        OptimizerKind::Sgd => 20.0,
        OptimizerKind::Adam | OptimizerKind::Adamw => 1e-3,
    };
    let cfg = OptimizerConfig {
        kind,
        lr,
        clip: 0.25,
        momentum: 0.0,
        nesterov: false,
    };
    optim::build(&cfg, params)
}

/// Benchmarks one mode; returns the JSON line.
pub fn bench_mode(b: &LmBench, mode: HeadMode) -> Result<serde_json::Value> {
    let m = &b.measure;
    measure::set_threads(m.threads);
    crate::engine::set_precision(b.precision)?;
    tch::manual_seed(0);
    crate::memory::reset_peak_rss();
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
    let vs = nn::VarStore::new(m.device);
    let model = LanguageModel::new(&vs, &lm_config(b), &head, b.vocab, None)?;
    crate::memory::release_free_memory();
    let params = optim::params_of(&vs, |_| 0.0);
    let trainable: i64 = params.iter().map(|p| p.tensor.numel() as i64).sum();
    let mut opt = optimizer(b.optimizer, params);
    let opts = (Kind::Int64, m.device);
    let mut state = model.zero_state(b.batch);
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
        measure::sync(m.device);
        Ok(())
    };
    let times = timed_steps(m, || {
        let t0 = Instant::now();
        train_step(&mut state)?;
        Ok(t0.elapsed().as_secs_f64())
    })?;
    // The floor: the device time of a step's kernels (the profiler's sum over `steps`
    // steps), against which the measured step shows the launch and host overhead.
    let kernel_ms = if b.profile {
        let (done, us, _) = crate::native::device_time(m.device.is_cuda(), || {
            (0..m.steps).try_for_each(|_| train_step(&mut state))
        })?;
        done?;
        Some((us / 1e3 / m.steps.max(1) as f64 * 100.0).round() / 100.0)
    } else {
        None
    };
    let eval_times = tch::no_grad(|| {
        let mut state = model.zero_state(b.eval_batch);
        timed_steps(m, || {
            let x = Tensor::randint(b.vocab, [b.bptt, b.eval_batch], opts);
            let y = Tensor::randint(b.vocab, [b.bptt * b.eval_batch], opts);
            let t0 = Instant::now();
            let f = autocast_if(b, || {
                let f = model.forward(&x, &state, false);
                let _ = model.nll(&f.output, &y).double_value(&[]);
                f
            })?;
            state = f.state;
            Ok(t0.elapsed().as_secs_f64())
        })
    })?;
    let step_s = median(&times);
    let eval_s = median(&eval_times);
    Ok(json!({
        "impl": "fixclf",
        "torch": crate::bench::LIBTORCH_VERSION,
        "mode": mode.name(),
        "optimizer": b.optimizer.name(),
        "precision": format!("{:?}", b.precision).to_lowercase(),
        "threads": tch::get_num_threads(),
        "vocab": b.vocab, "emb": b.emb, "hidden": b.hidden, "layers": b.layers,
        "batch": b.batch, "bptt": b.bptt, "steps": m.steps,
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
