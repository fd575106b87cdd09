//! Ceiling server for the benchmark: tiny_http_fork with a fixed pool of
//! worker threads calling `server.recv()`, answering every request with the
//! same ~300-byte JSON article. No routing, no database: whatever `articles`
//! loses against this is the cost of its own code.
//!
//! Usage: ceiling ADDR [WORKERS]   (ADDR like 127.0.0.1:0; prints
//! `listening on http://HOST:PORT` once bound, like `articles serve`).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::thread;

use tiny_http_fork::{Header, ListenAddr, Response, Server, ServerConfig};

const BODY: &str = r#"{"id":42,"title":"Choosing a framework for a small service","content":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.","tags":["python","rust","web"],"author":{"id":1,"username":"bench"},"created_at":"2026-11-24T21:44:09.123Z","updated_at":"2026-11-24T21:44:09.123Z"}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_string());
    let workers: usize = args.next().map(|w| w.parse().expect("WORKERS")).unwrap_or(4);

    let listener = TcpListener::bind(&addr).expect("bind");
    // TCP_NODELAY is inherited by accepted sockets on Linux; setting it on
    // the listener avoids Nagle/delayed-ACK stalls on keep-alive responses
    // (tiny_http_fork itself does not set it). std only exposes set_nodelay
    // on TcpStream, so borrow the fd as one and give it back un-closed.
    let as_stream = unsafe { TcpStream::from_raw_fd(listener.as_raw_fd()) };
    as_stream.set_nodelay(true).expect("TCP_NODELAY");
    let _ = as_stream.into_raw_fd();

    let local = listener.local_addr().expect("local_addr");
    let config = ServerConfig::new_http(local).expect("config");
    let server = Arc::new(
        Server::from_listener(listener, ListenAddr::from(local), config).expect("server"),
    );

    println!("listening on http://{local}");
    std::io::stdout().flush().ok();

    let content_type = Header::from_bytes("Content-Type", "application/json; charset=utf-8")
        .expect("header");
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let server = Arc::clone(&server);
            let content_type = content_type.clone();
            thread::spawn(move || loop {
                match server.recv() {
                    Ok(Ok(rq)) => {
                        let resp = Response::from_string(BODY).with_header(content_type.clone());
                        let _ = rq.respond(resp);
                    }
                    Ok(Err(_)) => continue, // a malformed request on one connection
                    Err(_) => break,        // server shut down
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
