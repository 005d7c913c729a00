//! The run folder and what lives in it: the resolved config, `metrics.jsonl`, checkpoints
//! (`best.safetensors`, `last.safetensors`) and, once a run has finished, `summary.json`.
//! A run folder without `summary.json` is unfinished, whatever else it holds.
use super::metrics::MetricsLog;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
    /// The run's name: the folder's own name (the config's `name`).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
    /// Whether `fixclf train` has made this folder (it writes the config first).
    pub fn is_run(&self) -> bool {
        self.file(CONFIG_FILE).is_file()
    }
    pub fn is_finished(&self) -> bool {
        self.file(SUMMARY_FILE).exists()
    }
    pub fn has_last(&self) -> bool {
        self.file(LAST).exists()
    }

    /// The checkpoint to evaluate: `best.safetensors`, else `last.safetensors` (a run whose
    /// epochs never improved, or one interrupted before its first validation); None if neither.
    pub fn best_or_last(&self) -> Option<PathBuf> {
        [BEST, LAST]
            .into_iter()
            .map(|name| self.file(name))
            .find(|p| p.exists())
    }

    /// Errors if the folder holds anything and `force` is not given. Called before the data
    /// is loaded (fail fast) and again by [`create_fresh`](Self::create_fresh).
    pub fn check_fresh(&self, force: bool) -> Result<()> {
        let non_empty = std::fs::read_dir(&self.path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if non_empty && !force {
            return Err(Error::arg(
                self.path.display().to_string(),
                "the run folder already exists; add --resume to continue it or --force to start it over",
            ));
        }
        Ok(())
    }

    /// Creates the folder for a new run. An existing non-empty folder is an error unless
    /// `force` (then it is emptied). Checks that the folder is writable.
    pub fn create_fresh(&self, force: bool) -> Result<()> {
        self.check_fresh(force)?;
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path).at(&self.path)?;
        }
        std::fs::create_dir_all(&self.path).map_err(|e| {
            Error::io(
                &self.path,
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "{e} (cannot create the run folder; check runs_dir and its permissions)"
                    ),
                ),
            )
        })?;
        // Fail early, before any training, if the folder is not writable.
        let probe = self.file(".write-test");
        std::fs::write(&probe, b"").map_err(|e| {
            Error::io(
                &self.path,
                std::io::Error::new(e.kind(), format!("{e} (the run folder is not writable)")),
            )
        })?;
        let _ = std::fs::remove_file(probe);
        Ok(())
    }

    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        write_atomic(&self.file(name), |w| w.write_all(text.as_bytes()))
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value).unwrap_or_default();
        self.write_text(name, &format!("{text}\n"))
    }

    /// Removes temp files that a killed process left behind ([`crate::fsutil::tmp_path`]:
    /// `NAME.PID.tmp`). They are never read; this only tidies the folder.
    pub fn remove_stale_temps(&self) {
        let Ok(dir) = std::fs::read_dir(&self.path) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if crate::fsutil::is_tmp_name(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    pub fn metrics(&self) -> Result<MetricsLog> {
        MetricsLog::open(&self.file(METRICS_FILE))
    }
}

/// Where a run stands: saved in `last.safetensors`' metadata to resume from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainState {
    /// Epoch in progress (1-based).
    pub epoch: usize,
    /// Optimizer steps taken in all.
    pub step: u64,
    /// Row of the batchified training data where the epoch resumes.
    pub position: usize,
    /// Steps taken in this epoch.
    pub epoch_step: usize,
    pub lr: f64,
    pub best_val_loss: Option<f64>,
    /// Validation accuracy of the best epoch (by loss), for tasks that measure it.
    #[serde(default)]
    pub best_val_acc: Option<f64>,
    /// Validation loss of every finished epoch.
    pub val_losses: Vec<f64>,
    /// Averaged SGD switched on (NT-ASGD), and since which step.
    pub asgd_since: Option<u64>,
    /// Training data seen, in the task's unit (tokens, images).
    #[serde(alias = "train_tokens")]
    pub train_units: u64,
    /// Sums over the epoch in progress, for its mean training loss and accuracy.
    #[serde(default)]
    pub epoch_loss_sum: f64,
    #[serde(default)]
    pub epoch_correct: u64,
    #[serde(default)]
    pub epoch_samples: u64,
    /// Training time so far (seconds), excluding evaluation.
    pub train_seconds: f64,
    /// Wall time so far (seconds), including evaluation.
    pub wall_seconds: f64,
    pub finished_epochs: usize,
    /// The last neural-collapse diagnostics, for the summary (a run resumed after its last
    /// epoch still reports them).
    #[serde(default)]
    pub collapse: Option<super::metrics::Collapse>,
    /// Sums since the last log line, so a run resumed between two log lines logs the same
    /// means as the uninterrupted one.
    #[serde(default)]
    pub interval: IntervalSums,
    /// Steps skipped for a non-finite loss or gradient (`train.on_nonfinite = "skip"`): in
    /// all, in this epoch, and in a row up to now.
    #[serde(default)]
    pub skipped_steps: u64,
    #[serde(default)]
    pub epoch_skips: u64,
    #[serde(default)]
    pub consecutive_skips: u64,
}

/// Sums over the steps since the last log line (skipped steps add to `skipped` only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct IntervalSums {
    pub steps: usize,
    pub loss: f64,
    pub units: u64,
    pub correct: Option<(u64, u64)>,
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A training state saved by fixclf 0.1 (in its checkpoints' metadata) still resumes.
    #[test]
    fn train_state_of_old_checkpoints_loads() {
        let old = r#"{"epoch":2,"step":120,"position":4200,"epoch_step":0,"lr":0.002,"best_val_loss":6.0,"val_losses":[6.0],"asgd_since":null,"train_tokens":84000,"train_seconds":30.0,"wall_seconds":35.0,"finished_epochs":1}"#;
        let st: TrainState = serde_json::from_str(old).unwrap();
        assert_eq!(st.train_units, 84_000);
        assert_eq!(st.epoch_loss_sum, 0.0);
    }

    #[test]
    fn fresh_run_folder_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        run.create_fresh(false).unwrap();
        run.write_text("x", "1").unwrap();
        let e = run.create_fresh(false).unwrap_err().to_string();
        assert!(e.contains("--resume") && e.contains("--force"), "{e}");
        run.create_fresh(true).unwrap();
        assert!(!run.file("x").exists());
    }
}
