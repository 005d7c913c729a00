//! `fixclf bench heads`: the classifier head alone at the paper's shapes (C x N = 10 x 64,
//! 100 x 342, 1000 x 2048, 1000 x 960, 33,278 x 512), batch 128: forward (inference) and
//! forward + backward (the training loss and every gradient, the input's included) of the
//! fixed head with `Q` stored densely, of the Hadamard head as the fast transform, and of
//! the learned head. One JSON line per (shape, head), then a Markdown table.
//!
//! This is also the measurement behind [`crate::classifier::hadamard::hadamard_prefers_dense`]
//! (which representation `fixed-hadamard` uses at each size): run it with `--shapes` over the
//! sizes in question.
use super::head_step::{HeadBench, HeadKind};
use super::measure::{set_threads, time_runs, Measure, RunArgs};
use super::{ordered_json, round, sorted_ms, LIBTORCH_VERSION};
use crate::classifier::hadamard::hadamard_prefers_dense;
use crate::error::{Error, Result};
use crate::stats::median;
use serde_json::{json, Value};

/// The paper's classifier shapes: CIFAR-10 and CIFAR-100 on ResNet-56 / DenseNet-BC, ImageNet
/// on ResNet-50 and ShuffleNet, the WikiText-2 language model.
pub const PAPER_SHAPES: &str = "10x64,100x342,1000x2048,1000x960,33278x512";

/// `fixclf bench heads`'s flags: more steps than the other benches (a head's step is short),
/// within 20 seconds per measurement.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("steps", |a| a.default_value("20")),
    mut_arg("warmup", |a| a.default_value("3")),
    mut_arg("max_seconds", |a| a.default_value("20"))
)]
pub struct HeadsArgs {
    /// Comma-separated CxN shapes.
    #[arg(long, default_value = PAPER_SHAPES)]
    pub shapes: String,
    #[arg(long, default_value_t = 128)]
    pub batch: i64,
    #[command(flatten)]
    pub common: RunArgs,
}

impl HeadsArgs {
    /// The bench these flags describe (an error naming the flag that is wrong).
    pub fn bench(&self) -> Result<HeadsBench> {
        Ok(HeadsBench {
            shapes: parse_shapes("--shapes", &self.shapes)?,
            batch: self.batch,
            measure: self.common.measure()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct HeadsBench {
    pub shapes: Vec<(i64, i64)>,
    pub batch: i64,
    pub measure: Measure,
}

/// Parses `CxN,CxN,...` given to `flag`.
pub fn parse_shapes(flag: &str, list: &str) -> Result<Vec<(i64, i64)>> {
    list.split(',')
        .map(|s| {
            let s = s.trim();
            let parts = s
                .split_once(['x', 'X'])
                .map(|(c, n)| (super::parse_counts(flag, c), super::parse_counts(flag, n)));
            match parts {
                Some((Ok(c), Ok(n))) => Ok((c[0], n[0])),
                _ => Err(Error::arg(
                    flag,
                    format!("`{s}` is not a shape; write CxN, e.g. {PAPER_SHAPES}"),
                )),
            }
        })
        .collect()
}

/// Times one head at one shape; returns its JSON line's fields, in order.
pub fn bench_head(
    b: &HeadsBench,
    kind: HeadKind,
    c: i64,
    n: i64,
) -> Result<Vec<(&'static str, Value)>> {
    let h = HeadBench::new(kind, c, n, b.batch, b.measure.device)?;
    let fwd = time_runs(&b.measure, || {
        let _ = h.forward();
    });
    let fwd_bwd = time_runs(&b.measure, || {
        let _ = h.forward_backward();
    });
    Ok(vec![
        ("bench", json!("heads")),
        ("impl", json!("fixclf")),
        ("torch", json!(LIBTORCH_VERSION)),
        ("device", json!(b.measure.device_name)),
        ("threads", json!(tch::get_num_threads())),
        ("classes", json!(c)),
        ("features", json!(n)),
        ("batch", json!(b.batch)),
        ("head", json!(kind.name())),
        ("forward_ms_median", json!(round(median(&fwd) * 1e3, 3))),
        (
            "forward_backward_ms_median",
            json!(round(median(&fwd_bwd) * 1e3, 3)),
        ),
        ("forward_steps", json!(fwd.len())),
        ("forward_backward_steps", json!(fwd_bwd.len())),
        ("forward_ms_all", json!(sorted_ms(&fwd))),
        ("forward_backward_ms_all", json!(sorted_ms(&fwd_bwd))),
        (
            "fixed_hadamard_stores_q",
            json!(hadamard_prefers_dense(c, n)),
        ),
    ])
}

/// Every (shape, head): `emit` gets each JSON line as it is measured; returns them all.
pub fn run(b: &HeadsBench, mut emit: impl FnMut(&str)) -> Result<Vec<Value>> {
    set_threads(b.measure.threads);
    let mut lines = Vec::new();
    for &(c, n) in &b.shapes {
        for kind in [
            HeadKind::FixedDense,
            HeadKind::FixedHadamard,
            HeadKind::Learned,
        ] {
            let fields = bench_head(b, kind, c, n)?;
            emit(&ordered_json(&fields));
            let map = fields.into_iter().map(|(k, v)| (k.to_string(), v));
            lines.push(Value::Object(map.collect()));
            crate::memory::release_free_memory();
        }
    }
    Ok(lines)
}

/// The Markdown table of [`run`]'s lines: per shape, the median ms of each head, forward and
/// forward + backward, and which one `fixed-hadamard` uses at that shape.
pub fn markdown(lines: &[Value]) -> String {
    let ms = |c: &Value, n: &Value, head: &str, key: &str| {
        lines
            .iter()
            .find(|l| l["classes"] == *c && l["features"] == *n && l["head"] == head)
            .and_then(|l| l[key].as_f64())
            .map_or("–".to_string(), |v| format!("{v:.3}"))
    };
    let mut out = String::from(
        "| C x N | batch | fwd: fixed dense | fwd: fast transform | fwd: learned | fwd+bwd: fixed dense | fwd+bwd: fast transform | fwd+bwd: learned | fixed-hadamard uses |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let mut seen = Vec::new();
    for l in lines {
        let (c, n) = (&l["classes"], &l["features"]);
        if seen.contains(&(c, n)) {
            continue;
        }
        seen.push((c, n));
        let cells: Vec<String> = ["forward_ms_median", "forward_backward_ms_median"]
            .iter()
            .flat_map(|key| ["fixed-dense", "fixed-hadamard", "learned"].map(|h| ms(c, n, h, key)))
            .collect();
        let uses = if l["fixed_hadamard_stores_q"] == true {
            "dense"
        } else {
            "fast"
        };
        out.push_str(&format!(
            "| {c} x {n} | {} | {} | {uses} |\n",
            l["batch"],
            cells.join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_bench_lines_and_table() {
        assert_eq!(
            parse_shapes("--shapes", PAPER_SHAPES).unwrap()[4],
            (33_278, 512)
        );
        assert!(parse_shapes("--shapes", "10x")
            .unwrap_err()
            .to_string()
            .starts_with("--shapes: `10x`"));
        let b = HeadsBench {
            shapes: vec![(10, 64), (300, 16)],
            batch: 4,
            measure: Measure {
                steps: 2,
                warmup: 0,
                ..Default::default()
            },
        };
        let lines = run(&b, |_| {}).unwrap();
        assert_eq!(lines.len(), 6);
        assert!(lines
            .iter()
            .all(|l| l["forward_ms_all"].as_array().unwrap().len() == 2));
        let table = markdown(&lines);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table.contains("| 10 x 64 | 4 |") && table.contains("| dense |"),
            "{table}"
        );
        assert!(!table.contains('–'), "{table}");
    }
}
