//! The accept loop: our own, so that socket options, accept errors and
//! shutdown are ours to handle; each connection gets a thread (see
//! `connection`).

use std::io;
use std::mem::ManuallyDrop;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use tiny_http_fork::util::MessageQueueSender;
use tiny_http_fork::{ClientConnection, Limits, Listener, Refusal, SslContextWrap};

use super::connection::{self, Answer, Job};
use super::workers::{Inline, OpenSlot};

// Pause after an accept error that may pass (out of file descriptors, a
/// thread that could not start), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Socket options for every connection, set once on the listener: Linux
/// copies them to each accepted socket, which tiny_http never exposes.
///
/// - `TCP_NODELAY`: a response over about 1 KiB would otherwise wait ~40 ms
///   for a delayed ACK on keep-alive connections.
/// - `SO_RCVTIMEO`: a connection silent for `idle` is closed (idle
///   keep-alive, slowloris, a stalled body). On the listener itself it makes
///   `accept` return `WouldBlock` after `idle` without a connection, which
///   the accept loop takes as "nothing arrived".
/// - `SO_SNDTIMEO`: a client that stops reading cannot hold a thread.
pub(super) fn configure_listener(listener: &TcpListener, idle: Duration) -> io::Result<()> {
    // std offers these options only on TcpStream; they are plain setsockopt
    // calls on the descriptor.
    let socket = as_stream(listener);
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(idle))?;
    socket.set_write_timeout(Some(idle))?;
    Ok(())
}

/// The listening socket seen as a `TcpStream`, for the socket calls std
/// offers only there (options, `shutdown`). The listener keeps ownership:
/// the view is never dropped.
pub(super) fn as_stream(listener: &TcpListener) -> ManuallyDrop<TcpStream> {
    // SAFETY: the descriptor is open for as long as `listener`, and
    // ManuallyDrop keeps the view from closing it.
    ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(listener.as_raw_fd()) })
}

/// What an accept error means for the loop.
#[derive(Debug, PartialEq, Eq)]
enum AcceptError {
    /// The listener's receive timeout passed with no connection.
    Idle,
    /// Worth retrying after a pause: out of descriptors or memory, or the
    /// client went away during the handshake.
    Transient,
    /// The listener is broken.
    Fatal,
}

fn classify(err: &io::Error) -> AcceptError {
    const RETRYABLE_ERRNO: [i32; 6] = [
        libc::EMFILE,
        libc::ENFILE,
        libc::ENOBUFS,
        libc::ENOMEM,
        libc::EPROTO,
        libc::EPERM,
    ];
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AcceptError::Idle,
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => AcceptError::Transient,
        _ if err
            .raw_os_error()
            .is_some_and(|code| RETRYABLE_ERRNO.contains(&code)) =>
        {
            AcceptError::Transient
        }
        _ => AcceptError::Fatal,
    }
}

/// Most threads at once that answer connections refused for
/// `--max-connections` (and linger until the client has read the answer);
/// beyond them the accept thread answers and closes at once.
const MAX_REFUSERS: usize = 64;

/// What every connection is held to.
#[derive(Clone, Copy)]
pub(super) struct Admission {
    /// Limits on each request head.
    pub(super) limits: Limits,
    /// The idle timeout, which a slow head's shorter wait gives way to.
    pub(super) idle: Duration,
    /// Most connections open at once.
    pub(super) max_connections: usize,
}

/// Answers a connection over `--max-connections` with a 503: on a thread
/// of its own while fewer than `MAX_REFUSERS` do, so that the accept loop
/// never waits on a client; else here, without lingering. `slot` keeps it
/// counted until it is closed.
fn refuse_busy(client: ClientConnection, inline: &Arc<Inline>, slot: OpenSlot) {
    static REFUSERS: AtomicUsize = AtomicUsize::new(0);
    let refusal = Refusal {
        status: 503,
        reason: "Too many connections are open; retry after the indicated delay",
    };
    if REFUSERS.fetch_add(1, Ordering::AcqRel) < MAX_REFUSERS {
        // The connection moves to the thread only once it runs: a thread
        // that cannot start must not take it along.
        let (handover, taken) = mpsc::channel::<ClientConnection>();
        let answer = Arc::clone(inline);
        let spawned = thread::Builder::new()
            .name("refuse".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                if let Ok(client) = taken.recv() {
                    connection::refuse(client, &*answer, refusal);
                }
                drop(slot);
                REFUSERS.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_ok() {
            let _ = handover.send(client);
            return;
        }
    }
    REFUSERS.fetch_sub(1, Ordering::AcqRel);
    let mut client = client;
    inline.refuse(refusal, client.refusal_writer());
}

/// Accepts connections and starts a thread for each (`connection`), which
/// lets tiny_http parse its requests into the queue. A connection beyond
/// `--max-connections` is answered 503 and closed.
pub(super) fn accept_loop(
    listener: Listener,
    queue: &MessageQueueSender<Job>,
    inline: &Arc<Inline>,
    admission: Admission,
    stop: &AtomicBool,
) -> io::Result<()> {
    let ssl = SslContextWrap::build_ssl_capabilities(None).map_err(io::Error::other)?;
    loop {
        // tiny_http duplicates each accepted socket and unwraps the result:
        // out of descriptors, that panics (after dropping the socket, so the
        // client sees a closed connection). The loop takes it as EMFILE.
        let accepted = catch_unwind(AssertUnwindSafe(|| {
            tiny_http_fork::Server::accept_connection(&listener, &ssl)
        }))
        .unwrap_or_else(|_| Err(io::Error::from_raw_os_error(libc::EMFILE)));
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        match accepted {
            Ok(Some(client)) => {
                let client = client.with_limits(admission.limits, admission.idle);
                let (open, slot) = inline.open();
                if open >= admission.max_connections {
                    refuse_busy(client, inline, slot);
                } else if let Err(err) =
                    connection::spawn(client, queue.clone(), Arc::clone(inline), slot)
                {
                    log::warn!("could not start a connection thread ({err}); connection dropped");
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
            // Only a failed TLS handshake gives no connection; we serve none.
            Ok(None) => {}
            Err(err) => match classify(&err) {
                AcceptError::Idle => {}
                AcceptError::Transient => {
                    log::warn!("accept failed, retrying: {err}");
                    thread::sleep(ACCEPT_BACKOFF);
                }
                AcceptError::Fatal => {
                    log::error!("accept failed for good: {err}");
                    return Err(err);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_accept_errors() {
        let kind = |k| io::Error::from(k);
        assert_eq!(
            classify(&kind(io::ErrorKind::WouldBlock)),
            AcceptError::Idle
        );
        assert_eq!(
            classify(&kind(io::ErrorKind::ConnectionAborted)),
            AcceptError::Transient
        );
        assert_eq!(
            classify(&io::Error::from_raw_os_error(24)),
            AcceptError::Transient
        );
        assert_eq!(
            classify(&io::Error::from_raw_os_error(9)),
            AcceptError::Fatal
        );
    }
}
