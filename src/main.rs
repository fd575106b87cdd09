//! The `articles` binary: parse the command line, run the library, map the
//! outcome to an exit status (0 done, 1 failed, 2 bad usage).

use std::process::ExitCode;

use articles::config::{self, Command, USAGE};
use articles::server::Server;
use articles::signals::{self, Termination};
use articles::{admin, logging};

fn main() -> ExitCode {
    limit_malloc_arenas();
    articles::configure_process();
    let command = match config::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("articles: {err}");
            return ExitCode::from(2);
        }
    };
    if matches!(command, Command::Serve(_)) {
        limit_thread_caches();
    }
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
            let code = err
                .downcast_ref::<admin::AdminError>()
                .map_or(1, |err| err.exit_code());
            ExitCode::from(code)
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

/// glibc also keeps, per thread, a cache of freed blocks (the tcache: up
/// to 7 blocks of each size up to 1 KiB). With a thread per connection that
/// is memory held for nothing; one block per size keeps most of the speed
/// for a fraction of the memory (figures in `docs/performance.md`). glibc
/// reads this setting only when a program starts, so the server starts
/// itself again once with it set (same process id). A `GLIBC_TUNABLES`
/// that already sets the tcache is left as it is.
fn limit_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;

        const TUNABLE: &str = "glibc.malloc.tcache_count";
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.contains(TUNABLE) {
            return;
        }
        let tunables = match current.is_empty() {
            true => format!("{TUNABLE}=1"),
            false => format!("{current}:{TUNABLE}=1"),
        };
        let Ok(binary) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        // Returns only if the exec failed (the binary was replaced, say):
        // then the server runs on with glibc's default, which costs memory,
        // not correctness.
        let _ = std::process::Command::new(binary)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .exec();
    }
}

fn run(
    command: Command,
    termination: Option<Termination>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let output = match command {
        Command::Help => USAGE.trim_end().to_owned(),
        Command::Version => format!("articles {}", env!("CARGO_PKG_VERSION")),
        Command::Migrate { db } => {
            let (before, after) = admin::migrate(&db)?;
            format!("schema version {before} -> {after}")
        }
        Command::UserAdd { db, name } => admin::user_add(&db, &name)?,
        Command::TokenNew { db, name } => admin::token_new(&db, &name)?,
        Command::TokenRevoke { db, name } => admin::token_revoke(&db, &name)?,
        // Standard output may be the export itself: the summary goes to
        // standard error.
        Command::Export { db, output } => {
            let summary = admin::export(&db, output.as_deref())?;
            logging::flush();
            eprintln!("{summary}");
            return Ok(());
        }
        Command::Backup { db, file } => admin::backup(&db, &file)?,
        Command::Import {
            db,
            file,
            skip_existing,
        } => admin::import(&db, &file, skip_existing)?,
        Command::Serve(config) => {
            let termination = termination.ok_or("termination signals not blocked")?;
            let server = Server::start(config)?;
            let shutdown = server.shutdown_handle();
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    let signal = termination.wait();
                    log::info!("{signal} received: finishing requests in flight, then stopping");
                    shutdown.shutdown();
                })?;
            println!("listening on http://{}", server.local_addr());
            return Ok(server.wait()?);
        }
    };
    // The log (migrations, the database's path) first, so that a command's
    // own output, a token say, is the last thing on a terminal.
    logging::flush();
    println!("{output}");
    Ok(())
}
