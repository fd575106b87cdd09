//! The administrative commands: `user add`, `token new`, `token revoke`,
//! `export` and `backup`.
//! They open the database like the server does, so they work while a server
//! runs on the same file (writes wait for its lock).

use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::model::article::Article;
use crate::model::user::{new_token, token_hash};
use crate::store::{self, ExportError, ExportSink, ExportedUser, Store, StoreError};
use crate::util::json;
use crate::util::time::write_rfc3339_millis;

/// Why an administrative command failed.
#[derive(Debug)]
pub enum AdminError {
    /// No user has that name.
    UnknownUser(String),
    /// The name is taken (in any case).
    NameTaken(String),
    /// The operating system gave no randomness.
    Randomness(String),
    /// The database failed.
    Store(StoreError),
    /// The database to read does not exist.
    NoDatabase(String),
    /// The file to write exists already.
    Exists(String),
    /// Writing a file (or standard output) failed.
    Write(String, std::io::Error),
    /// The command does not apply (exit 2).
    Usage(String),
}

impl AdminError {
    /// The exit status: 2 for bad usage, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::UnknownUser(name) => write!(f, "no user is named '{name}'"),
            AdminError::NameTaken(name) => write!(f, "the username '{name}' is taken"),
            AdminError::Randomness(err) => write!(f, "no randomness from the OS: {err}"),
            AdminError::Store(err) => write!(f, "{err}"),
            AdminError::NoDatabase(db) => write!(f, "no database at {db}"),
            AdminError::Exists(file) => write!(f, "{file} exists; it is never overwritten"),
            AdminError::Write(name, err) => write!(f, "writing {name}: {err}"),
            AdminError::Usage(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> AdminError {
        AdminError::Store(err)
    }
}

fn open(db: &str) -> Result<Store, AdminError> {
    Ok(Store::open(db, store::Options::default())?)
}

fn token() -> Result<String, AdminError> {
    new_token().map_err(|err| AdminError::Randomness(err.to_string()))
}

/// Applies pending migrations to `db`; returns the schema version before
/// and after.
pub fn migrate(db: &str) -> Result<(u32, u32), AdminError> {
    Ok(Store::migrate(db)?)
}

/// Creates user `name`; returns what to print, the token on the last line.
pub fn user_add(db: &str, name: &str) -> Result<String, AdminError> {
    let token = token()?;
    let user = match open(db)?.create_user(name, &token_hash(&token)) {
        Err(StoreError::UsernameTaken(_)) => return Err(AdminError::NameTaken(name.to_owned())),
        other => other?,
    };
    Ok(format!(
        "created user '{}' (id {}); its token, shown only this once:\n{token}",
        user.username, user.id
    ))
}

/// Makes another token for user `name`; returns what to print, the token on
/// the last line.
pub fn token_new(db: &str, name: &str) -> Result<String, AdminError> {
    let token = token()?;
    let user = open(db)?
        .add_token(name, &token_hash(&token))?
        .ok_or_else(|| AdminError::UnknownUser(name.to_owned()))?;
    Ok(format!(
        "new token for '{}', shown only this once:\n{token}",
        user.username
    ))
}

/// Revokes every token of user `name`; returns what to print.
pub fn token_revoke(db: &str, name: &str) -> Result<String, AdminError> {
    let (user, count) = open(db)?
        .revoke_tokens(name)?
        .ok_or_else(|| AdminError::UnknownUser(name.to_owned()))?;
    Ok(format!("revoked {count} token(s) of '{}'", user.username))
}

/// `articles export`: every user, then every article, as JSON Lines, to
/// `output` (written whole under a temporary name, then renamed into place)
/// or standard output. Shows progress on standard error if it is a
/// terminal. Returns the summary line.
pub fn export(db: &str, output: Option<&str>) -> Result<String, AdminError> {
    let started = Instant::now();
    let store = open_existing(db)?;
    let (users, articles) = match output {
        None => {
            let (_, counts) = export_to(&store, std::io::stdout().lock(), "standard output")?;
            counts
        }
        Some(path) => {
            let partial = format!("{path}.partial");
            let written = File::create(&partial)
                .map_err(|err| AdminError::Write(partial.clone(), err))
                .and_then(|file| export_to(&store, file, path))
                .and_then(|(file, counts)| {
                    file.sync_all()
                        .and_then(|()| fs::rename(&partial, path))
                        .map_err(|err| AdminError::Write(path.to_owned(), err))?;
                    Ok(counts)
                });
            if written.is_err() {
                let _ = fs::remove_file(&partial);
            }
            written?
        }
    };
    Ok(format!(
        "exported {users} user(s) and {articles} article(s) in {:.2} s",
        started.elapsed().as_secs_f64()
    ))
}

/// Writes the export to `out`; returns it, flushed, with the counts.
fn export_to<W: Write>(store: &Store, out: W, name: &str) -> Result<(W, (u64, u64)), AdminError> {
    let write_error = |err| AdminError::Write(name.to_owned(), err);
    let mut lines = JsonLines {
        out: BufWriter::with_capacity(1 << 16, out),
        line: Vec::with_capacity(4096),
        users: 0,
        articles: 0,
        progress: Progress::new("exported"),
    };
    store.export(&mut lines).map_err(|err| match err {
        ExportError::Store(err) => AdminError::Store(err),
        ExportError::Write(err) => write_error(err),
    })?;
    lines.progress.done();
    let out = lines
        .out
        .into_inner()
        .map_err(|err| write_error(err.into_error()))?;
    Ok((out, (lines.users, lines.articles)))
}

/// The export's lines: `{"user": {...}}` and `{"article": {...}}`.
struct JsonLines<W: Write> {
    out: BufWriter<W>,
    line: Vec<u8>,
    users: u64,
    articles: u64,
    progress: Progress,
}

impl<W: Write> ExportSink for JsonLines<W> {
    fn user(&mut self, user: &ExportedUser) -> std::io::Result<()> {
        self.line.clear();
        self.line.extend_from_slice(b"{\"user\":{\"id\":");
        json::push_int(&mut self.line, user.id);
        self.line.extend_from_slice(b",\"username\":");
        json::push_str(&mut self.line, &user.username);
        self.line.extend_from_slice(b",\"created_at\":\"");
        let mut at = [0u8; 24];
        write_rfc3339_millis(user.created_at, &mut at);
        self.line.extend_from_slice(&at);
        self.line.extend_from_slice(b"\"}}\n");
        self.out.write_all(&self.line)?;
        self.users += 1;
        self.progress.tick(self.users, self.articles);
        Ok(())
    }

    fn article(&mut self, article: &Article) -> std::io::Result<()> {
        self.line.clear();
        self.line.extend_from_slice(b"{\"article\":");
        article.write_json(&mut self.line);
        self.line.extend_from_slice(b"}\n");
        self.out.write_all(&self.line)?;
        self.articles += 1;
        self.progress.tick(self.users, self.articles);
        Ok(())
    }
}

/// A line on standard error that counts up in place, if it is a terminal:
/// nothing otherwise.
struct Progress {
    verb: &'static str,
    terminal: bool,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new(verb: &'static str) -> Progress {
        Progress {
            verb,
            terminal: std::io::stderr().is_terminal(),
            last: Instant::now(),
            shown: false,
        }
    }

    fn tick(&mut self, users: u64, articles: u64) {
        if !self.terminal || self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        eprint!("\r{} {users} user(s), {articles} article(s)…", self.verb);
    }

    /// Clears the line, for the summary.
    fn done(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}

/// How often the progress line changes.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// `articles backup FILE`: a consistent copy of a SQLite database while it
/// is in use. Returns the summary line.
pub fn backup(db: &str, file: &str) -> Result<String, AdminError> {
    let started = Instant::now();
    if store::is_postgres(db) {
        return Err(AdminError::Usage(
            "backup copies a SQLite database; for PostgreSQL use pg_dump".into(),
        ));
    }
    if db == ":memory:" {
        return Err(AdminError::Usage(
            "an in-memory database has nothing to back up".into(),
        ));
    }
    if Path::new(file).exists() {
        return Err(AdminError::Exists(file.to_owned()));
    }
    if !Path::new(db).exists() {
        return Err(AdminError::NoDatabase(db.to_owned()));
    }
    let bytes = store::sqlite::backup(Path::new(db), Path::new(file))?;
    Ok(format!(
        "backed up {db} to {file} ({bytes} bytes, integrity ok) in {:.2} s",
        started.elapsed().as_secs_f64()
    ))
}

/// The store at `db`, which must exist: export and backup create nothing.
fn open_existing(db: &str) -> Result<Store, AdminError> {
    let file = !store::is_postgres(db) && db != ":memory:";
    if file && !Path::new(db).exists() {
        return Err(AdminError::NoDatabase(db.to_owned()));
    }
    open(db)
}
