//! `fixclf bench ...`: the command-line surface of the benchmarks. Each bench's flags live
//! beside it ([`crate::bench::lm::LmArgs`], [`crate::bench::vision::VisionArgs`],
//! [`super::heads::HeadsArgs`], [`super::sweep::SweepArgs`]), and all of them share
//! [`super::measure::RunArgs`]: timed steps, warm-up, time budget, threads and device. The
//! benches return their lines; what is printed is decided here.
use crate::error::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Training and evaluation tokens/s of the LM at paper size, one JSON line per mode
    /// (same keys as ../shared/bench/torch_lm_bench.py).
    Lm(crate::bench::lm::LmArgs),
    /// Training and evaluation images/s of the CIFAR ResNet with a learned or a fixed head,
    /// one JSON line per (model, head) with the keys of ../shared/bench/torch_vision_bench.py.
    Vision(crate::bench::vision::VisionArgs),
    /// The classifier head alone at the paper's shapes: fixed with Q stored, fixed Hadamard
    /// as the fast transform, learned; forward and forward + backward. JSON lines, then a
    /// Markdown table.
    Heads(super::heads::HeadsArgs),
    /// What a fixed classifier saves as the number of classes grows: per C, N and head, the
    /// classifier's training step, peak memory, optimizer state and checkpoint bytes.
    Classifier(super::sweep::SweepArgs),
    /// Images/s of the image loader (decode + transform) over a folder of class folders,
    /// one JSON line (bench/data.sh compares it with torchvision's DataLoader).
    Data(super::data::DataBenchArgs),
    /// The gradient all-reduce alone between the ranks of a launch (torchrun or
    /// scripts/ranks.sh), one JSON line per size from rank 0 (docs/distributed.md).
    Allreduce(super::allreduce::AllreduceArgs),
}

/// Runs the bench `cmd` names, printing its JSON lines (and table) to stdout.
pub fn run(cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Lm(args) => run_lm(args),
        BenchCommand::Vision(args) => run_vision(args),
        BenchCommand::Heads(args) => run_heads(args),
        BenchCommand::Classifier(args) => run_classifier(args),
        BenchCommand::Data(args) => {
            println!("{}", super::data::run(args)?);
            Ok(())
        }
        BenchCommand::Allreduce(args) => {
            for line in super::allreduce::run(args)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Every mode, a JSON line each.
fn run_lm(args: &crate::bench::lm::LmArgs) -> Result<()> {
    let b = args.bench()?;
    for &mode in &b.modes {
        let line = crate::bench::lm::bench_mode(&b, mode)
            .map_err(|e| Error::within(format!("bench {mode}"), e))?;
        println!("{line}");
    }
    Ok(())
}

/// Every (depth, head), a JSON line each.
fn run_vision(args: &crate::bench::vision::VisionArgs) -> Result<()> {
    let b = args.bench()?;
    for &depth in &b.depths {
        for head in &b.heads {
            let line = crate::bench::vision::bench_one(&b, depth, head)
                .map_err(|e| Error::within(format!("bench resnet{depth} {}", head.0), e))?;
            println!("{line}");
        }
    }
    Ok(())
}

/// Every (shape, head), a JSON line each as it is measured, then the Markdown table.
fn run_heads(args: &super::heads::HeadsArgs) -> Result<()> {
    let lines = super::heads::run(&args.bench()?, |l| println!("{l}"))?;
    println!("\n{}", super::heads::markdown(&lines));
    Ok(())
}

/// Every point, a JSON line each as it is measured, then the Markdown table; the files into
/// `--out` when given.
fn run_classifier(args: &super::sweep::SweepArgs) -> Result<()> {
    let points = args.sweep()?.run(|p| {
        println!("{}", serde_json::to_string(p).unwrap_or_default());
    })?;
    println!("\n{}", super::sweep_out::render_markdown(&points));
    if let Some(dir) = &args.out {
        super::sweep_out::write(dir, &points)?;
        println!("classifier sweep written to {}", dir.display());
    }
    Ok(())
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
