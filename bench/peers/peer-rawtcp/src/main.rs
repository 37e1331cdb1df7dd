//! Benchmark peer: the ceiling for one event-loop thread.
//!
//! One mio thread, non-blocking sockets. It answers the HTTP upgrade with a valid
//! `101 Switching Protocols`, then writes back every byte it reads, UNPARSED: no framing,
//! no unmasking, so a client receives its own masked frames. One read buffer is shared by
//! all connections; bytes go straight to the socket and only what it does not take is kept,
//! and a connection with bytes kept is not read again until they are gone.
//!
//! `peer-rawtcp echo --listen 127.0.0.1:PORT`

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use base64::Engine;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

const LISTENER: Token = Token(usize::MAX);
const READ_BUF: usize = 256 * 1024;
/// Largest handshake request head accepted.
const MAX_HEAD: usize = 16 * 1024;
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct Conn {
    stream: TcpStream,
    /// The request head while the handshake is incomplete; `None` once upgraded.
    head: Option<Vec<u8>>,
    /// Bytes the socket did not take yet, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    /// Registered for WRITABLE as well as READABLE.
    writable_interest: bool,
}

enum Step {
    Keep,
    Close,
}

fn usage() -> ExitCode {
    eprintln!("usage: peer-rawtcp echo --listen 127.0.0.1:PORT");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut echo = false;
    let mut listen: Option<SocketAddr> = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "echo" if !echo => echo = true,
            "--listen" => match it.next().and_then(|a| a.parse().ok()) {
                Some(addr) => listen = Some(addr),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let (true, Some(addr)) = (echo, listen) else {
        return usage();
    };
    match run(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;

    // SIGINT/SIGTERM: exit at once with status 0.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(0);
        }
    });

    eprintln!("listening on {}", listener.local_addr()?);

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut events = Events::with_capacity(1024);

    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, &mut free);
                continue;
            }
            let slot = event.token().0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Step::Close = drive(conn, &poll, Token(slot), &mut buf) {
                let mut conn = conns[slot].take().expect("live connection");
                let _ = poll.registry().deregister(&mut conn.stream);
                free.push(slot);
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
) {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // ECONNABORTED, EMFILE, ...: skip this one, try the next.
            Err(_) => return,
        };
        let _ = stream.set_nodelay(true);
        let slot = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        if poll.registry().register(&mut stream, Token(slot), Interest::READABLE).is_err() {
            free.push(slot);
            continue;
        }
        conns[slot] = Some(Conn {
            stream,
            head: Some(Vec::new()),
            out: Vec::new(),
            out_pos: 0,
            writable_interest: false,
        });
    }
}

/// Handle readiness of one connection (edge-triggered): first finish any kept output, then
/// read until the socket is empty, answering each read at once.
fn drive(conn: &mut Conn, poll: &Poll, token: Token, buf: &mut [u8]) -> Step {
    if conn.out_pos < conn.out.len() {
        match flush_out(conn) {
            Ok(true) => {}
            Ok(false) => return want_writable(conn, poll, token, true),
            Err(_) => return Step::Close,
        }
    }
    // All output is gone: stop asking for WRITABLE (want_writable is a no-op if not asked).
    if let Step::Close = want_writable(conn, poll, token, false) {
        return Step::Close;
    }
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => return Step::Close,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Step::Close,
        };
        let step = match conn.head.is_some() {
            true => handshake(conn, &buf[..n]),
            false => send(conn, &buf[..n]),
        };
        if let Step::Close = step {
            return Step::Close;
        }
        // Bytes kept: stop reading (backpressure) until the socket takes them.
        if conn.out_pos < conn.out.len() {
            return want_writable(conn, poll, token, true);
        }
    }
}

fn want_writable(conn: &mut Conn, poll: &Poll, token: Token, on: bool) -> Step {
    if conn.writable_interest == on {
        return Step::Keep;
    }
    let interest = match on {
        true => Interest::READABLE | Interest::WRITABLE,
        false => Interest::READABLE,
    };
    match poll.registry().reregister(&mut conn.stream, token, interest) {
        Ok(()) => {
            conn.writable_interest = on;
            Step::Keep
        }
        Err(_) => Step::Close,
    }
}

/// Write kept output; `Ok(true)` when all of it is gone.
fn flush_out(conn: &mut Conn) -> io::Result<bool> {
    while conn.out_pos < conn.out.len() {
        match conn.stream.write(&conn.out[conn.out_pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    conn.out.clear();
    conn.out_pos = 0;
    Ok(true)
}

/// Write `data` straight to the socket; keep what it does not take.
fn send(conn: &mut Conn, mut data: &[u8]) -> Step {
    if conn.out_pos < conn.out.len() {
        conn.out.extend_from_slice(data);
        return Step::Keep;
    }
    while !data.is_empty() {
        match conn.stream.write(data) {
            Ok(0) => return Step::Close,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
    if !data.is_empty() {
        conn.out.clear();
        conn.out_pos = 0;
        conn.out.extend_from_slice(data);
    }
    Step::Keep
}

/// Collect the request head; once complete, answer 101 (or 400 and close), then echo any
/// bytes that came after the head.
fn handshake(conn: &mut Conn, data: &[u8]) -> Step {
    let head = conn.head.as_mut().expect("in handshake");
    head.extend_from_slice(data);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(head) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) if head.len() <= MAX_HEAD => return Step::Keep,
        _ => return refuse(conn),
    };
    let header = |name: &str| {
        req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| {
            String::from_utf8_lossy(v).split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    let key = header("sec-websocket-key").map(|k| k.trim_ascii());
    let ok = req.method == Some("GET")
        && has_token("upgrade", "websocket")
        && has_token("connection", "upgrade")
        && header("sec-websocket-version").map(|v| v.trim_ascii()) == Some(b"13".as_slice());
    let (true, Some(key)) = (ok, key) else {
        return refuse(conn);
    };
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let mut reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes();
    // Frames the client sent right behind its request go back with the reply.
    reply.extend_from_slice(&head[end..]);
    conn.head = None;
    send(conn, &reply)
}

fn refuse(conn: &mut Conn) -> Step {
    let _ = conn
        .stream
        .write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    Step::Close
}
