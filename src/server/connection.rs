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
//!
//! A connection has one request at a time in the queue or in a worker: its
//! thread queues the next request only once the worker has answered the
//! last. A client that pipelines requests for large responses and never
//! reads them therefore holds one worker, not all of them (test
//! `a_client_pipelining_big_responses_without_reading_holds_one_worker_at_most`),
//! and cannot fill the queue. The worker also says whether the connection
//! may go on: not after a response that closes it (`Connection: close`), nor
//! after one that could not be written; a request already read is then
//! dropped unanswered, and the connection ends.
//!
//! Some requests are answered on the connection thread itself instead
//! (`Answer`): no hand-over to a worker and back, which is one thread
//! switch fewer per request. The server decides which (see
//! `server::Inline`).
//!
//! A request head the HTTP layer refuses (malformed, too large, too slow,
//! another HTTP version: see `tiny_http_fork::Limits`) is answered here too,
//! after every earlier answer on the connection, and ends it.

use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tiny_http_fork::util::MessageQueueSender;
use tiny_http_fork::{ClientConnection, ReadError, Refusal, Request};

/// Stack of a connection thread: it reads and parses request heads, and
/// answers the requests the server lets it answer itself (reads, down into
/// SQLite). A quarter of the 2 MiB default is plenty, and idle connections
/// reserve less address space. Only the pages a thread touches are memory.
const STACK_BYTES: usize = 512 * 1024;

/// After a refusal, how long the connection is kept to read and drop what
/// the client still sends, and how much of it: closing a socket that has
/// unread data resets it, and the client may then lose the answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Whether a connection may carry another request after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Read the next request.
    KeepAlive,
    /// End the connection.
    Close,
}

/// Answers some requests on the connection thread that read them.
pub trait Answer: Send + Sync + 'static {
    /// Answers `request` here, or gives it back for a worker.
    fn answer(&self, request: Request) -> Answered;

    /// Queues `job` for a worker and returns true; once the server has
    /// stopped and nothing would ever take it, drops it unanswered and
    /// returns false.
    fn queue(&self, queue: &MessageQueueSender<Job>, job: Job) -> bool;

    /// Answers a request head the HTTP layer refused, through `writer`.
    fn refuse(&self, refusal: Refusal, writer: Box<dyn Write + Send>);
}

/// What `Answer::answer` did with a request.
pub enum Answered {
    /// Answered; whether the connection goes on.
    Here(Reuse),
    /// Not answered: a worker is to.
    NotHere(Request),
}

/// A request for a worker, and the connection thread waiting for it.
pub struct Job {
    /// The request.
    pub request: Request,
    /// Tells the connection thread how the request ended.
    pub done: Done,
}

/// The connection thread's side of a job: told once the response is
/// written (or handed to another thread) whether the connection goes on.
/// A job dropped unanswered (the process is stopping) says `Close`.
pub struct Done(Option<SyncSender<Reuse>>);

impl Done {
    /// Lets the connection thread read the next request, or end the
    /// connection.
    pub fn send(mut self, reuse: Reuse) {
        if let Some(sender) = self.0.take() {
            // Never blocks: the connection thread takes each answer before
            // it queues the next job, so the one slot is free.
            let _ = sender.send(reuse);
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(Reuse::Close);
        }
    }
}

/// Starts a thread that answers the requests of `client` itself where
/// `answer` takes them, and otherwise moves them into `queue`, one at a
/// time, until the connection ends; then drops `open`. Fails, without
/// panicking, when the process cannot start another thread.
pub fn spawn<A: Answer>(
    client: ClientConnection,
    queue: MessageQueueSender<Job>,
    answer: Arc<A>,
    open: impl Send + 'static,
) -> io::Result<()> {
    thread::Builder::new()
        .name("connection".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            serve(client, &queue, &*answer);
            drop(open);
        })
        .map(drop)
}

/// Answers a refused head through `client` and ends the connection: on
/// the connection's own thread, or on the accept thread for a connection
/// refused whole (`--max-connections`).
pub fn refuse<A: Answer>(mut client: ClientConnection, answer: &A, refusal: Refusal) {
    answer.refuse(refusal, client.refusal_writer());
    client.linger(LINGER, LINGER_BYTES);
}

fn serve<A: Answer>(mut client: ClientConnection, queue: &MessageQueueSender<Job>, answer: &A) {
    // How each request ended, once a worker has said: one channel for the
    // connection's life, not one per request (two allocations each, a
    // few per cent of a GET).
    let (done, outcome) = mpsc::sync_channel(1);
    let mut waiting = false;
    while let Some(request) = client.next() {
        let request = match request {
            Ok(request) => request,
            Err(ReadError::Refused(refusal)) => return refuse(client, answer, refusal),
            // The connection failed in the middle of a head.
            Err(err) => {
                log::debug!("connection ended while reading a request: {err}");
                return;
            }
        };
        // The next request is read while the last is served (as tiny_http
        // does), but answered or queued only once the last is answered.
        // Usually the answer is long there: no wait, no extra wake-up. A job
        // dropped unanswered (the process is stopping) ends the connection
        // too (`Done`).
        if std::mem::take(&mut waiting) && outcome.recv() != Ok(Reuse::KeepAlive) {
            // Taking the writer and dropping it answers nothing; a request
            // dropped whole would be answered 500 by tiny_http.
            drop(request.into_writer());
            return;
        }
        match answer.answer(request) {
            Answered::Here(Reuse::KeepAlive) => {}
            Answered::Here(Reuse::Close) => return,
            Answered::NotHere(request) => {
                let job = Job {
                    request,
                    done: Done(Some(done.clone())),
                };
                if !answer.queue(queue, job) {
                    // The server has stopped (a server in a process that goes
                    // on, as in the tests): end the connection, so that the
                    // client retries elsewhere rather than wait for ever.
                    return;
                }
                waiting = true;
            }
        }
    }
}
