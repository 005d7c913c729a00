//! The run folder and what lives in it: the resolved config, `metrics.jsonl`, checkpoints
//! (`best.safetensors`, `last.safetensors`) and, once a run has finished, `summary.json`.
//! A run folder without `summary.json` is unfinished, whatever else it holds.
//!
//! Checkpoints are plain safetensors: the model's tensors under their PyTorch names, plus
//! (in `last`) the optimizer state under `optimizer.*`, plus string metadata (`fixclf`
//! keys: format, mode, vocabulary hash, training state as JSON). Every write goes to a temp
//! file that is renamed into place, so a checkpoint on disk is always complete.
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{write_atomic, write_bytes_atomic};
use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";
pub const CHECKPOINT_FORMAT: &str = "fixclf-checkpoint-1";

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
    pub fn is_finished(&self) -> bool {
        self.file(SUMMARY_FILE).exists()
    }
    pub fn has_last(&self) -> bool {
        self.file(LAST).exists()
    }

    /// Creates the folder for a new run. An existing non-empty folder is an error unless
    /// `force` (then it is emptied).
    /// Errors if the folder holds a run and `force` is not given.
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

    pub fn create_fresh(&self, force: bool) -> Result<()> {
        self.check_fresh(force)?;
        if self.path.exists() {
            let non_empty = std::fs::read_dir(&self.path)
                .at(&self.path)?
                .next()
                .is_some();
            if non_empty && !force {
                return Err(Error::arg(
                    self.path.display().to_string(),
                    "the run folder already exists; add --resume to continue it or --force to start it over",
                ));
            }
            if non_empty {
                std::fs::remove_dir_all(&self.path).at(&self.path)?;
            }
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

    pub fn metrics(&self) -> Result<MetricsLog> {
        MetricsLog::open(&self.file(METRICS_FILE))
    }
}

/// Appends one JSON object a line to `metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes()).at(&self.path)
    }
}

/// Reads every JSON line of a metrics file (skipping a torn last line).
pub fn read_metrics(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).at(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_view(t: &Tensor) -> F32View {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.copy_data(&mut v, n);
    F32View {
        shape: t.size().iter().map(|&d| d as usize).collect(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Writes tensors and metadata to a safetensors file, atomically.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let views: Vec<(String, F32View)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), to_view(t)))
        .collect();
    let bytes = safetensors::serialize(views, &Some(metadata.clone()))
        .map_err(|e| Error::bad_file(path, format!("cannot serialize checkpoint: {e}")))?;
    write_bytes_atomic(path, &bytes)
}

/// A checkpoint read back: tensors by name (CPU) and metadata.
pub struct Checkpoint {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).at(path)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "not a complete safetensors checkpoint ({e}); it may be truncated: \
                     delete it, or resume from the other checkpoint of the run"
                ),
            )
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::bad_file(path, format!("unreadable header ({e})")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(Error::bad_file(
                    path,
                    format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
                ));
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::from_data_size(view.data(), &shape, Kind::Float);
            tensors.insert(name, t);
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            tensors,
            metadata,
        })
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Checks a metadata value, with an error that says what differs.
    pub fn expect_meta(&self, key: &str, want: &str, what: &str) -> Result<()> {
        match self.meta(key) {
            Some(v) if v == want => Ok(()),
            Some(v) => Err(Error::bad_file(
                &self.path,
                format!(
                    "checkpoint is from another {what}: its {key} is `{v}`, this run's is `{want}`"
                ),
            )),
            None => Err(Error::bad_file(
                &self.path,
                format!("not a fixclf checkpoint: metadata `{key}` is missing"),
            )),
        }
    }

    /// Copies the named tensors into `vars` (a model's variables), checking that every
    /// variable is present with the same shape.
    pub fn copy_into(&self, vars: &HashMap<String, Tensor>) -> Result<()> {
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let src = self.tensors.get(name).ok_or_else(|| {
                Error::bad_file(
                    &self.path,
                    format!("checkpoint is from another model: it has no tensor `{name}`"),
                )
            })?;
            if src.size() != var.size() {
                return Err(Error::bad_file(
                    &self.path,
                    format!(
                        "checkpoint is from another model or vocabulary: `{name}` has shape {:?}, this model needs {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            tch::no_grad(|| {
                let mut v = var.shallow_clone();
                v.copy_(&src.to_device(var.device()));
            });
        }
        Ok(())
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
    /// Validation loss of every finished epoch.
    pub val_losses: Vec<f64>,
    /// Averaged SGD switched on (NT-ASGD), and since which step.
    pub asgd_since: Option<u64>,
    pub train_tokens: u64,
    /// Training time so far (seconds), excluding evaluation.
    pub train_seconds: f64,
    /// Wall time so far (seconds), including evaluation.
    pub wall_seconds: f64,
    pub finished_epochs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.safetensors");
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        save_safetensors(&p, &[("a.weight".into(), a.shallow_clone())], &meta).unwrap();
        let c = Checkpoint::load(&p).unwrap();
        assert_eq!(c.meta("k"), Some("v"));
        let target = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        c.copy_into(&HashMap::from([(
            "a.weight".to_string(),
            target.shallow_clone(),
        )]))
        .unwrap();
        assert!(target.equal(&a));
        let wrong = Tensor::zeros([3, 2], (Kind::Float, Device::Cpu));
        let e = c
            .copy_into(&HashMap::from([("a.weight".to_string(), wrong)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another model") && e.contains("a.weight"), "{e}");
        let e = c
            .expect_meta("k", "w", "vocabulary")
            .unwrap_err()
            .to_string();
        assert!(e.contains("another vocabulary"), "{e}");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let e = Checkpoint::load(&p).err().unwrap().to_string();
        assert!(
            e.contains("truncated") && e.contains("c.safetensors"),
            "{e}"
        );
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
