//! Whether the database's path still names the files the store opened.
//!
//! SQLite keeps writing to the files it opened. If the database file (or its
//! WAL) is removed, renamed or replaced under a running server, writes go on
//! succeeding into a file that no path names, and they are gone when the
//! process stops: acknowledged writes silently lost. The guard compares
//! device and inode of each path with those of the files opened, before a
//! write transaction begins and after it commits, so such a write is
//! refused (503) rather than acknowledged. Moving the file back makes writes
//! work again.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::StoreError;

/// Device and inode: which file a path names.
type Identity = (u64, u64);

/// The files of one database, as opened.
pub(super) struct FileGuard {
    db: PathBuf,
    db_identity: Identity,
    /// SQLite names the WAL after the database's resolved path.
    wal: PathBuf,
    /// Known from the first commit on: the WAL is created and removed with
    /// connections, and this store's connections keep it open.
    wal_identity: OnceLock<Identity>,
    /// Whether the last check failed, so that a change is logged once.
    moved: AtomicBool,
}

impl FileGuard {
    /// The guard of the database at `db`, which must exist (opened).
    pub(super) fn new(db: &Path) -> Result<FileGuard, StoreError> {
        let unavailable =
            |err: std::io::Error| StoreError::unavailable(format!("{}: {err}", db.display()));
        let db_identity = identity(db).map_err(unavailable)?;
        let resolved = fs::canonicalize(db).map_err(unavailable)?;
        let mut wal = resolved.into_os_string();
        wal.push("-wal");
        Ok(FileGuard {
            db: db.to_owned(),
            db_identity,
            wal: PathBuf::from(wal),
            wal_identity: OnceLock::new(),
            moved: AtomicBool::new(false),
        })
    }

    /// `Ok` while both paths name the files opened; otherwise
    /// `StoreError::Unavailable`, logged when it starts and when it ends.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let problem = self.problem();
        let was_moved = self.moved.swap(problem.is_some(), Ordering::AcqRel);
        match problem {
            None => {
                if was_moved {
                    log::warn!("database files back in place; writes resume");
                }
                Ok(())
            }
            Some(problem) => {
                if !was_moved {
                    log::error!("{problem}; writes are refused until it is back (or restart)");
                }
                Err(StoreError::unavailable(problem))
            }
        }
    }

    /// What is wrong, if anything. An inode number is only reused once no
    /// one holds its file open, and SQLite holds both files open, so a file
    /// at the path with the same identity is the same file.
    fn problem(&self) -> Option<String> {
        match identity(&self.db) {
            Ok(found) if found == self.db_identity => {}
            Ok(_) => return Some(format!("{} was replaced", self.db.display())),
            Err(err) => return Some(format!("{} is gone: {err}", self.db.display())),
        }
        match (identity(&self.wal), self.wal_identity.get()) {
            (Ok(found), Some(opened)) if found == *opened => None,
            (Ok(_), Some(_)) => Some(format!("{} was replaced", self.wal.display())),
            (Ok(found), None) => {
                let _ = self.wal_identity.set(found);
                None
            }
            (Err(err), Some(_)) => Some(format!("{} is gone: {err}", self.wal.display())),
            // No WAL yet, and none expected.
            (Err(err), None) if err.kind() == ErrorKind::NotFound => None,
            (Err(err), None) => Some(format!("{}: {err}", self.wal.display())),
        }
    }
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let meta = fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db");
        fs::write(&path, b"x").unwrap();
        path
    }

    #[test]
    fn notices_a_removed_replaced_or_restored_file() {
        let db = temp_file("db");
        let _open = fs::File::open(&db).unwrap();
        let guard = FileGuard::new(&db).unwrap();
        assert!(guard.check().is_ok());
        let aside = db.with_extension("aside");
        fs::rename(&db, &aside).unwrap();
        assert!(matches!(guard.check(), Err(StoreError::Unavailable(_))));
        fs::write(&db, b"x").unwrap();
        assert!(guard.check().is_err(), "another file at the path");
        fs::rename(&aside, &db).unwrap();
        assert!(guard.check().is_ok(), "the same file back");
        let _ = fs::remove_dir_all(db.parent().unwrap());
    }

    #[test]
    fn learns_the_wal_once_it_exists_then_holds_it() {
        let db = temp_file("wal");
        let guard = FileGuard::new(&db).unwrap();
        let wal = PathBuf::from(format!("{}-wal", fs::canonicalize(&db).unwrap().display()));
        assert!(guard.check().is_ok(), "no WAL yet");
        fs::write(&wal, b"w").unwrap();
        // SQLite holds the WAL open, so its inode cannot be reused.
        let _open = fs::File::open(&wal).unwrap();
        assert!(guard.check().is_ok(), "learnt");
        fs::remove_file(&wal).unwrap();
        assert!(guard.check().is_err(), "gone");
        fs::write(&wal, b"w").unwrap();
        assert!(guard.check().is_err(), "another WAL");
        let _ = fs::remove_dir_all(db.parent().unwrap());
    }
}
