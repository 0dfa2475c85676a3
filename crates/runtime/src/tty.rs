//! Receiving a terminal's controlling side over a console socket, as
//! runc-compatible runtimes send it (one fd in an SCM_RIGHTS message).

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::process::Child;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

/// How long the shim may take to create the terminal.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts the shim's connection on `listener` and returns the terminal fd it
/// sends. Gives up when `child` exits first or the timeout passes.
pub(crate) fn receive_terminal(
    listener: &UnixListener,
    child: &mut Child,
) -> Result<OwnedFd, String> {
    receive_terminal_while(listener, || match child.try_wait() {
        Ok(Some(status)) => Err(format!("exec ended ({status}) before opening a terminal:")),
        _ => Ok(()),
    })
}

/// Like [`receive_terminal`], polling `alive` (an error ends the wait).
pub(crate) fn receive_terminal_while(
    listener: &UnixListener,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<OwnedFd, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("console socket: {e}"))?;
    let deadline = Instant::now() + TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                alive()?;
                if Instant::now() > deadline {
                    return Err("no terminal arrived on the console socket".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("console socket: {e}")),
        }
    };
    stream
        .set_nonblocking(false)
        .map_err(|e| format!("console socket: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| format!("console socket: {e}"))?;
    let mut name = [0u8; 256];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the terminal: {e}"))?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err("the console socket message carried no terminal".into())
}
