//! The `lpuc` binary: parse flags, run, exit with the command's code.

use clap::Parser;

fn main() {
    let cli = lpuc::cli::Cli::parse();
    std::process::exit(lpuc::cli::run(cli));
}
