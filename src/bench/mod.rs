//! Benchmarks: `fixclf bench lm` ([`lm`]) and `fixclf bench vision` ([`vision`]), the
//! training steps of the two tasks, and the classifier head alone, timed and measured.
//!
//! * [`cli`]: `fixclf bench ...`: the subcommands, each with its bench's flags.
//! * [`data`]: `fixclf bench data`, the image loader's images/s (decode + transform).
//! * [`head_step`]: one head (learned, fixed with a stored `Q`, fixed Hadamard as the fast
//!   transform) on random features, stepped through the same functions as training.
//! * [`heads`]: `fixclf bench heads`, the timing table at the paper's shapes.
//! * [`measure`]: the flags every bench shares, their settings and the timing loop.
//! * [`sweep`]: `fixclf bench classifier`, step time and memory as the number of classes grows;
//!   [`sweep_out`] writes its CSV, Markdown table and log-log plot.
//!
//! The helpers here are shared by every bench, so that sorted step lists, rounding and the
//! libtorch version read the same in all of their JSON lines (medians: [`crate::stats`]).
pub mod allreduce;
pub mod cli;
pub mod data;
pub mod head_step;
pub mod heads;
pub mod lm;
pub mod measure;
pub mod sweep;
pub mod sweep_out;
pub mod vision;

use crate::classifier::HeadMode;
use crate::error::{Error, Result};
use serde_json::Value;

/// The libtorch version every bench line reports: tch 0.24 links exactly this release (its
/// build script refuses any other unless told to bypass the check), so it is a constant of
/// the build. Keep in step with `TORCH_VERSION` in `scripts/setup-libtorch.sh`.
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// Seconds to milliseconds rounded to 0.1, sorted: every timed step of a JSON line. On a
/// shared machine the low quantiles show the cost of the work itself, the median and the
/// tail what neighbours added.
pub fn sorted_ms(v: &[f64]) -> Vec<f64> {
    let mut ms: Vec<f64> = v.iter().map(|s| (s * 1e4).round() / 10.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    ms
}

/// `x` rounded to `digits` decimals (JSON values stay readable).
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// A JSON object with its keys in the given order (serde_json's map sorts them), so that a
/// line reads like the reference's (and the lines of one bench all alike).
pub fn ordered_json(pairs: &[(&str, Value)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Parses a comma-separated list of head modes given to `flag`; `fixed` is the reference
/// scripts' name for `fixed-orthogonal`. Returns each mode with the name it was given, which
/// the JSON lines keep as `mode` so that they pair with the reference's lines.
pub fn parse_modes(flag: &str, list: &str) -> Result<Vec<(String, HeadMode)>> {
    list.split(',')
        .map(|m| {
            let name = m.trim();
            let mode = match name {
                "fixed" => Some(HeadMode::FixedOrthogonal),
                other => HeadMode::parse(other),
            };
            mode.map(|mode| (name.to_string(), mode)).ok_or_else(|| {
                Error::arg(
                    flag,
                    format!(
                        "unknown head `{name}`; use fixed or {}",
                        HeadMode::ALL.map(|m| m.name()).join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Parses a comma-separated list of positive integers given to `flag` (`1k`, `10k`, `1M`
/// allowed, as the class counts of a sweep are written).
pub fn parse_counts(flag: &str, list: &str) -> Result<Vec<i64>> {
    list.split(',')
        .map(|s| {
            let s = s.trim();
            let (digits, mult) = match s.chars().last() {
                Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
                Some('M' | 'm') => (&s[..s.len() - 1], 1_000_000),
                _ => (s, 1),
            };
            digits
                .replace('_', "")
                .parse::<i64>()
                .ok()
                .and_then(|v| v.checked_mul(mult))
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    Error::arg(
                        flag,
                        format!("`{s}` is not a positive count; write e.g. 10,100,1k,1M"),
                    )
                })
        })
        .collect()
}

/// The bytes the kernel can still give this process without swapping (`MemAvailable` of
/// `/proc/meminfo`), None where it cannot be read.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lists_parse_and_name_the_flag() {
        assert_eq!(
            parse_counts("--classes", "10, 1k,1M,10_000").unwrap(),
            [10, 1000, 1_000_000, 10_000]
        );
        for bad in ["", "0", "x", "1G", "-5"] {
            let e = parse_counts("--classes", bad).unwrap_err().to_string();
            assert!(e.starts_with("--classes: "), "{e}");
        }
        let m = parse_modes("--heads", "learned,fixed,fixed-hadamard").unwrap();
        assert_eq!(m[1], ("fixed".to_string(), HeadMode::FixedOrthogonal));
        assert_eq!(m[2].1, HeadMode::FixedHadamard);
        let e = parse_modes("--heads", "learned,linear")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--heads: unknown head `linear`"), "{e}");
        assert_eq!(sorted_ms(&[0.002, 0.00123]), [1.2, 2.0]);
    }
}
