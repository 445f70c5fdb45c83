//! The `roomd` command: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use roomd::config::{self, Config, Severity};
use roomd_core::{Button, CtlRequest, VolumeChange};

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
    /// Check this box's cameras, sound devices and GStreamer elements against the config; exit 1
    /// if the configured devices cannot work.
    MediaCheck {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Talk to the running roomd over its control socket.
    Ctl {
        #[command(subcommand)]
        command: CtlCommand,
    },
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Per served room: whether a call is on, who is in it, and what roomd is doing.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Leave the call and stay out of it until it ends or someone rings.
    Hangup {
        /// The room (ID or alias as configured); default: whichever room has the call.
        room: Option<String>,
    },
    /// Silence the microphone; the far ends are told it is muted.
    Mute,
    /// Bring the microphone back.
    Unmute,
    /// Mute if live, unmute if muted.
    ToggleMute,
    /// Join the room's call, ending a hang-up or do-not-disturb.
    Join {
        /// The room (ID or alias as configured); default: whichever served room has a call.
        room: Option<String>,
    },
    /// Say the speaker volume, or change it: `up`, `down` or a percentage.
    Volume {
        #[arg(value_parser = parse_volume)]
        change: Option<VolumeChange>,
    },
    /// Press a button as if by hand (mute, hangup, join, volume_up, volume_down).
    Press {
        #[arg(value_parser = parse_button)]
        button: Button,
        /// Hold it for a long press.
        #[arg(long)]
        long: bool,
    },
}

fn parse_volume(s: &str) -> Result<VolumeChange, String> {
    match s {
        "up" | "+" => Ok(VolumeChange::Up),
        "down" | "-" => Ok(VolumeChange::Down),
        _ => match s.trim_end_matches('%').parse::<u8>() {
            Ok(v) if v <= 100 => Ok(VolumeChange::Set(v)),
            _ => Err(format!(
                "`{s}` is not up, down or a percentage from 0 to 100"
            )),
        },
    }
}

fn parse_button(s: &str) -> Result<Button, String> {
    Button::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Button::ALL.iter().map(|b| b.name()).collect();
        format!("no button `{s}`; the buttons are {}", names.join(", "))
    })
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
        Command::Ctl { command } => ctl(&cli.config, command),
        Command::MediaCheck { json } => media_check(&cli.config, json),
    }
}

fn media_check(path: &std::path::Path, json: bool) -> ExitCode {
    let shown = path.display().to_string();
    let config = match Config::load(path) {
        Ok((_, loaded)) => loaded.config,
        Err((text, invalid)) => {
            for d in &invalid.diagnostics {
                eprintln!("{}", d.render(&shown, &text));
            }
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let report = roomd::media::check::check(&config);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serializes")
        );
    } else {
        print!("{}", report.render());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn ctl(config_path: &std::path::Path, command: CtlCommand) -> ExitCode {
    // Only the socket path is needed; a config with other problems must not stop `ctl`.
    let socket = match Config::load(config_path) {
        Ok((_, loaded)) => loaded.config.control.socket,
        Err(_) => {
            let default = Config::default().control.socket;
            eprintln!(
                "roomd ctl: {} is not a valid config; trying {}",
                config_path.display(),
                default.display()
            );
            default
        }
    };
    let (request, json) = match command {
        CtlCommand::Status { json } => (CtlRequest::Status, json),
        CtlCommand::Hangup { room } => (CtlRequest::Hangup { room }, false),
        CtlCommand::Mute => (CtlRequest::Mute, false),
        CtlCommand::Unmute => (CtlRequest::Unmute, false),
        CtlCommand::ToggleMute => (CtlRequest::ToggleMute, false),
        CtlCommand::Join { room } => (CtlRequest::Join { room }, false),
        CtlCommand::Volume { change } => (CtlRequest::Volume { change }, false),
        CtlCommand::Press { button, long } => (CtlRequest::Press { button, long }, false),
    };
    match roomd::controls::client::request(&socket, &request) {
        Ok(reply) if !reply.ok => {
            eprintln!("roomd: {}", reply.error.unwrap_or_default());
            ExitCode::FAILURE
        }
        Ok(reply) => {
            match (reply.status, reply.message) {
                (Some(status), _) if json => println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serializes")
                ),
                (Some(status), _) => print!("{}", status.render()),
                (None, Some(message)) => println!("{message}"),
                (None, None) => {}
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roomd ctl: {e}");
            ExitCode::FAILURE
        }
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
    let turn_password = match config.ice.load_turn_password() {
        Ok(p) => p,
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
    match runtime.block_on(roomd::daemon::run(config, credential, turn_password)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
