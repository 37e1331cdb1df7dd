//! Hostile input and faults, one bounded test per row of docs/security.md. Each asserts the
//! exact HTTP status or close code, and memory or CPU stays bounded where that is the point.
//! Timers are driven by short configured limits, never by sleeping to wait for them.

mod common;

use common::process::Process;
use common::{Client, TestServer, http_exchange, upgrade_request};
use rfc6455::chat::{Chat, ChatOptions};
use rfc6455::echo::Echo;
use rfc6455::frame::{FrameHeader, OpCode};
use rfc6455::server::Options;
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// Reads frames until a Close and returns its code.
fn close_code(client: &mut Client) -> Option<u16> {
    client.skip_to_close().0
}

/// Sends a masked frame header that declares `len` bytes, and no payload.
fn declare(client: &mut Client, opcode: OpCode, len: u64) {
    let mut bytes = Vec::new();
    FrameHeader { fin: true, rsv: 0, opcode, mask: Some([1, 2, 3, 4]), payload_len: len }
        .encode(&mut bytes);
    client.stream.write_all(&bytes).unwrap();
}

#[test]
fn slowloris_handshake_is_closed_at_one_deadline_not_reset_by_bytes() {
    let mut options = Options::default();
    options.connection.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::echo(options);
    let mut stream = common::connect_raw(server.addr);
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let request = upgrade_request(&server.addr);
    let mut sent = 0;
    // One byte every 50 ms would take about 7 s; the server must give up at its deadline.
    let closed = loop {
        if sent == request.len() {
            break false;
        }
        if stream.write_all(&request.as_bytes()[sent..sent + 1]).is_err() {
            break true;
        }
        sent += 1;
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => break true,
            Ok(_) => panic!("the server answered a half-sent request"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
    };
    assert!(closed, "the connection outlived the whole request");
    assert!(sent < request.len());
}

#[test]
fn long_heads_and_many_headers_get_431() {
    let server = TestServer::echo(Options::default());
    let good = upgrade_request(&server.addr);
    let long = good.replace("\r\n\r\n", &format!("\r\nX-Pad: {}\r\n\r\n", "p".repeat(8200)));
    assert!(http_exchange(server.addr, long.as_bytes()).starts_with("HTTP/1.1 431 "));
    let headers: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = good.replace("\r\n\r\n", &format!("\r\n{headers}\r\n"));
    assert!(http_exchange(server.addr, many.as_bytes()).starts_with("HTTP/1.1 431 "));
}

#[test]
fn bad_upgrade_requests_get_405_426_400() {
    let server = TestServer::echo(Options::default());
    let good = upgrade_request(&server.addr);
    let cases = [
        (good.replacen("GET", "PUT", 1), "405"),
        (good.replace("Version: 13", "Version: 7"), "426"),
        (good.replacen(&format!("Host: {}\r\n", server.addr), "", 1), "400"),
        (good.replace(common::KEY, "AAAA"), "400"),
        (good.replace("\r\n\r\n", "\r\nContent-Length: 4\r\n\r\nbody"), "400"),
    ];
    for (request, status) in cases {
        let response = http_exchange(server.addr, request.as_bytes());
        assert!(response.starts_with(&format!("HTTP/1.1 {status} ")), "{request}\n{response}");
    }
}

#[test]
fn origin_not_on_the_allowlist_gets_403_before_any_101() {
    let mut echo = Echo::default();
    echo.policy.allowed_origins = vec!["https://chat.example".into()];
    let server = TestServer::start(Options::default(), echo);
    let with_origin = |origin: &str| {
        let request = upgrade_request(&server.addr)
            .replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"));
        let mut client = Client::unconnected(server.addr);
        client.stream.write_all(request.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        client.stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head).into_owned()
    };
    assert_eq!(with_origin("https://evil.example"), "HTTP/1.1 403");
    assert_eq!(with_origin("HTTPS://CHAT.EXAMPLE"), "HTTP/1.1 101");
    // No Origin header: not a browser, not restricted by the list.
    Client::connect(server.addr);
}

/// A 2^62-byte declared frame, and a 60 MiB one under the limit with only 4 bytes sent: both
/// leave the server's memory where it was.
#[test]
fn declared_lengths_are_checked_before_allocating() {
    let server = Process::start(&["echo"], None);
    let before = server.rss();
    let mut big = Client::connect(server.addr);
    declare(&mut big, OpCode::Binary, 1 << 62);
    assert_eq!(close_code(&mut big), Some(1009));
    let mut top_bit = Client::connect(server.addr);
    top_bit.stream.write_all(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]).unwrap();
    assert_eq!(close_code(&mut top_bit), Some(1002));
    // Under the 64 MiB limit: accepted, but nothing is reserved for bytes not yet sent.
    let mut waiting = Client::connect(server.addr);
    declare(&mut waiting, OpCode::Binary, 60 << 20);
    waiting.stream.write_all(b"abcd").unwrap();
    // Wait until the server has read those bytes (its socket's receive queue is empty), then
    // for a round trip on another connection: the wakeup that read them is over.
    let client_port = waiting.stream.local_addr().unwrap().port();
    let started = Instant::now();
    while common::process::unread_bytes(server.addr.port(), client_port) != Some(0) {
        assert!(started.elapsed() < common::IO_TIMEOUT, "the server never read the header");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut probe = Client::connect(server.addr);
    probe.send_text("sync");
    assert_eq!(probe.read_frame().unwrap().payload, b"sync");
    let growth = server.rss().saturating_sub(before);
    assert!(growth < 1 << 20, "RSS grew by {growth} bytes");
}

#[test]
fn messages_over_the_limit_across_fragments_and_too_many_fragments() {
    let mut options = Options::default();
    options.connection.max_message_size = 10_000;
    options.connection.max_fragments = 100;
    let server = TestServer::echo(options);
    let mut client = Client::connect(server.addr);
    client.send_frame(false, OpCode::Binary, &[0; 4000]);
    client.send_frame(false, OpCode::Continuation, &[0; 4000]);
    client.send_frame(false, OpCode::Continuation, &[0; 4000]);
    assert_eq!(close_code(&mut client), Some(1009));
    // Empty fragments never reach the size limit; the count does.
    let mut client = Client::connect(server.addr);
    let mut bytes = client.frame_bytes(false, OpCode::Text, b"");
    for _ in 0..200 {
        bytes.extend(client.frame_bytes(false, OpCode::Continuation, b""));
    }
    let _ = client.stream.write_all(&bytes);
    assert_eq!(close_code(&mut client), Some(1008));
}

#[test]
fn invalid_utf8_in_text_or_close_reason_is_1007() {
    let server = TestServer::echo(Options::default());
    let mut client = Client::connect(server.addr);
    client.send_frame(false, OpCode::Text, "valid ✓".as_bytes());
    client.send_frame(false, OpCode::Continuation, b"\xed\xa0\x80"); // a surrogate
    assert_eq!(close_code(&mut client), Some(1007));
    let mut client = Client::connect(server.addr);
    client.send_frame(true, OpCode::Close, b"\x03\xe8\xc3\x28");
    assert_eq!(close_code(&mut client), Some(1007));
}

#[test]
fn invalid_close_codes_and_one_byte_bodies_are_1002() {
    let server = TestServer::echo(Options::default());
    for body in [&b"\x03"[..], b"\x00\x00", b"\x03\xe7", b"\x03\xee", b"\x03\xf7", b"\x13\x88"] {
        let mut client = Client::connect(server.addr);
        client.send_frame(true, OpCode::Close, body);
        assert_eq!(close_code(&mut client), Some(1002), "{body:x?}");
        client.expect_eof();
    }
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    let mut options = Options::default();
    options.connection.close_timeout = Duration::from_millis(300);
    let server = TestServer::start(options, Chat::new(ChatOptions::default()));
    let mut client = Client::connect(server.addr);
    // The chat refuses binary messages with a Close (1003); the client never answers it.
    client.send_binary(b"\x01");
    assert_eq!(close_code(&mut client), Some(1003));
    client.expect_eof();
}

/// A client that sends Pings and never reads: the server owes it one Pong (the latest), not
/// one per Ping, and its memory stays bounded.
#[test]
fn a_ping_flood_from_a_client_that_never_reads_is_coalesced() {
    const PINGS: usize = 200_000;
    let server = Process::start(&["echo"], None);
    let before = server.rss();
    let mut client = Client::connect(server.addr);
    let mut batch = Vec::new();
    for n in 0..PINGS {
        let payload = format!("{n:0>120}");
        batch.extend(client.frame_bytes(true, OpCode::Ping, payload.as_bytes()));
        if batch.len() > 1 << 20 {
            client.stream.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    client.stream.write_all(&batch).unwrap();
    let growth = server.rss().saturating_sub(before);
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes for {PINGS} Pings");
    // Now read: fewer Pongs than Pings, and the last one answers the last Ping.
    let last = format!("{:0>120}", PINGS - 1);
    let mut pongs = 0;
    loop {
        let frame = client.read_frame().unwrap();
        assert_eq!(frame.opcode, OpCode::Pong);
        pongs += 1;
        if frame.payload == last.as_bytes() {
            break;
        }
    }
    assert!(pongs < PINGS, "{pongs} Pongs for {PINGS} Pings");
}

#[test]
fn connection_floods_get_503_globally_and_per_address() {
    let mut options = Options::default();
    options.max_connections = 4;
    let server = TestServer::echo(options);
    let held: Vec<Client> = (0..4).map(|_| Client::connect(server.addr)).collect();
    let refused = http_exchange(server.addr, upgrade_request(&server.addr).as_bytes());
    assert!(refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{refused}");
    assert!(refused.contains("\r\nRetry-After: 1\r\n"), "{refused}");
    drop(held);

    let mut options = Options::default();
    options.max_connections_per_ip = 2;
    let server = TestServer::echo(options);
    let mut held: Vec<Client> = (0..2).map(|_| Client::connect(server.addr)).collect();
    let refused = http_exchange(server.addr, upgrade_request(&server.addr).as_bytes());
    assert!(refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{refused}");
    assert!(refused.contains("too many connections from this address"));
    assert!(refused.contains("\r\nRetry-After: 1\r\n"), "{refused}");
    // When one leaves, the address may connect again.
    let mut leaving = held.pop().unwrap();
    leaving.send_frame(true, OpCode::Close, b"\x03\xe8");
    leaving.skip_to_close();
    leaving.expect_eof();
    drop(leaving);
    let start = Instant::now();
    loop {
        let mut client = Client::send_handshake(server.addr);
        let mut head = [0u8; 12];
        client.stream.read_exact(&mut head).unwrap();
        if &head == b"HTTP/1.1 101" {
            break;
        }
        assert_eq!(&head, b"HTTP/1.1 503");
        assert!(start.elapsed() < common::IO_TIMEOUT, "never admitted again");
    }
}

#[test]
fn a_handshake_storm_past_the_rate_gets_503_with_spreading_retry_after() {
    let mut options = Options::default();
    options.max_handshake_rate = Some(2.0);
    // One loop: the rate is per loop.
    let server = TestServer::start(options, Echo::default());
    // A burst of a second's worth.
    let admitted: Vec<Client> = (0..2).map(|_| Client::connect(server.addr)).collect();
    let retry_after = |response: &str| -> u64 {
        assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{response}");
        let line = response.lines().find(|l| l.starts_with("Retry-After: ")).expect(response);
        line["Retry-After: ".len()..].parse().unwrap()
    };
    // The burst is spent: the next ones are told to come back, later and later (two a second).
    let waits: Vec<u64> = (0..5)
        .map(|_| retry_after(&http_exchange(server.addr, upgrade_request(&server.addr).as_bytes())))
        .collect();
    assert_eq!(waits, [1, 1, 2, 2, 3]);
    // A plain request for a page is not a handshake: not counted, not refused.
    let page = http_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!page.starts_with("HTTP/1.1 503"), "{page}");
    drop(admitted);
}

/// Out of descriptors: the server does not spin on its listener, and accepts the waiting
/// connections once descriptors are free again.
#[test]
fn descriptor_exhaustion_does_not_busy_loop_and_accepting_resumes() {
    let server = Process::start(&["echo"], Some(24));
    // stdio, epoll, the waker and the listener leave fewer than 20 for connections.
    let mut held: Vec<std::net::TcpStream> = Vec::new();
    for _ in 0..30 {
        let mut stream = common::connect_raw(server.addr);
        stream.write_all(upgrade_request(&server.addr).as_bytes()).unwrap();
        held.push(stream);
    }
    let cpu_before = server.cpu_time();
    let wall = Instant::now();
    // Find which connections were answered; the others wait in the backlog.
    let mut answered = Vec::new();
    let mut waiting = Vec::new();
    for mut stream in held {
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut head = [0u8; 12];
        match stream.read_exact(&mut head) {
            Ok(()) => answered.push(stream),
            Err(_) => waiting.push(stream),
        }
    }
    let cpu = server.cpu_time() - cpu_before;
    let elapsed = wall.elapsed();
    assert!(!waiting.is_empty(), "the descriptor limit did not bite");
    // A spinning loop would burn the whole interval; allow a tenth of it (and a tick).
    assert!(cpu <= elapsed / 10 + Duration::from_millis(20), "{cpu:?} CPU in {elapsed:?}");
    drop(answered);
    for mut stream in waiting {
        stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101");
    }
}

/// A burst over the chat's default rate limit (20 messages a second, bursts of 40) is slowed
/// down, not cut off: the server stops reading from the sender until its tokens refill, and
/// every message arrives, in order, no faster than the rate.
#[test]
fn a_chat_burst_is_slowed_down_and_delivered_whole() {
    const MESSAGES: usize = 200;
    let mut chat = ChatOptions::default();
    chat.heartbeat = None;
    let server = TestServer::start(Options::default(), Chat::new(chat));
    let mut sender = Client::connect(server.addr);
    let mut receiver = Client::connect(server.addr);
    // 200 messages in one write, as a paste or a bot sends them.
    let burst: Vec<u8> = (0..MESSAGES)
        .flat_map(|n| sender.frame_bytes(true, OpCode::Text, format!("burst {n}").as_bytes()))
        .collect();
    sender.stream.write_all(&burst).unwrap();
    let mut stamps = Vec::new();
    while stamps.len() < MESSAGES {
        let frame = receiver.read_frame().unwrap();
        assert_eq!(frame.opcode, OpCode::Text, "{frame:?}");
        let message: Value = serde_json::from_slice(&frame.payload).unwrap();
        if message["type"] == 2 {
            assert_eq!(message["message"], format!("burst {}", stamps.len()), "order");
            stamps.push(message["ts"].as_u64().unwrap());
        }
    }
    // The first 40 at once, then 20 a second: the last is stamped about 8 s after the first
    // (a lower bound only: a slow machine is later, never earlier).
    let spread = stamps[MESSAGES - 1] - stamps[0];
    assert!(spread >= 7_500, "200 messages spread over {spread} ms");
    // The sender was never closed: it still chats.
    sender.send_text("still here");
    loop {
        let message: Value =
            serde_json::from_slice(&receiver.read_frame().unwrap().payload).unwrap();
        if message["message"] == "still here" {
            break;
        }
    }
    let stats = server.stop().stats().clone();
    assert_eq!(stats.messages, MESSAGES as u64 + 1);
    assert!(stats.throttled >= (MESSAGES - 40) as u64, "{stats:?}");
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits() {
    let mut server = Process::start(&["chat", "--heartbeat", "0"], None);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(server.addr)).collect();
    // Something queued before the signal is still delivered: a message, then the Close.
    clients[0].send_text("last words");
    for client in &mut clients {
        loop {
            let frame = client.read_frame().unwrap();
            if frame.payload.windows(10).any(|w| w == b"last words") {
                break;
            }
        }
    }
    server.signal("TERM");
    for client in &mut clients {
        assert_eq!(close_code(client), Some(1001));
        client.send_frame(true, OpCode::Close, b"\x03\xe9");
        client.expect_eof();
    }
    let took = server.wait_exit(Duration::from_secs(10)).expect("the server exits");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A new connection is refused: the port is closed.
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

/// The upgrade request, offering permessage-deflate as browsers do.
#[cfg(feature = "deflate")]
fn deflate_request(addr: &std::net::SocketAddr) -> String {
    upgrade_request(addr).replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    )
}

/// Opens a connection that offers permessage-deflate, and checks the server agreed.
#[cfg(feature = "deflate")]
fn connect_deflate(addr: std::net::SocketAddr) -> Client {
    let mut client = Client::unconnected(addr);
    client.stream.write_all(deflate_request(&addr).as_bytes()).unwrap();
    let head = client.finish_handshake();
    assert!(head.contains("\r\nSec-WebSocket-Extensions: permessage-deflate"), "{head}");
    client
}

/// A mebibyte-sized compressed frame that would inflate to a gibibyte: the server stops at
/// its message limit (2 MiB here) and closes with 1009; its memory grows by a few MiB at most.
#[cfg(feature = "deflate")]
#[test]
fn a_compression_bomb_is_closed_at_the_message_limit() {
    // One mebibyte of zeros, compressed and sync-flushed: a DEFLATE piece that can be repeated.
    let mut deflater = zlib_rs::Deflate::new(9, false, 15);
    let mut piece = vec![0u8; 4096];
    let zeros = vec![0u8; 1 << 20];
    deflater.compress(&zeros, &mut piece, zlib_rs::DeflateFlush::SyncFlush).unwrap();
    piece.truncate(deflater.total_out() as usize);
    assert!(piece.ends_with(&[0, 0, 0xff, 0xff]) && piece.len() < 2048, "{}", piece.len());
    let bomb = piece.repeat(1024);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let server = Process::start(&["echo", "--max-message-size", "2097152"], None);
    // Touch as much of the read buffer as the bomb will, so that only what inflating costs is
    // measured.
    let mut warm = Client::connect(server.addr);
    warm.send_binary(&vec![7; bomb.len()]);
    assert_eq!(warm.read_frame().unwrap().payload.len(), bomb.len());
    let before = server.rss();
    let mut client = connect_deflate(server.addr);
    let header = FrameHeader {
        fin: true,
        rsv: rfc6455::frame::RSV1_BIT,
        opcode: OpCode::Binary,
        mask: Some([0; 4]),
        payload_len: bomb.len() as u64,
    };
    let mut frame = Vec::new();
    header.encode(&mut frame);
    frame.extend_from_slice(&bomb);
    // The server may close before it has read it all: a write error then is fine.
    let _ = client.stream.write_all(&frame);
    assert_eq!(close_code(&mut client), Some(1009));
    let growth = server.rss().saturating_sub(before);
    eprintln!("a 1 GiB compression bomb: the server's RSS grew by {growth} bytes");
    assert!(growth < 4 << 20, "RSS grew by {growth} bytes for a 1 GiB bomb");
}

/// Connections that negotiated permessage-deflate and sit idle hold no zlib state: they cost
/// what plain connections cost (and at most 512 bytes each).
#[cfg(feature = "deflate")]
#[test]
fn idle_deflate_connections_cost_what_plain_ones_cost() {
    const CONNECTIONS: usize = 3000;
    common::raise_fd_limit(2 * CONNECTIONS as u64 + 100);
    let per_connection = |offer: bool| {
        let server = Process::start(
            &["echo", "--max-connections", "20000"],
            Some(2 * CONNECTIONS as u32 + 100),
        );
        // A first connection, closed, so that the loop's buffers (and, with deflate, the
        // thread's pooled compressor, some 300 KiB once for all) exist before measuring.
        let text = "a message the server compresses on its way back ".repeat(8);
        let mut first =
            if offer { connect_deflate(server.addr) } else { Client::connect(server.addr) };
        first.send_text(&text);
        first.read_frame().unwrap();
        drop(first);
        let before = server.rss();
        let mut clients: Vec<Client> = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            clients.push(if offer {
                connect_deflate(server.addr)
            } else {
                Client::connect(server.addr)
            });
        }
        // A message on every connection, echoed (compressed, where deflate was agreed: it is
        // over the threshold), so that the pool has done its work and given its states back.
        for client in &mut clients {
            client.send_text(&text);
            let echo = client.read_frame().unwrap().payload;
            let compressed = echo.len() < text.len() / 2;
            assert_eq!(compressed, offer, "{} bytes", echo.len());
        }
        let growth = server.rss().saturating_sub(before);
        growth as f64 / CONNECTIONS as f64
    };
    let plain = per_connection(false);
    let deflate = per_connection(true);
    eprintln!("idle: {plain:.0} B per plain connection, {deflate:.0} B per deflate connection");
    assert!(deflate <= 512.0, "{deflate:.0} B per idle deflate connection");
    assert!(deflate <= plain + 64.0, "{deflate:.0} B with deflate against {plain:.0} B without");
}
