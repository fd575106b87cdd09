//! The `it` binary's kind of test server: the library's own `Server`, over
//! real sockets on port 0, started in this test process.
//!
//! Every call into the `articles` library made by the tests is in this
//! file, so that a change of the library's API is adapted here alone.

use std::sync::Once;

use articles::config::Command;
use articles::server::{Server, ShutdownHandle};

use crate::support::database::TempDir;
use crate::support::server::{self, server_args, Kind};

/// A server running in this process.
pub type TestServer = server::TestServer<InProcess>;

/// The running server; stopped (gracefully, and waited for) when dropped.
pub struct InProcess {
    server: Option<Server>,
    shutdown: ShutdownHandle,
}

impl Kind for InProcess {
    /// Parses the command line as the binary does, with `env` as the only
    /// environment, and starts the server it describes.
    fn launch(dir: TempDir, db: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        static CONFIGURE: Once = Once::new();
        CONFIGURE.call_once(articles::configure_process);
        let argv = server_args(db, args);
        let variable = |name: &str| {
            env.iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.to_string())
        };
        let config = match articles::config::parse(argv.iter().cloned(), variable) {
            Ok(Command::Serve(config)) => config,
            Ok(other) => panic!("{argv:?} is not a server's command line: {other:?}"),
            Err(err) => panic!("{argv:?}: {err}"),
        };
        let server = Server::start(config).unwrap_or_else(|err| panic!("start {argv:?}: {err}"));
        TestServer {
            addr: server.local_addr(),
            kind: InProcess {
                shutdown: server.shutdown_handle(),
                server: Some(server),
            },
            dir,
            db: db.to_owned(),
        }
    }

    /// What `articles user add NAME` runs; its last line is the token.
    fn add_user(db: &str, name: &str) -> String {
        let printed = articles::admin::user_add(db, name).unwrap();
        printed.lines().last().unwrap().to_owned()
    }
}

impl TestServer {
    /// What `articles token new NAME` prints: another token for the user,
    /// on the last line.
    pub fn token_new(&self, name: &str) -> String {
        articles::admin::token_new(&self.db, name).unwrap()
    }

    /// What `articles token revoke NAME` prints.
    pub fn token_revoke(&self, name: &str) -> String {
        articles::admin::token_revoke(&self.db, name).unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        let stopped = self.server.take().map(Server::wait);
        if let Some(Err(err)) = stopped {
            // Not a second panic while a failing test unwinds.
            match std::thread::panicking() {
                true => eprintln!("the server did not stop cleanly: {err}"),
                false => panic!("the server did not stop cleanly: {err}"),
            }
        }
    }
}
