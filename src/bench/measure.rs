//! How every bench measures: the flags they all take ([`RunArgs`]: timed steps, warm-up,
//! time budget, threads, device), the settings those give ([`Measure`]), and the timing loop.
use crate::error::Result;
use std::time::Instant;
use tch::Device;

/// How every bench runs: its timed steps, the untimed ones before, the time budget of the
/// timed ones, libtorch's CPU threads and the device. A bench whose defaults differ sets them
/// with `mut_arg` on its own flags (`fixclf bench heads --help` shows them).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Timed steps of each measurement (fewer when --max-seconds runs out).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Time budget of each measurement's timed steps, seconds (0: none); at least one step
    /// is always timed.
    #[arg(long, default_value_t = 0.0)]
    pub max_seconds: f64,
    /// CPU threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu or cuda (needs a `--features cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl RunArgs {
    /// The settings these flags give (an error when `--device` cannot be used).
    pub fn measure(&self) -> Result<Measure> {
        Ok(Measure {
            steps: self.steps,
            warmup: self.warmup,
            max_seconds: self.max_seconds,
            threads: self.threads,
            device: crate::engine::resolve_device(&self.device)?,
            device_name: self.device.clone(),
        })
    }
}

/// How every bench measures ([`RunArgs`] resolved): its timed steps, the untimed ones
/// before, the time budget of the timed ones, libtorch's CPU threads and the device.
#[derive(Debug, Clone)]
pub struct Measure {
    pub steps: usize,
    pub warmup: usize,
    /// Time budget of each measurement's timed steps, in seconds (0: none).
    pub max_seconds: f64,
    pub threads: usize,
    pub device: Device,
    /// As given (`cpu`, `cuda`): the JSON lines repeat it, as the references do.
    pub device_name: String,
}

impl Default for Measure {
    fn default() -> Self {
        Self {
            steps: 10,
            warmup: 2,
            max_seconds: 0.0,
            threads: 0,
            device: Device::Cpu,
            device_name: "cpu".into(),
        }
    }
}

impl Measure {
    /// Whether timed runs that took `total` seconds have used the time budget.
    pub fn budget_spent(&self, total: f64) -> bool {
        self.max_seconds > 0.0 && total >= self.max_seconds
    }
}

/// Times `f`: `m.warmup` untimed runs, then up to `m.steps` timed ones, stopping early once
/// the timed runs have used the budget ([`Measure::budget_spent`]); at least one run is always
/// timed, so a slow point of a sweep still gets a figure. Returns the seconds of each timed
/// run (its length says how many ran).
pub fn time_runs(m: &Measure, mut f: impl FnMut()) -> Vec<f64> {
    let start = Instant::now();
    for _ in 0..m.warmup {
        f();
        sync(m.device);
        // A point whose warm-up alone used the budget is slow enough that one more run
        // warms nothing up: go to the timed runs.
        if m.max_seconds > 0.0 && start.elapsed().as_secs_f64() > m.max_seconds {
            break;
        }
    }
    let mut times = Vec::with_capacity(m.steps);
    let mut total = 0.0;
    while times.len() < m.steps.max(1) {
        sync(m.device);
        let t0 = Instant::now();
        f();
        sync(m.device);
        let t = t0.elapsed().as_secs_f64();
        times.push(t);
        total += t;
        if m.budget_spent(total) {
            break;
        }
    }
    times
}

/// Runs `m.warmup` untimed steps, then up to `m.steps` timed ones, stopping early once the
/// timed ones have used the budget; `step` runs one step and returns the seconds of the part
/// it times (a bench times the work of a step, not the making of its random inputs). Returns
/// the seconds of each timed step; an error stops at once.
pub fn timed_steps(m: &Measure, mut step: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(m.steps);
    for i in 0..m.warmup + m.steps {
        let t = step()?;
        if i >= m.warmup {
            times.push(t);
            if m.budget_spent(times.iter().sum()) {
                break;
            }
        }
    }
    Ok(times)
}

/// Waits for the device's queued work, so that a timing covers it (CPU work is synchronous).
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Sets libtorch's CPU threads when `threads > 0` (0 keeps its default).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}
