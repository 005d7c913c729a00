//! `last.safetensors`: what it holds (model, optimizer state and step count, NT-ASGD
//! averages, what the task carries between steps, the [`TrainState`] as JSON: epoch, step,
//! data position, lr, the sums of the epoch and of the log interval), writing it, resuming
//! from it, and stopping on SIGINT / SIGTERM with it written at a step boundary.
//!
//! Together with the per-step random streams (`trainer::step_streams`) this makes a resumed
//! run repeat the uninterrupted one, whatever step it stopped at.
use super::trainer::Trainer;
use super::{
    identity_meta, load_weights, model_tensors, save_safetensors, Checkpoint, Event, TrainState,
    CONFIG_FILE, LAST,
};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::time::Instant;

/// Prefix of the task's carried tensors in `last.safetensors`.
const CARRIED: &str = "task.";

impl Trainer<'_> {
    pub(super) fn resume(&mut self) -> Result<()> {
        if super::data_parallel::writes() {
            self.run.remove_stale_temps();
        }
        let path = self.run.file(LAST);
        let ckpt = Checkpoint::load(&path)?;
        load_weights(self.task, &ckpt)?;
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
        self.opt.load_state(&ckpt.tensors, &path, opt_steps)?;
        self.opt.set_learning_rate(state.lr);
        if state.asgd_since.is_some() {
            let avgs = self
                .opt
                .params()
                .iter()
                .map(|p| {
                    ckpt.tensors
                        .get(&format!("asgd.{}", p.name))
                        .map(|t| t.to_device(self.task.device()))
                        .ok_or_else(|| Error::bad_file(&path, format!("missing asgd.{}", p.name)))
                })
                .collect::<Result<Vec<_>>>()?;
            self.averages = Some(avgs);
        }
        self.carried = Some(
            ckpt.tensors
                .iter()
                .filter_map(|(k, t)| {
                    k.strip_prefix(CARRIED)
                        .map(|name| (name.to_string(), t.shallow_clone()))
                })
                .collect(),
        );
        if !self.quiet {
            println!(
                "| resuming {} at epoch {} step {} (lr {})",
                self.run.path.display(),
                state.epoch,
                state.step,
                state.lr
            );
        }
        self.metrics.write(&Event::Resume {
            epoch: state.epoch,
            step: state.step,
            lr: state.lr,
        })?;
        self.st = state;
        Ok(())
    }

    pub(super) fn meta(&self, with_state: bool) -> HashMap<String, String> {
        let mut m = identity_meta(self.task);
        if with_state {
            m.insert(
                "state".into(),
                serde_json::to_string(&self.st).unwrap_or_default(),
            );
            m.insert("optimizer_steps".into(), self.opt.steps().to_string());
        }
        m
    }

    /// `self.st.lr` equals the optimizer's learning rate here: both start from the config (or
    /// the resumed state) and change together at epoch ends.
    pub(super) fn save_last(&self) -> Result<()> {
        let meta = self.meta(true);
        let mut tensors = model_tensors(self.task);
        tensors.extend(self.opt.state_tensors());
        if let Some(avgs) = &self.averages {
            for (p, a) in self.opt.params().iter().zip(avgs) {
                tensors.push((format!("asgd.{}", p.name), a.shallow_clone()));
            }
        }
        // On every rank: a task's carried state may be gathered from all of them.
        for (name, t) in self.task.carried_state()? {
            tensors.push((format!("{CARRIED}{name}"), t));
        }
        if super::data_parallel::writes() {
            save_safetensors(&self.run.file(LAST), &tensors, &meta)?;
        }
        self.wait_for_writer("last.safetensors written")
    }

    /// After a signal: writes `last.safetensors` where training stands (unless `saved`
    /// already), then stops with [`Error::Interrupted`]. Ok when no signal came.
    pub(super) fn stop_if_requested(&mut self, wall_start: Instant, save: bool) -> Result<()> {
        let Some(signal) = crate::distributed::sync::stop_requested()? else {
            return Ok(());
        };
        if save {
            self.st.wall_seconds = wall_start.elapsed().as_secs_f64();
            self.save_last()?;
        }
        let what = format!(
            "{}: interrupted by {signal} at epoch {} step {}; checkpoint saved to {}",
            self.run.path.display(),
            self.st.epoch,
            self.st.step,
            self.run.file(LAST).display()
        );
        let mut next = format!(
            "resume with: fixclf train --config {} --resume",
            crate::interrupt::shell_quote(&self.run.file(CONFIG_FILE).display().to_string())
        );
        if let Some(group) = crate::distributed::current() {
            next.push_str(&format!(
                ", launched as {} ranks again (torchrun or scripts/ranks.sh)",
                group.world_size
            ));
        }
        Err(Error::interrupted(signal, what, next))
    }
}
