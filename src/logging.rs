//! One logger for roomd and the libraries under it: the journal when systemd started us, stderr
//! otherwise. matrix-sdk logs through `tracing`, whose `log` feature hands its events to this
//! logger too. Levels follow `RUST_LOG` syntax. Every line is scrubbed of registered secrets
//! before it leaves the process, so a library that logs a request body cannot leak a password.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::sync::{Mutex, OnceLock, RwLock};

use log::{Level, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

const REDACTED: &str = "[redacted]";
/// How many secrets of one rotating kind stay scrubbed (the newest ones).
const ROTATING_KEPT: usize = 4;

static LOGGER: OnceLock<Logger> = OnceLock::new();

struct Logger {
    filter: env_filter::Filter,
    sink: Sink,
    secrets: RwLock<Vec<String>>,
    /// Secrets that are replaced over time (TURN credentials), by kind, oldest first, each as
    /// its spellings in `secrets`.
    rotating: Mutex<HashMap<&'static str, VecDeque<Vec<String>>>>,
}

enum Sink {
    Journal(JournalLog),
    Stderr,
}

/// The filter used when `RUST_LOG` is not set: `-v` raises roomd's level first, then everyone's.
fn default_spec(verbosity: u8) -> &'static str {
    match verbosity {
        // matrix-sdk warns on every sync that the device has no key backup, which it need not,
        // and logs every refused request as an error, even those that are normal (account data
        // not set yet, a homeserver without TURN); roomd logs the failures that matter itself.
        0 => "warn,roomd=info,matrix_sdk_crypto::backups=error,matrix_sdk::http_client=off",
        1 => "info,roomd=debug",
        2 => "debug",
        _ => "trace",
    }
}

/// Installs the process-wide logger. `RUST_LOG`, when set, takes precedence over `verbosity`.
pub fn init(verbosity: u8) -> anyhow::Result<()> {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_spec(verbosity).to_owned());
    let filter = env_filter::Builder::new()
        .try_parse(&spec)
        .map_err(|e| anyhow::anyhow!("RUST_LOG={spec:?} is not a valid filter: {e}"))?
        .build();
    let sink = if systemd_journal_logger::connected_to_journal() {
        Sink::Journal(JournalLog::new()?.with_syslog_identifier("roomd".to_owned()))
    } else {
        Sink::Stderr
    };
    let max = filter.filter();
    let logger = LOGGER.get_or_init(|| Logger {
        filter,
        sink,
        secrets: RwLock::new(Vec::new()),
        rotating: Mutex::new(HashMap::new()),
    });
    log::set_logger(logger).map_err(|e| anyhow::anyhow!("logger already installed: {e}"))?;
    log::set_max_level(max);
    Ok(())
}

/// From now on, `secret` (and its JSON-, form- and percent-escaped spellings) never appears in a
/// log line.
pub fn redact(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let mut secrets = logger.secrets.write().unwrap_or_else(|e| e.into_inner());
    add(&mut secrets, spellings(secret));
}

/// Like [`redact`] for a secret of a `kind` that is replaced over time (the homeserver's TURN
/// passwords): only the newest few of each kind are kept, so the list does not grow forever.
pub fn redact_rotating(kind: &'static str, secret: &str) {
    if secret.is_empty() {
        return;
    }
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let forms = spellings(secret);
    let mut rotating = logger.rotating.lock().unwrap_or_else(|e| e.into_inner());
    let kept = rotating.entry(kind).or_default();
    if kept.contains(&forms) {
        return;
    }
    let mut secrets = logger.secrets.write().unwrap_or_else(|e| e.into_inner());
    add(&mut secrets, forms.clone());
    kept.push_back(forms);
    while kept.len() > ROTATING_KEPT {
        let old = kept.pop_front().unwrap_or_default();
        secrets.retain(|s| !old.contains(s));
    }
}

fn spellings(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    let form = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
    let percent = crate::percent::encode_userinfo(secret);
    vec![secret.to_owned(), json, form, percent]
}

fn add(secrets: &mut Vec<String>, forms: Vec<String>) {
    for form in forms {
        if !form.is_empty() && !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

fn scrub(mut line: String, secrets: &[String]) -> String {
    for secret in secrets {
        if line.contains(secret.as_str()) {
            line = line.replace(secret.as_str(), REDACTED);
        }
    }
    line
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.filter.matches(record) {
            return;
        }
        let message = {
            let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
            scrub(record.args().to_string(), &secrets)
        };
        match &self.sink {
            Sink::Journal(journal) => {
                journal.log(
                    &Record::builder()
                        .args(format_args!("{message}"))
                        .metadata(record.metadata().clone())
                        .module_path(record.module_path())
                        .file(record.file())
                        .line(record.line())
                        .build(),
                );
            }
            Sink::Stderr => {
                let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                let level = match record.level() {
                    Level::Error => "ERROR",
                    Level::Warn => "WARN ",
                    Level::Info => "INFO ",
                    Level::Debug => "DEBUG",
                    Level::Trace => "TRACE",
                };
                // One write per line, so lines from different threads do not interleave.
                let line = format!("{now} {level} {}: {message}\n", record.target());
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Sink::Stderr = self.sink {
            let _ = std::io::stderr().flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_occurrence_longest_first() {
        let secrets = vec!["hunter22".to_owned(), "hunter2".to_owned()];
        let line = "pw=hunter22 again hunter2 end".to_owned();
        assert_eq!(scrub(line, &secrets), "pw=[redacted] again [redacted] end");
    }
}
