//! The HTTP server: our accept loop feeding our connection threads, which
//! answer reads themselves (`Inline`) and queue the rest, one request
//! queue, a pool of workers taking turns (see `turns`), and the one
//! function that wraps every request (request id, panic catching, access
//! log).

mod accept;
mod connection;
mod exchange;
mod turns;
mod workers;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http_fork::util::MessagesQueue;
use tiny_http_fork::{Limits, Listener};

use crate::config::Config;
use crate::feed::Watcher;
use crate::http::App;
use crate::webhooks::{self, Deliveries};
use accept::{accept_loop, as_stream, configure_listener, Admission};
use connection::{Job, Reuse};
use exchange::refuse;
use workers::{Inline, Workers};

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
    /// The change feed's watcher.
    watcher: Watcher,
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
            following: AtomicUsize::new(0),
            stopped: Mutex::new(false),
        });
        let admission = Admission {
            limits: Limits {
                head_bytes: app.config.max_header_bytes,
                ..Limits::default()
            },
            idle: app.config.idle_timeout,
            max_connections: app.config.max_connections,
        };
        let accept = {
            // The accept loop gets its own descriptor of the same socket, so
            // the shutdown handle's stays valid whenever the loop ends.
            let (sender, stop) = (queue.create_sender(), Arc::clone(&stop));
            let listener = Listener::Tcp(listener.try_clone()?);
            let inline = Arc::clone(&inline);
            thread::Builder::new()
                .name("accept".into())
                .spawn(move || accept_loop(listener, &sender, &inline, admission, &stop))?
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
        let watcher = Watcher::start(Arc::clone(&app.store), app.config.events_retention)?;
        Ok(Server {
            app,
            local_addr,
            accept,
            workers,
            queue,
            inline,
            shutdown,
            deliveries,
            watcher,
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
        self.watcher.stop();
        // Each worker stops at the first unblock marker it takes; the markers
        // queue behind every request already received.
        let workers = self.workers.close();
        for _ in &workers {
            let _ = self.queue.unblock();
        }
        // Change-feed streams end at once: the feed closed with the
        // shutdown, and each stream's thread sees it.
        let running = || {
            workers.iter().filter(|w| !w.is_finished()).count()
                + self.inline.busy.load(Ordering::Acquire)
                + self.inline.following.load(Ordering::Acquire)
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
        self.inline.stop_queueing();
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
