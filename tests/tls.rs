//! The server over TLS (cargo feature `tls`): wss:// and https:// on one port, and the hostile
//! inputs a TLS port meets: plain HTTP, garbage, a client that stalls in the handshake, bad
//! certificate files. The test certificate (tests/data/tls: a CA and a server certificate for
//! localhost and 127.0.0.1, valid for a century) was made with openssl.
#![cfg(feature = "tls")]

mod common;

use common::{TestServer, masked_frame, upgrade_request};
use rfc6455::echo::Echo;
use rfc6455::frame::OpCode;
use rfc6455::server::{Options, tls_config};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls").join(name)
}

fn tls_echo(handshake_timeout: Duration) -> TestServer<Echo> {
    let mut options = Options::default();
    options.tls = Some(tls_config(&data("server.pem"), &data("server.key")).unwrap());
    options.connection.handshake_timeout = handshake_timeout;
    TestServer::start(options, Echo::default())
}

/// A TLS client that trusts the test CA, over a blocking socket.
fn connect(addr: std::net::SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads until the end of an HTTP head.
fn head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "{}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads until the peer closes; how long it took.
fn until_closed(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
        assert!(start.elapsed() < common::IO_TIMEOUT, "never closed");
    }
}

#[test]
fn a_websocket_over_tls_echoes_and_closes_cleanly() {
    let server = tls_echo(Duration::from_secs(10));
    let mut tls = connect(server.addr);
    tls.write_all(upgrade_request(&server.addr).as_bytes()).unwrap();
    let answer = head(&mut tls);
    assert!(answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{answer}");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(&masked_frame(true, 0, OpCode::Text, b"over TLS", [1, 2, 3, 4])).unwrap();
    let mut frame = [0u8; 10];
    tls.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x81\x08over TLS");
    tls.write_all(&masked_frame(true, 0, OpCode::Close, b"\x03\xe8", [5, 6, 7, 8])).unwrap();
    let mut close = [0u8; 4];
    tls.read_exact(&mut close).unwrap();
    assert_eq!(&close, b"\x88\x02\x03\xe8");
    // Then the server's close_notify and FIN: a clean end.
    let mut rest = Vec::new();
    assert!(tls.read_to_end(&mut rest).is_ok() && rest.is_empty(), "{rest:?}");
}

/// A message far larger than what TLS buffers, read back by a slow reader: the echo flows at the
/// reader's pace, without waiting for a timer (a full TLS buffer with room in the socket once
/// looked like a full socket, and nothing woke the loop until the keepalive Ping).
#[test]
fn a_large_message_over_tls_is_echoed_without_a_stall() {
    let server = tls_echo(Duration::from_secs(10));
    let mut tls = connect(server.addr);
    tls.write_all(upgrade_request(&server.addr).as_bytes()).unwrap();
    assert!(head(&mut tls).starts_with("HTTP/1.1 101"));
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    tls.write_all(&masked_frame(true, 0, OpCode::Binary, &payload, [9, 8, 7, 6])).unwrap();
    let mut header = [0u8; 10];
    tls.read_exact(&mut header).unwrap();
    assert_eq!(header[..2], [0x82, 127]);
    assert_eq!(u64::from_be_bytes(header[2..].try_into().unwrap()), payload.len() as u64);
    // A reader that takes big gulps now and then, as a slow one does: the socket drains by
    // more than TLS holds between two of the server's writes.
    let mut echoed = vec![0u8; payload.len()];
    for chunk in echoed.chunks_mut(1 << 20) {
        std::thread::sleep(Duration::from_millis(20));
        tls.read_exact(chunk).unwrap();
    }
    // A stall lasts until the next timer (the handshake's is long gone; keepalive is off by
    // default): the reads above hit the client's read timeout and fail.
    assert!(echoed == payload, "the echo differs");
}

#[test]
fn plain_http_to_the_tls_port_is_told_so() {
    let server = tls_echo(Duration::from_secs(10));
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    tcp.write_all(upgrade_request(&server.addr).as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.ends_with("This port speaks TLS: use https:// or wss://\n"), "{answer}");
}

#[test]
fn garbage_and_a_stalled_handshake_are_closed() {
    let server = tls_echo(Duration::from_millis(300));
    // Not a TLS record: an alert, and the end.
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    garbage.write_all(&[0x01; 64]).unwrap();
    assert!(until_closed(&mut garbage) < common::IO_TIMEOUT);
    // Half a ClientHello, then nothing: closed at the handshake deadline, which TLS counts
    // toward.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let took = until_closed(&mut stalled);
    assert!(took >= Duration::from_millis(250), "closed after {took:?}, before the deadline");
}

#[test]
fn the_client_speaks_wss_and_checks_the_certificate() {
    use rfc6455::client::{Client, ClientError, ClientOptions, Incoming, Url};
    let server = tls_echo(Duration::from_secs(10));
    let url = Url::parse(&format!("wss://localhost:{}/", server.addr.port())).unwrap();
    // Trusting the test CA: the handshake, an echo, a clean close.
    let mut options = ClientOptions::default();
    options.tls.ca_file = Some(data("ca.pem"));
    let mut client = Client::connect_with(&url, options).unwrap();
    client.send_text("wss from our client").unwrap();
    assert_eq!(client.recv().unwrap(), Incoming::Text("wss from our client".into()));
    client.close(rfc6455::CloseCode::NORMAL, "done").unwrap();
    assert!(matches!(client.recv().unwrap(), Incoming::Close { .. }));
    // The Mozilla roots do not know the test CA: refused.
    let refused = Client::connect_with(&url, ClientOptions::default()).unwrap_err();
    assert!(
        matches!(&refused, ClientError::Io(e) if e.to_string().contains("certificate")),
        "{refused}"
    );
    // Unless asked not to check.
    let mut insecure = ClientOptions::default();
    insecure.tls.insecure = true;
    let mut client = Client::connect_with(&url, insecure).unwrap();
    client.send_text("unchecked").unwrap();
    assert_eq!(client.recv().unwrap(), Incoming::Text("unchecked".into()));
}

/// RFC 6455 §4.1: "Clients MUST use the Server Name Indication extension in the TLS handshake".
/// A bare rustls server on a raw socket reads the name our client's ClientHello carries: the
/// URI's host. (An IP literal has no SNI: RFC 6066 §3 allows only host names in it.)
#[test]
fn the_client_sends_the_uri_host_as_sni() {
    use rfc6455::client::{Client, ClientOptions, Url};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("wss://localhost:{}/", listener.local_addr().unwrap().port()));
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let config = tls_config(&data("server.pem"), &data("server.key")).unwrap();
        let mut tls = rustls::ServerConnection::new(config).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        tls.server_name().map(str::to_owned)
    });
    let mut options = ClientOptions::default();
    options.tls.ca_file = Some(data("ca.pem"));
    // The bare server never answers the upgrade: whatever the client says then does not matter.
    let _ = Client::connect_with(&url.unwrap(), options);
    assert_eq!(server.join().unwrap().as_deref(), Some("localhost"));
}

#[test]
fn bad_certificate_files_stop_the_start_with_their_name() {
    let missing = tls_config(Path::new("/nonexistent.pem"), &data("server.key")).unwrap_err();
    assert!(missing.contains("/nonexistent.pem"), "{missing}");
    let swapped = tls_config(&data("server.key"), &data("server.pem")).unwrap_err();
    assert!(swapped.contains("server.key"), "{swapped}");
    let mismatched = tls_config(&data("ca.pem"), &data("server.key")).unwrap_err();
    assert!(!mismatched.is_empty());
    // The command says so and exits.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfc6455"))
        .args(["echo", "--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem"])
        .args(["--tls-key", data("server.key").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.pem"));
}

#[test]
fn the_command_line_client_speaks_wss() {
    use std::process::{Command, Stdio};
    let server = tls_echo(Duration::from_secs(10));
    let url = format!("wss://localhost:{}/", server.addr.port());
    let run = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .args(["client", &url])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hello over wss\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let ca = data("ca.pem");
    let trusted = run(&["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(trusted.status.code(), Some(0), "{}", String::from_utf8_lossy(&trusted.stderr));
    assert_eq!(String::from_utf8_lossy(&trusted.stdout), "hello over wss\n");
    let unknown = run(&[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("certificate"));
}
