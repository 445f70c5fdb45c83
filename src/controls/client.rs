//! `roomd ctl`: one request to the running daemon over its control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use roomd_core::{CtlReply, CtlRequest};

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("roomd is not running (nothing answers on {path}): {source}")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("no reply from roomd on {path}: {source}")]
    NoReply {
        path: String,
        source: std::io::Error,
    },
    #[error("roomd sent a reply this roomd ctl cannot read: {0}")]
    BadReply(serde_json::Error),
}

pub fn request(socket: &Path, request: &CtlRequest) -> Result<CtlReply, CtlError> {
    let path = socket.display().to_string();
    let mut stream = UnixStream::connect(socket).map_err(|source| CtlError::NotRunning {
        path: path.clone(),
        source,
    })?;
    let no_reply = |source| CtlError::NoReply {
        path: path.clone(),
        source,
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(no_reply)?;
    let mut line = serde_json::to_vec(request).map_err(CtlError::BadReply)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(no_reply)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(no_reply)?;
    if reply.is_empty() {
        return Err(no_reply(std::io::ErrorKind::UnexpectedEof.into()));
    }
    serde_json::from_str(&reply).map_err(CtlError::BadReply)
}
