//! Another connection holding a server's database write lock: the server's
//! writes wait (and time out) while its reads go on.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use super::database::postgres;
use super::server::TestServer;

/// Another connection holding the database's write lock, so that the
/// server's writes wait while its reads go on: SQLite's `BEGIN IMMEDIATE`,
/// or on PostgreSQL a `psql` session holding `articles` in EXCLUSIVE mode.
pub enum WriteLock {
    Sqlite(rusqlite::Connection),
    Postgres(Child, BufReader<ChildStdout>),
}

impl WriteLock {
    /// Takes the write lock of `server`'s database.
    pub fn hold<K>(server: &TestServer<K>) -> WriteLock {
        if !postgres() {
            let lock = rusqlite::Connection::open(server.db_path()).unwrap();
            lock.execute_batch("BEGIN IMMEDIATE").unwrap();
            return WriteLock::Sqlite(lock);
        }
        let mut psql = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &server.db()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("psql (PostgreSQL's client) on PATH");
        let stdin = psql.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN;\nLOCK TABLE articles IN EXCLUSIVE MODE;\n\\echo locked\n")
            .unwrap();
        stdin.flush().unwrap();
        let mut out = BufReader::new(psql.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked", "psql could not lock articles");
        WriteLock::Postgres(psql, out)
    }

    /// Lets the writes waiting for the lock go on.
    pub fn release(self) {
        match self {
            WriteLock::Sqlite(lock) => lock.execute_batch("ROLLBACK").unwrap(),
            WriteLock::Postgres(mut psql, _out) => {
                let mut stdin = psql.stdin.take().unwrap();
                stdin.write_all(b"ROLLBACK;\n").unwrap();
                drop(stdin); // end of input: psql exits
                assert!(psql.wait().unwrap().success());
            }
        }
    }
}
