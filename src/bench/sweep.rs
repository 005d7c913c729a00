//! `fixclf bench classifier`: what a fixed classifier saves as the number of classes grows.
//! For C = 10 .. 1M classes at N = 512 and 2048 features, batch 256, each head of
//! [`HeadKind`] is built alone and stepped ([`HeadBench::step`]: forward, loss, backward,
//! SGD-momentum update), and measured: the median step, the peak resident memory the point
//! added, its optimizer state and the bytes it adds to a checkpoint.
//!
//! A learned head holds its weight, its gradient and a momentum buffer (plus the weight
//! decay's temporary): 16 C N bytes, 32 GB at 1M x 2048. A fixed head with a stored `Q` holds
//! `Q` (4 C N bytes) and nothing to train but alpha and the bias; the Hadamard head holds
//! neither, only `[B, C]`-sized buffers per step. Before a point allocates anything its
//! memory is estimated ([`HeadKind::estimate_bytes`]) and the point is skipped, with a JSON
//! line saying so, when that exceeds what the machine has available; each point's timing is
//! bounded by `--max-seconds` (fewer steps when a step is slow; the line says how many ran).
use super::head_step::{HeadBench, HeadKind};
use super::measure::{set_threads, sync, time_runs, Measure, RunArgs};
use super::{mem_available_bytes, round, sorted_ms, LIBTORCH_VERSION};
use crate::error::Result;
use crate::stats::median;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

/// `fixclf bench classifier`'s flags: each point's timed steps within 30 seconds.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_arg("max_seconds", |a| a.default_value("30")))]
pub struct SweepArgs {
    /// Comma-separated class counts (k and M suffixes allowed).
    #[arg(long, default_value = "10,100,1k,10k,100k,1M")]
    pub classes: String,
    /// Comma-separated feature counts N.
    #[arg(long, default_value = "512,2048")]
    pub features: String,
    /// Comma-separated heads: learned, fixed-dense (Q stored), fixed-hadamard (fast
    /// transform).
    #[arg(long, default_value = "learned,fixed-dense,fixed-hadamard")]
    pub heads: String,
    #[arg(long, default_value_t = 256)]
    pub batch: i64,
    /// Also write classifier_sweep.{csv,md,svg,png} into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub common: RunArgs,
}

impl SweepArgs {
    /// The sweep these flags describe (an error naming the flag that is wrong).
    pub fn sweep(&self) -> Result<Sweep> {
        Ok(Sweep {
            classes: super::parse_counts("--classes", &self.classes)?,
            features: super::parse_counts("--features", &self.features)?,
            heads: HeadKind::parse_list("--heads", &self.heads)?,
            batch: self.batch,
            measure: self.common.measure()?,
        })
    }
}

/// The sweep's settings (all overridable on the command line).
#[derive(Debug, Clone)]
pub struct Sweep {
    pub classes: Vec<i64>,
    pub features: Vec<i64>,
    pub heads: Vec<HeadKind>,
    pub batch: i64,
    /// Each point's timing: 30 seconds at most by default.
    pub measure: Measure,
}

impl Default for Sweep {
    fn default() -> Self {
        Self {
            classes: vec![10, 100, 1_000, 10_000, 100_000, 1_000_000],
            features: vec![512, 2048],
            heads: HeadKind::ALL.to_vec(),
            batch: 256,
            measure: Measure {
                max_seconds: 30.0,
                ..Default::default()
            },
        }
    }
}

/// Share of the available memory a point may plan to use: libtorch's workspaces and the
/// allocator's slack come on top of the estimate, and other processes may grow meanwhile.
const MEMORY_SHARE: f64 = 0.8;

/// One point of the sweep: a JSON line, a CSV row. Measured fields are None when the point
/// was skipped (`skipped` says why).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepPoint {
    pub bench: String,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub torch: String,
    pub device: String,
    pub threads: i32,
    pub classes: i64,
    pub features: i64,
    pub batch: i64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What the point was estimated to need before it allocated anything.
    pub estimate_mb: f64,
    pub step_ms_median: Option<f64>,
    pub step_ms_min: Option<f64>,
    /// Timed steps that ran (fewer than `steps_requested` when `--max-seconds` cut it).
    pub steps: Option<usize>,
    pub steps_requested: usize,
    /// Seconds to build the head (its fixed matrix included).
    pub build_s: Option<f64>,
    /// Peak resident memory of the process during the point, less its resident memory
    /// before (host memory, also on a GPU run: GPU memory is not measured).
    pub peak_rss_delta_mb: Option<f64>,
    pub optimizer_state_floats: Option<i64>,
    /// Tensor bytes the head adds to `best.safetensors` (its variables).
    pub checkpoint_bytes: Option<i64>,
    /// The same plus its optimizer state, as `last.safetensors` holds it for resuming.
    pub resume_checkpoint_bytes: Option<i64>,
    /// Values of a stored fixed matrix (fixed-dense), 0 for the others.
    pub stored_matrix_floats: Option<i64>,
    #[serde(default)]
    pub step_ms_all: Vec<f64>,
}

impl Sweep {
    fn point(&self, kind: HeadKind, c: i64, n: i64) -> SweepPoint {
        SweepPoint {
            bench: "classifier".into(),
            implementation: "fixclf".into(),
            torch: LIBTORCH_VERSION.into(),
            device: self.measure.device_name.clone(),
            threads: tch::get_num_threads(),
            classes: c,
            features: n,
            batch: self.batch,
            head: kind.name().into(),
            skipped: None,
            estimate_mb: round(kind.estimate_bytes(c, n, self.batch) as f64 / 1e6, 1),
            step_ms_median: None,
            step_ms_min: None,
            steps: None,
            steps_requested: self.measure.steps,
            build_s: None,
            peak_rss_delta_mb: None,
            optimizer_state_floats: None,
            checkpoint_bytes: None,
            resume_checkpoint_bytes: None,
            stored_matrix_floats: None,
            step_ms_all: Vec::new(),
        }
    }

    /// Why a point cannot run here, judged before it allocates: host memory on the CPU (on
    /// a GPU the device's memory is not known to libtorch's C API; a point that runs out of
    /// it fails and is reported as skipped).
    fn refusal(&self, estimate: u64) -> Option<String> {
        if self.measure.device != Device::Cpu {
            return None;
        }
        let available = mem_available_bytes()?;
        (estimate as f64 > MEMORY_SHARE * available as f64).then(|| {
            format!(
                "needs ~{:.1} GB, {:.1} GB available",
                estimate as f64 / 1e9,
                available as f64 / 1e9
            )
        })
    }

    /// Measures one point (or says why it was skipped).
    pub fn measure(&self, kind: HeadKind, c: i64, n: i64) -> Result<SweepPoint> {
        let mut p = self.point(kind, c, n);
        if let Some(why) = self.refusal(kind.estimate_bytes(c, n, self.batch)) {
            p.skipped = Some(why);
            return Ok(p);
        }
        crate::memory::reset_peak_rss();
        let before = crate::memory::rss_mb();
        let t0 = Instant::now();
        // libtorch reports a failed allocation (a GPU out of memory) by a panic in tch's
        // infallible methods: the point is then skipped, the sweep goes on.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut h = HeadBench::new(kind, c, n, self.batch, self.measure.device)?;
            sync(self.measure.device);
            let build_s = t0.elapsed().as_secs_f64();
            let mut failed = None;
            let times = time_runs(&self.measure, || {
                if failed.is_none() {
                    failed = h.step().err();
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            Ok::<_, crate::error::Error>((h, build_s, times))
        }));
        let (h, build_s, times) = match run {
            Ok(r) => r?,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("libtorch failed");
                p.skipped = Some(format!("failed: {}", msg.lines().next().unwrap_or("")));
                return Ok(p);
            }
        };
        p.peak_rss_delta_mb = Some(round(crate::memory::peak_rss_mb() - before, 1));
        p.step_ms_median = Some(round(median(&times) * 1e3, 3));
        p.step_ms_min = Some(round(
            times.iter().copied().fold(f64::MAX, f64::min) * 1e3,
            3,
        ));
        p.steps = Some(times.len());
        p.build_s = Some(round(build_s, 3));
        p.optimizer_state_floats = Some(h.optimizer_state_floats());
        p.checkpoint_bytes = Some(h.checkpoint_bytes());
        p.resume_checkpoint_bytes = Some(h.resume_checkpoint_bytes());
        p.stored_matrix_floats = Some(h.stored_matrix_floats());
        p.step_ms_all = sorted_ms(&times);
        drop(h);
        crate::memory::release_free_memory();
        Ok(p)
    }

    /// Every point: per N, per C (ascending), per head; `emit` sees each as it is measured.
    pub fn run(&self, mut emit: impl FnMut(&SweepPoint)) -> Result<Vec<SweepPoint>> {
        set_threads(self.measure.threads);
        let mut classes = self.classes.clone();
        classes.sort_unstable();
        // libtorch's first operations start its thread pool and the allocator's arenas: a
        // throw-away point per head keeps that out of the first measured point's memory.
        for &kind in &self.heads {
            self.measure(kind, 10, 16)?;
        }
        let mut points = Vec::new();
        for &n in &self.features {
            for &c in &classes {
                for &kind in &self.heads {
                    let p = self.measure(kind, c, n)?;
                    emit(&p);
                    points.push(p);
                }
            }
        }
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_measures_small_points_and_skips_what_cannot_fit() {
        let s = Sweep {
            classes: vec![100, 10],
            features: vec![16],
            batch: 8,
            measure: Measure {
                steps: 2,
                warmup: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let pts = s.run(|_| {}).unwrap();
        assert_eq!(pts.len(), 6);
        assert_eq!((pts[0].classes, pts[3].classes), (10, 100));
        for p in &pts {
            assert!(p.skipped.is_none() && p.steps == Some(2), "{p:?}");
            let line = serde_json::to_string(p).unwrap();
            assert!(line.starts_with("{\"bench\":\"classifier\",\"impl\":\"fixclf\""));
        }
        let learned = pts
            .iter()
            .find(|p| p.head == "learned" && p.classes == 100)
            .unwrap();
        assert_eq!(learned.checkpoint_bytes, Some(4 * (100 * 16 + 100)));
        // A point far past any machine's memory is refused before it allocates.
        let p = s.measure(HeadKind::Learned, 1 << 40, 2048).unwrap();
        let why = p.skipped.unwrap();
        assert!(
            why.starts_with("needs ~") && why.ends_with("GB available"),
            "{why}"
        );
        assert!(p.step_ms_median.is_none());
    }
}
