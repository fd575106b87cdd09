//! The command line: subcommands, flags and their `ARTICLES_*` variables.
//!
//! A flag wins over its variable; a variable wins over the default. Any bad
//! flag or value is a `ConfigError`, which `main` prints on one line and
//! turns into exit status 2.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::model::user::{valid_username, AuthMode};
use crate::webhooks::{WebhookSecret, WebhookUrl};

/// Default listening address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default database file.
pub const DEFAULT_DB: &str = "articles.db";
/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// Largest accepted `--max-body`: 1 GiB.
pub const MAX_MAX_BODY: u64 = 1024 * 1024 * 1024;
/// Default idle timeout in seconds: how long a connection may send nothing.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
/// Default grace period for requests in flight at shutdown, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Most worker threads or pooled connections accepted.
pub const MAX_THREADS: u64 = 1024;
/// Default most open connections: one more is answered 503.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Largest accepted `--max-connections`.
pub const MAX_MAX_CONNECTIONS: u64 = 65_536;
/// Default largest request head (request line and headers): 32 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default time the change feed keeps an event, in hours.
pub const DEFAULT_EVENTS_RETENTION_HOURS: f64 = 24.0;
/// Longest accepted `--events-retention`, in hours: a year.
pub const MAX_EVENTS_RETENTION_HOURS: f64 = 24.0 * 366.0;
/// Default most open change-feed streams: one more is answered 503.
pub const DEFAULT_MAX_STREAMS: usize = 64;
/// Smallest and largest accepted `--max-header-bytes`: a head must hold
/// a request line of up to 8 KiB (414 beyond) and a few headers.
pub const MAX_HEADER_BYTES_RANGE: (u64, u64) = (16 * 1024, 1024 * 1024);

/// The usage text of `--help`.
pub const USAGE: &str = "\
articles: an article REST API over SQLite, in one binary.

Usage:
  articles [serve] [--addr HOST:PORT] [--db PATH] [--workers N] [--pool-size N]
                   [--auth open|required] [--max-body BYTES] [--cors-origin ORIGIN]
                   [--webhook URL] [--webhook-secret SECRET]
                   [--shutdown-timeout SECONDS] [--idle-timeout SECONDS]
                   [--max-connections N] [--max-header-bytes BYTES]
                   [--events-retention HOURS] [--max-streams N]
  articles migrate [--db PATH]
  articles export [--db PATH] [--output FILE]
                                           every user and article as JSON Lines
  articles import FILE [--db PATH] [--skip-existing]
                                           read JSON Lines, an array of articles or a
                                           db.json (FILE - is standard input)
  articles backup FILE [--db PATH]         a consistent copy of a SQLite database
  articles user add NAME [--db PATH]       create a user; prints a token
  articles token new NAME [--db PATH]      print another token for NAME
  articles token revoke NAME [--db PATH]   revoke every token of NAME
  articles --help | --version

Options (each also read from the environment variable shown):
  --addr HOST:PORT          listen address; port 0 picks a free port
                            [ARTICLES_ADDR, default 127.0.0.1:8080]
  --db PATH|URL             SQLite database file, or :memory:; or, in a build
                            with the postgres feature, postgres://USER@HOST/DB
                            [ARTICLES_DB, default articles.db]
  --workers N               requests worked on at once (by up to 8 times as
                            many threads: those waiting on a commit give
                            their turn to others); as many reads again are
                            answered by their own connection threads
                            [ARTICLES_WORKERS, default 2 per CPU, at least 4]
  --pool-size N             pooled reading connections (PostgreSQL: pooled
                            connections, plus one for writes)
                            [ARTICLES_POOL_SIZE, default: the number of workers]
  --auth open|required      open: writes without a token are anonymous;
                            required: every write needs a bearer token
                            [ARTICLES_AUTH, default open]
  --max-body BYTES          largest request body accepted
                            [ARTICLES_MAX_BODY, default 1048576]
  --cors-origin ORIGIN      allow browser calls from ORIGIN (repeatable; * for any)
                            [ARTICLES_CORS_ORIGIN, comma-separated; default none]
  --webhook URL             POST an event to this http:// URL on every change
                            (repeatable) [ARTICLES_WEBHOOK, comma-separated]
  --webhook-secret SECRET   sign webhooks: whsec_ and the base64 of 24 to 64 bytes
                            [ARTICLES_WEBHOOK_SECRET, default: unsigned]
  --shutdown-timeout SECONDS  grace period for requests in flight on SIGTERM/SIGINT
                            [ARTICLES_SHUTDOWN_TIMEOUT, default 10]
  --idle-timeout SECONDS    close a connection that sends nothing for this long
                            [ARTICLES_IDLE_TIMEOUT, default 30]
  --max-connections N       open connections at most; one more gets a 503
                            [ARTICLES_MAX_CONNECTIONS, default 1024]
  --max-header-bytes BYTES  largest request head (request line and headers);
                            a larger one gets a 431
                            [ARTICLES_MAX_HEADER_BYTES, default 32768]
  --events-retention HOURS  how long the change feed (GET /events) keeps each
                            change; decimals allowed
                            [ARTICLES_EVENTS_RETENTION, default 24]
  --max-streams N           open change-feed streams at most; one more gets a 503
                            [ARTICLES_MAX_STREAMS, default 64]
  --output FILE             export: write to FILE (made whole, then renamed
                            into place) [ARTICLES_OUTPUT, default standard output]

Logs go to standard error; RUST_LOG sets the level (default info).
";

/// A bad flag or value, with a message that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Serve(Config),
    /// Apply schema migrations and exit.
    Migrate {
        /// The database.
        db: String,
    },
    /// Create a user and print a first token.
    UserAdd {
        /// The database.
        db: String,
        /// The new username.
        name: String,
    },
    /// Print a new token for a user.
    TokenNew {
        /// The database.
        db: String,
        /// The username.
        name: String,
    },
    /// Revoke every token of a user.
    TokenRevoke {
        /// The database.
        db: String,
        /// The username.
        name: String,
    },
    /// Write every user and article as JSON Lines.
    Export {
        /// The database.
        db: String,
        /// The file to write; standard output if `None`.
        output: Option<String>,
    },
    /// Read users and articles into the database.
    Import {
        /// The database.
        db: String,
        /// The input; `-` is standard input.
        file: String,
        /// Keep an existing article rather than refuse the import.
        skip_existing: bool,
    },
    /// Copy a SQLite database, consistently, while it is in use.
    Backup {
        /// The database.
        db: String,
        /// The copy to make; must not exist.
        file: String,
    },
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to bind.
    pub addr: SocketAddr,
    /// SQLite path, `:memory:`, or a `postgres://` URL.
    pub db: String,
    /// Worker threads.
    pub workers: usize,
    /// Reading connections in the pool (PostgreSQL: the whole pool, less
    /// the one added for writes).
    pub pool_size: u32,
    /// Whether writes need a token.
    pub auth: AuthMode,
    /// Request body limit in bytes.
    pub max_body: u64,
    /// How long a connection may be silent, and a socket write may block.
    pub idle_timeout: Duration,
    /// Browser origins allowed by CORS; `None`: no CORS header, ever.
    pub cors: Option<CorsPolicy>,
    /// How long requests in flight may take to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// Where change events are sent; empty: none are recorded.
    pub webhooks: Vec<WebhookUrl>,
    /// The key that signs them; `None`: unsigned.
    pub webhook_secret: Option<WebhookSecret>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// How long the change feed keeps an event.
    pub events_retention: Duration,
    /// Most change-feed streams open at once.
    pub max_streams: usize,
}

impl Config {
    /// The defaults, listening on `addr` with database `db`.
    pub fn new(addr: SocketAddr, db: &str) -> Config {
        let workers = default_workers();
        Config {
            addr,
            db: db.to_owned(),
            workers,
            pool_size: workers as u32,
            auth: AuthMode::Open,
            max_body: DEFAULT_MAX_BODY,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            cors: None,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            webhooks: Vec::new(),
            webhook_secret: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            events_retention: Duration::from_secs_f64(DEFAULT_EVENTS_RETENTION_HOURS * 3600.0),
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// Two workers per CPU, at least four: handlers block on SQLite and on
/// client sockets, so a few more threads than cores keep the CPUs busy.
fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cpus).max(4)
}

/// The flags that take a value, with their variables.
const FLAGS: &[(&str, &str)] = &[
    ("--addr", "ARTICLES_ADDR"),
    ("--db", "ARTICLES_DB"),
    ("--workers", "ARTICLES_WORKERS"),
    ("--pool-size", "ARTICLES_POOL_SIZE"),
    ("--auth", "ARTICLES_AUTH"),
    ("--max-body", "ARTICLES_MAX_BODY"),
    ("--idle-timeout", "ARTICLES_IDLE_TIMEOUT"),
    ("--cors-origin", "ARTICLES_CORS_ORIGIN"),
    ("--shutdown-timeout", "ARTICLES_SHUTDOWN_TIMEOUT"),
    ("--webhook", "ARTICLES_WEBHOOK"),
    ("--webhook-secret", "ARTICLES_WEBHOOK_SECRET"),
    ("--max-connections", "ARTICLES_MAX_CONNECTIONS"),
    ("--max-header-bytes", "ARTICLES_MAX_HEADER_BYTES"),
    ("--events-retention", "ARTICLES_EVENTS_RETENTION"),
    ("--max-streams", "ARTICLES_MAX_STREAMS"),
    ("--output", "ARTICLES_OUTPUT"),
];

/// Flags of one command only, besides `--db`.
const COMMAND_FLAGS: &[(&str, &str)] = &[("--output", "export"), ("--skip-existing", "import")];

/// Parses the arguments (without the program name), reading variables
/// through `env`.
pub fn parse<I, S>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut words: Vec<String> = Vec::new();
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut rest = args.into_iter().map(Into::into);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-V" => return Ok(Command::Version),
            "--skip-existing" => {
                given.push(("--skip-existing", String::new()));
                continue;
            }
            _ if !arg.starts_with('-') || arg == "-" => {
                words.push(arg);
                continue;
            }
            _ => {}
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let Some(&(flag, _)) = FLAGS.iter().find(|(flag, _)| *flag == name) else {
            // The name only: the value of a mistyped flag may be a secret.
            let name: String = name.chars().take(100).collect();
            return Err(ConfigError(format!(
                "unknown argument '{}' (see --help)",
                name.escape_default()
            )));
        };
        let value = match inline.or_else(|| rest.next()) {
            Some(value) => value,
            None => return Err(ConfigError(format!("{flag} needs a value"))),
        };
        given.push((flag, value));
    }

    let sources = Sources { given, env };
    let db = match sources.value("--db") {
        Some((source, db)) if db.is_empty() => {
            return Err(ConfigError(format!("{source} must not be empty")))
        }
        Some((_, db)) => db,
        None => DEFAULT_DB.to_owned(),
    };
    let output = match sources.value("--output") {
        Some((source, path)) if path.is_empty() => {
            return Err(ConfigError(format!("{source} must not be empty")))
        }
        other => other.map(|(_, path)| path),
    };
    let skip_existing = sources
        .given
        .iter()
        .any(|(flag, _)| *flag == "--skip-existing");
    match admin_command(&words, &db, output, skip_existing)? {
        Some(command) => {
            let applies = |flag: &str| {
                flag == "--db"
                    || COMMAND_FLAGS
                        .iter()
                        .any(|(own, name)| *own == flag && words.first().is_some_and(|w| w == name))
            };
            if let Some((flag, _)) = sources.given.iter().find(|(flag, _)| !applies(flag)) {
                return Err(ConfigError(format!(
                    "{flag} does not apply to '{}'",
                    words.join(" ")
                )));
            }
            Ok(command)
        }
        None => {
            for (flag, command) in COMMAND_FLAGS {
                if sources.given.iter().any(|(given, _)| given == flag) {
                    return Err(ConfigError(format!("{flag} applies to '{command}' only")));
                }
            }
            serve_config(&sources, &db).map(Command::Serve)
        }
    }
}

/// Where flag values come from: the flags given, then the environment.
struct Sources<E> {
    given: Vec<(&'static str, String)>,
    env: E,
}

impl<E: Fn(&str) -> Option<String>> Sources<E> {
    /// A flag's value (the last one given) or else its variable's, with the
    /// name of where it came from.
    fn value(&self, flag: &str) -> Option<(String, String)> {
        let from_flag = self
            .given
            .iter()
            .rev()
            .find(|(name, _)| *name == flag)
            .map(|(_, value)| (flag.to_owned(), value.clone()));
        from_flag.or_else(|| {
            let var = variable(flag)?;
            (self.env)(var).map(|value| (var.to_owned(), value))
        })
    }

    /// A repeatable flag: every occurrence, or else the variable split on
    /// commas; each with the name of where it came from.
    fn values(&self, flag: &str) -> Vec<(String, String)> {
        let from_flags: Vec<(String, String)> = self
            .given
            .iter()
            .filter(|(name, _)| *name == flag)
            .map(|(_, value)| (flag.to_owned(), value.clone()))
            .collect();
        if !from_flags.is_empty() {
            return from_flags;
        }
        let Some(var) = variable(flag) else {
            return Vec::new();
        };
        (self.env)(var)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| (var.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The environment variable of a flag.
fn variable(flag: &str) -> Option<&'static str> {
    FLAGS
        .iter()
        .find(|(name, _)| *name == flag)
        .map(|(_, var)| *var)
}

/// The administrative command the words name, `None` for `serve`.
fn admin_command(
    words: &[String],
    db: &str,
    output: Option<String>,
    skip_existing: bool,
) -> Result<Option<Command>, ConfigError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let db = db.to_owned();
    Ok(match words.as_slice() {
        [] | ["serve"] => None,
        ["migrate"] => Some(Command::Migrate { db }),
        ["export"] => Some(Command::Export { db, output }),
        ["import", file] if !file.is_empty() => Some(Command::Import {
            db,
            file: (*file).to_owned(),
            skip_existing,
        }),
        ["backup", file] if !file.is_empty() => Some(Command::Backup {
            db,
            file: (*file).to_owned(),
        }),
        ["user", "add", name] => Some(Command::UserAdd {
            db,
            name: username(name)?,
        }),
        ["token", "new", name] => Some(Command::TokenNew {
            db,
            name: username(name)?,
        }),
        ["token", "revoke", name] => Some(Command::TokenRevoke {
            db,
            name: username(name)?,
        }),
        _ => {
            let command: String = words.join(" ").chars().take(100).collect();
            return Err(ConfigError(format!(
                "unknown command '{command}' (see --help)"
            )));
        }
    })
}

/// The server's settings: defaults, overridden by variables, overridden by
/// flags.
fn serve_config<E: Fn(&str) -> Option<String>>(
    sources: &Sources<E>,
    db: &str,
) -> Result<Config, ConfigError> {
    let addr = match sources.value("--addr") {
        Some((source, text)) => parse_addr(&source, &text)?,
        None => DEFAULT_ADDR.parse().expect("valid default address"),
    };
    let mut config = Config::new(addr, db);
    if let Some((source, text)) = sources.value("--workers") {
        config.workers = number(&source, &text, 1, MAX_THREADS)? as usize;
        config.pool_size = config.workers as u32;
    }
    if let Some((source, text)) = sources.value("--pool-size") {
        config.pool_size = number(&source, &text, 1, MAX_THREADS)? as u32;
    }
    if let Some((source, text)) = sources.value("--auth") {
        config.auth = match text.as_str() {
            "open" => AuthMode::Open,
            "required" => AuthMode::Required,
            _ => {
                return Err(ConfigError(format!(
                    "{source}: '{text}' is not open or required"
                )))
            }
        };
    }
    if let Some((source, text)) = sources.value("--max-body") {
        config.max_body = number(&source, &text, 1, MAX_MAX_BODY)?;
    }
    if let Some((source, text)) = sources.value("--idle-timeout") {
        config.idle_timeout = Duration::from_secs(number(&source, &text, 1, 3600)?);
    }
    if let Some((source, text)) = sources.value("--max-connections") {
        config.max_connections = number(&source, &text, 1, MAX_MAX_CONNECTIONS)? as usize;
    }
    if let Some((source, text)) = sources.value("--max-header-bytes") {
        let (min, max) = MAX_HEADER_BYTES_RANGE;
        config.max_header_bytes = number(&source, &text, min, max)? as usize;
    }
    if let Some((source, text)) = sources.value("--events-retention") {
        config.events_retention = hours(&source, &text)?;
    }
    if let Some((source, text)) = sources.value("--max-streams") {
        config.max_streams = number(&source, &text, 1, MAX_MAX_CONNECTIONS)? as usize;
    }
    if let Some((source, text)) = sources.value("--shutdown-timeout") {
        config.shutdown_timeout = Duration::from_secs(number(&source, &text, 0, 3600)?);
    }
    let origins = sources.values("--cors-origin");
    if !origins.is_empty() {
        if let Some((source, bad)) = origins.iter().find(|(_, o)| !valid_origin(o)) {
            return Err(ConfigError(format!(
                "{source}: '{}' is not * or an origin like https://host:port",
                bad.escape_default()
            )));
        }
        config.cors = Some(CorsPolicy::new(
            origins.into_iter().map(|(_, o)| o).collect(),
        ));
    }
    config.webhooks = webhook_urls(sources.values("--webhook"))?;
    if let Some((source, text)) = sources.value("--webhook-secret") {
        // The message never repeats the value: it is a secret.
        let secret = WebhookSecret::parse(&text).map_err(|why| {
            ConfigError(format!(
                "{source}: not a webhook secret ({why}); expected whsec_ and the base64 of \
                 24 to 64 bytes"
            ))
        })?;
        config.webhook_secret = Some(secret);
    }
    Ok(config)
}

/// The webhook URLs, checked and without repeats, in the order given.
fn webhook_urls(given: Vec<(String, String)>) -> Result<Vec<WebhookUrl>, ConfigError> {
    let mut urls: Vec<WebhookUrl> = Vec::new();
    for (source, text) in given {
        // The URL is not repeated: its query may hold the receiver's token.
        let url = WebhookUrl::parse(&text)
            .map_err(|why| ConfigError(format!("{source}: bad webhook URL: {why}")))?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    Ok(urls)
}

fn username(name: &str) -> Result<String, ConfigError> {
    if valid_username(name) {
        Ok(name.to_owned())
    } else {
        Err(ConfigError(format!(
            "'{}' is not a valid username: 1 to 40 characters of A-Z a-z 0-9 _ . -",
            name.escape_default()
        )))
    }
}

fn parse_addr(source: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let bad = || ConfigError(format!("{source}: '{text}' is not a HOST:PORT address"));
    if !text.contains(':') {
        return Err(bad());
    }
    text.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// A positive number of hours, decimals allowed (`0.001` is 3.6 s), up to
/// a year.
fn hours(source: &str, text: &str) -> Result<Duration, ConfigError> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match text.parse::<f64>() {
        Ok(hours) if valid && hours > 0.0 && hours <= MAX_EVENTS_RETENTION_HOURS => {
            Ok(Duration::from_secs_f64(hours * 3600.0))
        }
        _ => Err(ConfigError(format!(
            "{source}: '{}' is not a number of hours above 0 and at most {MAX_EVENTS_RETENTION_HOURS}",
            text.escape_default()
        ))),
    }
}

fn number(source: &str, text: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    text.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ConfigError(format!(
                "{source}: '{text}' is not an integer from {min} to {max}"
            ))
        })
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// `*`: any origin, answered with the literal `*`.
    Any,
    /// These exact origins (`scheme://host[:port]`).
    Origins(Vec<String>),
}

impl CorsPolicy {
    /// A policy from the configured values; `*` among them means any.
    pub fn new(origins: Vec<String>) -> CorsPolicy {
        if origins.iter().any(|o| o == "*") {
            CorsPolicy::Any
        } else {
            CorsPolicy::Origins(origins)
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request `Origin`: the
    /// configured string, never the request's own bytes.
    pub(crate) fn allow_origin(&self, origin: &str) -> Option<&str> {
        match self {
            CorsPolicy::Any => Some("*"),
            CorsPolicy::Origins(origins) => {
                origins.iter().find(|o| *o == origin).map(String::as_str)
            }
        }
    }
}

/// Whether `text` is a valid `--cors-origin` value: `*`, or
/// `http(s)://host[:port]` with no path, in printable ASCII.
pub fn valid_origin(text: &str) -> bool {
    if text == "*" {
        return true;
    }
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn serve(args: &[&str], env: impl Fn(&str) -> Option<String>) -> Config {
        match parse(args.iter().copied(), env).unwrap() {
            Command::Serve(config) => config,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        parse(args.iter().copied(), no_env).unwrap_err().0
    }

    #[test]
    fn defaults_to_serve_with_documented_defaults() {
        let config = serve(&[], no_env);
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.db, DEFAULT_DB);
        assert_eq!(config.max_body, 1_048_576);
        assert!(config.workers >= 4);
        assert_eq!(config.pool_size as usize, config.workers);
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.max_header_bytes, 32_768);
    }

    #[test]
    fn events_retention_and_streams() {
        let config = serve(&[], no_env);
        assert_eq!(config.events_retention, Duration::from_secs(24 * 3600));
        assert_eq!(config.max_streams, 64);
        let config = serve(
            &["--events-retention", "0.001", "--max-streams", "2"],
            no_env,
        );
        assert_eq!(config.events_retention, Duration::from_millis(3600));
        assert_eq!(config.max_streams, 2);
        for bad in ["0", "-1", "x", "1e3", "", "9999999"] {
            assert!(
                error(&["--events-retention", bad]).contains("--events-retention"),
                "{bad}"
            );
        }
        assert!(error(&["--max-streams", "0"]).contains("--max-streams"));
    }

    #[test]
    fn connection_and_head_limits() {
        let config = serve(&["--max-connections", "8"], |name| {
            (name == "ARTICLES_MAX_HEADER_BYTES").then(|| "65536".to_owned())
        });
        assert_eq!(
            (config.max_connections, config.max_header_bytes),
            (8, 65_536)
        );
        assert!(error(&["--max-connections", "0"]).contains("--max-connections"));
        assert!(error(&["--max-header-bytes", "1000"]).contains("--max-header-bytes"));
    }

    #[test]
    fn reads_flags_in_both_forms() {
        let config = serve(
            &[
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--db=x.db",
                "--workers",
                "3",
                "--pool-size=2",
                "--max-body",
                "10",
            ],
            no_env,
        );
        assert_eq!(config.addr.port(), 0);
        assert_eq!(config.db, "x.db");
        assert_eq!(
            (config.workers, config.pool_size, config.max_body),
            (3, 2, 10)
        );
    }

    #[test]
    fn a_flag_wins_over_its_variable() {
        let env = |name: &str| match name {
            "ARTICLES_DB" => Some("env.db".to_owned()),
            "ARTICLES_WORKERS" => Some("7".to_owned()),
            _ => None,
        };
        let config = serve(&["--db", "flag.db"], env);
        assert_eq!(config.db, "flag.db");
        assert_eq!(config.workers, 7);
    }

    #[test]
    fn bad_values_name_the_flag_or_variable() {
        assert!(error(&["--workers", "0"]).contains("--workers"));
        assert!(error(&["--workers", "abc"]).contains("--workers"));
        assert!(error(&["--addr", "nope"]).contains("--addr"));
        assert!(error(&["--max-body", "-1"]).contains("--max-body"));
        assert!(error(&["--bogus"]).contains("--bogus"));
        assert!(error(&["--db"]).contains("needs a value"));
        assert!(error(&["frobnicate"]).contains("frobnicate"));
        let env = |name: &str| (name == "ARTICLES_POOL_SIZE").then(|| "x".to_owned());
        let err = parse(Vec::<String>::new(), env).unwrap_err().0;
        assert!(err.contains("ARTICLES_POOL_SIZE"), "{err}");
    }

    #[test]
    fn migrate_takes_only_db() {
        assert_eq!(
            parse(["migrate", "--db", "m.db"], no_env).unwrap(),
            Command::Migrate { db: "m.db".into() }
        );
        assert!(error(&["migrate", "--workers", "2"]).contains("--workers"));
    }

    #[test]
    fn user_and_token_commands() {
        assert_eq!(
            parse(["user", "add", "alice", "--db", "u.db"], no_env).unwrap(),
            Command::UserAdd {
                db: "u.db".into(),
                name: "alice".into()
            }
        );
        assert_eq!(
            parse(["token", "new", "alice"], no_env).unwrap(),
            Command::TokenNew {
                db: DEFAULT_DB.into(),
                name: "alice".into()
            }
        );
        assert_eq!(
            parse(["token", "revoke", "alice"], no_env).unwrap(),
            Command::TokenRevoke {
                db: DEFAULT_DB.into(),
                name: "alice".into()
            }
        );
        assert!(error(&["user", "add", "bad name!"]).contains("not a valid username"));
        assert!(error(&["user", "add"]).contains("unknown command"));
        assert!(error(&["token", "burn", "alice"]).contains("unknown command"));
        assert!(error(&["user", "add", "alice", "--auth", "open"]).contains("--auth"));
    }

    #[test]
    fn cors_origins_repeat_or_come_from_a_list() {
        let config = serve(
            &[
                "--cors-origin",
                "https://a.example",
                "--cors-origin=http://b:3000",
            ],
            no_env,
        );
        assert_eq!(
            config.cors,
            Some(CorsPolicy::Origins(vec![
                "https://a.example".into(),
                "http://b:3000".into()
            ]))
        );
        let env = |name: &str| (name == "ARTICLES_CORS_ORIGIN").then(|| "https://x, *".to_owned());
        assert_eq!(serve(&[], env).cors, Some(CorsPolicy::Any));
        assert_eq!(serve(&[], no_env).cors, None);
        assert!(error(&["--cors-origin", "https://a/path"]).contains("--cors-origin"));
    }

    #[test]
    fn webhooks_repeat_or_come_from_a_list() {
        let config = serve(
            &[
                "--webhook",
                "http://a:1/x",
                "--webhook=http://b/",
                "--webhook",
                "http://a:1/x",
            ],
            no_env,
        );
        let urls: Vec<&str> = config.webhooks.iter().map(WebhookUrl::as_str).collect();
        assert_eq!(urls, ["http://a:1/x", "http://b/"]);
        let env =
            |name: &str| (name == "ARTICLES_WEBHOOK").then(|| "http://x/, http://y/".to_owned());
        assert_eq!(serve(&[], env).webhooks.len(), 2);
        assert!(serve(&[], no_env).webhooks.is_empty());
        let err = error(&["--webhook", "https://secure.example/hook"]);
        assert!(err.contains("--webhook") && err.contains("TLS"), "{err}");
        assert!(error(&["--webhook", "ftp://x/"]).contains("--webhook"));
    }

    #[test]
    fn webhook_secrets_are_checked_and_never_echoed() {
        let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let config = serve(&["--webhook-secret", good], no_env);
        assert!(config.webhook_secret.is_some());
        assert!(!format!("{config:?}").contains("MfKQ9r8G"));
        for bad in [
            "whsec_c2hvcnQ=",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!notbase64!!",
            "",
        ] {
            let err = error(&["--webhook-secret", bad]);
            assert!(err.contains("--webhook-secret"), "{err}");
            assert!(
                bad.is_empty() || !err.contains(bad.trim_start_matches("whsec_")),
                "{err}"
            );
        }
        let env =
            |name: &str| (name == "ARTICLES_WEBHOOK_SECRET").then(|| "hunter2hunter2".to_owned());
        let err = parse(Vec::<String>::new(), env).unwrap_err().0;
        assert!(
            err.contains("ARTICLES_WEBHOOK_SECRET") && !err.contains("hunter2"),
            "{err}"
        );
        let err = error(&["--webhook-secrte=whsec_hunter2hunter2"]);
        assert!(
            err.contains("--webhook-secrte") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn shutdown_timeout() {
        assert_eq!(serve(&[], no_env).shutdown_timeout, Duration::from_secs(10));
        assert_eq!(
            serve(&["--shutdown-timeout", "0"], no_env).shutdown_timeout,
            Duration::ZERO
        );
        assert!(error(&["--shutdown-timeout", "x"]).contains("--shutdown-timeout"));
    }

    #[test]
    fn auth_mode() {
        assert_eq!(serve(&[], no_env).auth, AuthMode::Open);
        assert_eq!(
            serve(&["--auth", "required"], no_env).auth,
            AuthMode::Required
        );
        assert!(error(&["--auth", "closed"]).contains("--auth"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["--help"], no_env).unwrap(), Command::Help);
        assert_eq!(
            parse(["serve", "--version"], no_env).unwrap(),
            Command::Version
        );
    }
}
