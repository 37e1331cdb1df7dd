//! The echo server over real loopback sockets.

mod common;

use common::{Client, TestServer, http_exchange, upgrade_request};
use rfc6455::frame::OpCode;
use rfc6455::server::Options;
use std::io::Write;
use std::time::Duration;

#[test]
fn echoes_text_and_binary() {
    let server = TestServer::echo(Options::default());
    let mut client = Client::connect(server.addr);
    client.send_text("Hello, 世界");
    let frame = client.read_frame().unwrap();
    assert_eq!((frame.fin, frame.opcode), (true, OpCode::Text));
    assert_eq!(frame.payload, "Hello, 世界".as_bytes());
    client.send_binary(&[0, 1, 2, 255]);
    let frame = client.read_frame().unwrap();
    assert_eq!((frame.opcode, frame.payload), (OpCode::Binary, vec![0, 1, 2, 255]));
}

#[test]
fn frames_in_the_same_write_as_the_handshake_are_not_lost() {
    let server = TestServer::echo(Options::default());
    let mut client = Client::unconnected(server.addr);
    let mut bytes = upgrade_request(&server.addr).into_bytes();
    bytes.extend(client.frame_bytes(true, OpCode::Text, b"one"));
    bytes.extend(client.frame_bytes(true, OpCode::Text, b"two"));
    client.stream.write_all(&bytes).unwrap();
    client.finish_handshake();
    assert_eq!(client.read_frame().unwrap().payload, b"one");
    assert_eq!(client.read_frame().unwrap().payload, b"two");
}

#[test]
fn fragmented_message_with_a_ping_inside() {
    let server = TestServer::echo(Options::default());
    let mut client = Client::connect(server.addr);
    client.send_frame(false, OpCode::Text, b"Hel");
    client.send_frame(true, OpCode::Ping, b"still there?");
    client.send_frame(false, OpCode::Continuation, b"lo, ");
    client.send_frame(true, OpCode::Continuation, b"world");
    let pong = client.read_frame().unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (OpCode::Pong, b"still there?".as_slice()));
    let echo = client.read_frame().unwrap();
    assert_eq!((echo.opcode, echo.payload.as_slice()), (OpCode::Text, b"Hello, world".as_slice()));
}

#[test]
fn large_message_split_across_many_reads() {
    let server = TestServer::echo(Options::default());
    let mut client = Client::connect(server.addr);
    let payload: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let bytes = client.frame_bytes(true, OpCode::Binary, &payload);
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    let echo = client.read_frame().unwrap();
    sender.join().unwrap();
    assert_eq!(echo.payload.len(), payload.len());
    assert!(echo.payload == payload);
}

#[test]
fn close_handshake_echoes_the_code_and_the_server_closes_tcp() {
    let server = TestServer::echo(Options::default());
    let mut client = Client::connect(server.addr);
    client.send_frame(true, OpCode::Close, b"\x03\xe8done");
    assert_eq!(client.read_close(), (Some(1000), String::new()));
    client.expect_eof();
}

#[test]
fn protocol_violations_get_their_close_code_then_tcp_close() {
    let server = TestServer::echo(Options::default());
    let cases: Vec<(Vec<u8>, u16)> = vec![
        // Unmasked frame (§5.1).
        (vec![0x81, 0x02, b'h', b'i'], 1002),
        // Reserved opcode 3.
        (vec![0x83, 0x80, 1, 2, 3, 4], 1002),
        // Invalid UTF-8 (masked with a zero key, so the payload is as written).
        (vec![0x81, 0x81, 0, 0, 0, 0, 0xff], 1007),
        // Close code 1005 may not be sent.
        (vec![0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed], 1002),
        // 64-bit length with the top bit set.
        (vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], 1002),
    ];
    for (bytes, code) in cases {
        let mut client = Client::connect(server.addr);
        // A valid message first: its echo must arrive before the Close (nothing is lost).
        client.send_text("before");
        client.stream.write_all(&bytes).unwrap();
        assert_eq!(client.read_frame().unwrap().payload, b"before");
        assert_eq!(client.read_close().0, Some(code), "{bytes:x?}");
        client.expect_eof();
    }
}

#[test]
fn frame_over_the_limit_is_refused_at_header_time() {
    let mut options = Options::default();
    options.connection.max_frame_size = 1024;
    let server = TestServer::echo(options);
    let mut client = Client::connect(server.addr);
    // Declares 1 GiB and sends none of it: the server answers 1009 at once.
    client.stream.write_all(&[0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]).unwrap();
    assert_eq!(client.read_close().0, Some(1009));
    client.expect_eof();
}

#[test]
fn handshake_rejections_get_http_statuses() {
    let server = TestServer::echo(Options::default());
    let good = upgrade_request(&server.addr);
    let cases = [
        (good.replacen("GET", "POST", 1), "HTTP/1.1 405 Method Not Allowed\r\n", "Allow: GET"),
        (
            good.replace("Version: 13", "Version: 8"),
            "HTTP/1.1 426 Upgrade Required\r\n",
            "Sec-WebSocket-Version: 13",
        ),
        (good.replace("Upgrade: websocket\r\n", ""), "HTTP/1.1 400 Bad Request\r\n", "Upgrade"),
        (good.replace(common::KEY, "short=="), "HTTP/1.1 400 Bad Request\r\n", "Sec-WebSocket-Key"),
        (
            good.replace("\r\n\r\n", &format!("\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000))),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n",
            "too large",
        ),
    ];
    for (request, status, detail) in cases {
        let response = http_exchange(server.addr, request.as_bytes());
        assert!(response.starts_with(status), "{response}");
        assert!(response.contains(detail), "{response}");
    }
}

#[test]
fn unfinished_handshake_is_closed_at_the_deadline() {
    let mut options = Options::default();
    options.connection.handshake_timeout = Duration::from_millis(200);
    let server = TestServer::echo(options);
    let mut stream = common::connect_raw(server.addr);
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // The server closes without a response; the read returns EOF well before IO_TIMEOUT.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut rest).unwrap();
    assert!(rest.is_empty());
}

/// 1,000 connections open at once, each echoing several messages, all interleaved.
#[test]
fn holds_a_thousand_concurrent_connections() {
    common::raise_fd_limit(4096);
    let server = TestServer::echo(Options::default());
    let mut clients: Vec<Client> = (0..1000).map(|_| Client::send_handshake(server.addr)).collect();
    for client in &mut clients {
        client.finish_handshake();
    }
    for round in 0..5 {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send_text(&format!("client {i} round {round}"));
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let frame = client.read_frame().unwrap();
            assert_eq!(frame.payload, format!("client {i} round {round}").as_bytes());
        }
    }
    for client in &mut clients {
        client.send_frame(true, OpCode::Close, b"\x03\xe8");
    }
    for client in &mut clients {
        assert_eq!(client.read_close().0, Some(1000));
        client.expect_eof();
    }
}

/// The handler hears how each connection ended (§7.1.5): the peer's code, 1005 for an empty
/// Close, 1006 for TCP closed without one, and ours when we failed it.
#[test]
fn on_close_reports_how_each_connection_ended() {
    use rfc6455::Message;
    use rfc6455::server::{CloseStatus, Ctx, Handler};
    use std::sync::{Arc, Mutex};

    struct Record(Arc<Mutex<Vec<u16>>>);
    impl Handler for Record {
        type State = ();
        fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: &mut (), _: &Message<'_>) {}
        fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: (), status: &CloseStatus) {
            self.0.lock().unwrap().push(status.code.0);
        }
    }
    let codes = Arc::new(Mutex::new(Vec::new()));
    let server = TestServer::start(Options::default(), Record(codes.clone()));
    let wait_for = |n: usize| {
        let start = std::time::Instant::now();
        while codes.lock().unwrap().len() < n {
            assert!(start.elapsed() < common::IO_TIMEOUT, "{:?}", codes.lock().unwrap());
            std::thread::yield_now();
        }
    };
    let mut client = Client::connect(server.addr);
    client.send_frame(true, OpCode::Close, b"\x0f\xa0");
    client.read_close();
    wait_for(1);
    let mut client = Client::connect(server.addr);
    client.send_frame(true, OpCode::Close, b"");
    client.read_close();
    wait_for(2);
    drop(Client::connect(server.addr));
    wait_for(3);
    let mut client = Client::connect(server.addr);
    client.send_frame(true, OpCode::Text, b"\xff");
    client.read_close();
    wait_for(4);
    assert_eq!(*codes.lock().unwrap(), [4000, 1005, 1006, 1007]);
}
