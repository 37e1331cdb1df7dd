//! Unit tests of the client's side: the request it writes, the answers it must refuse, masking,
//! and its part in closing. The server in these tests is this crate's own, in memory.

use super::super::*;
use crate::close::CloseCode;
use crate::frame::{self, OpCode};
use crate::handshake::{Accept, ClientRequest, RequestError, UpgradeError, accept_key};
use crate::message::Message;
use proptest::prelude::*;
use std::time::Duration;

const SEED: [u8; 32] = [42; 32];

fn plain_config() -> Arc<Config> {
    #[allow(unused_mut)]
    let mut config = Config::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate = None;
    }
    Arc::new(config)
}

fn request() -> ClientRequest {
    ClientRequest::new("example.com:8080", "/chat?room=1")
}

/// A client connection and the request it wrote.
fn client(config: Arc<Config>, request: &ClientRequest, now: Instant) -> (Connection, String) {
    let mut out = Vec::new();
    let conn = Connection::client(config, request, SEED, now, &mut out).unwrap();
    (conn, String::from_utf8(out).unwrap())
}

/// The |Sec-WebSocket-Key| a request carries.
fn key_of(request: &str) -> String {
    let line = request.lines().find(|l| l.starts_with("Sec-WebSocket-Key: ")).unwrap();
    line["Sec-WebSocket-Key: ".len()..].to_owned()
}

/// Feeds `response` to a fresh client and returns the event it gives.
fn answer_with(response: impl Fn(&str) -> String) -> Event<'static> {
    let now = Instant::now();
    let (mut conn, written) = client(plain_config(), &request().with_subprotocol("chat"), now);
    let mut input = response(&key_of(&written)).into_bytes();
    let mut out = Vec::new();
    let received = conn.receive(&mut input, now, &mut out);
    assert!(out.is_empty(), "a client writes nothing in answer to a response");
    let event = received.event.expect("one event for a complete head");
    match event {
        Event::Upgraded(upgraded) => Event::Upgraded(upgraded),
        Event::UpgradeFailed(error) => {
            assert_eq!(conn.state(), State::Closed);
            assert!(conn.closes_tcp_first(), "no WebSocket was established: close at once");
            Event::UpgradeFailed(error)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn good_101(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    )
}

fn failed(event: Event<'_>) -> UpgradeError {
    match event {
        Event::UpgradeFailed(error) => error,
        other => panic!("expected a failed upgrade, got {other:?}"),
    }
}

/// A client and a server, both in memory, through the opening handshake.
fn pair(config: Arc<Config>) -> (Connection, Connection, Instant) {
    let now = Instant::now();
    let mut request = Vec::new();
    let mut client =
        Connection::client(config.clone(), &request_for_pair(), SEED, now, &mut request).unwrap();
    let mut server = Connection::new(config, now);
    let mut response = Vec::new();
    let r = server.receive(&mut request, now, &mut response);
    assert_eq!(r.event, Some(Event::Request));
    server.accept(&Accept::new(), &mut response, now).unwrap();
    let mut out = Vec::new();
    let r = client.receive(&mut response, now, &mut out);
    assert!(matches!(r.event, Some(Event::Upgraded(_))), "{:?}", r.event);
    assert!(client.is_open() && server.is_open());
    (client, server, now)
}

fn request_for_pair() -> ClientRequest {
    ClientRequest::new("localhost", "/")
}

/// Everything `to` gets from `bytes`, as owned messages and closes.
fn deliver(to: &mut Connection, now: Instant, bytes: &mut [u8], out: &mut Vec<u8>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let r = to.receive(&mut bytes[offset..], now, out);
        let consumed = r.consumed;
        match r.event {
            Some(Event::Message(Message::Text(text))) => seen.push(text.to_string()),
            Some(Event::Message(Message::Binary(data))) => seen.push(format!("{:?}", &data[..])),
            Some(Event::CloseReceived { code, reason }) => {
                seen.push(format!("close {:?} {reason}", code.map(|c| c.0)))
            }
            Some(Event::Failed(error)) => seen.push(format!("failed {error:?}")),
            Some(other) => seen.push(format!("{other:?}")),
            None => {}
        }
        offset += consumed;
        if consumed == 0 {
            break;
        }
    }
    seen
}

#[test]
fn the_request_follows_section_4_1() {
    let now = Instant::now();
    let ask = request()
        .with_origin("http://example.com")
        .with_subprotocol("chat")
        .with_subprotocol("superchat")
        .with_header("Authorization", "Bearer x");
    let (conn, written) = client(plain_config(), &ask, now);
    assert_eq!(conn.role(), Role::Client);
    assert_eq!(conn.state(), State::Connecting);
    let lines: Vec<&str> = written.split("\r\n").collect();
    // §4.1 item 2: "The method of the request MUST be GET, and the HTTP version MUST be at
    // least 1.1"; item 3: the request-URI is the /resource name/.
    assert_eq!(lines[0], "GET /chat?room=1 HTTP/1.1");
    for expected in [
        "Host: example.com:8080",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Origin: http://example.com",
        "Sec-WebSocket-Protocol: chat, superchat",
        "Authorization: Bearer x",
    ] {
        assert!(lines.contains(&expected), "{expected} in {written}");
    }
    assert!(!written.contains("Sec-WebSocket-Extensions"), "no deflate configured, no offer");
    assert!(written.ends_with("\r\n\r\n"));
    // §4.1 item 7: a nonce of 16 random bytes, base64-encoded; a new one per connection.
    use base64::Engine as _;
    let key = key_of(&written);
    let nonce = base64::engine::general_purpose::STANDARD.decode(&key).unwrap();
    assert_eq!(nonce.len(), 16);
    let mut other = Vec::new();
    Connection::client(plain_config(), &ask, [7; 32], now, &mut other).unwrap();
    assert_ne!(key_of(&String::from_utf8(other).unwrap()), key);
}

#[cfg(feature = "deflate")]
#[test]
fn the_request_offers_deflate_as_configured() {
    let config = Arc::new(Config {
        deflate: Some(crate::deflate::DeflateConfig::for_client()),
        ..Config::default()
    });
    let (_, written) = client(config, &request(), Instant::now());
    assert!(
        written.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        ),
        "{written}"
    );
}

#[test]
fn requests_that_cannot_be_sent_are_refused() {
    let mut out = Vec::new();
    let now = Instant::now();
    for (ask, error) in [
        (ClientRequest::new("", "/"), RequestError::InvalidTarget),
        (ClientRequest::new("h", "no-slash"), RequestError::InvalidTarget),
        (ClientRequest::new("h", "/a b"), RequestError::InvalidTarget),
        (ClientRequest::new("h\r\nX: 1", "/"), RequestError::InvalidTarget),
        (ClientRequest::new("h", "/ü"), RequestError::InvalidTarget),
        (ClientRequest::new("bücher.example", "/"), RequestError::InvalidTarget),
        (request().with_subprotocol("a b"), RequestError::InvalidSubprotocol),
        (request().with_subprotocol("a").with_subprotocol("a"), RequestError::InvalidSubprotocol),
        (request().with_header("Upgrade", "h2c"), RequestError::ReservedHeader),
        (request().with_header("Sec-WebSocket-Key", "x"), RequestError::ReservedHeader),
        (request().with_header("X-A", "1\r\nX-B: 2"), RequestError::InvalidHeader),
        (request().with_origin("a\nb"), RequestError::InvalidHeader),
    ] {
        let result = Connection::client(plain_config(), &ask, SEED, now, &mut out);
        assert_eq!(result.err(), Some(error), "{ask:?}");
        assert!(out.is_empty(), "nothing written for a refused request");
    }
    // An empty resource is "/".
    assert_eq!(ClientRequest::new("h", "").resource, "/");
}

#[test]
fn a_valid_101_opens_the_connection() {
    let event = answer_with(|key| {
        good_101(key).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\nX-Id: 7\r\n\r\n")
    });
    let Event::Upgraded(upgraded) = event else { panic!("{event:?}") };
    assert_eq!(upgraded.subprotocol.as_deref(), Some("chat"));
    assert_eq!(upgraded.extensions, None);
    assert!(upgraded.headers.contains(&("X-Id".into(), "7".into())));
    // Case and spacing do not matter where §4.1 says "ASCII case-insensitive".
    let event = answer_with(|key| {
        good_101(key)
            .replace("Upgrade: websocket", "UPGRADE:   WebSocket")
            .replace("Connection: Upgrade", "connection: keep-alive, upgrade")
    });
    assert!(matches!(event, Event::Upgraded(_)), "{event:?}");
}

#[test]
fn answers_that_break_section_4_1_fail_the_connection() {
    type Respond = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(Respond, UpgradeError)> = vec![
        // "If the response lacks an |Upgrade| header field or [its value] is not an ASCII
        // case-insensitive match for the value "websocket", the client MUST _Fail_".
        (
            Box::new(|k| good_101(k).replace("Upgrade: websocket\r\n", "")),
            UpgradeError::MissingUpgrade,
        ),
        (
            Box::new(|k| good_101(k).replace("Upgrade: websocket", "Upgrade: h2c")),
            UpgradeError::MissingUpgrade,
        ),
        // "If the response lacks a |Connection| header field or [it] doesn't contain a token
        // that is an ASCII case-insensitive match for the value "Upgrade"".
        (
            Box::new(|k| good_101(k).replace("Connection: Upgrade\r\n", "")),
            UpgradeError::MissingConnectionUpgrade,
        ),
        (
            Box::new(|k| good_101(k).replace("Connection: Upgrade", "Connection: close")),
            UpgradeError::MissingConnectionUpgrade,
        ),
        // "If the response lacks a |Sec-WebSocket-Accept| header field or [it] contains a
        // value other than the base64-encoded SHA-1 of the concatenation of the
        // |Sec-WebSocket-Key| (as a string, not base64-decoded) with the string
        // "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"".
        (
            Box::new(|k| {
                good_101(k).replace(&accept_key(k.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            }),
            UpgradeError::WrongAccept,
        ),
        (
            Box::new(|k| {
                let accept = format!("Sec-WebSocket-Accept: {}\r\n", accept_key(k.as_bytes()));
                good_101(k).replace(&accept, "")
            }),
            UpgradeError::WrongAccept,
        ),
        (Box::new(|k| good_101(&k.to_lowercase())), UpgradeError::WrongAccept),
        // "If the response includes a |Sec-WebSocket-Extensions| header field and this header
        // field indicates the use of an extension that was not present in the client's
        // handshake".
        (
            Box::new(|k| {
                good_101(k)
                    .replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
            }),
            UpgradeError::UnofferedExtension("permessage-deflate".into()),
        ),
        // "If the response includes a |Sec-WebSocket-Protocol| header field and this header
        // field indicates the use of a subprotocol that was not present in the client's
        // handshake".
        (
            Box::new(|k| {
                good_101(k).replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: superchat\r\n\r\n")
            }),
            UpgradeError::UnofferedSubprotocol("superchat".into()),
        ),
        // "If the status code received from the server is not 101, the client handles the
        // response per HTTP procedures": an error that carries what the server said.
        (
            Box::new(|_| {
                "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n".into()
            }),
            UpgradeError::Refused {
                status: 302,
                reason: "Found".into(),
                headers: vec![
                    ("Location".into(), "/elsewhere".into()),
                    ("Content-Length".into(), "0".into()),
                ],
            },
        ),
        (
            Box::new(|_| "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\r\n".into()),
            UpgradeError::Refused {
                status: 401,
                reason: "Unauthorized".into(),
                headers: vec![("WWW-Authenticate".into(), "Bearer".into())],
            },
        ),
        (
            Box::new(|_| "HTTP/1.1 200 OK\r\n\r\n".into()),
            UpgradeError::Refused { status: 200, reason: "OK".into(), headers: vec![] },
        ),
        (Box::new(|_| "SSH-2.0-OpenSSH\r\n\r\n".into()), UpgradeError::Malformed),
    ];
    for (i, (response, expected)) in cases.iter().enumerate() {
        assert_eq!(failed(answer_with(response)), *expected, "case {i}");
    }
}

#[test]
fn a_response_in_pieces_and_frames_right_behind_it() {
    let now = Instant::now();
    let (mut conn, written) = client(plain_config(), &request(), now);
    let mut bytes = good_101(&key_of(&written)).into_bytes();
    frame::write_frame(&mut bytes, OpCode::Text, b"first");
    let mut out = Vec::new();
    // One byte at a time up to the end of the head, then the rest (the frame) at once.
    let head_len = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut events = Vec::new();
    for i in 0..head_len {
        let r = conn.receive(&mut bytes[i..=i], now, &mut out);
        assert_eq!(r.consumed, 1);
        events.extend(r.event.map(|e| format!("{e:?}")));
    }
    assert_eq!(events.len(), 1);
    assert!(events[0].starts_with("Upgraded"));
    let seen = deliver(&mut conn, now, &mut bytes[head_len..], &mut out);
    assert_eq!(seen, ["first"]);
}

#[test]
fn a_response_head_past_the_limit_fails() {
    let now = Instant::now();
    let (mut conn, _) = client(plain_config(), &request(), now);
    let mut junk = vec![b'x'; crate::handshake::DEFAULT_MAX_HEAD + 1];
    let r = conn.receive(&mut junk, now, &mut Vec::new());
    assert_eq!(r.event, Some(Event::UpgradeFailed(UpgradeError::HeadTooLarge)));
}

#[test]
fn every_frame_a_client_sends_is_masked_with_a_fresh_key() {
    let (mut client, mut server, now) = pair(plain_config());
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for i in 0..40 {
        let start = out.len();
        client.send_text(&mut out, &format!("message {i}")).unwrap();
        let (header, _) = frame::decode_header(&out[start..]).unwrap().unwrap();
        keys.push(header.mask.expect("§5.3: every client frame is masked"));
    }
    client.ping(&mut out, b"p").unwrap();
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a new key per frame");
    let mut back = Vec::new();
    let seen = deliver(&mut server, now, &mut out, &mut back);
    assert_eq!(seen.len(), 40);
    assert_eq!(seen[39], "message 39");
    // The server's Pong is unmasked, and the client takes it.
    let (pong, _) = frame::decode_header(&back).unwrap().unwrap();
    assert_eq!((pong.opcode, pong.mask), (OpCode::Pong, None));
    assert!(deliver(&mut client, now, &mut back, &mut Vec::new()).is_empty());
    let message = Message::Binary(crate::message::Payload::Borrowed(b"x"));
    assert_eq!(client.send_header(&mut out, &message), Err(SendError::Masked));
}

#[test]
fn a_masked_frame_from_the_server_fails_with_1002() {
    let (mut client, _, now) = pair(plain_config());
    let mut frame = Vec::new();
    frame::write_masked_frame(&mut frame, true, 0, OpCode::Text, b"hi", [1, 2, 3, 4]);
    let mut out = Vec::new();
    let r = client.receive(&mut frame, now, &mut out);
    assert_eq!(r.event, Some(Event::Failed(ProtocolError::MaskedFrame)));
    // The client's Close carries 1002, and is itself masked.
    let (header, n) = frame::decode_header(&out).unwrap().unwrap();
    assert_eq!(header.opcode, OpCode::Close);
    let key = header.mask.unwrap();
    let mut body = out[n..].to_vec();
    crate::mask::apply_mask(&mut body, key, 0);
    assert_eq!(&body[..2], &1002u16.to_be_bytes());
    assert_eq!(client.state(), State::Closed);
    assert!(!client.closes_tcp_first(), "the client waits for the server to close TCP");
}

#[test]
fn the_client_waits_for_the_server_to_close_tcp_then_gives_up() {
    let (mut client, mut server, now) = pair(plain_config());
    let mut out = Vec::new();
    client.close(&mut out, CloseCode::NORMAL, "bye", now).unwrap();
    let mut back = Vec::new();
    assert_eq!(deliver(&mut server, now, &mut out, &mut back), ["close Some(1000) bye"]);
    assert!(server.closes_tcp_first());
    let later = now + Duration::from_secs(1);
    assert_eq!(deliver(&mut client, later, &mut back, &mut Vec::new()), ["close Some(1000) "]);
    assert_eq!(client.state(), State::Closed);
    // §7.1.1: "the client SHOULD wait for the server to close"; a server that never does is
    // given the close timeout, then the client closes.
    assert!(!client.closes_tcp_first());
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, later + Config::default().close_timeout);
    assert_eq!(client.handle_timeout(deadline - Duration::from_millis(1), &mut out), None);
    assert_eq!(client.handle_timeout(deadline, &mut out), Some(Event::TimedOut(State::Closed)));
}

#[test]
fn a_server_that_never_answers_times_the_handshake_out() {
    let now = Instant::now();
    let (mut conn, _) = client(plain_config(), &request(), now);
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, now + Config::default().handshake_timeout);
    let event = conn.handle_timeout(deadline, &mut Vec::new());
    assert_eq!(event, Some(Event::TimedOut(State::Connecting)));
    assert!(conn.closes_tcp_first());
}

#[test]
fn nothing_is_sent_before_the_101() {
    // §4.1: "Once the client's opening handshake has been sent, the client MUST wait for a
    // response from the server before sending any further data."
    let now = Instant::now();
    let (mut conn, _) = client(plain_config(), &request(), now);
    let mut out = Vec::new();
    assert_eq!(conn.send_text(&mut out, "early"), Err(SendError::NotOpen));
    assert_eq!(conn.ping(&mut out, b""), Err(SendError::NotOpen));
    assert_eq!(conn.close(&mut out, CloseCode::NORMAL, "", now), Err(SendError::NotOpen));
    assert!(out.is_empty());
}

#[test]
fn a_client_connection_cannot_answer_requests() {
    let now = Instant::now();
    let (mut conn, _) = client(plain_config(), &request(), now);
    let mut out = Vec::new();
    assert_eq!(
        conn.accept(&Accept::new(), &mut out, now),
        Err(crate::handshake::AnswerError::NoRequest)
    );
    let refusal = crate::http::Response::new(503);
    assert_eq!(
        conn.respond(&refusal, &mut out, now),
        Err(crate::handshake::AnswerError::NoRequest)
    );
    assert!(out.is_empty());
}

#[cfg(feature = "deflate")]
mod deflate {
    use super::*;
    use crate::deflate::{Agreed, DeflateConfig};

    fn config(deflate: DeflateConfig) -> Arc<Config> {
        Arc::new(Config { deflate: Some(deflate), ..Config::default() })
    }

    /// A client with `offer` answered by a 101 carrying `extensions`.
    fn answered(extensions: &str) -> (Connection, Event<'static>) {
        let now = Instant::now();
        let (mut conn, written) = client(config(DeflateConfig::for_client()), &request(), now);
        let response = good_101(&key_of(&written))
            .replace("\r\n\r\n", &format!("\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n"));
        let mut input = response.into_bytes();
        let event = match conn.receive(&mut input, now, &mut Vec::new()).event.unwrap() {
            Event::Upgraded(upgraded) => Event::Upgraded(upgraded),
            Event::UpgradeFailed(error) => Event::UpgradeFailed(error),
            other => panic!("unexpected {other:?}"),
        };
        (conn, event)
    }

    #[test]
    fn both_sides_compress_with_our_own_server() {
        // The server keeps no context (its defaults), the client keeps its own.
        let client_config = config(DeflateConfig::for_client());
        let now = Instant::now();
        let mut request = Vec::new();
        let mut client =
            Connection::client(client_config, &request_for_pair(), SEED, now, &mut request)
                .unwrap();
        let mut server = Connection::new(Arc::new(Config::default()), now);
        let mut response = Vec::new();
        server.receive(&mut request, now, &mut response);
        server.accept(&Accept::new(), &mut response, now).unwrap();
        let r = client.receive(&mut response, now, &mut Vec::new());
        let Some(Event::Upgraded(upgraded)) = r.event else { panic!("{:?}", r.event) };
        assert_eq!(
            upgraded.extensions.as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            client.deflate_agreed(),
            Some(Agreed {
                send_window_bits: 15,
                receive_window_bits: 15,
                send_context_takeover: false,
                receive_context_takeover: false,
            })
        );
        let text = "{\"type\":2,\"message\":\"hello, hello, hello, hello\"} ".repeat(20);
        let mut out = Vec::new();
        client.send_text(&mut out, &text).unwrap();
        assert!(out.len() < text.len() / 4, "compressed: {} of {}", out.len(), text.len());
        assert_eq!(out[0] & 0x40, 0x40, "RSV1 on a compressed message");
        let mut back = Vec::new();
        assert_eq!(deliver(&mut server, now, &mut out, &mut back), std::slice::from_ref(&text));
        server.send_text(&mut back, &text).unwrap();
        assert_eq!(deliver(&mut client, now, &mut back, &mut Vec::new()), [text]);
    }

    #[test]
    fn a_2_pow_8_window_means_sending_uncompressed() {
        let (mut conn, event) = answered("permessage-deflate; client_max_window_bits=8");
        assert!(matches!(event, Event::Upgraded(_)), "{event:?}");
        let mut out = Vec::new();
        conn.send_text(&mut out, &"a".repeat(1000)).unwrap();
        assert_eq!(out[0], 0x81, "FIN, no RSV1, text");
    }

    #[test]
    fn deflate_answers_that_break_rfc_7692_fail() {
        use crate::deflate::OfferError;
        for (answer, error) in [
            (
                "permessage-deflate; bogus",
                UpgradeError::InvalidDeflateAnswer(OfferError::UnknownParameter),
            ),
            (
                "permessage-deflate; client_max_window_bits",
                UpgradeError::InvalidDeflateAnswer(OfferError::InvalidValue),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                UpgradeError::InvalidDeflateAnswer(OfferError::DuplicateParameter),
            ),
            (
                "permessage-deflate, permessage-deflate",
                UpgradeError::UnofferedExtension("permessage-deflate".into()),
            ),
            (
                "x-webkit-deflate-frame",
                UpgradeError::UnofferedExtension("x-webkit-deflate-frame".into()),
            ),
            (
                "permessage-deflate; x=\"a b\"",
                UpgradeError::UnofferedExtension("(malformed)".into()),
            ),
        ] {
            let (conn, event) = answered(answer);
            assert_eq!(failed(event), error, "{answer}");
            assert_eq!(conn.state(), State::Closed);
        }
    }
}

proptest! {
    /// Messages both ways between a client and a server core, the bytes cut anywhere.
    #[test]
    fn client_and_server_round_trip_cut_anywhere(
        messages in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..600)), 1..6),
        cuts in proptest::collection::vec(1usize..200, 0..12),
        deflate in any::<bool>(),
    ) {
        let config = if deflate { Arc::new(Config::default()) } else { plain_config() };
        let (mut client, mut server, now) = pair(config);
        let texts: Vec<(bool, Vec<u8>)> = messages
            .into_iter()
            .map(|(text, bytes)| {
                if text { (true, String::from_utf8_lossy(&bytes).into_owned().into_bytes()) } else { (false, bytes) }
            })
            .collect();
        let mut wire = Vec::new();
        for (text, bytes) in &texts {
            if *text {
                client.send_text(&mut wire, std::str::from_utf8(bytes).unwrap()).unwrap();
            } else {
                client.send_binary(&mut wire, bytes).unwrap();
            }
        }
        client.close(&mut wire, CloseCode::NORMAL, "done", now).unwrap();
        // To the server in pieces; it echoes each message back.
        let mut echoed = Vec::new();
        let mut received = Vec::new();
        let mut pos = 0;
        let mut pending: Vec<u8> = Vec::new();
        let mut cut_iter = cuts.iter().cycle();
        while pos < wire.len() {
            let step = if cuts.is_empty() { wire.len() } else { *cut_iter.next().unwrap() };
            let end = (pos + step).min(wire.len());
            pending.extend_from_slice(&wire[pos..end]);
            pos = end;
            let mut offset = 0;
            while offset < pending.len() {
                let r = server.receive(&mut pending[offset..], now, &mut echoed);
                offset += r.consumed;
                match r.event {
                    Some(Event::Message(message)) => {
                        let (text, bytes) = (message.as_text().is_some(), message.payload().to_vec());
                        if text {
                            server.send_text(&mut echoed, std::str::from_utf8(&bytes).unwrap()).unwrap();
                        } else {
                            server.send_binary(&mut echoed, &bytes).unwrap();
                        }
                        received.push((text, bytes));
                    }
                    Some(Event::CloseReceived { .. }) => {}
                    Some(other) => prop_assert!(false, "server saw {:?}", other),
                    None => {}
                }
                if r.consumed == 0 { break; }
            }
            pending.drain(..offset);
        }
        prop_assert_eq!(&received, &texts);
        prop_assert_eq!(server.state(), State::Closed);
        // And back to the client, in one piece.
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < echoed.len() {
            let r = client.receive(&mut echoed[offset..], now, &mut Vec::new());
            offset += r.consumed;
            if let Some(Event::Message(message)) = r.event {
                got.push((message.as_text().is_some(), message.payload().to_vec()));
            }
        }
        prop_assert_eq!(&got, &texts);
        prop_assert_eq!(client.state(), State::Closed);
    }
}
