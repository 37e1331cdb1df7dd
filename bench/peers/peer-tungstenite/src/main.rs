//! Benchmark peer: synchronous `tungstenite`, one OS thread per connection.
//!
//! `peer-tungstenite echo --listen 127.0.0.1:PORT`

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message};

/// Limits on incoming data: the same as `rfc6455 echo` (64 MiB), well above the 16 MiB
/// messages the benchmark sends.
const MAX_SIZE: usize = 64 << 20;

fn usage() -> ExitCode {
    eprintln!("usage: peer-tungstenite echo --listen 127.0.0.1:PORT");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen: Option<SocketAddr> = None;
    let mut mode = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => match it.next().and_then(|a| a.parse().ok()) {
                Some(addr) => listen = Some(addr),
                None => return usage(),
            },
            "echo" if mode.is_none() => mode = Some("echo"),
            _ => return usage(),
        }
    }
    let (Some(_), Some(addr)) = (mode, listen) else {
        return usage();
    };

    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };

    // SIGINT/SIGTERM: exit at once with status 0 (threads are not joined).
    let mut signals = Signals::new([SIGINT, SIGTERM]).expect("signal handlers");
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(0);
        }
    });

    eprintln!("listening on {}", listener.local_addr().unwrap_or(addr));

    let config =
        WebSocketConfig::default().max_message_size(Some(MAX_SIZE)).max_frame_size(Some(MAX_SIZE));

    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = thread::Builder::new().stack_size(256 * 1024).spawn(move || serve(stream, config));
    }
    ExitCode::SUCCESS
}

fn serve(stream: TcpStream, config: WebSocketConfig) {
    let _ = stream.set_nodelay(true);
    // Any path is accepted; no extensions are negotiated (tungstenite has no deflate).
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(config)) else {
        return;
    };
    loop {
        match ws.read() {
            // Data messages go straight back; `send` writes and flushes.
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(msg).is_err() {
                    return;
                }
            }
            // Pongs to pings and the reply to a Close are queued by tungstenite and
            // written by the next `read`, which then reports ConnectionClosed.
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return,
            Err(_) => return,
        }
    }
}
