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

use std::fmt::Display;
use std::io;
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;

use tiny_http_fork::util::MessageQueueSender;
use tiny_http_fork::Request;

/// Stack of a connection thread: it reads and parses request heads, and
/// answers the requests the server lets it answer itself (reads, down into
/// SQLite). A quarter of the 2 MiB default is plenty, and idle connections
/// reserve less address space. Only the pages a thread touches are memory.
const STACK_BYTES: usize = 512 * 1024;

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
    /// Called once when a connection opens; what it returns is dropped
    /// when the connection ends.
    fn opened(&self) -> impl Sized;

    /// Answers `request` here, or gives it back for a worker.
    fn answer(&self, request: Request) -> Answered;
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
/// time, until the connection ends. Fails, without panicking, when the
/// process cannot start another thread.
pub fn spawn<C, E, A>(client: C, queue: MessageQueueSender<Job>, answer: Arc<A>) -> io::Result<()>
where
    C: Iterator<Item = Result<Request, E>> + Send + 'static,
    E: Display + Send + 'static,
    A: Answer,
{
    thread::Builder::new()
        .name("connection".into())
        .stack_size(STACK_BYTES)
        .spawn(move || serve(client, &queue, &*answer))
        .map(drop)
}

fn serve<C, E, A>(client: C, queue: &MessageQueueSender<Job>, answer: &A)
where
    C: Iterator<Item = Result<Request, E>>,
    E: Display,
    A: Answer,
{
    let _open = answer.opened();
    // How each request ended, once a worker has said: one channel for the
    // connection's life, not one per request (two allocations each, a
    // few per cent of a GET).
    let (done, outcome) = mpsc::sync_channel(1);
    let mut waiting = false;
    for request in client {
        let request = match request {
            Ok(request) => request,
            // tiny_http has already answered it (400, 408, 417) and ends the
            // connection.
            Err(err) => {
                log::debug!("malformed request answered by the HTTP layer: {err}");
                continue;
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
                let _ = queue.push(Job {
                    request,
                    done: Done(Some(done.clone())),
                });
                waiting = true;
            }
        }
    }
}
