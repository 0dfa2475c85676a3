//! `bulwark`: the single binary. Argument parsing and wiring only; every
//! component lives in its own library crate (see `ARCHITECTURE.md`).

use clap::{Parser, Subcommand};

/// Bulwark: a Kubernetes-compatible, secure-by-default container orchestrator.
#[derive(Debug, Parser)]
#[command(name = "bulwark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this binary and of the Kubernetes API it serves.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("bulwark {}", env!("CARGO_PKG_VERSION"));
        }
    }
    Ok(())
}
