//! The integration tests that must own the server's whole process, or run
//! the `articles` binary itself: each starts the binary (`spawned`) on port
//! 0 with a temporary database. A module per reason:
//!
//! - `signals`: SIGTERM and SIGINT, the graceful shutdown they start;
//! - `crashes`: SIGKILL, then a restart on the same database;
//! - `faults`: a disk or database file failing under the server, checked
//!   across SIGKILL restarts, and a lock held by another process;
//! - `logs`: what the server writes to its own standard error;
//! - `resources`: what /proc says of the server's threads, descriptors and
//!   memory, its limits (RLIMIT_NPROC, RLIMIT_NOFILE), the GLIBC_TUNABLES
//!   it starts itself with, and counters kept for the whole process;
//! - `data`: `export` and `backup`, also while a server writes;
//! - `cli`: the command line under test (help, exit codes, variables,
//!   `migrate`, `user add`, `token revoke`).

#[path = "../support/spawned.rs"]
mod spawned;
#[path = "../support/mod.rs"]
mod support;

mod procfs;
mod sqlite_integrity;

mod cli;
mod crashes;
mod data;
mod faults;
mod logs;
mod resources;
mod signals;
