//! `fixclf bench ...`: the command-line surface of the benchmarks. Each bench's flags live
//! beside it ([`crate::lm::bench::LmArgs`], [`crate::vision::bench::VisionArgs`],
//! [`super::heads::HeadsArgs`], [`super::sweep::SweepArgs`]), and all of them share
//! [`RunArgs`]: timed steps, warm-up, time budget, threads and device.
use super::Measure;
use crate::error::Result;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Training and evaluation tokens/s of the LM at paper size, one JSON line per mode
    /// (same keys as ../shared/bench/torch_lm_bench.py).
    Lm(crate::lm::bench::LmArgs),
    /// Training and evaluation images/s of the CIFAR ResNet with a learned or a fixed head,
    /// one JSON line per (model, head) with the keys of ../shared/bench/torch_vision_bench.py.
    Vision(crate::vision::bench::VisionArgs),
    /// The classifier head alone at the paper's shapes: fixed with Q stored, fixed Hadamard
    /// as the fast transform, learned; forward and forward + backward. JSON lines, then a
    /// Markdown table.
    Heads(super::heads::HeadsArgs),
    /// What a fixed classifier saves as the number of classes grows: per C, N and head, the
    /// classifier's training step, peak memory, optimizer state and checkpoint bytes.
    Classifier(super::sweep::SweepArgs),
}

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

/// Runs the bench `cmd` names, printing its JSON lines (and table) to stdout.
pub fn run(cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Lm(args) => args.run(),
        BenchCommand::Vision(args) => args.run(),
        BenchCommand::Heads(args) => args.run(),
        BenchCommand::Classifier(args) => args.run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: BenchCommand,
    }

    /// The shared flags keep their names; each bench keeps its own defaults.
    #[test]
    fn shared_flags_and_per_bench_defaults() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().bench;
        let BenchCommand::Heads(h) = parse(&["x", "heads"]) else {
            panic!()
        };
        assert_eq!(
            (h.common.steps, h.common.warmup, h.common.max_seconds),
            (20, 3, 20.0)
        );
        let BenchCommand::Classifier(c) = parse(&["x", "classifier", "--steps", "4"]) else {
            panic!()
        };
        assert_eq!(
            (c.common.steps, c.common.warmup, c.common.max_seconds),
            (4, 2, 30.0)
        );
        let BenchCommand::Lm(l) = parse(&["x", "lm", "--threads", "2", "--device", "cuda"]) else {
            panic!()
        };
        assert_eq!(
            (l.common.steps, l.common.warmup, l.common.max_seconds),
            (10, 2, 0.0)
        );
        assert_eq!((l.common.threads, l.common.device.as_str()), (2, "cuda"));
        let BenchCommand::Vision(v) = parse(&["x", "vision", "--max-seconds", "1.5"]) else {
            panic!()
        };
        assert_eq!((v.common.steps, v.common.max_seconds), (10, 1.5));
        let m = v.common.measure().unwrap();
        assert!(m.budget_spent(1.5) && !m.budget_spent(1.0));
        assert_eq!(m.device_name, "cpu");
        let BenchCommand::Lm(l) = parse(&["x", "lm"]) else {
            panic!()
        };
        assert!(
            !l.common.measure().unwrap().budget_spent(1e9),
            "0: no budget"
        );
    }
}
