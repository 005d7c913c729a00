//! The `fixclf` command line: parses arguments, loads the config, calls the library, and
//! maps errors to exit codes (2: bad input or a failed run, with a one-line message; 130 /
//! 143: stopped by SIGINT / SIGTERM, with a line saying how to continue).
use clap::{Parser, Subcommand};
use fixclf::config;
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
    /// Image folders and tar shards: export a data set as PNGs, make JPEGs, pack shards.
    #[command(subcommand)]
    Data(fixclf::vision::datacli::DataCommand),
    /// Run a suite: embeddings, every run (finished ones reused, unfinished resumed), report.
    /// Under torchrun every run trains data-parallel on all ranks; rank 0 writes.
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
        /// `<runs>/.jobs/` (a GPU has room for several batch-20 LSTMs). Not under torchrun.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
        jobs: u64,
    },
    /// libtorch version, CUDA availability, threads.
    Info,
    /// Benchmarks.
    #[command(subcommand)]
    Bench(fixclf::bench::cli::BenchCommand),
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
        Command::Eval { run, split, device } => print_eval(&run, &split, device.as_deref())?,
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
        Command::Data(cmd) => println!("{}", fixclf::vision::datacli::run(&cmd)?),
        Command::Suite {
            config,
            set,
            only,
            quiet,
            jobs,
        } => {
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
        Command::Info => print_info(),
        Command::Bench(cmd) => fixclf::bench::cli::run(&cmd)?,
    }
    Ok(())
}

/// `fixclf eval`: the loss, and the perplexity or accuracy, of a run's best checkpoint on
/// one line.
fn print_eval(run: &std::path::Path, split: &str, device: Option<&str>) -> anyhow::Result<()> {
    let e = fixclf::tasks::eval_run(run, split, device)?;
    let mut line = format!("{}: {split} loss {:.4}", run.display(), e.loss);
    if let Some(ppl) = e.ppl {
        line.push_str(&format!(" | {split} ppl {ppl:.2}"));
    }
    if let Some(acc) = e.acc {
        line.push_str(&format!(" | {split} acc {:.2}%", 100.0 * acc));
    }
    println!("{line}");
    Ok(())
}

/// `fixclf info`: versions, what the build and the machine offer.
fn print_info() {
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
            Some(fixclf::Error::Interrupted { signal, what, .. }) => {
                // Under a launch every rank stops after the same step and rank 0 saves the
                // checkpoint: rank 0 says where to resume, the others only where they stopped.
                // One write per line, so that the ranks' lines do not interleave on a shared
                // terminal.
                let line = match fixclf::distributed::rank() {
                    0 => format!("{e}\n"),
                    rank => {
                        let stop = what.split("; checkpoint saved").next().unwrap_or(what);
                        format!("rank {rank}: {stop} (with rank 0, which saved the checkpoint)\n")
                    }
                };
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
                ExitCode::from(signal.exit_code())
            }
            _ => {
                eprintln!("error: {}", one_line(&e));
                ExitCode::from(2)
            }
        },
    }
}
