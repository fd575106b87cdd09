//! One thread per connection, started by us: it lets tiny_http parse the
//! connection's requests and queues them for the workers.
//!
//! tiny_http's own `TaskPool` does this badly in two ways (both measured,
//! tests `a_burst_of_connections_is_served_at_once` and
//! `the_server_recovers_after_running_out_of_threads`):
//!
//! - It hands a new connection to an idle thread if its count of idle
//!   threads says there is one, but a woken thread leaves that count only
//!   when it runs. A burst of connections is queued behind the same few
//!   threads, and each waits until an earlier keep-alive connection ends
//!   (up to `--idle-timeout`).
//! - It starts threads with `thread::spawn` while holding its queue's mutex;
//!   when no thread can be started, the panic poisons the mutex and every
//!   later connection is dropped, for the life of the process.
//!
//! Here every connection gets a thread at once, and a thread that cannot be
//! started costs that one connection only.

use std::fmt::Display;
use std::io;
use std::thread;

use tiny_http_fork::util::MessageQueueSender;
use tiny_http_fork::{Message, Request};

/// Stack of a connection thread. It only reads and parses request heads
/// (bodies are read by the workers), so a fraction of the 2 MiB default is
/// plenty, and idle connections reserve less address space.
const STACK_BYTES: usize = 256 * 1024;

/// Starts a thread that moves the requests of `client` into `queue` until
/// the connection ends. Fails, without panicking, when the process cannot
/// start another thread.
pub fn spawn<C, E>(client: C, queue: MessageQueueSender<Message>) -> io::Result<()>
where
    C: Iterator<Item = Result<Request, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    thread::Builder::new()
        .name("connection".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            for request in client {
                match request {
                    Ok(request) => {
                        let _ = queue.push(Message::NewRequest(request));
                    }
                    // tiny_http has already answered it (400, 408, 417) and
                    // ends the connection.
                    Err(err) => log::debug!("malformed request answered by the HTTP layer: {err}"),
                }
            }
        })
        .map(drop)
}
