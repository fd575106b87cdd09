//! What SQLite itself says of a database file after a crash or a fault.

use std::path::Path;

/// SQLite's own checks of a database file, and ours of the counter row the
/// triggers keep. Returns what is wrong; empty when all is well.
pub fn integrity_problems(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("the database opens after a crash");
    let mut problems = Vec::new();
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    if result != "ok" {
        problems.push(format!("integrity_check: {result}"));
    }
    let orphans: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    if orphans != 0 {
        problems.push(format!("{orphans} foreign key violations"));
    }
    // FTS5's own check that the index matches the articles it indexes.
    if let Err(err) = conn.execute(
        "INSERT INTO articles_fts (articles_fts) VALUES ('integrity-check')",
        [],
    ) {
        problems.push(format!("FTS index: {err}"));
    }
    let (counter, rows): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT total FROM article_count), (SELECT count(*) FROM articles)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    if counter != rows {
        problems.push(format!("article_count says {counter}, table has {rows}"));
    }
    problems
}
