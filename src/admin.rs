//! The administrative commands: `user add`, `token new`, `token revoke`,
//! `export`, `import` and `backup`.
//! They open the database like the server does, so they work while a server
//! runs on the same file (writes wait for its lock).

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::model::article::Article;
use crate::model::import;
use crate::model::user::{new_token, token_hash};
use crate::store::{self, ExportError, ExportSink, ExportedUser, Store, StoreError};
use crate::store::{ImportError, Imported, Importer};
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
    /// Reading the input failed.
    Read(String, std::io::Error),
    /// The input is wrong: where and how.
    Input(String),
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
            AdminError::Read(name, err) => write!(f, "cannot read {name}: {err}"),
            AdminError::Input(message) => write!(f, "{message}; nothing was imported"),
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
    require_file(db)?;
    let bytes = store::sqlite::backup(Path::new(db), Path::new(file))?;
    Ok(format!(
        "backed up {db} to {file} ({bytes} bytes, integrity ok) in {:.2} s",
        started.elapsed().as_secs_f64()
    ))
}

/// The store at `db`, which must exist: export creates nothing.
fn open_existing(db: &str) -> Result<Store, AdminError> {
    require_file(db)?;
    open(db)
}

/// A SQLite file that must be there already (a PostgreSQL database or
/// `:memory:` always is).
fn require_file(db: &str) -> Result<(), AdminError> {
    let file = !store::is_postgres(db) && db != ":memory:";
    match file && !Path::new(db).exists() {
        true => Err(AdminError::NoDatabase(db.to_owned())),
        false => Ok(()),
    }
}

/// `articles import FILE`: users and articles from JSON Lines (as `export`
/// writes), a JSON array of articles, or an object with an `"articles"`
/// array; `-` reads standard input. One transaction: the first problem
/// stops it and nothing is kept. An article whose id exists is an error,
/// or kept as it is with `skip_existing`. Returns the summary line.
pub fn import(db: &str, file: &str, skip_existing: bool) -> Result<String, AdminError> {
    let started = Instant::now();
    // The input first: a missing file creates no database.
    let mut input: Box<dyn BufRead> = match file {
        "-" => Box::new(BufReader::new(std::io::stdin().lock())),
        path => Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(path).map_err(|err| AdminError::Read(path.to_owned(), err))?,
        )),
    };
    let name = if file == "-" { "standard input" } else { file };
    let store = open(db)?;
    let mut counts = Counts::default();
    let mut progress = Progress::new("imported");
    let imported = store.import(&mut |importer| {
        let mut load = Load {
            importer,
            skip_existing,
            seen: HashMap::new(),
            counts: &mut counts,
            progress: &mut progress,
        };
        read_input(&mut input, name, &mut load)?;
        load.counts.users = load.importer.users_added();
        Ok(())
    });
    progress.done();
    imported.map_err(|err| match err {
        ImportError::Store(err) => AdminError::Store(err),
        ImportError::Input(message) => AdminError::Input(message),
    })?;
    Ok(format!(
        "imported {} article(s) ({} skipped as existing) and {} new user(s) in {:.2} s",
        counts.articles,
        counts.skipped,
        counts.users,
        started.elapsed().as_secs_f64()
    ))
}

#[derive(Debug, Default)]
struct Counts {
    articles: u64,
    skipped: u64,
    users: u64,
}

/// Where a record is in the input (1-based).
#[derive(Debug, Clone, Copy)]
enum At {
    /// A line of JSON Lines.
    Line(u64),
    /// An element of a top-level array.
    Element(u64),
    /// An element of a `db.json`'s `"articles"`.
    Articles(u64),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Line(n) => write!(f, "line {n}"),
            At::Element(n) => write!(f, "article {n}"),
            At::Articles(n) => write!(f, "article {n} of \"articles\""),
        }
    }
}

/// Records going into an import.
struct Load<'a> {
    importer: &'a mut dyn Importer,
    skip_existing: bool,
    /// Each id given in the input, and where.
    seen: HashMap<i64, At>,
    counts: &'a mut Counts,
    progress: &'a mut Progress,
}

impl Load<'_> {
    fn article(&mut self, value: &Value, at: At) -> Result<(), ImportError> {
        let article =
            import::article(value).map_err(|err| ImportError::Input(format!("{at}: {err}")))?;
        if let Some(id) = article.id {
            if let Some(first) = self.seen.insert(id, at) {
                return Err(ImportError::Input(format!(
                    "{at}: id {id} is in the input twice (first at {first})"
                )));
            }
        }
        match self.importer.article(&article)? {
            Imported::Added(_) => self.counts.articles += 1,
            Imported::Exists(_) if self.skip_existing => self.counts.skipped += 1,
            Imported::Exists(id) => {
                return Err(ImportError::Input(format!(
                    "{at}: an article with id {id} exists (--skip-existing keeps it)"
                )))
            }
        }
        self.progress
            .tick(self.importer.users_added(), self.counts.articles);
        Ok(())
    }

    fn user(&mut self, value: &Value, at: At) -> Result<(), ImportError> {
        let user = import::user(value).map_err(|err| ImportError::Input(format!("{at}: {err}")))?;
        self.importer.user(&user)?;
        Ok(())
    }
}

/// Reads `input` in whichever format it is in, into `load`.
fn read_input(input: &mut dyn BufRead, name: &str, load: &mut Load<'_>) -> Result<(), ImportError> {
    let unreadable = |err: std::io::Error| ImportError::Input(format!("reading {name}: {err}"));
    // JSON Lines if the first line is one record; otherwise one document.
    let mut first = String::new();
    loop {
        first.clear();
        if input.read_line(&mut first).map_err(unreadable)? == 0 {
            return Ok(()); // empty: nothing to import
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    let first_is_record =
        serde_json::from_str::<Value>(&first).is_ok_and(|value| record(&value).is_some());
    match first_is_record {
        true => read_lines(first, input, load, unreadable),
        false => read_document(std::io::Cursor::new(first).chain(input), load),
    }
}

/// A JSON Lines record: `{"user": ...}` or `{"article": ...}`, its key and
/// its object.
fn record(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object().filter(|object| object.len() == 1)?;
    let (key, inner) = object.iter().next()?;
    matches!(key.as_str(), "user" | "article").then_some((key.as_str(), inner))
}

fn read_lines(
    first: String,
    input: &mut dyn BufRead,
    load: &mut Load<'_>,
    unreadable: impl Fn(std::io::Error) -> ImportError,
) -> Result<(), ImportError> {
    let mut line = first;
    let mut number = 1u64;
    // Blank lines before the first record were skipped: count them too.
    loop {
        if !line.trim().is_empty() {
            let at = At::Line(number);
            let value: Value = serde_json::from_str(&line)
                .map_err(|err| ImportError::Input(format!("{at}: not JSON: {err}")))?;
            match record(&value) {
                Some(("article", article)) => load.article(article, at)?,
                Some((_, user)) => load.user(user, at)?,
                None => {
                    return Err(ImportError::Input(format!(
                        "{at}: expected {{\"user\": {{...}}}} or {{\"article\": {{...}}}}"
                    )))
                }
            }
        }
        line.clear();
        if input.read_line(&mut line).map_err(&unreadable)? == 0 {
            return Ok(());
        }
        number += 1;
    }
}

/// A JSON array of articles, or an object with an `"articles"` array (other
/// keys are ignored), read an element at a time.
fn read_document(input: impl Read, load: &mut Load<'_>) -> Result<(), ImportError> {
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(input);
    let read = Document {
        load,
        failure: &mut failure,
    }
    .deserialize(&mut de)
    .and_then(|found| de.end().map(|()| found));
    if let Some(failure) = failure {
        return Err(failure);
    }
    match read {
        Ok(true) => Ok(()),
        Ok(false) => Err(ImportError::Input(
            "an object without an \"articles\" array: nothing to import".into(),
        )),
        Err(err) => Err(ImportError::Input(format!(
            "not JSON Lines, a JSON array of articles or an object with an \"articles\" array: {err}"
        ))),
    }
}

/// The document's visitor: whether it found the articles.
struct Document<'l, 'a> {
    load: &'l mut Load<'a>,
    failure: &'l mut Option<ImportError>,
}

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of articles or an object with an \"articles\" array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        each_article(seq, self.load, self.failure, At::Element)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "articles" && !found {
                found = map.next_value_seed(Articles {
                    load: &mut *self.load,
                    failure: &mut *self.failure,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The `"articles"` array of an object.
struct Articles<'l, 'a> {
    load: &'l mut Load<'a>,
    failure: &'l mut Option<ImportError>,
}

impl<'de> DeserializeSeed<'de> for Articles<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Articles<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of articles")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        each_article(seq, self.load, self.failure, At::Articles)
    }
}

/// Loads each element of `seq` as an article; a failure is kept in
/// `failure` and stops the parse.
fn each_article<'de, A: SeqAccess<'de>>(
    mut seq: A,
    load: &mut Load<'_>,
    failure: &mut Option<ImportError>,
    at: fn(u64) -> At,
) -> Result<bool, A::Error> {
    let mut index = 0u64;
    while let Some(value) = seq.next_element::<Value>()? {
        index += 1;
        if let Err(err) = load.article(&value, at(index)) {
            *failure = Some(err);
            return Err(serde::de::Error::custom("stopped"));
        }
    }
    Ok(true)
}
