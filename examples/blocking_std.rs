//! The sans-I/O core without mio: one blocking `std::net` socket per thread, driven by hand in
//! the order the `Connection` docs give. An echo server in about sixty lines.
//!
//! ```sh
//! cargo run --example blocking_std                 # ws://127.0.0.1:9003/
//! ```

use rfc6455::policy::Policy;
use rfc6455::{Config, Connection, Event, State};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn serve(mut stream: TcpStream, config: Arc<Config>) -> std::io::Result<()> {
    let mut conn = Connection::new(config, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        // Time is an input: block in read() no longer than the connection's next deadline.
        let wait = conn.poll_timeout().map(|at| at.saturating_duration_since(Instant::now()));
        stream.set_read_timeout(Some(
            wait.unwrap_or(Duration::from_secs(60)).max(Duration::from_millis(1)),
        ))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let mut pos = 0;
                while pos < n {
                    let now = Instant::now();
                    let received = conn.receive(&mut buf[pos..n], now, &mut out);
                    pos += received.consumed;
                    match received.event {
                        // The opening handshake: the core has checked it, we decide.
                        Some(Event::Request) => {
                            let decided =
                                conn.request().map(|request| Policy::default().decide(request));
                            let _ = match decided {
                                Some(Ok(accept)) => conn.accept(&accept, &mut out, now),
                                Some(Err(response)) => conn.respond(&response, &mut out, now),
                                None => Ok(()),
                            };
                        }
                        // Echo: a slice of `buf` when the message came in one read.
                        Some(Event::Message(message)) => {
                            let _ = conn.send(&mut out, &message);
                        }
                        _ => {}
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // The deadline passed: a handshake that took too long, an unanswered Close...
                if conn.handle_timeout(Instant::now(), &mut out).is_some() {
                    stream.write_all(&out)?;
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
        // Everything the connection produced (the 101, pongs, echoes, a Close) goes out.
        stream.write_all(&out)?;
        out.clear();
        if conn.state() == State::Closed {
            // §7.1.1: the server closes TCP first; then waits for the peer's FIN.
            stream.shutdown(std::net::Shutdown::Write)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            return Ok(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:9003")?;
    eprintln!("blocking echo on ws://{}/", listener.local_addr()?);
    let config = Arc::new(Config::default());
    for stream in listener.incoming() {
        let (stream, config) = (stream?, config.clone());
        std::thread::spawn(move || serve(stream, config));
    }
    Ok(())
}
