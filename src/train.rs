//! Training and evaluation of the language model: the loop of PyTorch's
//! word_language_model example (truncated BPTT over batch columns, gradient clipping,
//! learning rate divided when validation stops improving), plus variable BPTT, AR/TAR and
//! NT-ASGD (Merity et al. 2017) as options, checkpoints every epoch, exact resume.
use crate::config::{Config, OutputMode};
use crate::corpus::{batchify, get_batch, Corpus, CorpusFiles};
use crate::error::{Error, Result};
use crate::lm::{LanguageModel, LstmState};
use crate::memory::peak_rss_mb;
use crate::optim::{Optimizer, Param};
use crate::run::{
    save_safetensors, Checkpoint, MetricsLog, RunDir, TrainState, BEST, CHECKPOINT_FORMAT,
    CONFIG_FILE, LAST, SUMMARY_FILE,
};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Picks the device named by the config (`auto`: CUDA when available).
pub fn resolve_device(name: &str) -> Result<Device> {
    let cuda = tch::Cuda::is_available();
    match name {
        "auto" => Ok(if cuda { Device::Cuda(0) } else { Device::Cpu }),
        "cpu" => Ok(Device::Cpu),
        _ if name.starts_with("cuda") => {
            if !cuda {
                return Err(Error::arg(
                    "device",
                    "CUDA is not available: this binary was built without the `cuda` feature \
                     or no GPU is visible; use --device cpu",
                ));
            }
            let idx = name
                .strip_prefix("cuda:")
                .map(|i| i.parse::<usize>())
                .transpose()
                .map_err(|_| Error::arg("device", format!("`{name}`: use cuda or cuda:N")))?
                .unwrap_or(0);
            Ok(Device::Cuda(idx))
        }
        _ => Err(Error::arg(
            "device",
            format!("`{name}`: use auto, cpu or cuda"),
        )),
    }
}

/// Loads the corpus of a config, truncated to the configured token counts.
pub fn load_corpus(cfg: &Config) -> Result<Corpus> {
    let d = &cfg.data;
    let files = CorpusFiles {
        train: d.dir.join("train.txt"),
        valid: d.dir.join("valid.txt"),
        test: d.dir.join("test.txt"),
    };
    Corpus::load(&files, &d.tokenizer_path(), Some(&d.cache_dir))
}

fn head(ids: &[u32], n: usize) -> &[u32] {
    if n == 0 || n >= ids.len() {
        ids
    } else {
        &ids[..n]
    }
}

/// Parameter counts of a model, and the share its fixed modes remove.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParamReport {
    pub total: i64,
    pub trainable: i64,
    /// Values of fixed matrices (regenerated, not stored) and frozen scalars.
    pub fixed: i64,
    /// Parameters of the same network with a learned embedding and classifier.
    pub learned_total: i64,
    /// Share of `learned_total` in embedding + classifier (the paper's 34 M of 38 M).
    pub learned_emb_classifier_share: f64,
    /// Share of `learned_total` that this mode does not train.
    pub share_removed: f64,
}

impl ParamReport {
    pub fn of(model: &LanguageModel, vs: &nn::VarStore) -> ParamReport {
        let trainable: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        let all: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        let fixed = (all - trainable) + model.fixed_matrix_numel();
        let (v, e, h, l) = (
            model.vocab,
            model.cfg.emb_size,
            model.cfg.hidden_size,
            model.cfg.layers,
        );
        let lstm: i64 = (0..l)
            .map(|i| 4 * h * (if i == 0 { e } else { h }) + 4 * h * h + 8 * h)
            .sum();
        let emb_cls = v * e + h * v + v;
        let learned_total = lstm + emb_cls;
        ParamReport {
            total: trainable + fixed,
            trainable,
            fixed,
            learned_total,
            learned_emb_classifier_share: emb_cls as f64 / learned_total as f64,
            share_removed: 1.0 - trainable as f64 / learned_total as f64,
        }
    }

    pub fn describe(&self, mode: OutputMode) -> String {
        let m = |n: i64| format!("{:.2} M", n as f64 / 1e6);
        format!(
            "parameters ({mode}): total {}, trainable {}, fixed {}; with a learned embedding and \
             classifier this network has {}, {:.0}% of them in embedding + classifier; this mode \
             trains {:.1}% fewer",
            m(self.total),
            m(self.trainable),
            m(self.fixed),
            m(self.learned_total),
            100.0 * self.learned_emb_classifier_share,
            100.0 * self.share_removed
        )
    }
}

/// Mean cross-entropy of the model over `data` (from [`batchify`]), in evaluation mode.
pub fn evaluate(model: &LanguageModel, data: &Tensor, bptt: usize) -> f64 {
    tch::no_grad(|| {
        let rows = data.size()[0];
        let batch = data.size()[1];
        let mut state = model.zero_state(batch);
        let mut total = 0.0;
        let mut count = 0i64;
        let mut i = 0;
        while i < rows - 1 {
            let (x, y) = get_batch(data, i, bptt as i64);
            let f = model.forward(&x, &state, false);
            let len = x.size()[0];
            total += model.nll(&f.output, &y).double_value(&[]) * len as f64;
            count += len;
            state = f.state;
            i += len;
        }
        total / count.max(1) as f64
    })
}

/// Everything a command needs to work with one model.
pub struct Session {
    pub cfg: Config,
    pub device: Device,
    pub corpus: Corpus,
    pub vs: nn::VarStore,
    pub model: LanguageModel,
}

impl Session {
    pub fn new(cfg: &Config) -> Result<Session> {
        if cfg.train.threads > 0 {
            tch::set_num_threads(cfg.train.threads as i32);
        }
        let device = resolve_device(&cfg.train.device)?;
        tch::manual_seed(cfg.train.seed as i64);
        let corpus = load_corpus(cfg)?;
        let vs = nn::VarStore::new(device);
        let model = LanguageModel::new(&vs, cfg, corpus.vocab.len() as i64, Some(&corpus.vocab))?;
        Ok(Session {
            cfg: cfg.clone(),
            device,
            corpus,
            vs,
            model,
        })
    }

    fn batches(&self, split: &str) -> Tensor {
        let d = &self.cfg.data;
        let t = &self.cfg.train;
        match split {
            "train" => batchify(
                head(&self.corpus.train, d.train_tokens),
                t.batch_size,
                self.device,
            ),
            "valid" => batchify(
                head(&self.corpus.valid, d.valid_tokens),
                t.eval_batch_size,
                self.device,
            ),
            _ => batchify(
                head(&self.corpus.test, d.test_tokens),
                t.eval_batch_size,
                self.device,
            ),
        }
    }

    /// Checkpoint metadata that identifies this model and vocabulary.
    fn identity(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            (
                "fixclf_version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            ("mode".to_string(), self.model.mode.name().to_string()),
            (
                "vocab_size".to_string(),
                self.corpus.vocab.len().to_string(),
            ),
            (
                "vocab_sha256".to_string(),
                self.corpus.vocab.hash().to_string(),
            ),
            (
                "model".to_string(),
                serde_json::to_string(&self.cfg.model).unwrap_or_default(),
            ),
        ]);
        if let Some(spec) = self.model.fixed_spec_json() {
            m.insert("fixed_matrix".to_string(), spec);
        }
        m
    }

    /// Loads model weights from a checkpoint after checking it belongs to this model.
    pub fn load_weights(&self, ckpt: &Checkpoint) -> Result<()> {
        ckpt.expect_meta("format", CHECKPOINT_FORMAT, "program")?;
        ckpt.expect_meta("vocab_sha256", self.corpus.vocab.hash(), "vocabulary")?;
        ckpt.expect_meta("mode", self.model.mode.name(), "output mode")?;
        if let Some(spec) = self.model.fixed_spec_json() {
            ckpt.expect_meta(
                "fixed_matrix",
                &spec,
                "fixed matrix (kind, seed or embeddings file)",
            )?;
        }
        ckpt.copy_into(&self.vs.variables())
    }

    fn model_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// How `train` treats an existing run folder, and how it talks.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub resume: bool,
    pub force: bool,
    pub quiet: bool,
}

/// What a finished run reports (`summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub run: String,
    pub mode: String,
    pub params: ParamReport,
    pub best_val_loss: f64,
    pub best_val_ppl: f64,
    pub test_loss: f64,
    pub test_ppl: f64,
    pub epochs: usize,
    pub steps: u64,
    pub train_tokens: u64,
    pub wall_s: f64,
    pub train_s: f64,
    pub train_tokens_per_s: f64,
    pub peak_rss_mb: f64,
    pub optimizer_state_floats: i64,
    pub checkpoint_bytes: u64,
    pub final_alpha: Option<f64>,
    pub device: String,
    pub threads: i32,
}

struct Trainer<'a> {
    s: &'a Session,
    run: RunDir,
    opt: Optimizer,
    st: TrainState,
    metrics: MetricsLog,
    /// NT-ASGD running averages of the trainable tensors, when switched on.
    averages: Option<Vec<Tensor>>,
    quiet: bool,
}

/// Trains the model of `cfg` in `<runs_dir>/<name>`, then evaluates the best checkpoint on
/// the test split and writes `summary.json`.
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<Summary> {
    let run = RunDir::new(cfg.run_dir());
    let resume = opts.resume && run.has_last();
    if opts.resume && !resume && run.is_finished() {
        return Err(Error::arg(
            run.path.display().to_string(),
            "this run has finished (summary.json); use --force to train it again",
        ));
    }
    if !resume {
        run.check_fresh(opts.force || opts.resume)?;
    }
    // Load data and build the model before touching the run folder: bad input leaves no
    // run folder behind.
    crate::memory::reset_peak_rss();
    let s = Session::new(cfg)?;
    // Building a fixed matrix needs f64 temporaries several times its size; hand them back.
    crate::memory::release_free_memory();
    if !resume {
        run.create_fresh(opts.force || opts.resume)?;
    }
    let report = ParamReport::of(&s.model, &s.vs);
    if !opts.quiet {
        println!(
            "| {} on {:?}, {} threads | vocabulary {} | train {} tokens",
            cfg.name,
            s.device,
            tch::get_num_threads(),
            s.corpus.vocab.len(),
            head(&s.corpus.train, cfg.data.train_tokens).len()
        );
        println!("| {}", report.describe(s.model.mode));
    }
    let params = trainable_params(&s);
    let opt = Optimizer::new(cfg.train.optimizer, cfg.train.lr, params);
    let mut trainer = Trainer {
        run: run.clone(),
        opt,
        st: TrainState {
            epoch: 1,
            lr: cfg.train.lr,
            ..TrainState::default()
        },
        metrics: run.metrics()?,
        averages: None,
        quiet: opts.quiet,
        s: &s,
    };
    if resume {
        trainer.resume()?;
    } else {
        run.write_text(CONFIG_FILE, &cfg.to_toml())?;
        trainer.metrics.write(
            &json!({"event": "start", "params": report, "device": format!("{:?}", s.device)}),
        )?;
    }
    let wall_start = Instant::now() - std::time::Duration::from_secs_f64(trainer.st.wall_seconds);
    let train_data = s.batches("train");
    let valid_data = s.batches("valid");
    while trainer.st.epoch <= cfg.train.epochs {
        let epoch_start = Instant::now();
        trainer.train_epoch(&train_data, wall_start)?;
        let val_loss = trainer.with_averages(|| evaluate(&s.model, &valid_data, cfg.train.bptt));
        trainer.end_epoch(val_loss, epoch_start, wall_start)?;
    }
    // Test with the best checkpoint (the last one when no epoch improved).
    let best = run.file(BEST);
    let ckpt = Checkpoint::load(&if best.exists() { best } else { run.file(LAST) })?;
    s.load_weights(&ckpt)?;
    let test_loss = evaluate(&s.model, &s.batches("test"), cfg.train.bptt);
    let best_val_loss = trainer.st.best_val_loss.unwrap_or(f64::NAN);
    let summary = Summary {
        run: cfg.name.clone(),
        mode: s.model.mode.name().into(),
        params: report,
        best_val_loss,
        best_val_ppl: best_val_loss.exp(),
        test_loss,
        test_ppl: test_loss.exp(),
        epochs: trainer.st.finished_epochs,
        steps: trainer.st.step,
        train_tokens: trainer.st.train_tokens,
        wall_s: wall_start.elapsed().as_secs_f64(),
        train_s: trainer.st.train_seconds,
        train_tokens_per_s: trainer.st.train_tokens as f64 / trainer.st.train_seconds.max(1e-9),
        peak_rss_mb: peak_rss_mb(),
        optimizer_state_floats: trainer.opt.state_numel(),
        checkpoint_bytes: std::fs::metadata(run.file(BEST))
            .map(|m| m.len())
            .unwrap_or(0),
        final_alpha: s.model.alpha(),
        device: format!("{:?}", s.device),
        threads: tch::get_num_threads(),
    };
    trainer
        .metrics
        .write(&json!({"event": "test", "test_loss": test_loss, "test_ppl": summary.test_ppl}))?;
    if !opts.quiet {
        println!("{}", "=".repeat(89));
        println!(
            "| End of training | test loss {:5.2} | test ppl {:8.2}",
            test_loss, summary.test_ppl
        );
        println!("{}", "=".repeat(89));
    }
    run.write_json(SUMMARY_FILE, &summary)?;
    Ok(summary)
}

fn trainable_params(s: &Session) -> Vec<Param> {
    crate::optim::params_of(&s.vs, |name| {
        if name.ends_with("alpha") {
            s.cfg.output.alpha_weight_decay
        } else {
            s.cfg.train.weight_decay
        }
    })
}

impl Trainer<'_> {
    fn cfg(&self) -> &Config {
        &self.s.cfg
    }

    fn resume(&mut self) -> Result<()> {
        let path = self.run.file(LAST);
        let ckpt = Checkpoint::load(&path)?;
        self.s.load_weights(&ckpt)?;
        let state = ckpt
            .meta("state")
            .and_then(|j| serde_json::from_str::<TrainState>(j).ok())
            .ok_or_else(|| {
                Error::bad_file(&path, "no training state in the checkpoint metadata")
            })?;
        let opt_steps: i64 = ckpt
            .meta("optimizer_steps")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.opt.load_state(&ckpt, opt_steps)?;
        self.opt.lr = state.lr;
        if state.asgd_since.is_some() {
            let avgs = self
                .opt
                .params()
                .iter()
                .map(|p| {
                    ckpt.tensors
                        .get(&format!("asgd.{}", p.name))
                        .map(|t| t.to_device(self.s.device))
                        .ok_or_else(|| Error::bad_file(&path, format!("missing asgd.{}", p.name)))
                })
                .collect::<Result<Vec<_>>>()?;
            self.averages = Some(avgs);
        }
        if !self.quiet {
            println!(
                "| resuming {} at epoch {} step {} (lr {})",
                self.run.path.display(),
                state.epoch,
                state.step,
                state.lr
            );
        }
        self.metrics.write(
            &json!({"event": "resume", "epoch": state.epoch, "step": state.step, "lr": state.lr}),
        )?;
        self.st = state;
        Ok(())
    }

    /// Runs `f` with the NT-ASGD averages swapped into the model, if any.
    fn with_averages<T>(&self, f: impl FnOnce() -> T) -> T {
        let Some(avgs) = &self.averages else {
            return f();
        };
        let saved: Vec<Tensor> = self
            .opt
            .params()
            .iter()
            .map(|p| p.tensor.detach().copy())
            .collect();
        tch::no_grad(|| {
            for (p, a) in self.opt.params().iter().zip(avgs) {
                p.tensor.shallow_clone().copy_(a);
            }
        });
        let out = f();
        tch::no_grad(|| {
            for (p, s) in self.opt.params().iter().zip(&saved) {
                p.tensor.shallow_clone().copy_(s);
            }
        });
        out
    }

    fn train_epoch(&mut self, data: &Tensor, wall_start: Instant) -> Result<()> {
        let t = self.cfg().train.clone();
        let rows = data.size()[0] as usize;
        let batch = data.size()[1] as usize;
        let n_batches = (rows.saturating_sub(1)).div_ceil(t.bptt);
        let limit = if t.max_steps_per_epoch > 0 {
            t.max_steps_per_epoch.min(n_batches)
        } else {
            n_batches
        };
        // Random streams (dropout masks, BPTT lengths) restart from a seed derived from the
        // step, so a run resumed at an epoch boundary continues exactly as if uninterrupted.
        tch::manual_seed(t.seed as i64 + self.st.step as i64);
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(t.seed ^ (self.st.step.wrapping_mul(0x9E37_79B9)));
        let mut state: LstmState = self.s.model.zero_state(batch as i64);
        let bar = progress_bar(limit as u64, self.quiet);
        bar.set_position(self.st.epoch_step as u64);
        let mut interval_loss = 0.0;
        let mut interval_steps = 0usize;
        let mut interval_tokens = 0usize;
        let mut interval_start = Instant::now();
        let mut i = self.st.position;
        while i < rows - 1 && self.st.epoch_step < limit {
            let step_start = Instant::now();
            let seq_len = if t.variable_bptt {
                let base = if rng.gen::<f64>() < 0.95 {
                    t.bptt as f64
                } else {
                    t.bptt as f64 / 2.0
                };
                let normal: f64 = rand_distr_normal(&mut rng);
                (base + 5.0 * normal).round().max(5.0) as usize
            } else {
                t.bptt
            };
            let (x, y) = get_batch(data, i as i64, seq_len as i64);
            let len = x.size()[0] as usize;
            state = state.detach();
            let f = self.s.model.forward(&x, &state, true);
            let tl = self.s.model.training_loss(&f.output, &y);
            let raw_loss = tl.value.double_value(&[]);
            let mut loss = tl.objective;
            if !raw_loss.is_finite() {
                return Err(self.diverged(raw_loss));
            }
            if t.ar > 0.0 {
                loss += f.output.square().mean(Kind::Float) * t.ar;
            }
            if t.tar > 0.0 && len > 1 {
                let r = &f.raw_output;
                let d = r.narrow(0, 1, len as i64 - 1) - r.narrow(0, 0, len as i64 - 1);
                loss += d.square().mean(Kind::Float) * t.tar;
            }
            let norm = self
                .opt
                .backward_step(&loss, t.clip, len as f64 / t.bptt as f64);
            if !norm.is_finite() {
                return Err(self.diverged(norm));
            }
            if let Some(avgs) = &mut self.averages {
                let since = self.st.asgd_since.unwrap_or(self.st.step);
                let n = (self.st.step + 1 - since) as f64;
                tch::no_grad(|| {
                    for (a, p) in avgs.iter_mut().zip(self.opt.params()) {
                        let _ = a.lerp_(&p.tensor, 1.0 / (n + 1.0));
                    }
                });
            }
            state = f.state;
            self.st.step += 1;
            self.st.epoch_step += 1;
            self.st.train_tokens += (len * batch) as u64;
            self.st.train_seconds += step_start.elapsed().as_secs_f64();
            i += len;
            self.st.position = i;
            bar.inc(1);
            interval_loss += raw_loss;
            interval_steps += 1;
            interval_tokens += len * batch;
            if self.st.epoch_step % t.log_interval == 0 {
                let secs = interval_start.elapsed().as_secs_f64();
                let cur = interval_loss / interval_steps as f64;
                let line = format!(
                    "| epoch {:3} | {:5}/{:5} batches | lr {} | ms/batch {:5.2} | loss {:5.2} | ppl {:8.2}",
                    self.st.epoch,
                    self.st.epoch_step,
                    limit,
                    format_lr(self.opt.lr),
                    secs * 1000.0 / interval_steps as f64,
                    cur,
                    cur.exp()
                );
                self.say(&bar, &line);
                self.metrics.write(&json!({
                    "event": "log", "epoch": self.st.epoch, "step": self.st.step,
                    "batch": self.st.epoch_step, "batches": limit, "lr": self.opt.lr,
                    "ms_per_batch": secs * 1000.0 / interval_steps as f64,
                    "loss": cur, "ppl": cur.exp(),
                    "tokens_per_s": interval_tokens as f64 / secs,
                    "elapsed_s": wall_start.elapsed().as_secs_f64(),
                    "alpha": self.s.model.alpha(),
                }))?;
                interval_loss = 0.0;
                interval_steps = 0;
                interval_tokens = 0;
                interval_start = Instant::now();
            }
            if t.checkpoint_interval > 0 && self.st.step % t.checkpoint_interval as u64 == 0 {
                self.st.wall_seconds = wall_start.elapsed().as_secs_f64();
                self.save_last()?;
            }
        }
        bar.finish_and_clear();
        // The next epoch starts where this one stopped (an epoch cut short by
        // max_steps_per_epoch does not replay the same batches), from the top once the
        // whole training set has been seen.
        if i >= rows - 1 {
            self.st.position = 0;
        }
        Ok(())
    }

    fn say(&self, bar: &indicatif::ProgressBar, line: &str) {
        if self.quiet {
            return;
        }
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    }

    fn diverged(&mut self, value: f64) -> Error {
        let _ = self.metrics.write(&json!({"event": "diverged", "epoch": self.st.epoch, "step": self.st.step, "value": value.to_string()}));
        let kept = if self.run.has_last() {
            format!(
                "the last good checkpoint is kept in {}",
                self.run.file(LAST).display()
            )
        } else {
            "no checkpoint had been written yet".to_string()
        };
        Error::Diverged(format!(
            "{}: training diverged at epoch {} step {} (loss or gradient is {value}); {kept}; \
             lower train.lr or train.clip and start again (--force) or resume (--resume)",
            self.run.path.display(),
            self.st.epoch,
            self.st.step + 1
        ))
    }

    fn end_epoch(
        &mut self,
        val_loss: f64,
        epoch_start: Instant,
        wall_start: Instant,
    ) -> Result<()> {
        let t = self.cfg().train.clone();
        let epoch_s = epoch_start.elapsed().as_secs_f64();
        if !self.quiet {
            println!("{}", "-".repeat(89));
            println!(
                "| end of epoch {:3} | time: {:5.2}s | valid loss {:5.2} | valid ppl {:8.2}",
                self.st.epoch,
                epoch_s,
                val_loss,
                val_loss.exp()
            );
            println!("{}", "-".repeat(89));
        }
        if !val_loss.is_finite() {
            return Err(self.diverged(val_loss));
        }
        let improved = self.st.best_val_loss.is_none_or(|b| val_loss < b);
        self.st.val_losses.push(val_loss);
        if improved {
            self.st.best_val_loss = Some(val_loss);
            // Written while the NT-ASGD averages (if any) sit in the model.
            let meta = self.meta(false);
            self.with_averages(|| {
                save_safetensors(&self.run.file(BEST), &self.s.model_tensors(), &meta)
            })?;
        } else if self.averages.is_none() {
            self.opt.lr /= t.lr_decay;
        }
        // NT-ASGD: switch to averaging when validation is no better than `nonmono` epochs ago.
        let n = self.st.val_losses.len();
        if t.asgd && self.averages.is_none() && n > t.nonmono {
            let earlier = self.st.val_losses[..n - t.nonmono]
                .iter()
                .cloned()
                .fold(f64::INFINITY, f64::min);
            if val_loss > earlier {
                self.averages = Some(
                    self.opt
                        .params()
                        .iter()
                        .map(|p| p.tensor.detach().copy())
                        .collect(),
                );
                self.st.asgd_since = Some(self.st.step);
                if !self.quiet {
                    println!("| switching to averaged SGD");
                }
            }
        }
        self.st.lr = self.opt.lr;
        self.st.finished_epochs = self.st.epoch;
        self.metrics.write(&json!({
            "event": "epoch", "epoch": self.st.epoch, "step": self.st.step,
            "val_loss": val_loss, "val_ppl": val_loss.exp(), "lr": self.opt.lr,
            "epoch_s": epoch_s, "elapsed_s": wall_start.elapsed().as_secs_f64(),
            "train_tokens": self.st.train_tokens,
            "tokens_per_s": self.st.train_tokens as f64 / self.st.train_seconds.max(1e-9),
            "alpha": self.s.model.alpha(), "peak_rss_mb": peak_rss_mb(),
            "asgd": self.averages.is_some(),
        }))?;
        self.st.epoch += 1;
        self.st.epoch_step = 0;
        self.st.wall_seconds = wall_start.elapsed().as_secs_f64();
        self.save_last()
    }

    fn meta(&self, with_state: bool) -> HashMap<String, String> {
        let mut m = self.s.identity();
        if with_state {
            m.insert(
                "state".into(),
                serde_json::to_string(&self.st).unwrap_or_default(),
            );
            m.insert("optimizer_steps".into(), self.opt.steps.to_string());
        }
        m
    }

    /// `self.st.lr` equals `self.opt.lr` here: both start from the config (or the resumed
    /// state) and change together at epoch ends.
    fn save_last(&self) -> Result<()> {
        let meta = self.meta(true);
        let mut tensors = self.s.model_tensors();
        tensors.extend(self.opt.state_tensors());
        if let Some(avgs) = &self.averages {
            for (p, a) in self.opt.params().iter().zip(avgs) {
                tensors.push((format!("asgd.{}", p.name), a.shallow_clone()));
            }
        }
        save_safetensors(&self.run.file(LAST), &tensors, &meta)
    }
}

/// The learning rate as the PyTorch example prints it (`20.00`), or in scientific notation
/// when that would show nothing (Adam's `2.00e-3`).
fn format_lr(lr: f64) -> String {
    if lr >= 0.01 {
        format!("{lr:05.2}")
    } else {
        format!("{lr:.2e}")
    }
}

fn rand_distr_normal(rng: &mut impl Rng) -> f64 {
    // Box-Muller: one standard normal sample.
    let u1: f64 = rng.gen::<f64>().max(1e-12);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} batches [{elapsed_precise} < {eta_precise}] {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Evaluates a finished (or unfinished) run's best checkpoint on a split.
pub fn eval_run(run_dir: &Path, split: &str, device: Option<&str>) -> Result<(f64, f64)> {
    let run = RunDir::new(run_dir);
    let cfg_path = run.file(CONFIG_FILE);
    if !cfg_path.exists() {
        return Err(Error::arg(
            run_dir.display().to_string(),
            "not a run folder (no config.toml); pass the folder that `fixclf train` wrote",
        ));
    }
    let mut overrides = Vec::new();
    if let Some(d) = device {
        overrides.push(format!("train.device={d}"));
    }
    let cfg = crate::config::load(&cfg_path, &overrides)?;
    let s = Session::new(&cfg)?;
    let best = run.file(BEST);
    let path = if best.exists() { best } else { run.file(LAST) };
    if !path.exists() {
        return Err(Error::arg(
            run_dir.display().to_string(),
            "the run has no checkpoint yet (best.safetensors or last.safetensors)",
        ));
    }
    s.load_weights(&Checkpoint::load(&path)?)?;
    let split_name = match split {
        "valid" | "test" | "train" => split,
        other => {
            return Err(Error::arg(
                "--split",
                format!("`{other}`: use train, valid or test"),
            ))
        }
    };
    let data = if split_name == "train" {
        batchify(
            head(&s.corpus.train, cfg.data.train_tokens),
            cfg.train.eval_batch_size,
            s.device,
        )
    } else {
        s.batches(split_name)
    };
    let loss = evaluate(&s.model, &data, cfg.train.bptt);
    Ok((loss, loss.exp()))
}

/// Parameter and optimizer sizes of a config's model without training it.
pub fn describe_config(cfg: &Config) -> Result<ParamReport> {
    let s = Session::new(cfg)?;
    Ok(ParamReport::of(&s.model, &s.vs))
}
