//! The HTTP server: our accept loop feeding our connection threads, which
//! answer reads themselves (`Inline`) and queue the rest, one request
//! queue, a pool of workers taking turns (see `turns`), and the one
//! function that wraps every request (request id, panic catching, access
//! log).

mod connection;
mod turns;

use std::cell::RefCell;
use std::io::{self, Cursor, Write};
use std::mem::ManuallyDrop;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http_fork::util::{MessageQueueSender, MessagesQueue};
use tiny_http_fork::{Header, Listener, Method, Request, Response, SslContextWrap};

use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::request::{sane_request_id, Req};
use crate::http::response::{reason_phrase, Reply};
use crate::http::{cors, routes, App};
use crate::util::time::{http_date, now_millis};
use crate::util::{ids, json};
use crate::webhooks::{self, Deliveries};
use crate::{logging, metrics};
use connection::{Answered, Job, Reuse};
use turns::Turns;

/// Pause after an accept error that may pass (out of file descriptors, a
/// thread that could not start), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Most threads at once that discard the rest of an unread body after a
/// reply that closes the connection (408, 413, 503 at shutdown) was sent,
/// so that workers never do it.
const MAX_DISCARDERS: usize = 64;

/// Worker threads per turn (per `--workers`): the threads beyond the
/// turns are those that can wait on a group commit while others work, so
/// that up to this many times `--workers` writes can share one commit
/// (measured on one core at 32 connections: 16 threads for 4 turns carry
/// 8.4 writes per commit, 32 threads 11.5, for about +10 % POST). Only
/// the turns' threads start with the server; the others as writes need
/// them (see `Workers`): 16 more threads at start cost 1.4-3 ms.
const THREADS_PER_TURN: usize = 8;

/// Most worker threads beyond the turns, for large `--workers`.
const MAX_WAITING_THREADS: usize = 64;

/// Most open connections at which reads are still answered on their
/// connection threads (see `Inline`). A thread that has answered a read
/// keeps 20 KiB of stack resident instead of 12 (measured); connections
/// beyond this many hand their requests to the workers, so at most this
/// many threads carry the deeper stacks (512 KiB in all).
const MAX_INLINE_CONNECTIONS: usize = 64;

/// A running server.
pub struct Server {
    app: Arc<App>,
    local_addr: SocketAddr,
    accept: JoinHandle<io::Result<()>>,
    workers: Arc<Workers>,
    queue: Arc<MessagesQueue<Job>>,
    inline: Arc<Inline>,
    shutdown: ShutdownHandle,
    /// The webhook dispatcher, when there is anything to deliver.
    deliveries: Option<Deliveries>,
}

/// Starts a graceful shutdown from any thread (a signal waiter, a test).
#[derive(Clone)]
pub struct ShutdownHandle {
    app: Arc<App>,
    stop: Arc<AtomicBool>,
    listener: Arc<TcpListener>,
}

impl ShutdownHandle {
    /// Readiness turns 503, the listener stops accepting, and `Server::wait`
    /// lets the requests already received finish.
    pub fn shutdown(&self) {
        self.app.begin_shutdown();
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop at once: on Linux, shutting down a listening
        // socket makes a blocked accept fail, and refuses new connections.
        let _ = as_stream(&self.listener).shutdown(std::net::Shutdown::Both);
    }
}

impl Server {
    /// Opens (and migrates) the database `config` names, binds the
    /// listener and starts the accept thread, the workers and the webhook
    /// dispatcher.
    pub fn start(config: Config) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        // A worker about to wait on its write's group commit gives its turn
        // to another request meanwhile.
        let app = App::open(config, turns::give_back)?;
        let listener = Arc::new(TcpListener::bind(app.config.addr)?);
        configure_listener(&listener, app.config.idle_timeout)?;
        let local_addr = listener.local_addr()?;

        let app = Arc::new(app);
        let queue = Arc::new(MessagesQueue::with_capacity(64));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = Workers::start(&app, &queue)?;
        let inline = Arc::new(Inline {
            app: Arc::downgrade(&app),
            open: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
        });
        let accept = {
            // The accept loop gets its own descriptor of the same socket, so
            // the shutdown handle's stays valid whenever the loop ends.
            let (sender, stop) = (queue.create_sender(), Arc::clone(&stop));
            let listener = Listener::Tcp(listener.try_clone()?);
            let inline = Arc::clone(&inline);
            thread::Builder::new()
                .name("accept".into())
                .spawn(move || accept_loop(listener, &sender, &inline, &stop))?
        };
        let shutdown = ShutdownHandle {
            app: Arc::clone(&app),
            stop,
            listener,
        };
        let deliveries = Deliveries::start(webhooks::Context {
            store: Arc::clone(&app.store),
            metrics: Arc::clone(&app.metrics),
            urls: app.config.webhooks.clone(),
            secret: app.config.webhook_secret.clone(),
        })?;
        Ok(Server {
            app,
            local_addr,
            accept,
            workers,
            queue,
            inline,
            shutdown,
            deliveries,
        })
    }

    /// A handle that starts a graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The address actually bound (the port is real even for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Blocks until the server stops, and stops it gracefully.
    ///
    /// After a shutdown (see `ShutdownHandle`): the webhook dispatcher stops
    /// (an attempt in flight is abandoned, and retried after the restart),
    /// the requests already queued or running (on workers or on connection
    /// threads) finish, all within `--shutdown-timeout`; then the WAL is
    /// checkpointed. An accept error the loop cannot recover from is
    /// returned at once, so the process exits non-zero and its supervisor
    /// restarts it.
    pub fn wait(self) -> io::Result<()> {
        let accepted = self
            .accept
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the accept thread panicked")));
        self.shutdown.shutdown();
        accepted?;

        let deadline = Instant::now() + self.app.config.shutdown_timeout;
        if let Some(deliveries) = self.deliveries {
            deliveries.stop(deadline);
        }
        // Each worker stops at the first unblock marker it takes; the markers
        // queue behind every request already received.
        let workers = self.workers.close();
        for _ in &workers {
            let _ = self.queue.unblock();
        }
        let running = || {
            workers.iter().filter(|w| !w.is_finished()).count()
                + self.inline.busy.load(Ordering::Acquire)
        };
        while running() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let unfinished = running();
        if unfinished > 0 {
            log::warn!(
                "{unfinished} request(s) still running after the grace period; stopping anyway"
            );
        }
        for worker in workers.into_iter().filter(|w| w.is_finished()) {
            let _ = worker.join();
        }
        // Requests that arrived after the signal (behind the markers) are
        // answered 503 rather than left to a closing socket. A marker left
        // by a worker still running ends this early; those few see the
        // connection close.
        while let Ok(Some(Job { request, done })) = self.queue.try_pop() {
            refuse(&self.app, request);
            done.send(Reuse::Close);
        }
        match self.app.store.checkpoint() {
            Ok(()) => log::info!("database checkpointed; stopped"),
            Err(err) => log::warn!("checkpoint at shutdown failed: {err}"),
        }
        Ok(())
    }
}

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
fn configure_listener(listener: &TcpListener, idle: Duration) -> io::Result<()> {
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
fn as_stream(listener: &TcpListener) -> ManuallyDrop<TcpStream> {
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

/// Accepts connections and starts a thread for each (`connection`), which
/// lets tiny_http parse its requests into the queue.
fn accept_loop(
    listener: Listener,
    queue: &MessageQueueSender<Job>,
    inline: &Arc<Inline>,
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
                if let Err(err) = connection::spawn(client, queue.clone(), Arc::clone(inline)) {
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

/// Which requests a connection thread answers itself: reads (`GET`,
/// `HEAD`), while at most `MAX_INLINE_CONNECTIONS` connections are open and
/// fewer than `--workers` reads are being answered that way. Everything
/// else goes to the workers.
///
/// A read answered by its connection thread saves the hand-over to a
/// worker: a thread switch per request, the largest single cost of a `GET`
/// (see the README's Performance section). Writes always go to the
/// workers, whose turns let them wait on a group commit (`turns`). The
/// bound on reads at once is taken without waiting: a read that finds every
/// slot busy is queued instead, so at most twice `--workers` requests are
/// worked on at once.
struct Inline {
    /// Weak: connection threads outlive the server, and the database must
    /// close when it stops (SQLite then removes its WAL file).
    app: Weak<App>,
    /// Open connections.
    open: AtomicUsize,
    /// Reads being answered on connection threads: at most `--workers`.
    busy: AtomicUsize,
}

impl connection::Answer for Inline {
    fn opened(&self) -> impl Sized {
        Counted::take(&self.open).1
    }

    fn answer(&self, request: Request) -> Answered {
        if !matches!(request.method(), Method::Get | Method::Head)
            || self.open.load(Ordering::Acquire) > MAX_INLINE_CONNECTIONS
        {
            return Answered::NotHere(request);
        }
        // Counted before the shutdown check: `Server::wait` sets the flag
        // and then waits for `busy` to drain, so it never misses a read that
        // goes ahead. After the signal the queue answers 503.
        let (busy, slot) = Counted::take(&self.busy);
        let app = match self.app.upgrade() {
            Some(app) if busy < app.config.workers && !app.shutting_down() => app,
            _ => return Answered::NotHere(request),
        };
        let reuse = handle(&app, request);
        // The App first: `Server::wait` returns once `busy` drains, and the
        // database closes only when the last reference to the App goes.
        drop(app);
        drop(slot);
        // A connection whose client sends its next request at once never
        // blocks on reading it, so connection threads answering their own
        // reads would each keep the CPU for a whole scheduler slice, and
        // the other connections wait: p99 7 ms instead of 1.5 at 32
        // connections on one core. Yielding after each answer serves the
        // connections in turn, one request each.
        thread::yield_now();
        Answered::Here(reuse)
    }
}

/// One of a count (`Inline::open`, `Inline::busy`), given back when dropped.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Adds one to `count`; returns what it was before, and the one added.
    fn take(count: &'a AtomicUsize) -> (usize, Counted<'a>) {
        (count.fetch_add(1, Ordering::AcqRel), Counted(count))
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The worker threads: one per turn from the start, more as writes need
/// them, up to `THREADS_PER_TURN` per turn (`MAX_WAITING_THREADS` beyond
/// the turns at most). A write that finds no other worker idle starts
/// one, so that when the write gives its turn back to wait on its group
/// commit, a thread is there to take the turn and the next request.
struct Workers {
    app: Arc<App>,
    queue: Arc<MessagesQueue<Job>>,
    turns: Arc<Turns>,
    /// Workers waiting for a turn or a request.
    idle: AtomicUsize,
    threads: Mutex<Threads>,
}

struct Threads {
    handles: Vec<JoinHandle<()>>,
    /// How many may run: 0 once shutdown has counted them, the number
    /// running once one could not start.
    most: usize,
}

impl Workers {
    /// Starts one worker per turn.
    fn start(app: &Arc<App>, queue: &Arc<MessagesQueue<Job>>) -> io::Result<Arc<Workers>> {
        let turns = app.config.workers;
        let workers = Arc::new(Workers {
            app: Arc::clone(app),
            queue: Arc::clone(queue),
            turns: Turns::new(turns),
            idle: AtomicUsize::new(0),
            threads: Mutex::new(Threads {
                handles: Vec::new(),
                most: turns + (turns * (THREADS_PER_TURN - 1)).min(MAX_WAITING_THREADS),
            }),
        });
        {
            let mut threads = workers.lock();
            for _ in 0..turns {
                workers.spawn(&mut threads)?;
            }
        }
        Ok(workers)
    }

    /// Starts one more worker, unless as many as may run already do.
    fn add(self: &Arc<Self>) {
        let mut threads = self.lock();
        if threads.handles.len() < threads.most {
            if let Err(err) = self.spawn(&mut threads) {
                threads.most = threads.handles.len();
                log::warn!(
                    "could not start another worker ({err}); going on with {}",
                    threads.most
                );
            }
        }
    }

    fn spawn(self: &Arc<Self>, threads: &mut Threads) -> io::Result<()> {
        let workers = Arc::clone(self);
        let handle = thread::Builder::new()
            .name(format!("worker-{}", threads.handles.len()))
            .spawn(move || workers.work())?;
        threads.handles.push(handle);
        Ok(())
    }

    /// A worker: in its turn, takes requests off the queue until it is
    /// unblocked.
    fn work(self: &Arc<Self>) {
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            self.turns.take();
            let job = self.queue.pop();
            let others_idle = self.idle.fetch_sub(1, Ordering::SeqCst) > 1;
            let Ok(Some(Job { request, done })) = job else {
                break;
            };
            if !others_idle && writes(request.method()) {
                self.add();
            }
            done.send(handle(&self.app, request));
        }
        turns::give_back();
    }

    /// The workers started; none start after this (shutdown).
    fn close(&self) -> Vec<JoinHandle<()>> {
        let mut threads = self.lock();
        threads.most = 0;
        std::mem::take(&mut threads.handles)
    }

    fn lock(&self) -> MutexGuard<'_, Threads> {
        // Consistent at every unlock.
        self.threads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves one request: request id, dispatch under `catch_unwind`, error
/// rendering, response, access log. Everything cross-cutting happens here.
/// Returns whether the connection may carry another request.
fn handle(app: &App, mut request: Request) -> Reuse {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get("X-Request-Id")
        .map(|value| value.as_str())
        .filter(|id| sane_request_id(id))
        .map_or_else(ids::request_id, str::to_owned);

    app.metrics.start();
    let mut req = Req::new(&mut request, request_id, app.config.max_body);
    let expected = writes(&req.method).then(|| app.store.expect_write());
    let outcome = catch_unwind(AssertUnwindSafe(|| routes::dispatch(app, &mut req)));
    drop(expected);
    let reply = match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(err)) => {
            if err.status() >= 500 {
                log::error!("request {} failed: {err}", req.request_id);
            }
            err.into_reply(&req.request_id)
        }
        Err(panic) => {
            let message = panic_message(panic.as_ref());
            log::error!("request {} panicked: {message}", req.request_id);
            ApiError::Internal(message).into_reply(&req.request_id)
        }
    };
    let reply = match &app.config.cors {
        Some(policy) => {
            let preflight = req.method == Method::Options
                && req.header("Access-Control-Request-Method").is_some();
            cors::decorate(policy, req.header("Origin"), preflight, reply)
        }
        None => reply,
    };
    Served::of(req, started).respond(app, request, reply)
}

/// Whether requests with `method` change articles (and so usually write).
fn writes(method: &Method) -> bool {
    matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    )
}

/// What is left of a request once its reply is made: what the response,
/// the metrics and the access line need.
struct Served {
    route: &'static str,
    body_settled: bool,
    method: Method,
    path: String,
    request_id: String,
    started: Instant,
}

impl Served {
    /// Takes what it needs from `req`, which ends the request's borrow.
    fn of(mut req: Req<'_>, started: Instant) -> Served {
        Served {
            route: req.route.unwrap_or(metrics::UNMATCHED),
            body_settled: req.body_settled(),
            method: req.method.clone(),
            path: std::mem::take(&mut req.path),
            request_id: std::mem::take(&mut req.request_id),
            started,
        }
    }

    /// Sends `reply` with its request id, counts and logs it. Returns
    /// whether the connection may carry another request.
    fn respond(self, app: &App, request: Request, reply: Reply) -> Reuse {
        let mut reply = reply.header("X-Request-Id", self.request_id.clone());
        // A connection ends after any response sent once a shutdown has
        // begun: the client hears it rather than finding the connection gone.
        if app.shutting_down() && !closes_connection(&reply) {
            reply = reply.header("Connection", "close");
        }
        let status = reply.status;
        let bytes = if self.method == Method::Head {
            0
        } else {
            reply.body.len()
        };
        // Counted before the write, so a scrape includes every response a
        // client has already received.
        app.metrics.finish(
            self.method.as_str(),
            self.route,
            status,
            self.started.elapsed(),
        );
        let reuse = match send(request, reply, self.body_settled) {
            Ok(reuse) => reuse,
            Err(err) => {
                log::debug!("response to {} not delivered: {err}", self.request_id);
                Reuse::Close
            }
        };
        logging::Access {
            method: self.method.as_str(),
            path: &self.path,
            status,
            bytes,
            elapsed: self.started.elapsed(),
            request_id: &self.request_id,
        }
        .log();
        reuse
    }
}

/// Whether a reply says `Connection: close`.
fn closes_connection(reply: &Reply) -> bool {
    reply
        .header_value("Connection")
        .is_some_and(|value| value.eq_ignore_ascii_case("close"))
}

/// Answers a request that arrived too late to be served, during a shutdown:
/// 503 with `Retry-After`, and the connection closes. Counted and logged
/// like any other.
fn refuse(app: &App, mut request: Request) {
    let started = Instant::now();
    let request_id = ids::request_id();
    let reply = ApiError::Unavailable("The server is shutting down")
        .into_reply(&request_id)
        .header("Connection", "close");
    // The body is never read here: an unread one is left to tiny_http's
    // writer to discard, on a discard thread.
    let req = Req::new(&mut request, request_id, app.config.max_body);
    let served = Served::of(req, started);
    app.metrics.start();
    served.respond(app, request, reply);
}

/// Writes a reply; returns whether the connection may carry another
/// request. Most replies go out through `write_response`. A request whose
/// body was not read goes through tiny_http's own writer, which answers
/// first and then discards the rest of the body, however long the client
/// takes to send it; for a reply that closes the connection (a 408, a 413, a
/// refusal at shutdown) that happens on a discard thread, not a worker.
fn send(request: Request, reply: Reply, body_settled: bool) -> io::Result<Reuse> {
    let reuse = if closes_connection(&reply) {
        Reuse::Close
    } else {
        Reuse::KeepAlive
    };
    if body_settled {
        return write_response(request, reply).map(|()| reuse);
    }
    if reuse == Reuse::Close {
        static DISCARDERS: AtomicUsize = AtomicUsize::new(0);
        if DISCARDERS.fetch_add(1, Ordering::AcqRel) < MAX_DISCARDERS {
            // The request moves to the thread only once it runs: a thread
            // that cannot start must not take it along (a dropped request is
            // a 500 from tiny_http).
            let (handover, taken) = mpsc::channel::<(Request, Reply)>();
            let spawned = thread::Builder::new()
                .name("discard".into())
                .spawn(move || {
                    if let Ok((request, reply)) = taken.recv() {
                        let _ = respond_then_discard(request, reply);
                    }
                    DISCARDERS.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_ok() {
                let _ = handover.send((request, reply));
                return Ok(reuse);
            }
        }
        DISCARDERS.fetch_sub(1, Ordering::AcqRel);
    }
    respond_then_discard(request, reply).map(|()| reuse)
}

/// Writes the whole response with one write: status line, `Date`,
/// `Content-Length` (never on 204 and 304, where RFC 9110 forbids or
/// misreads it), our headers, and the body (not for HEAD). Faster than
/// tiny_http's writer, which allocates and re-validates every header and
/// writes piece by piece. A header value with a byte outside printable ASCII
/// is dropped, so no request data can split a header.
fn write_response(request: Request, reply: Reply) -> io::Result<()> {
    let bodyless = matches!(reply.status, 204 | 304);
    let send_body = !bodyless && *request.method() != Method::Head;
    let mut out = Vec::with_capacity(256 + if send_body { reply.body.len() } else { 0 });
    out.extend_from_slice(b"HTTP/1.1 ");
    json::push_int(&mut out, i64::from(reply.status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(reply.status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    with_http_date(|date| out.extend_from_slice(date));
    if !bodyless {
        out.extend_from_slice(b"\r\nContent-Length: ");
        json::push_int(&mut out, reply.body.len() as i64);
    }
    for (name, value) in &reply.headers {
        if value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        } else {
            log::error!("invalid value for response header {name} dropped");
        }
    }
    out.extend_from_slice(b"\r\n\r\n");
    if send_body {
        out.extend_from_slice(&reply.body);
    }
    let mut writer = request.into_writer();
    writer.write_all(&out)?;
    writer.flush()
}

/// The current HTTP date, formatted at most once a second per thread.
fn with_http_date(use_date: impl FnOnce(&[u8])) {
    thread_local! {
        static CACHE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = now_millis();
    CACHE.with_borrow_mut(|(second, text)| {
        if *second != now / 1000 {
            *second = now / 1000;
            *text = http_date(now);
        }
        use_date(text.as_bytes());
    });
}

/// tiny_http's writer: the response first, then the unread body is
/// discarded as the request is dropped.
fn respond_then_discard(request: Request, reply: Reply) -> io::Result<()> {
    let length = reply.body.len();
    let mut response = Response::empty(reply.status)
        .with_data(Cursor::new(reply.body), Some(length))
        // Never chunk: Content-Length on every response, whatever its size.
        .with_chunked_threshold(usize::MAX);
    for (name, value) in &reply.headers {
        match Header::from_str(name, value) {
            Ok(header) => response.add_header(header),
            Err(_) => log::error!("invalid value for response header {name} dropped"),
        }
    }
    request.respond(response)
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
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

    #[test]
    fn panic_messages_are_recovered() {
        let payload = catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "boom 1");
    }
}
