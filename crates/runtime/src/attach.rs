//! Attaching to a container's main process: the shim serves a Unix socket
//! (`attach.sock` in the container directory); every client gets the
//! process's output as it is written, and what a client writes goes to the
//! process's stdin when the container was created with `stdin: true`.
//!
//! Wire format: frames of `[kind: u8][length: u32 big-endian][bytes]`.
//! Shim → client: kind 1 = stdout, 2 = stderr. Client → shim: kind 0 =
//! stdin bytes, 3 = terminal resize (rows, cols as two big-endian u16s; only
//! for a container with `tty: true`), 4 = close stdin for good (the process
//! reads its end: Kubernetes' `stdinOnce`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Which output stream an [`Attach`] frame came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A connection to a container's main process ([`crate::Runtime::attach`]).
#[derive(Debug)]
pub struct Attach {
    stream: UnixStream,
}

impl Attach {
    pub(crate) fn connect(container_dir: &Path) -> io::Result<Self> {
        let (_dir, path) = short_path(container_dir)?;
        let stream = UnixStream::connect(path.as_str())?;
        Ok(Attach { stream })
    }

    /// The next piece of output; `None` once the process has ended (the
    /// shim closed the connection).
    pub fn read(&mut self) -> io::Result<Option<(OutputStream, Vec<u8>)>> {
        let mut header = [0u8; 5];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let stream = match header[0] {
            KIND_STDOUT => OutputStream::Stdout,
            KIND_STDERR => OutputStream::Stderr,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("attach: unknown stream {other}"),
                ));
            }
        };
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data)?;
        Ok(Some((stream, data)))
    }

    /// Writes to the process's stdin (ignored unless the container was
    /// created with `stdin: true`).
    pub fn write_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(&frame(KIND_STDIN, data))
    }

    /// A second handle on the same connection (one thread reads while
    /// another writes).
    pub fn try_clone(&self) -> io::Result<Attach> {
        Ok(Attach {
            stream: self.stream.try_clone()?,
        })
    }

    /// Ends the connection for every handle: a blocked [`Attach::read`]
    /// returns, and the shim forgets this client.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Closes the main process's stdin for every client: it reads the end
    /// of its input (Kubernetes' `stdinOnce`, once the first client is done).
    pub fn close_stdin(&mut self) -> io::Result<()> {
        self.stream.write_all(&frame(KIND_CLOSE_STDIN, &[]))
    }

    /// Resizes the main process's terminal (containers with `tty: true`).
    pub fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        let mut size = rows.to_be_bytes().to_vec();
        size.extend_from_slice(&cols.to_be_bytes());
        self.stream.write_all(&frame(KIND_RESIZE, &size))
    }
}

const KIND_STDIN: u8 = 0;
const KIND_STDOUT: u8 = 1;
const KIND_STDERR: u8 = 2;
const KIND_RESIZE: u8 = 3;
const KIND_CLOSE_STDIN: u8 = 4;

fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 5);
    frame.push(kind);
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

/// `/proc/self/fd/N/attach.sock`: short enough for a socket address
/// whatever the container directory's length (sun_path holds 108 bytes).
/// The path is valid while the returned directory handle is open.
fn short_path(container_dir: &Path) -> io::Result<(File, String)> {
    short_socket_path(container_dir, "attach.sock")
}

/// `/proc/self/fd/N/<name>` for a socket in `dir`, with the handle keeping
/// it valid.
pub(crate) fn short_socket_path(dir: &Path, name: &str) -> io::Result<(File, String)> {
    let dir = File::open(dir)?;
    let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    Ok((dir, path))
}

/// The shim's side: connected clients, fed by the output copiers.
#[derive(Default)]
pub(crate) struct Attachments {
    clients: Mutex<Vec<UnixStream>>,
}

impl Attachments {
    /// Sends a chunk of output to every client; drops clients that left.
    pub(crate) fn broadcast(&self, stream: OutputStream, data: &[u8]) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.is_empty() || data.is_empty() {
            return;
        }
        let kind = match stream {
            OutputStream::Stdout => KIND_STDOUT,
            OutputStream::Stderr => KIND_STDERR,
        };
        let frame = frame(kind, data);
        clients.retain_mut(|c| c.write_all(&frame).is_ok());
    }
}

/// Binds `attach.sock` in the container directory.
pub(crate) fn bind(container_dir: &Path) -> io::Result<UnixListener> {
    let (_dir, path) = short_path(container_dir)?;
    UnixListener::bind(path.as_str())
}

/// Serves attach clients on a thread: each is added to `attachments`, and
/// its bytes go to `stdin`.
pub(crate) fn serve(
    listener: UnixListener,
    attachments: Arc<Attachments>,
    stdin: Option<File>,
) -> std::thread::JoinHandle<()> {
    let stdin = stdin.map(|f| Arc::new(Mutex::new(Some(f))));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if let Ok(clone) = client.try_clone() {
                attachments
                    .clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(clone);
            }
            if let Some(stdin) = stdin.clone() {
                std::thread::spawn(move || forward_stdin(client, &stdin));
            }
        }
    })
}

/// Reads a client's frames: stdin bytes go to the process, resizes to its
/// terminal.
fn forward_stdin(mut client: UnixStream, stdin: &Mutex<Option<File>>) {
    loop {
        let mut header = [0u8; 5];
        if client.read_exact(&mut header).is_err() {
            return;
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut data = vec![0u8; len.min(1 << 20)];
        if client.read_exact(&mut data).is_err() {
            return;
        }
        let mut stdin = stdin.lock().unwrap_or_else(|p| p.into_inner());
        if header[0] == KIND_CLOSE_STDIN {
            // Dropping the shim's end of the pipe: the process reads EOF.
            *stdin = None;
            continue;
        }
        let Some(stdin) = stdin.as_ref() else {
            continue;
        };
        match header[0] {
            KIND_STDIN if (&*stdin).write_all(&data).is_err() => return,
            KIND_RESIZE if data.len() == 4 => {
                let size = rustix::termios::Winsize {
                    ws_row: u16::from_be_bytes([data[0], data[1]]),
                    ws_col: u16::from_be_bytes([data[2], data[3]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // Not a terminal (stdin is a pipe): nothing to resize.
                let _ = rustix::termios::tcsetwinsize(stdin, size);
            }
            _ => {}
        }
    }
}
