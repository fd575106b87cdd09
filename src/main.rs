//! The `articles` binary: parse the command line, run the library, map the
//! outcome to an exit status (0 done, 1 failed, 2 bad usage).

use std::process::ExitCode;

use articles::config::{self, Command, USAGE};
use articles::server::Server;
use articles::signals::{self, Termination};
use articles::{admin, logging, App};

fn main() -> ExitCode {
    limit_malloc_arenas();
    let command = match config::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("articles: {err}");
            return ExitCode::from(2);
        }
    };
    // Before any thread starts (the logger's is the first), so that every
    // thread inherits the mask and SIGTERM/SIGINT reach only `sigwait`.
    let termination = match command {
        Command::Serve(_) => match signals::block_termination() {
            Ok(termination) => Some(termination),
            Err(err) => {
                eprintln!("articles: cannot block signals: {err}");
                return ExitCode::from(1);
            }
        },
        _ => None,
    };
    logging::init();
    let outcome = run(command, termination);
    logging::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("articles: {err}");
            ExitCode::from(1)
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena, and memory
/// freed in one is not reused by another: with a thread per connection that
/// inflates the resident size for nothing. Two arenas keep it small; the
/// allocations on the request path are short and rarely contend.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first, before any thread exists; mallopt only sets a
    // tuning parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn run(
    command: Command,
    termination: Option<Termination>,
) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Help => print!("{USAGE}"),
        Command::Version => println!("articles {}", env!("CARGO_PKG_VERSION")),
        Command::Migrate { db } => {
            let (before, after) = articles::store::Store::migrate(&db)?;
            println!("schema version {before} -> {after}");
        }
        Command::UserAdd { db, name } => println!("{}", admin::user_add(&db, &name)?),
        Command::TokenNew { db, name } => println!("{}", admin::token_new(&db, &name)?),
        Command::TokenRevoke { db, name } => println!("{}", admin::token_revoke(&db, &name)?),
        Command::Serve(config) => {
            let termination = termination.ok_or("termination signals not blocked")?;
            let server = Server::start(App::open(config)?)?;
            let shutdown = server.shutdown_handle();
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    let signal = termination.wait();
                    log::info!("{signal} received: finishing requests in flight, then stopping");
                    shutdown.shutdown();
                })?;
            println!("listening on http://{}", server.local_addr());
            server.wait()?;
        }
    }
    Ok(())
}
