//! `locosep` binary: the GUI without a subcommand, the headless engine with one.

use clap::Parser;

fn main() {
    let cli = locosep::cli::Cli::parse();
    if let Err(e) = locosep::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
