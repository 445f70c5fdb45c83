//! The control socket: JSON lines over a Unix socket, mode 0660 (root and the roomd group).
//! Each line is one request; each gets one reply line. Lines are bounded in size.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use roomd_core::ctl::MAX_REQUEST_BYTES;
use roomd_core::{CtlReply, CtlRequest};

/// A request from a connection, with where its reply goes.
pub struct Request {
    pub request: CtlRequest,
    pub reply: oneshot::Sender<CtlReply>,
}

/// A client that sends nothing is dropped after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ControlSocket {
    path: PathBuf,
}

impl ControlSocket {
    /// Binds the socket, replacing a stale one but refusing to steal a live one, and serves
    /// connections until the returned value is dropped.
    pub fn bind(path: &Path, requests: mpsc::Sender<Request>) -> anyhow::Result<ControlSocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot make {}", dir.display()))?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!("another roomd is already answering on {}", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(stream, requests.clone()));
                    }
                    Err(e) => {
                        log::warn!("control socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        log::info!("control socket at {}", path.display());
        Ok(ControlSocket {
            path: path.to_owned(),
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(stream: UnixStream, requests: mpsc::Sender<Request>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // One byte over the limit is enough to know a line is too long.
        let limited = (&mut reader).take(MAX_REQUEST_BYTES as u64 + 1);
        let read = tokio::time::timeout(IDLE_TIMEOUT, read_line(limited, &mut line)).await;
        let reply = match read {
            Err(_) | Ok(Ok(0)) => return,
            Ok(Err(e)) => {
                log::debug!("control connection: {e}");
                return;
            }
            Ok(Ok(_)) if line.len() > MAX_REQUEST_BYTES => {
                let reply =
                    CtlReply::error(format!("request longer than {MAX_REQUEST_BYTES} bytes"));
                let _ = write_reply(&mut write, &reply).await;
                return;
            }
            Ok(Ok(_)) => answer(&line, &requests).await,
        };
        if write_reply(&mut write, &reply).await.is_err() {
            return;
        }
    }
}

async fn read_line<R: AsyncBufRead + Unpin>(
    mut r: R,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    r.read_until(b'\n', line).await
}

async fn answer(line: &[u8], requests: &mpsc::Sender<Request>) -> CtlReply {
    let request = match serde_json::from_slice::<CtlRequest>(line) {
        Ok(r) => r,
        Err(e) => return CtlReply::error(format!("not a request roomd knows: {e}")),
    };
    let (reply, answer) = oneshot::channel();
    if requests.send(Request { request, reply }).await.is_err() {
        return CtlReply::error("roomd is stopping");
    }
    answer
        .await
        .unwrap_or_else(|_| CtlReply::error("roomd is stopping"))
}

async fn write_reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &CtlReply,
) -> std::io::Result<()> {
    let mut text = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write.write_all(&text).await
}
