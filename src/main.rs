//! The `roomd` command: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use roomd::config::{self, Config, Severity};

/// Exit status for a config that does not parse or make sense (systemd does not restart on it).
const EXIT_INVALID_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "roomd", version, about = "Matrix conference-room appliance")]
struct Cli {
    /// The config file.
    #[arg(short, long, global = true, env = "ROOMD_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// More log output: -v roomd's debug lines, -vv everyone's, -vvv trace. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: log in, serve the configured rooms, join their calls.
    Run,
    /// Check a config file; print every problem as FILE:LINE:COL and exit 2 if any is an error.
    CheckConfig {
        /// The file to check (default: --config).
        path: Option<PathBuf>,
    },
    /// Print the default config, fully commented.
    PrintConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::PrintConfig => {
            print!("{}", config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { path } => check_config(&path.unwrap_or(cli.config)),
        Command::Run => run(&cli.config, cli.verbose),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let shown = path.display().to_string();
    match Config::load(path) {
        Ok((text, loaded)) => {
            for w in &loaded.warnings {
                eprintln!("{}", w.render(&shown, &text));
            }
            println!("{shown}: OK: {}", loaded.config.summary());
            ExitCode::SUCCESS
        }
        Err((text, invalid)) => {
            for d in &invalid.diagnostics {
                eprintln!("{}", d.render(&shown, &text));
            }
            let errors = invalid
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!(
                "{shown}: {errors} error{} found",
                if errors == 1 { "" } else { "s" }
            );
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}

fn run(path: &std::path::Path, verbose: u8) -> ExitCode {
    if let Err(e) = roomd::logging::init(verbose) {
        eprintln!("roomd: {e}");
        return ExitCode::FAILURE;
    }
    let shown = path.display().to_string();
    let config = match Config::load(path) {
        Ok((text, loaded)) => {
            for w in &loaded.warnings {
                log::warn!("{}", w.render(&shown, &text));
            }
            loaded.config
        }
        Err((text, invalid)) => {
            for d in &invalid.diagnostics {
                log::error!("{}", d.render(&shown, &text));
            }
            log::error!("refusing to start with an invalid config; `roomd check-config {shown}`");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    log::info!(
        "roomd {} starting: {}",
        env!("CARGO_PKG_VERSION"),
        config.summary()
    );
    let credential = match roomd::matrix::Credential::load(&config.matrix.login) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(roomd::daemon::run(config, credential)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
