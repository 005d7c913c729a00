//! The `fixclf` command line: parses arguments, loads the config, calls the library, and
//! maps errors to exit codes (2: bad input or a failed run, with a one-line message; 130 /
//! 143: stopped by SIGINT / SIGTERM, with a line saying how to continue).
use anyhow::Context;
use clap::{Parser, Subcommand};
use fixclf::config;
use fixclf::optim::OptimizerKind;
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc serves this binary and, through its unprefixed `malloc`/`free`, libtorch's tensors
/// too; its options, and when freed memory goes back to the kernel: `fixclf::memory`.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "fixclf",
    version,
    about = "Fixed-classifier experiments (Hoffer et al., ICLR 2018) on libtorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model a config describes; writes runs/<name>/.
    Train {
        /// The config file (configs/*.toml).
        #[arg(long)]
        config: PathBuf,
        /// Override a config field, e.g. --set train.lr=1e-3 --set head.mode=tied.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Continue the run from its last.safetensors.
        #[arg(long)]
        resume: bool,
        /// Start over even if the run folder exists.
        #[arg(long)]
        force: bool,
        /// cpu or cuda (overrides train.device).
        #[arg(long)]
        device: Option<String>,
        /// Only print errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Evaluate a run's best checkpoint: loss and perplexity (or accuracy) on a split.
    Eval {
        /// The run folder (runs/<name>).
        #[arg(long)]
        run: PathBuf,
        /// train, valid or test.
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long)]
        device: Option<String>,
    },
    /// Print the model's parameter counts for a config, or the paper's Table 1 (--paper).
    Params {
        #[arg(long, required_unless_present = "paper")]
        config: Option<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// The paper's parameter table, counted from the real model definitions.
        #[arg(long, conflicts_with = "config")]
        paper: bool,
    },
    /// Report over run folders: results.{md,csv,json} and plots (PNG + SVG).
    Report {
        /// Run folders (runs/<name>).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output folder (default: reports/<title>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Report title (default: report).
        #[arg(long)]
        title: Option<String>,
    },
    /// Precompute word embeddings aligned to the LM's vocabulary (word2vec, PPMI + SVD),
    /// export them, evaluate them.
    #[command(subcommand)]
    Embed(fixclf::embed::EmbedCommand),
    /// Run a suite: embeddings, every run (finished ones reused, unfinished resumed), report.
    Suite {
        /// The suite file (configs/wt2-quick.toml, ...).
        #[arg(long)]
        config: PathBuf,
        /// Override a field of the base run config of every run.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Only these runs (by name; repeatable). The report still covers every finished run.
        #[arg(long)]
        only: Vec<String>,
        /// Only print progress lines between runs, and errors.
        #[arg(long, short)]
        quiet: bool,
        /// Train this many runs at once, each in its own process with its log in
        /// `<runs>/.jobs/` (a GPU has room for several batch-20 LSTMs).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
        jobs: u64,
    },
    /// libtorch version, CUDA availability, threads.
    Info,
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Training and evaluation tokens/s of the LM at paper size, one JSON line per mode
    /// (same keys as ../shared/bench/torch_lm_bench.py).
    Lm {
        /// Comma-separated output modes (`fixed` = fixed-orthogonal).
        #[arg(long, default_value = "learned,tied,fixed-orthogonal")]
        modes: String,
        #[arg(long, value_enum, default_value = "sgd")]
        optimizer: OptimizerKind,
        /// CPU threads (0: libtorch's default).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Timed steps (after 2 warm-up steps).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long, default_value_t = 33_278)]
        vocab: i64,
        #[arg(long, default_value_t = 512)]
        emb: i64,
        #[arg(long, default_value_t = 512)]
        hidden: i64,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Arithmetic of the step and the evaluation (as `train.precision`).
        #[arg(long, value_enum, default_value = "fp32")]
        precision: config::Precision,
        /// Also report the device time of a step's kernels (the profiler; CUDA only): the
        /// floor the step's time is compared with.
        #[arg(long)]
        profile: bool,
    },
    /// The gradient all-reduce alone between the ranks of a launch (torchrun or
    /// scripts/ranks.sh), one JSON line per size from rank 0 (docs/distributed.md).
    Allreduce {
        /// Comma-separated numbers of float32 values (default: the paper-size LM's
        /// gradients with a learned, tied and fixed-orthogonal head).
        #[arg(long, default_value = "38312446,21274110,4235775")]
        floats: String,
        /// Timed all-reduces per size (after one warm-up).
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Bucket size in MB (as `distributed.bucket_mb`).
        #[arg(long, default_value_t = 25.0)]
        bucket_mb: f64,
    },
    /// Training and evaluation images/s of the CIFAR ResNet with a learned or a fixed head,
    /// one JSON line per (model, head) with the keys of ../shared/bench/torch_vision_bench.py.
    Vision {
        /// Comma-separated ResNet depths (6n+2).
        #[arg(long, default_value = "20,56")]
        depths: String,
        /// Comma-separated heads (`fixed` = fixed-orthogonal; any fixed mode but the
        /// pretrained ones).
        #[arg(long, default_value = "learned,fixed")]
        heads: String,
        #[arg(long, default_value_t = 10)]
        classes: i64,
        #[arg(long, default_value_t = 3)]
        channels: i64,
        /// Image height and width.
        #[arg(long, default_value_t = 32)]
        size: i64,
        #[arg(long, default_value_t = 128)]
        batch: i64,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// CPU threads (0: libtorch's default).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// cpu or cuda (needs a `--features cuda` build).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Layout of images and convolution weights, as `vision.memory_format` (compare
        /// with the reference's `--channels-last`).
        #[arg(long, value_enum, default_value_t = fixclf::vision::models::MemoryFormat::Contiguous)]
        memory_format: fixclf::vision::models::MemoryFormat,
    },
    /// The classifier head alone at the paper's shapes: fixed with Q stored, fixed Hadamard
    /// as the fast transform, learned; forward and forward + backward. JSON lines, then a
    /// Markdown table.
    Heads {
        /// Comma-separated CxN shapes.
        #[arg(long, default_value = fixclf::bench::heads::PAPER_SHAPES)]
        shapes: String,
        #[arg(long, default_value_t = 128)]
        batch: i64,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Time budget of each measurement's timed runs, seconds (0: none).
        #[arg(long, default_value_t = 20.0)]
        max_seconds: f64,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// What a fixed classifier saves as the number of classes grows: per C, N and head, the
    /// classifier's training step, peak memory, optimizer state and checkpoint bytes.
    Classifier {
        /// Comma-separated class counts (k and M suffixes allowed).
        #[arg(long, default_value = "10,100,1k,10k,100k,1M")]
        classes: String,
        /// Comma-separated feature counts N.
        #[arg(long, default_value = "512,2048")]
        features: String,
        /// Comma-separated heads: learned, fixed-dense (Q stored), fixed-hadamard (fast
        /// transform).
        #[arg(long, default_value = "learned,fixed-dense,fixed-hadamard")]
        heads: String,
        #[arg(long, default_value_t = 256)]
        batch: i64,
        /// Timed steps per point (fewer when --max-seconds runs out).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Time budget of each point's timed steps, seconds (0: none).
        #[arg(long, default_value_t = 30.0)]
        max_seconds: f64,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Also write classifier_sweep.{csv,md,svg,png} into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train {
            config,
            mut set,
            resume,
            force,
            device,
            quiet,
        } => {
            if let Some(d) = device {
                set.push(format!("train.device={d}"));
            }
            let cfg = config::load(&config, &set)?;
            fixclf::tasks::train(
                &cfg,
                &fixclf::engine::TrainOptions {
                    resume,
                    force,
                    quiet,
                },
            )?;
        }
        Command::Eval { run, split, device } => {
            let e = fixclf::tasks::eval_run(&run, &split, device.as_deref())?;
            let mut line = format!("{}: {split} loss {:.4}", run.display(), e.loss);
            if let Some(ppl) = e.ppl {
                line.push_str(&format!(" | {split} ppl {ppl:.2}"));
            }
            if let Some(acc) = e.acc {
                line.push_str(&format!(" | {split} acc {:.2}%", 100.0 * acc));
            }
            println!("{line}");
        }
        Command::Params { config: None, .. } => {
            let rows = fixclf::vision::params::paper_table()?;
            println!("{}", fixclf::vision::params::render_paper_table(&rows));
        }
        Command::Params {
            config: Some(config),
            set,
            ..
        } => {
            let cfg = config::load(&config, &set)?;
            let (report, removable) = fixclf::tasks::describe_config(&cfg)?;
            println!("{}", report.describe(cfg.head.mode.name(), &removable));
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Report { runs, out, title } => {
            let title = title.unwrap_or_else(|| "report".into());
            let out = out.unwrap_or_else(|| PathBuf::from("reports").join(&title));
            let table = fixclf::report::write_report(&runs, &out, &title)?;
            println!("{}", fixclf::report::render_markdown(&table));
            println!("report written to {}", out.display());
        }
        Command::Embed(cmd) => fixclf::embed::run(&cmd)?,
        Command::Suite {
            config,
            set,
            only,
            quiet,
            jobs,
        } => {
            if fixclf::distributed::Launch::from_env()?.is_some() {
                anyhow::bail!(
                    "fixclf suite runs alone, not under torchrun (every rank would write the \
                     same files); launch `fixclf train --config ...` of each run instead \
                     (docs/distributed.md)"
                );
            }
            fixclf::suite::run_suite(
                &config,
                &fixclf::suite::SuiteOptions {
                    overrides: set,
                    only,
                    quiet,
                    jobs: jobs as usize,
                },
            )?;
        }
        Command::Info => {
            println!("fixclf {}", env!("CARGO_PKG_VERSION"));
            println!("libtorch {} (tch 0.24.0)", fixclf::bench::LIBTORCH_VERSION);
            println!("cuda available: {}", tch::Cuda::is_available());
            println!("cuda devices: {}", tch::Cuda::device_count());
            println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            println!(
                "cuda graphs: {}",
                if fixclf::native::cuda_graphs_compiled() {
                    "built in (the cuda feature)"
                } else {
                    "not built (build with --features cuda)"
                }
            );
            println!("threads: {}", tch::get_num_threads());
            println!(
                "cpu cores: {}",
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            );
        }
        Command::Bench(BenchCommand::Lm {
            modes,
            optimizer,
            threads,
            steps,
            vocab,
            emb,
            hidden,
            device,
            precision,
            profile,
        }) => {
            let device = fixclf::engine::resolve_device(&device)?;
            if profile && !device.is_cuda() {
                anyhow::bail!("--profile: the device time of kernels needs --device cuda");
            }
            let b = fixclf::lm::bench::LmBench {
                precision,
                profile,
                modes: fixclf::lm::bench::parse_modes(&modes)?,
                optimizer,
                threads,
                steps,
                vocab,
                emb,
                hidden,
                device,
                ..Default::default()
            };
            for mode in b.modes.clone() {
                let line = fixclf::lm::bench::bench_mode(&b, mode)
                    .with_context(|| format!("bench {mode}"))?;
                println!("{line}");
            }
        }
        Command::Bench(BenchCommand::Allreduce {
            floats,
            repeats,
            bucket_mb,
        }) => {
            let sizes = fixclf::bench::parse_counts("--floats", &floats)?;
            for line in fixclf::distributed::bench::run(&sizes, repeats, bucket_mb)? {
                println!("{line}");
            }
        }
        Command::Bench(BenchCommand::Vision {
            depths,
            heads,
            classes,
            channels,
            size,
            batch,
            steps,
            warmup,
            threads,
            device,
            memory_format,
        }) => {
            let b = fixclf::vision::bench::VisionBench {
                depths: fixclf::bench::parse_counts("--depths", &depths)?,
                heads: fixclf::bench::parse_modes("--heads", &heads)?,
                classes,
                channels,
                size,
                batch,
                steps,
                warmup,
                threads,
                device: fixclf::engine::resolve_device(&device)?,
                device_name: device,
                memory_format,
            };
            for &depth in &b.depths {
                for head in &b.heads {
                    let line = fixclf::vision::bench::bench_one(&b, depth, head)
                        .with_context(|| format!("bench resnet{depth} {}", head.0))?;
                    println!("{line}");
                }
            }
        }
        Command::Bench(BenchCommand::Heads {
            shapes,
            batch,
            steps,
            warmup,
            max_seconds,
            threads,
            device,
        }) => {
            let b = fixclf::bench::heads::HeadsBench {
                shapes: fixclf::bench::heads::parse_shapes("--shapes", &shapes)?,
                batch,
                steps,
                warmup,
                max_seconds,
                threads,
                device: fixclf::engine::resolve_device(&device)?,
                device_name: device,
            };
            let lines = fixclf::bench::heads::run(&b, |l| println!("{l}"))?;
            println!("\n{}", fixclf::bench::heads::markdown(&lines));
        }
        Command::Bench(BenchCommand::Classifier {
            classes,
            features,
            heads,
            batch,
            steps,
            warmup,
            max_seconds,
            threads,
            device,
            out,
        }) => {
            let s = fixclf::bench::sweep::Sweep {
                classes: fixclf::bench::parse_counts("--classes", &classes)?,
                features: fixclf::bench::parse_counts("--features", &features)?,
                heads: fixclf::bench::head_step::HeadKind::parse_list("--heads", &heads)?,
                batch,
                steps,
                warmup,
                max_seconds,
                threads,
                device: fixclf::engine::resolve_device(&device)?,
                device_name: device,
            };
            let points = s.run(|p| {
                println!("{}", serde_json::to_string(p).unwrap_or_default());
            })?;
            println!("\n{}", fixclf::bench::sweep_out::render_markdown(&points));
            if let Some(dir) = out {
                fixclf::bench::sweep_out::write(&dir, &points)?;
                println!("classifier sweep written to {}", dir.display());
            }
        }
    }
    Ok(())
}

/// The chain of causes on one line, outermost first, each said once: the library's errors
/// already include their source's text (`path: cause`), so a cause that the line holds is
/// not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Whether a command stops cleanly on SIGINT / SIGTERM (it polls the flag); the others
/// keep the default action of dying at once, having nothing to save.
fn stops_cleanly(command: &Command) -> bool {
    use fixclf::embed::EmbedCommand;
    matches!(
        command,
        Command::Train { .. }
            | Command::Suite { .. }
            | Command::Embed(EmbedCommand::Word2vec(_) | EmbedCommand::Pmi(_))
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if stops_cleanly(&cli.command) {
        if let Err(e) = fixclf::interrupt::install() {
            eprintln!("warning: cannot handle Ctrl-C cleanly ({e}); it will stop at once");
        }
    }
    match run(cli) {
        Ok(()) => {
            match fixclf::interrupt::requested() {
                // The signal came during the last, short part (the test evaluation, the report):
                // that part completed, so there is nothing to resume.
                Some(signal) => {
                    eprintln!("interrupted by {signal} after the work had finished; its output is complete");
                    ExitCode::from(signal.exit_code())
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => match e.downcast_ref::<fixclf::Error>() {
            Some(fixclf::Error::Interrupted { signal, .. }) => {
                eprintln!("{e}");
                ExitCode::from(signal.exit_code())
            }
            _ => {
                eprintln!("error: {}", one_line(&e));
                ExitCode::from(2)
            }
        },
    }
}
