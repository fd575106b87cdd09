//! Faults of the disk and the database under a running server: a full disk,
//! the database file removed, replaced or overwritten, the database locked
//! by another process. Writes answer 503 (507 for a full disk) with
//! problem+json, reads go on where they can, nothing crashes (the process
//! is checked alive), writes recover when the fault clears, and nothing
//! acknowledged is lost across SIGKILL restarts.
//!
//! Every fault here is of SQLite's files or locks: PostgreSQL runs ignore
//! these tests.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::spawned::TestServer;
use crate::sqlite_integrity::integrity_problems;
use crate::support::database::TempDir;
use crate::support::ledger::fetch_all;
use crate::support::write_lock::WriteLock;
use crate::support::Resp;

/// A small tmpfs mounted for one test, unmounted when dropped. Declare it
/// before the server, so that the server is stopped first.
struct SmallDisk {
    path: PathBuf,
    _dir: TempDir,
}

impl SmallDisk {
    /// Mounts `size` (e.g. "2m") of tmpfs, or says why it cannot.
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = TempDir::new();
        let path = dir.path().join("disk");
        fs::create_dir(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(SmallDisk { path, _dir: dir })
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = File::create(&filler).unwrap();
        for chunk in [65_536, 4_096, 512, 1] {
            while file.write_all(&vec![0u8; chunk]).is_ok() {}
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// `POST /articles` of an article titled `title`: the answer, whatever it is.
fn try_create(server: &TestServer, title: &str) -> Resp {
    server.post(&json!({"title": title, "content": format!("{title} body")}))
}

/// A refused write: `status`, problem+json, `Retry-After`.
fn assert_refused(resp: &Resp, status: u16) {
    resp.problem(status);
    assert_eq!(resp.header("Retry-After"), Some("1"), "{}", resp.text());
}

/// Asserts that an article with each of `titles` is on the server.
fn assert_all_present(server: &TestServer, titles: &[String]) {
    let all = fetch_all(server.addr);
    let found: Vec<&str> = all.values().filter_map(|a| a["title"].as_str()).collect();
    for title in titles {
        assert!(
            found.contains(&title.as_str()),
            "{title} lost; found {found:?}"
        );
    }
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: fills the filesystem under the SQLite file"
)]
fn a_full_disk_answers_507_keeps_reads_and_recovers_when_space_is_freed() {
    // Every machine of this project runs its tests as root; elsewhere this
    // fails with the reason rather than pass untested.
    let disk = SmallDisk::mount("2m").unwrap_or_else(|reason| {
        panic!("cannot run here: cannot mount a tmpfs (needs root): {reason}")
    });
    let db = disk.path.join("test.db");
    let mut server = TestServer::start_on(db.to_str().unwrap(), &[]);
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        assert_eq!(try_create(&server, &format!("before {n}")).status, 201);
        acknowledged.push(format!("before {n}"));
    }
    let filler = disk.fill();

    // The WAL may still have room it allocated before; write until it has not.
    let mut refused = None;
    for n in 0..500 {
        let title = format!("while full {n}");
        let resp = try_create(&server, &title);
        match resp.status {
            201 => acknowledged.push(title),
            _ => {
                refused = Some(resp);
                break;
            }
        }
    }
    let refused = refused.expect("a write refused on a full disk");
    assert_refused(&refused, 507);
    let acknowledged_while_full = acknowledged.len() - 20;
    let patch = json!({"title": "changed while full"});
    assert_refused(&server.send_json("PATCH", "/articles/1", &[], &patch), 507);
    let delete = server.request("DELETE", "/articles/2", &[], None);
    assert_refused(&delete, 507);
    assert_eq!(server.get("/articles/1").status, 200, "reads go on");
    assert_eq!(server.get("/articles?q=before").status, 200);
    assert_eq!(server.get("/healthz").status, 200);
    assert!(server.alive());

    fs::remove_file(filler).unwrap();
    let resp = try_create(&server, "after");
    assert_eq!(resp.status, 201, "writes recover: {}", resp.text());
    acknowledged.push("after".into());

    server = server.kill_and_restart();
    assert_all_present(&server, &acknowledged);
    drop(server);
    let problems = integrity_problems(&db);
    assert!(problems.is_empty(), "{problems:?}");
    println!(
        "full disk: {} writes acknowledged ({acknowledged_while_full} of them while full, into \
         space the WAL had), then POST, PATCH and DELETE 507 with Retry-After; reads 200; \
         writes 201 again once space was freed; 0 lost; integrity ok",
        acknowledged.len()
    );
}

/// Writes while the database file is not where the server opened it: each
/// must be refused with 503, and reads of the open file go on.
fn assert_writes_refused(server: &TestServer, fault: &str) {
    assert_refused(&try_create(server, &format!("while {fault}")), 503);
    let patch = json!({"title": format!("changed while {fault}")});
    assert_refused(&server.send_json("PATCH", "/articles/1", &[], &patch), 503);
    assert_refused(&server.request("DELETE", "/articles/2", &[], None), 503);
    let read = server.get("/articles/1");
    assert_eq!(read.status, 200, "{fault}: reads go on: {}", read.text());
    assert_eq!(server.get("/readyz").status, 503, "{fault}: not ready");
    assert_eq!(server.get("/healthz").status, 200, "{fault}: alive");
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: moves, replaces and removes the SQLite file and its WAL"
)]
fn a_moved_removed_or_replaced_database_refuses_writes_and_recovers_when_it_is_back() {
    let server = TestServer::start();
    let db = server.db_path();
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        assert_eq!(try_create(&server, &format!("kept {n}")).status, 201);
        acknowledged.push(format!("kept {n}"));
    }
    let aside = db.with_extension("aside");
    fs::rename(&db, &aside).unwrap();
    assert_writes_refused(&server, "moved away");
    fs::create_dir(&db).unwrap();
    assert_writes_refused(&server, "replaced by a directory");
    fs::remove_dir(&db).unwrap();
    fs::write(&db, b"not a database at all").unwrap();
    assert_writes_refused(&server, "replaced by another file");
    fs::rename(&aside, &db).unwrap();

    let resp = try_create(&server, "back");
    assert_eq!(resp.status, 201, "writes recover: {}", resp.text());
    acknowledged.push("back".into());
    assert_eq!(server.get("/readyz").status, 200);

    let wal = PathBuf::from(format!("{}-wal", db.display()));
    fs::rename(&wal, wal.with_extension("aside")).unwrap();
    assert_writes_refused(&server, "WAL moved away");
    fs::rename(wal.with_extension("aside"), &wal).unwrap();
    assert_eq!(try_create(&server, "back again").status, 201);
    acknowledged.push("back again".into());

    let mut server = server.restart_with("KILL", &[]);
    assert_all_present(&server, &acknowledged);
    let all = fetch_all(server.addr);
    assert_eq!(
        all.len(),
        acknowledged.len(),
        "nothing refused was kept: {all:?}"
    );
    assert_eq!(all[&1]["title"], "kept 0");
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
    let problems = integrity_problems(&db);
    assert!(problems.is_empty(), "{problems:?}");
    println!(
        "moved, removed, replaced database: 5 faults (moved away, a directory, another file, \
         removed, WAL moved), each write 503 with Retry-After, reads 200, readiness 503; \
         writes 201 once back; {} acknowledged, 0 lost, nothing refused kept",
        acknowledged.len()
    );
}

#[test]
#[cfg_attr(feature = "postgres", ignore = "SQLite only: removes the SQLite file")]
fn a_removed_database_loses_no_acknowledged_write() {
    let server = TestServer::start();
    let db = server.db_path();
    assert_eq!(try_create(&server, "before").status, 201);
    fs::remove_file(&db).unwrap();
    assert_writes_refused(&server, "removed");
    // Reads at once need more connections than the pool had opened: new
    // ones must not open an empty database at the path, and every read is
    // still answered from the one the server opened.
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut conn = crate::support::Conn::open(addr);
                (0..20)
                    .map(|_| conn.request("GET", "/articles/1", &[], None).status)
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for reader in readers {
        let statuses = reader.join().unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert!(!db.exists(), "nothing made a new database at the path");
    // The operator restarts it: a new, empty database, and nothing the
    // server acknowledged has gone with the old one.
    let server = server.restart_with("KILL", &[]);
    assert_eq!(server.get("/articles").header("X-Total-Count"), Some("0"));
}

/// Every kind of request once, on one connection: each must be answered
/// whole, with a status from `allowed`. Returns the statuses seen.
fn probe_everything(server: &TestServer, allowed: &[u16]) -> Vec<u16> {
    let mut conn = server.connect();
    let body = br#"{"title":"probe","content":"probe"}"#;
    let json = [("Content-Type", "application/json")];
    let mut seen = Vec::new();
    for (method, path, body) in [
        ("GET", "/articles", None),
        ("GET", "/articles?q=kept&tag=t&sort=title", None),
        ("GET", "/articles/3", None),
        ("POST", "/articles", Some(&body[..])),
        ("PATCH", "/articles/4", Some(&body[..])),
        ("DELETE", "/articles/5", None),
        ("GET", "/readyz", None),
    ] {
        let headers = if body.is_some() { &json[..] } else { &[] };
        let resp = conn
            .try_request(method, path, headers, body)
            .expect("a whole answer");
        assert!(
            allowed.contains(&resp.status),
            "{method} {path}: {} {}",
            resp.status,
            resp.text()
        );
        if resp.status == 503 {
            resp.problem(503);
        }
        seen.push(resp.status);
    }
    seen
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: overwrites and truncates the SQLite file"
)]
fn a_database_overwritten_or_truncated_in_place_is_503_never_a_crash() {
    for damage in ["garbage over the first pages", "truncated to nothing"] {
        let mut server = TestServer::start();
        for n in 0..40 {
            assert_eq!(try_create(&server, &format!("kept {n}")).status, 201);
        }
        // A clean restart folds the WAL in: the articles are in the file.
        server.signal("TERM");
        server.wait_exit(Duration::from_secs(5)).expect("stops");
        let mut server = server.restart_with("KILL", &[]);
        assert_eq!(server.get("/articles/3").status, 200);

        let db = server.db_path();
        let mut file = fs::OpenOptions::new().write(true).open(&db).unwrap();
        match damage {
            "truncated to nothing" => file.set_len(0).unwrap(),
            _ => file.write_all(&[0xA5; 16 * 1024]).unwrap(),
        }
        drop(file);
        let allowed = [200, 201, 204, 404, 503];
        let first = probe_everything(&server, &allowed);
        let second = probe_everything(&server, &allowed);
        assert!(server.alive(), "{damage}: the server died");
        if damage == "truncated to nothing" {
            assert_eq!(second.last(), Some(&503), "{damage}: not ready");
        }
        assert_eq!(server.get("/healthz").status, 200);
        println!("database {damage}: statuses {first:?} then {second:?}; server alive");
    }
}

#[test]
#[cfg_attr(
    feature = "postgres",
    ignore = "SQLite only: holds SQLite's write lock from another connection"
)]
fn a_database_locked_by_another_process_answers_503_and_reads_go_on() {
    let server = TestServer::start();
    assert_eq!(try_create(&server, "before").status, 201);
    let other = WriteLock::hold(&server);

    let started = std::time::Instant::now();
    let read = server.get("/articles/1");
    assert_eq!(read.status, 200, "WAL readers do not wait for a writer");
    assert!(started.elapsed() < Duration::from_secs(1));
    let resp = try_create(&server, "while locked");
    let waited = started.elapsed();
    assert_refused(&resp, 503);
    other.release();
    assert_eq!(try_create(&server, "after").status, 201);
    println!("locked database: a read answered at once, a write 503 with Retry-After after {waited:?}, then 201");
}
