//! `[distributed]`: how a data-parallel launch communicates. Read only when the process was
//! launched as one rank of several (torchrun's variables); a single process ignores it.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which library carries the gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// NCCL when training on CUDA, Gloo on the CPU (PyTorch's own pairing).
    #[default]
    Auto,
    Gloo,
    Nccl,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributedConfig {
    pub backend: Backend,
    /// Seconds every rendezvous and collective may take before it is an error (a dead or
    /// stalled peer, an unreachable store).
    pub timeout_s: f64,
    /// Size of the flat buffers gradients are all-reduced in (PyTorch DDP's
    /// `bucket_cap_mb`), in MB.
    pub bucket_mb: f64,
    /// The gradient all-reduce overlapped with the backward pass through c10d's `Reducer`
    /// (PyTorch DDP's way: each bucket sent as soon as its gradients are in); false: all
    /// buckets after the whole backward pass.
    pub overlap: bool,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        DistributedConfig {
            backend: Backend::Auto,
            timeout_s: 300.0,
            bucket_mb: 25.0,
            overlap: false,
        }
    }
}

impl DistributedConfig {
    pub fn is_default(&self) -> bool {
        *self == DistributedConfig::default()
    }

    pub fn validate(&self, origin: &str) -> Result<()> {
        if !(self.timeout_s.is_finite() && self.timeout_s >= 0.1) {
            return Err(Error::config(
                origin,
                "distributed.timeout_s",
                format!("must be at least 0.1 (seconds), got {}", self.timeout_s),
            ));
        }
        if !(self.bucket_mb.is_finite() && self.bucket_mb > 0.0) {
            return Err(Error::config(
                origin,
                "distributed.bucket_mb",
                format!("must be a positive number of MB, got {}", self.bucket_mb),
            ));
        }
        Ok(())
    }

    pub fn bucket_bytes(&self) -> i64 {
        (self.bucket_mb * 1024.0 * 1024.0).round().max(1.0) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_field() {
        DistributedConfig::default().validate("c.toml").unwrap();
        let bad = DistributedConfig {
            timeout_s: 0.0,
            ..Default::default()
        };
        let e = bad.validate("c.toml").unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("distributed.timeout_s"),
            "{e}"
        );
        let bad = DistributedConfig {
            bucket_mb: -1.0,
            ..Default::default()
        };
        let e = bad.validate("c.toml").unwrap_err().to_string();
        assert!(e.contains("distributed.bucket_mb"), "{e}");
        assert_eq!(DistributedConfig::default().bucket_bytes(), 25 << 20);
    }

    #[test]
    fn parses_from_toml_and_refuses_unknown_fields() {
        let c: DistributedConfig = toml::from_str("backend = \"gloo\"\ntimeout_s = 5").unwrap();
        assert_eq!(
            (c.backend, c.timeout_s, c.bucket_mb, c.overlap),
            (Backend::Gloo, 5.0, 25.0, false)
        );
        let c: DistributedConfig = toml::from_str("overlap = true").unwrap();
        assert!(c.overlap);
        assert!(toml::from_str::<DistributedConfig>("timeout = 5").is_err());
    }
}
