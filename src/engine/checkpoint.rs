//! Checkpoints: plain safetensors files with the model's tensors under their PyTorch names,
//! plus (in `last.safetensors`) the optimizer state under `optimizer.*`, plus string metadata
//! (format, head mode, the task's identity such as the vocabulary hash, the training state as
//! JSON). Every write goes to a temp file that is renamed into place, so a checkpoint on disk
//! is always complete.
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_bytes_atomic;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The `format` metadata of every fixclf checkpoint.
pub const CHECKPOINT_FORMAT: &str = "fixclf-checkpoint-1";

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
        Self::from_bytes(&bytes, path)
    }

    /// Parses a checkpoint from its bytes; `path` names the file in errors (and in the
    /// result). safetensors checks the header's offsets and shapes against the buffer, so
    /// no tensor is allocated from a size the bytes do not hold.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "not a complete safetensors checkpoint ({e}); it may be truncated: \
                     delete it, or resume from the other checkpoint of the run"
                ),
            )
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
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
            // safetensors checks the product of the shape against the data, but a shape
            // with a zero in it lets another dimension be any u64, which libtorch refuses.
            let shape: Vec<i64> = view
                .shape()
                .iter()
                .map(|&d| i64::try_from(d))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::bad_file(
                        path,
                        format!(
                            "tensor `{name}` has shape {:?}, too large for libtorch; the \
                             checkpoint is damaged: delete it, or resume from the other \
                             checkpoint of the run",
                            view.shape()
                        ),
                    )
                })?;
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
        crate::tensor_map::copy_into(&self.tensors, vars, &self.path, |name| {
            // alpha is stored as `alpha` or `log_alpha` (head.alpha_param).
            if crate::classifier::is_alpha(name) {
                " (a fixed head stores `alpha` with head.alpha_param = \"linear\" and \
                 `log_alpha` with \"log\": use the run's own)"
            } else {
                ""
            }
        })
    }
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
}
