//! The client role over real loopback sockets: the blocking API, `rfc6455 client` on the
//! command line against this crate's server and against a peer (python-websockets), and the
//! client's duties toward a server that misbehaves.

mod common;

use common::process::Process;
use common::{IO_TIMEOUT, TestServer};
use rfc6455::client::{Client, ClientError, ClientOptions, Incoming, Url};
use rfc6455::frame::{self, OpCode};
use rfc6455::handshake::accept_key;
use rfc6455::server::Options;
use rfc6455::{CloseCode, ProtocolError};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Runs `rfc6455 client ARGS` with `input` on standard input.
fn run_cli(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .arg("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn lines(count: usize) -> String {
    let mut text = String::from("hello\nwörld, ünïcode ✓\n\n");
    text.push_str(&format!("{}\n", "a long, compressible line; ".repeat(200)));
    for i in 0..count {
        text.push_str(&format!("line {i}\n"));
    }
    text
}

#[test]
fn the_cli_sends_each_line_and_prints_each_message_through_our_server() {
    let server = Process::start(&["echo"], None);
    let url = format!("ws://{}/", server.addr);
    let input = lines(100);
    let output = run_cli(&[&url], input.as_bytes());
    assert_eq!(String::from_utf8_lossy(&output.stdout), input);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_cli_traces_both_directions_with_rfc_sections() {
    let server = Process::start(&["echo"], None);
    let url = format!("ws://{}/", server.addr);
    let output = run_cli(&[&url, "--trace"], b"hi\n");
    let trace = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.stdout, b"hi\n");
    for expected in [
        "§4.1 -> GET / HTTP/1.1",
        "§4.1 <- HTTP/1.1 101 Switching Protocols",
        #[cfg(feature = "deflate")]
        "extensions permessage-deflate",
        "state Connecting -> Open",
        "-> §5.6 frame fin=1 rsv=000 op=Text(0x1) mask=",
        "<- §5.6 frame fin=1 rsv=000 op=Text(0x1) mask=- len=2 \"hi\"",
        "-> §5.5.1 frame fin=1 rsv=000 op=Close(0x8)",
        "code=1000",
        "§7.1.3 state CloseSent -> Closed (CLOSING until TCP is closed: no more frames)",
        "§7.1.4 TCP closed: CLOSED",
    ] {
        assert!(trace.contains(expected), "{expected:?} in\n{trace}");
    }
    assert!(!trace.contains("-> §5.6 frame fin=1 rsv=000 op=Text(0x1) mask=- "), "masked");
}

#[test]
fn the_cli_prints_a_refused_handshake_and_exits_3() {
    let server = Process::start(&["echo", "--allow-origin", "http://good.example"], None);
    let url = format!("ws://{}/", server.addr);
    let output = run_cli(&[&url, "--origin", "http://evil.example"], b"never sent\n");
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HTTP 403 Forbidden"), "{stderr}");
    assert!(output.stdout.is_empty());
    // The right origin, and a header, are sent as asked.
    let output = run_cli(&[&url, "--origin", "http://good.example", "--header", "X-A: 1"], b"ok\n");
    assert_eq!((output.status.code(), &output.stdout[..]), (Some(0), &b"ok\n"[..]));
}

#[test]
fn the_cli_shows_the_close_code_not_the_reason_and_exits_1() {
    let server = Process::start(&["echo", "--max-message-size", "16"], None);
    let url = format!("ws://{}/", server.addr);
    let output = run_cli(&[&url], b"a line longer than sixteen bytes\n");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the server closed with code 1009"), "{stderr}");
    // §5.5.1: the reason "is not guaranteed to be human readable, clients MUST NOT show it to
    // end users"; the server sent one ("message too big").
    assert!(!stderr.contains("too big"), "{stderr}");
    let traced = run_cli(&[&url, "--trace"], b"a line longer than sixteen bytes\n");
    let trace = String::from_utf8_lossy(&traced.stderr);
    assert!(
        trace.contains("code=1009 reason=\"message too big\""),
        "the wire, on request: {trace}"
    );
}

#[test]
fn the_cli_refuses_bad_arguments_with_status_2() {
    for args in [&["http://x/"][..], &["ws://h:0/"], &["ws://h/", "--bogus"], &[]] {
        let output = run_cli(args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage: rfc6455 client"));
    }
}

/// A Python 3 that has python-websockets (Debian: python3-websockets).
fn python_with_websockets() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import websockets"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn the_cli_against_python_websockets() {
    let Some(python) = python_with_websockets() else {
        assert!(
            std::env::var_os("RFC6455_REQUIRE_PEERS").is_none(),
            "RFC6455_REQUIRE_PEERS is set and python-websockets is missing"
        );
        eprintln!(
            "SKIPPED the_cli_against_python_websockets: no python3 with the websockets module \
             (apt install python3-websockets)"
        );
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/websockets_echo.py");
    let mut peer = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(peer.stdout.take().unwrap()).read_line(&mut banner).unwrap();
    let url = banner.trim().to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let output = run_cli(&[&url], b"hello\n");
    assert_eq!((output.status.code(), &output.stdout[..]), (Some(0), &b"hello\n"[..]));
    let input = lines(20);
    let output = run_cli(&[&url, "--trace"], input.as_bytes());
    assert_eq!(String::from_utf8_lossy(&output.stdout), input);
    assert_eq!(output.status.code(), Some(0));
    let trace = String::from_utf8_lossy(&output.stderr);
    let compressed = trace.contains("-> §5.6 frame fin=1 rsv=100")
        && trace.contains("<- §5.6 frame fin=1 rsv=100");
    assert_eq!(
        compressed,
        cfg!(feature = "deflate"),
        "the long line, compressed both ways:\n{trace}"
    );
    drop(peer.stdin.take());
    peer.wait().unwrap();
}

#[test]
fn the_blocking_client_talks_to_our_server() {
    let server = TestServer::echo(Options::default());
    let url = format!("ws://{}/chat?x=1", server.addr);
    let mut client = Client::connect(&url).unwrap();
    assert!(client.connection().is_open());
    #[cfg(feature = "deflate")]
    assert!(client.connection().deflate_agreed().is_some());
    client.send_text("hello").unwrap();
    client.send_binary(&[0, 1, 2, 255]).unwrap();
    let big = "x".repeat(300_000);
    client.send_text(&big).unwrap();
    client.ping(b"are you there").unwrap();
    assert_eq!(client.recv().unwrap(), Incoming::Text("hello".into()));
    assert_eq!(client.recv().unwrap(), Incoming::Binary(vec![0, 1, 2, 255]));
    assert_eq!(client.recv().unwrap(), Incoming::Text(big));
    client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Incoming::Close { code: Some(CloseCode::NORMAL), reason: String::new() }
    );
    assert!(matches!(client.recv(), Err(ClientError::Closed)));
    assert!(matches!(client.send_text("late"), Err(ClientError::Closed)));
}

#[test]
fn bad_urls_and_wss_are_errors_not_panics() {
    assert!(matches!(Client::connect("http://127.0.0.1/"), Err(ClientError::Url(_))));
    assert!(matches!(Client::connect("ws://[::1/"), Err(ClientError::Url(_))));
    // Without the cargo feature tls, wss:// is refused before anything is sent (tests/tls.rs
    // has it with).
    #[cfg(not(feature = "tls"))]
    assert!(matches!(Client::connect("wss://127.0.0.1/"), Err(ClientError::TlsUnsupported)));
}

/// A hand-written server on a raw socket: it answers the handshake, then runs `then` on the
/// socket.
fn raw_server(
    then: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> (Url, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("ws://{}/", listener.local_addr().unwrap())).unwrap();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key")
            .to_owned();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(key.as_bytes())
        );
        stream.write_all(response.as_bytes()).unwrap();
        then(&mut stream);
    });
    (url, thread)
}

/// Reads one frame a client sent and unmasks it: (opcode, payload).
fn read_client_frame(stream: &mut TcpStream) -> (OpCode, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
        if let Some((header, n)) = frame::decode_header(&buf).unwrap() {
            let mut payload = vec![0; header.payload_len as usize];
            stream.read_exact(&mut payload).unwrap();
            let key = header.mask.expect("a client's frames are masked");
            rfc6455::mask::apply_mask(&mut payload, key, 0);
            let _ = n;
            return (header.opcode, payload);
        }
    }
}

fn plain_options(close_timeout: Duration) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.config.close_timeout = close_timeout;
    #[cfg(feature = "deflate")]
    {
        options.config.deflate = None;
    }
    options
}

#[test]
fn a_server_that_never_closes_tcp_is_given_the_close_timeout() {
    let closed_by_server = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let flag = closed_by_server.clone();
    let (url, thread) = raw_server(move |stream| {
        let (opcode, payload) = read_client_frame(stream);
        assert_eq!((opcode, &payload[..2]), (OpCode::Close, &1000u16.to_be_bytes()[..]));
        let mut close = Vec::new();
        frame::write_frame(&mut close, OpCode::Close, &payload[..2]);
        stream.write_all(&close).unwrap();
        // Hold TCP open until the test is done.
        let _ = done_rx.recv_timeout(IO_TIMEOUT);
        flag.store(true, Ordering::SeqCst);
    });
    let mut client = Client::connect_with(&url, plain_options(Duration::from_millis(300))).unwrap();
    client.close(CloseCode::NORMAL, "").unwrap();
    let closed = client.recv().unwrap();
    assert_eq!(closed, Incoming::Close { code: Some(CloseCode::NORMAL), reason: String::new() });
    assert!(!closed_by_server.load(Ordering::SeqCst), "the client gave up waiting, by itself");
    done_tx.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn a_masked_frame_from_a_server_is_answered_with_1002() {
    let (url, thread) = raw_server(|stream| {
        let frame = common::masked_frame(true, 0, OpCode::Text, b"masked", [1, 2, 3, 4]);
        stream.write_all(&frame).unwrap();
        let (opcode, payload) = read_client_frame(stream);
        assert_eq!((opcode, &payload[..2]), (OpCode::Close, &1002u16.to_be_bytes()[..]));
        // The server closes TCP first (§7.1.1), as it should.
    });
    let mut client = Client::connect_with(&url, plain_options(Duration::from_secs(20))).unwrap();
    match client.recv() {
        Err(ClientError::Protocol(ProtocolError::MaskedFrame)) => {}
        other => panic!("expected MaskedFrame, got {other:?}"),
    }
    thread.join().unwrap();
}

#[test]
fn a_refusal_carries_the_status_and_headers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("ws://{}/", listener.local_addr().unwrap())).unwrap();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        stream
            .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    match Client::connect_with(&url, plain_options(Duration::from_secs(1))) {
        Err(ClientError::Upgrade(rfc6455::handshake::UpgradeError::Refused {
            status,
            headers,
            ..
        })) => {
            assert_eq!(status, 401);
            assert!(headers.contains(&("WWW-Authenticate".into(), "Bearer".into())));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    thread.join().unwrap();
}

#[test]
fn a_tcp_connection_that_cannot_open_is_an_error() {
    // A port that was just free: bound, then closed, so nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = Url::parse(&format!("ws://127.0.0.1:{port}/")).unwrap();
    match Client::connect_with(&url, plain_options(Duration::from_secs(1))) {
        Err(ClientError::Io(error)) => {
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

#[test]
fn a_connection_lost_before_the_closing_handshake_is_abnormal() {
    // §7.2.1: "If at any point the underlying transport layer connection is unexpectedly lost,
    // the client MUST _Fail the WebSocket Connection_."
    let (url, thread) = raw_server(|stream| {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    });
    let mut client = Client::connect_with(&url, plain_options(Duration::from_secs(20))).unwrap();
    thread.join().unwrap();
    assert!(matches!(client.recv(), Err(ClientError::Abnormal)));
}

#[cfg(feature = "deflate")]
#[test]
fn no_compression_unless_the_server_accepts_it() {
    // §9.1: the client "MUST NOT use them unless the server indicates that it wishes to use the
    // extension". A server without deflate ignores the offer; no frame then has RSV1.
    let mut options = Options::default();
    options.connection.deflate = None;
    let server = TestServer::echo(options);
    let url = Url::parse(&format!("ws://{}/", server.addr)).unwrap();
    let mut client = Client::connect_with(&url, ClientOptions::default()).unwrap();
    assert_eq!(client.upgraded().extensions, None);
    assert_eq!(client.connection().deflate_agreed(), None);
    let long = "compressible ".repeat(100);
    client.send_text(&long).unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Incoming::Text(long),
        "the server (no RSV1 allowed) took it"
    );
}
