//! The training loop: epochs of steps over a [`Task`], as PyTorch's word_language_model runs
//! them (log every `log_interval` steps, validate after each epoch, keep the best checkpoint,
//! decay the learning rate), with exact resume from `last.safetensors` and a stop with the
//! last good checkpoint kept when the loss diverges. Saving and resuming `last.safetensors`
//! and stopping on a signal: [`super::resume`]; non-finite values: [`super::numerics`].
use super::console::{describe_quality, format_lr, progress_bar, quality};
use super::metrics::{EpochEvent, LogEvent, Throughput};
use super::numerics::NanInjection;
use super::settings::{Precision, TrainConfig};
use super::step_records::StepRecords;
use super::step_runner::StepGraphs;
use super::{
    load_weights, model_tensors, save_safetensors, Checkpoint, Evaluation, Event, MetricsLog,
    RunDir, Split, Summary, Task, TrainState, Unit, BEST, CONFIG_FILE, SUMMARY_FILE,
};
use crate::classifier::HeadConfig;
use crate::error::{Error, Result};
use crate::memory::peak_rss_mb;
use crate::optim::{self, Optimizer, OptimizerConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tch::Tensor;

/// How `train` treats an existing run folder, and how it talks.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub resume: bool,
    pub force: bool,
    pub quiet: bool,
}

/// Trains a task with `settings` (`[train]`) in the run folder `run`, then evaluates the
/// best checkpoint on the test split and writes `summary.json`. `head` gives alpha its own
/// optimizer settings; `config_toml` is the whole config, recorded in the run folder.
/// `build` makes the task (data and model); it runs after the run folder is checked and
/// before it is created, so bad input leaves no folder.
pub fn train(
    settings: &TrainConfig,
    head: &HeadConfig,
    run: &RunDir,
    config_toml: &str,
    opts: &TrainOptions,
    build: impl FnOnce() -> Result<Box<dyn Task>>,
) -> Result<Summary> {
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
    let resume = super::data_parallel::agree_resume(resume)?;
    let writes = super::data_parallel::writes();
    crate::memory::reset_peak_rss();
    let mut task = build()?;
    // Building a fixed matrix needs f64 temporaries several times its size; hand them back.
    crate::memory::release_free_memory();
    if !resume && writes {
        run.create_fresh(opts.force || opts.resume)?;
    }
    let report = task.params();
    let t = settings;
    let device = task.device();
    super::set_precision(t.precision)?;
    if !opts.quiet {
        announce(run, task.as_ref(), &report, t.precision);
    }
    let opt = build_optimizer(t, head, task.as_ref());
    let mut trainer = Trainer {
        settings,
        run: run.clone(),
        opt,
        st: TrainState {
            epoch: 1,
            lr: t.lr,
            ..TrainState::default()
        },
        metrics: if writes {
            run.metrics()?
        } else {
            MetricsLog::discard(&run.file(super::METRICS_FILE))
        },
        averages: None,
        quiet: opts.quiet,
        task: task.as_mut(),
        carried: None,
        interval_start: Instant::now(),
        nan_injection: NanInjection::from_env()?,
        records: StepRecords::new(t.log_interval, device),
        graphs: StepGraphs::default(),
    };
    if resume {
        trainer.resume()?;
    } else if writes {
        run.write_text(CONFIG_FILE, config_toml)?;
        trainer.metrics.write(&Event::Start {
            params: report.clone(),
            device: format!("{:?}", trainer.task.device()),
            task: Some(trainer.task.name().into()),
            mode: Some(trainer.task.head_mode().name().into()),
            classes: Some(trainer.task.classes()),
        })?;
    }
    trainer.join_ranks()?;
    let wall_start = Instant::now() - Duration::from_secs_f64(trainer.st.wall_seconds);
    // A signal that came while the data loaded: a fresh run gets a checkpoint at step 0, so
    // that the resume command works whatever the moment.
    trainer.stop_if_requested(wall_start, !resume)?;
    while trainer.st.epoch <= t.epochs {
        let epoch_start = Instant::now();
        trainer.train_epoch(wall_start)?;
        // Each rank's last forward pass moved its BatchNorm statistics: rank 0's go to all
        // before the ranks evaluate their shards with them.
        trainer.sync_buffers()?;
        let precision = t.precision;
        let val =
            trainer.with_averages(|task| super::evaluate_in(task, Split::Valid, precision))?;
        trainer.end_epoch(&val, epoch_start, wall_start)?;
        // end_epoch wrote last.safetensors: a signal during validation stops here.
        trainer.stop_if_requested(wall_start, false)?;
    }
    trainer.check_weights_agree()?;
    trainer.finish(report, wall_start)
}

/// The run's first console lines: where it trains, on what data, with how many parameters.
fn announce(run: &RunDir, task: &dyn Task, report: &super::ParamReport, precision: Precision) {
    println!(
        "| {} on {:?}, {} threads | {}",
        run.name(),
        task.device(),
        tch::get_num_threads(),
        task.describe_data()
    );
    println!(
        "| {}",
        report.describe(task.head_mode().name(), task.removable())
    );
    if precision == Precision::Tf32 && !task.device().is_cuda() {
        println!("| train.precision = \"tf32\" changes nothing on the CPU (float32 there)");
    }
}

/// The optimizer of `t` over the task's trainable variables, alpha with the head's own
/// settings ([`crate::classifier::training_params`]).
fn build_optimizer(t: &TrainConfig, head: &HeadConfig, task: &dyn Task) -> Box<dyn Optimizer> {
    let params = crate::classifier::training_params(task.var_store(), t.weight_decay, head);
    optim::build(
        &OptimizerConfig {
            kind: t.optimizer,
            lr: t.lr,
            clip: t.clip,
            momentum: t.momentum,
            nesterov: t.nesterov,
        },
        params,
    )
}

/// The random streams of step `step`: libtorch's generators (dropout, weight drop, crops
/// and flips; `manual_seed` reseeds the CPU and every CUDA generator) and the task's own
/// stream (variable BPTT), both from `(seed, step)` alone. So a run resumed at any step
/// draws what the uninterrupted run drew there, and nothing (evaluation, a resume) shifts
/// the streams of later steps.
/// The task's stream is the same on every rank of a data-parallel run (it chooses the
/// BPTT length of the global batch); libtorch's differs per rank (`(seed, rank, step)`:
/// each rank's dropout masks and crops are its own), and is the single process's on rank 0.
fn step_streams(seed: u64, step: u64) -> StdRng {
    let s = splitmix64(seed ^ splitmix64(step));
    let rank = crate::distributed::rank() as u64;
    let torch_seed = if rank == 0 { s } else { s ^ splitmix64(!rank) };
    tch::manual_seed((torch_seed >> 1) as i64);
    StdRng::seed_from_u64(s)
}

/// SplitMix64's finalizer: nearby (seed, step) pairs give unrelated seeds, so seed 1 at
/// step 2 does not replay seed 2 at step 1.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) struct Trainer<'a> {
    pub(super) settings: &'a TrainConfig,
    pub(super) task: &'a mut dyn Task,
    pub(super) run: RunDir,
    pub(super) opt: Box<dyn Optimizer>,
    pub(super) st: TrainState,
    pub(super) metrics: MetricsLog,
    /// NT-ASGD running averages of the trainable tensors, when switched on.
    pub(super) averages: Option<Vec<Tensor>>,
    pub(super) quiet: bool,
    /// What the task carries from step to step (the LM's hidden state) as the checkpoint
    /// resumed from held it, until the epoch in progress restarts.
    pub(super) carried: Option<HashMap<String, Tensor>>,
    /// When the sums of `st.interval` started (timing only).
    pub(super) interval_start: Instant,
    pub(super) nan_injection: NanInjection,
    /// The numbers of the steps since the last `settle`, on the device.
    pub(super) records: StepRecords,
    /// Captured training steps (CUDA).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(super) graphs: StepGraphs,
}

impl Trainer<'_> {
    /// Runs `f` with the NT-ASGD averages swapped into the model, if any.
    fn with_averages<T>(&self, f: impl FnOnce(&dyn Task) -> T) -> T {
        let Some(avgs) = &self.averages else {
            return f(self.task);
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
        let out = f(self.task);
        tch::no_grad(|| {
            for (p, s) in self.opt.params().iter().zip(&saved) {
                p.tensor.shallow_clone().copy_(s);
            }
        });
        out
    }

    fn train_epoch(&mut self, wall_start: Instant) -> Result<()> {
        let t = self.settings;
        let n_batches = self.task.steps_per_epoch();
        let limit = if t.max_steps_per_epoch > 0 {
            t.max_steps_per_epoch.min(n_batches)
        } else {
            n_batches
        };
        self.task.start_epoch(self.st.epoch, self.st.position);
        if let Some(carried) = self.carried.take() {
            if self.st.epoch_step > 0 {
                self.task
                    .restore_carried_state(&carried, &self.run.file(super::LAST))?;
            }
        }
        let bar = progress_bar(limit as u64, self.quiet);
        bar.set_position(self.st.epoch_step as u64);
        self.interval_start = Instant::now();
        // Training time is counted up to each `settle`, which waits for the device: a
        // step's own duration on the host is only the time to queue it on a GPU.
        let mut timed_from = Instant::now();
        while self.st.epoch_step < limit {
            let (epoch, epoch_step) = (self.st.epoch, self.st.epoch_step);
            if let Some(lr) = t.schedule.lr_before_step(t, epoch, epoch_step, limit) {
                self.opt.set_learning_rate(lr);
            }
            let mut rng = step_streams(t.seed, self.st.step);
            let Some(staged) = self.task.stage_step(&mut rng) else {
                break;
            };
            // Queued, not waited for: the step's numbers stay on the device until `settle`.
            self.sync_buffers()?;
            self.run_step(&staged)?;
            self.update_averages();
            // A skipped step still used its batch: the data position moves on.
            self.st.step += 1;
            self.st.epoch_step += 1;
            self.st.train_units += staged.units as u64;
            self.st.position = self.task.position();
            bar.inc(1);
            let log = self.st.epoch_step % t.log_interval == 0;
            let saved =
                t.checkpoint_interval > 0 && self.st.step % t.checkpoint_interval as u64 == 0;
            // Agreed by every rank, so all of them stop after this same step.
            let stop = crate::distributed::sync::stop_requested()?.is_some();
            if log || saved || stop || self.records.is_full() || self.st.epoch_step == limit {
                self.settle()?;
                self.st.train_seconds += timed_from.elapsed().as_secs_f64();
                timed_from = Instant::now();
            }
            if log {
                self.log(limit, &bar, wall_start)?;
            }
            if saved {
                self.st.wall_seconds = wall_start.elapsed().as_secs_f64();
                self.save_last()?;
                timed_from = Instant::now();
            }
            // `stop`, not a new look at the flag: the steps are settled only if it was set.
            if stop {
                bar.finish_and_clear();
                return self.stop_if_requested(wall_start, !saved);
            }
        }
        bar.finish_and_clear();
        self.settle()?;
        self.st.train_seconds += timed_from.elapsed().as_secs_f64();
        self.st.position = self.task.next_epoch_position();
        // Steps after the epoch's last log line are not logged (as in PyTorch's example).
        self.st.interval = Default::default();
        Ok(())
    }

    /// NT-ASGD: folds the updated weights into the running averages.
    fn update_averages(&mut self) {
        let Some(avgs) = &mut self.averages else {
            return;
        };
        let since = self.st.asgd_since.unwrap_or(self.st.step);
        let n = (self.st.step + 1 - since) as f64;
        tch::no_grad(|| {
            for (a, p) in avgs.iter_mut().zip(self.opt.params()) {
                let _ = a.lerp_(&p.tensor, 1.0 / (n + 1.0));
            }
        });
    }

    fn log(
        &mut self,
        limit: usize,
        bar: &indicatif::ProgressBar,
        wall_start: Instant,
    ) -> Result<()> {
        let interval = std::mem::take(&mut self.st.interval);
        let secs = self.interval_start.elapsed().as_secs_f64();
        self.interval_start = Instant::now();
        let ms = secs * 1000.0 / (interval.steps + interval.skipped as usize).max(1) as f64;
        // NaN when every step of the interval was skipped.
        let loss = interval.loss / interval.steps as f64;
        let unit = self.task.unit();
        let (ppl, acc) = quality(unit, loss, interval.correct);
        let line = format!(
            "| epoch {:3} | {:5}/{:5} batches | lr {} | ms/batch {:5.2} | {}",
            self.st.epoch,
            self.st.epoch_step,
            limit,
            format_lr(self.opt.learning_rate()),
            ms,
            describe_quality("", loss, ppl, acc)
        );
        if !self.quiet {
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
        self.metrics.write(&Event::Log(LogEvent {
            epoch: self.st.epoch,
            step: self.st.step,
            batch: self.st.epoch_step,
            batches: limit,
            lr: self.opt.learning_rate(),
            ms_per_batch: ms,
            loss,
            ppl,
            acc,
            throughput: Throughput::new(unit, interval.units, interval.units as f64 / secs),
            elapsed_s: wall_start.elapsed().as_secs_f64(),
            alpha: self.task.head().alpha(),
            skipped: interval.skipped,
        }))?;
        Ok(())
    }

    fn end_epoch(
        &mut self,
        val: &Evaluation,
        epoch_start: Instant,
        wall_start: Instant,
    ) -> Result<()> {
        let t = self.settings;
        let epoch_s = epoch_start.elapsed().as_secs_f64();
        if !self.quiet {
            println!("{}", "-".repeat(89));
            println!(
                "| end of epoch {:3} | time: {:5.2}s | {}",
                self.st.epoch,
                epoch_s,
                describe_quality("valid ", val.loss, val.ppl, val.acc)
            );
            println!("{}", "-".repeat(89));
        }
        if !val.loss.is_finite() {
            return Err(self.diverged(
                self.st.step,
                &format!("the validation loss is {}", val.loss),
                val.loss,
                super::numerics::RESTART,
            ));
        }
        let improved = self.st.best_val_loss.is_none_or(|b| val.loss < b);
        self.st.val_losses.push(val.loss);
        if improved {
            self.st.best_val_loss = Some(val.loss);
            self.st.best_val_acc = val.acc;
            // Written while the NT-ASGD averages (if any) sit in the model.
            let meta = self.meta(false);
            let best = self.run.file(BEST);
            if super::data_parallel::writes() {
                self.with_averages(|task| save_safetensors(&best, &model_tensors(task), &meta))?;
            }
        }
        let lr = self.opt.learning_rate();
        let averaging = self.averages.is_some();
        let next_lr = t
            .schedule
            .lr_after_epoch(t, lr, self.st.epoch, improved, averaging);
        self.opt.set_learning_rate(next_lr);
        self.maybe_start_averaging(val.loss);
        self.st.lr = self.opt.learning_rate();
        self.st.finished_epochs = self.st.epoch;
        let unit = self.task.unit();
        let applied = self.st.epoch_step as u64 - self.st.epoch_skips;
        let (_, train_acc) = quality(
            unit,
            0.0,
            (self.st.epoch_samples > 0).then_some((self.st.epoch_correct, self.st.epoch_samples)),
        );
        self.metrics.write(&Event::Epoch(EpochEvent {
            epoch: self.st.epoch,
            step: self.st.step,
            val_loss: val.loss,
            val_ppl: val.ppl,
            val_acc: val.acc,
            val_top5: val.top5,
            train_loss: (applied > 0).then(|| self.st.epoch_loss_sum / applied as f64),
            train_acc,
            lr: self.st.lr,
            epoch_s,
            elapsed_s: wall_start.elapsed().as_secs_f64(),
            throughput: Throughput::new(
                unit,
                self.st.train_units,
                self.st.train_units as f64 / self.st.train_seconds.max(1e-9),
            ),
            alpha: self.task.head().alpha(),
            peak_rss_mb: peak_rss_mb(),
            asgd: self.averages.is_some(),
            skipped_steps: self.st.skipped_steps,
            skipped_files: self.task.skipped_files(),
        }))?;
        self.collapse()?;
        self.st.epoch += 1;
        self.st.epoch_step = 0;
        self.st.epoch_loss_sum = 0.0;
        self.st.epoch_correct = 0;
        self.st.epoch_samples = 0;
        self.st.epoch_skips = 0;
        self.st.wall_seconds = wall_start.elapsed().as_secs_f64();
        self.save_last()
    }

    /// Neural-collapse diagnostics of the model just validated (NT-ASGD averages in it, as
    /// for validation), when the task computes them this epoch: a `collapse` event, one
    /// console line, and the summary's copy (kept in the state saved next).
    fn collapse(&mut self) -> Result<()> {
        let (epoch, last) = (self.st.epoch, self.st.epoch == self.settings.epochs);
        let Some(c) = self.with_averages(|task| task.collapse(epoch, last))? else {
            return Ok(());
        };
        if !self.quiet {
            println!("| neural collapse: {}", c.describe());
        }
        self.metrics.write(&Event::Collapse(c.clone()))?;
        self.st.collapse = Some(c);
        Ok(())
    }

    /// NT-ASGD: switch to averaging when validation is no better than `nonmono` epochs ago.
    fn maybe_start_averaging(&mut self, val_loss: f64) {
        let Some(nonmono) = self.task.nt_asgd() else {
            return;
        };
        let n = self.st.val_losses.len();
        if self.averages.is_some() || n <= nonmono {
            return;
        }
        let earlier = self.st.val_losses[..n - nonmono]
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

    /// Tests the best checkpoint (the last one when no epoch improved), writes the summary.
    fn finish(mut self, params: super::ParamReport, wall_start: Instant) -> Result<Summary> {
        let path = self.run.best_or_last().ok_or_else(|| {
            Error::arg(
                self.run.path.display().to_string(),
                "no checkpoint was written (train.epochs = 0?)",
            )
        })?;
        load_weights(self.task, &Checkpoint::load(&path)?)?;
        let test = super::evaluate_in(self.task, Split::Test, self.settings.precision)?;
        let best_val_loss = self.st.best_val_loss.unwrap_or(f64::NAN);
        let unit = self.task.unit();
        let per_s = self.st.train_units as f64 / self.st.train_seconds.max(1e-9);
        let (tokens, images) = match unit {
            Unit::Tokens => ((Some(self.st.train_units), Some(per_s)), (None, None)),
            Unit::Images => ((None, None), (Some(self.st.train_units), Some(per_s))),
        };
        let summary = Summary {
            run: self.run.name(),
            task: self.task.name().into(),
            mode: self.task.head_mode().name().into(),
            classes: Some(self.task.classes()),
            params,
            best_val_loss,
            best_val_ppl: (unit == Unit::Tokens).then(|| best_val_loss.exp()),
            best_val_acc: self.st.best_val_acc,
            test_loss: test.loss,
            test_ppl: test.ppl,
            test_acc: test.acc,
            test_top5: test.top5,
            epochs: self.st.finished_epochs,
            steps: self.st.step,
            wall_s: wall_start.elapsed().as_secs_f64(),
            train_s: self.st.train_seconds,
            train_tokens: tokens.0,
            train_tokens_per_s: tokens.1,
            train_images: images.0,
            train_images_per_s: images.1,
            peak_rss_mb: peak_rss_mb(),
            optimizer_state_floats: self.opt.state_numel(),
            checkpoint_bytes: std::fs::metadata(self.run.file(BEST))
                .map(|m| m.len())
                .unwrap_or(0),
            final_alpha: self.task.head().alpha(),
            device: format!("{:?}", self.task.device()),
            threads: tch::get_num_threads(),
            collapse: self.st.collapse.clone(),
        };
        self.metrics.write(&Event::Test {
            test_loss: test.loss,
            test_ppl: test.ppl,
            test_acc: test.acc,
            test_top5: test.top5,
        })?;
        if !self.quiet {
            println!("{}", "=".repeat(89));
            println!(
                "| End of training | {}",
                describe_quality("test ", test.loss, test.ppl, test.acc)
            );
            println!("{}", "=".repeat(89));
        }
        if super::data_parallel::writes() {
            self.run.write_json(SUMMARY_FILE, &summary)?;
            self.write_comm_stats()?;
        }
        Ok(summary)
    }
}
