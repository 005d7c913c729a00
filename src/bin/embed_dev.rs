//! Temporary dev entry point for `fixclf embed` (removed before merge).
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: fixclf::embed::EmbedCommand,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = fixclf::embed::run(&cli.cmd) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
