//! Unit tests of the connection state machine, fed bytes in memory.

use super::*;
use crate::frame::{self, FrameHeader, OpCode, write_masked_frame};
use crate::handshake::{Accept, AnswerError};
use crate::http::Response;
use crate::message::Payload;
use proptest::prelude::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A message or close as the tests compare them (owned, whatever the delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Closed(Option<u16>, String),
    Failed(ProtocolError),
}

fn config() -> Arc<Config> {
    Arc::new(Config { max_frame_size: 1 << 20, max_message_size: 1 << 20, ..Config::default() })
}

fn open_connection() -> (Connection, Instant) {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let mut input = REQUEST.to_vec();
    let mut out = Vec::new();
    let r = conn.receive(&mut input, now, &mut out);
    assert_eq!(r.consumed, REQUEST.len());
    assert_eq!(r.event, Some(Event::Request));
    assert!(out.is_empty(), "nothing is sent before the application answers");
    conn.accept(&Accept::new(), &mut out, now).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    (conn, now)
}

/// A connection that received `REQUEST` and accepted it.
fn accept_request(conn: &mut Connection, now: Instant, out: &mut Vec<u8>) {
    let mut request = REQUEST.to_vec();
    let r = conn.receive(&mut request, now, out);
    assert_eq!(r.event, Some(Event::Request));
    conn.accept(&Accept::new(), out, now).unwrap();
}

/// Feeds `bytes` split at `cuts`, collecting what the connection saw and wrote.
fn feed(conn: &mut Connection, now: Instant, bytes: &[u8], cuts: &[usize]) -> (Vec<Seen>, Vec<u8>) {
    feed_keeping_tails(conn, now, bytes, cuts, 0)
}

/// Feeds `bytes` split at `cuts` the way the event loop does with `max_tail > 0`: an incomplete
/// frame left unconsumed at the end of a piece is presented again with the next piece after it
/// (and with `receive` when there is no next piece).
fn feed_keeping_tails(
    conn: &mut Connection,
    now: Instant,
    bytes: &[u8],
    cuts: &[usize],
    max_tail: usize,
) -> (Vec<Seen>, Vec<u8>) {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    bounds.sort();
    bounds.push(bytes.len());
    let mut kept: Vec<u8> = Vec::new();
    let last = bounds.len() - 1;
    for (i, end) in bounds.into_iter().enumerate() {
        let mut piece = std::mem::take(&mut kept);
        piece.extend_from_slice(&bytes[start..end.max(start)]);
        start = end.max(start);
        let tail_allowed = if i == last { 0 } else { max_tail };
        let mut pos = 0;
        let len = piece.len();
        while pos < len {
            let r = conn.receive_leaving_partial(&mut piece[pos..], tail_allowed, now, &mut out);
            pos += r.consumed;
            if r.event.is_none() && pos < len {
                kept = piece[pos..].to_vec();
                break;
            }
            match r.event {
                Some(Event::Message(Message::Text(t))) => seen.push(Seen::Text(t.to_string())),
                Some(Event::Message(Message::Binary(b))) => seen.push(Seen::Binary(b.to_vec())),
                Some(Event::CloseReceived { code, reason }) => {
                    seen.push(Seen::Closed(code.map(|c| c.0), reason))
                }
                Some(Event::Failed(e)) => seen.push(Seen::Failed(e)),
                Some(other) => panic!("unexpected {other:?}"),
                None => {}
            }
        }
    }
    (seen, out)
}

fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, fin, 0, opcode, payload, KEY);
    out
}

fn close_frame_code(out: &[u8]) -> Option<u16> {
    let (h, n) = frame::decode_header(out).ok()??;
    (h.opcode == OpCode::Close && h.payload_len >= 2)
        .then(|| u16::from_be_bytes([out[n], out[n + 1]]))
}

/// Each violation fails the connection with its error and writes a Close frame with its code.
fn assert_fails(bytes: &[u8], error: ProtocolError, code: u16) {
    let (mut conn, now) = open_connection();
    let (seen, out) = feed(&mut conn, now, bytes, &[]);
    assert_eq!(seen.last(), Some(&Seen::Failed(error)), "{bytes:x?}");
    assert_eq!(close_frame_code(&out), Some(code));
    assert_eq!(conn.state(), State::Closed);
    // Nothing after a failure is interpreted.
    let (seen, out) = feed(&mut conn, now, &frame(true, OpCode::Text, b"more"), &[]);
    assert!(seen.is_empty() && out.is_empty());
}

#[test]
fn rfc_5_7_single_frame_masked_text() {
    let (mut conn, now) = open_connection();
    let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let (seen, _) = feed(&mut conn, now, &bytes, &[]);
    assert_eq!(seen, [Seen::Text("Hello".into())]);
}

#[test]
fn single_frame_message_in_one_read_is_borrowed() {
    let (mut conn, now) = open_connection();
    let mut bytes = frame(true, OpCode::Binary, b"abc");
    let mut out = Vec::new();
    let r = conn.receive(&mut bytes, now, &mut out);
    assert!(matches!(r.event, Some(Event::Message(Message::Binary(Payload::Borrowed(b"abc"))))));
}

#[test]
fn frames_after_the_handshake_in_the_same_read_are_kept() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let mut bytes = REQUEST.to_vec();
    bytes.extend(frame(true, OpCode::Text, b"early"));
    let (mut seen, mut out) = (Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < bytes.len() {
        let r = conn.receive(&mut bytes[pos..], now, &mut out);
        pos += r.consumed;
        match r.event {
            Some(Event::Message(m)) => seen.push(m.as_text().map(str::to_owned)),
            Some(Event::Request) => {
                // Until the request is answered, the frame behind it waits.
                assert_eq!(conn.receive(&mut bytes[pos..], now, &mut out).consumed, 0);
                conn.accept(&Accept::new(), &mut out, now).unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(seen, [Some("early".to_owned())]);
}

#[test]
fn handshake_in_pieces_and_too_large() {
    for cut in 1..REQUEST.len() {
        let now = Instant::now();
        let mut conn = Connection::new(config(), now);
        let mut out = Vec::new();
        let mut a = REQUEST[..cut].to_vec();
        let r = conn.receive(&mut a, now, &mut out);
        assert_eq!((r.consumed, r.event), (cut, None));
        let mut b = REQUEST[cut..].to_vec();
        let r = conn.receive(&mut b, now, &mut out);
        assert_eq!(r.consumed, REQUEST.len() - cut);
        assert_eq!(r.event, Some(Event::Request), "cut {cut}");
    }
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let mut out = Vec::new();
    let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    head.resize(9000, b'a');
    let mut pos = 0;
    let mut rejected = None;
    let len = head.len();
    while pos < len && rejected.is_none() {
        let end = (pos + 1000).min(len);
        let r = conn.receive(&mut head[pos..end], now, &mut out);
        pos += r.consumed;
        if let Some(Event::Rejected(e)) = r.event {
            rejected = Some(e);
        }
    }
    assert_eq!(rejected, Some(HandshakeError::HeadTooLarge));
    assert!(out.starts_with(b"HTTP/1.1 431 "));
    assert_eq!(conn.state(), State::Closed);
}

/// §4.2.1: an opening handshake that breaks the rules is refused by the core, before the
/// application is asked.
#[test]
fn bad_handshake_gets_its_status() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let mut bytes = std::str::from_utf8(REQUEST).unwrap().replacen("GET", "POST", 1).into_bytes();
    let mut out = Vec::new();
    let r = conn.receive(&mut bytes, now, &mut out);
    assert_eq!(r.event, Some(Event::Rejected(HandshakeError::MethodNotAllowed)));
    assert!(out.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.request().is_none());
}

#[test]
fn each_violation_has_its_close_code() {
    let unmasked = {
        let mut out = Vec::new();
        frame::write_frame(&mut out, OpCode::Text, b"hi");
        out
    };
    assert_fails(&unmasked, ProtocolError::UnmaskedFrame, 1002);
    let mut rsv = Vec::new();
    write_masked_frame(&mut rsv, true, 0x40, OpCode::Text, b"hi", KEY);
    assert_fails(&rsv, ProtocolError::ReservedBitsSet, 1002);
    assert_fails(&[0x83, 0x80, 1, 2, 3, 4], ProtocolError::UnknownOpcode(3), 1002);
    assert_fails(&[0x8b, 0x80, 1, 2, 3, 4], ProtocolError::UnknownOpcode(0xb), 1002);
    assert_fails(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0], ProtocolError::LengthTopBitSet, 1002);
    assert_fails(&frame(true, OpCode::Ping, &[0; 126]), ProtocolError::ControlFrameTooLong, 1002);
    assert_fails(&frame(false, OpCode::Ping, b""), ProtocolError::FragmentedControlFrame, 1002);
    assert_fails(
        &frame(true, OpCode::Continuation, b"x"),
        ProtocolError::ContinuationWithoutStart,
        1002,
    );
    let mut interleaved = frame(false, OpCode::Text, b"a");
    interleaved.extend(frame(true, OpCode::Text, b"b"));
    assert_fails(&interleaved, ProtocolError::DataFrameInsideMessage, 1002);
    assert_fails(&frame(true, OpCode::Text, b"\xff"), ProtocolError::InvalidUtf8, 1007);
    assert_fails(&frame(true, OpCode::Close, b"\x03"), ProtocolError::CloseBodyTooShort, 1002);
    assert_fails(
        &frame(true, OpCode::Close, b"\x03\xe7"),
        ProtocolError::InvalidCloseCode(999),
        1002,
    );
    assert_fails(
        &frame(true, OpCode::Close, b"\x03\xe8\xff"),
        ProtocolError::InvalidCloseReason,
        1007,
    );
    // A frame declaring more than the limit, with no payload sent: refused at header time.
    let mut big = Vec::new();
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some(KEY),
        payload_len: 2 << 20,
    }
    .encode(&mut big);
    assert_fails(&big, ProtocolError::FrameTooBig, 1009);
    // A message over the limit across fragments, each under the frame limit.
    let mut fragments = frame(false, OpCode::Binary, &vec![0; 600 << 10]);
    fragments.extend(frame(true, OpCode::Continuation, &vec![0; 600 << 10]));
    assert_fails(&fragments, ProtocolError::MessageTooBig, 1009);
}

#[test]
fn invalid_utf8_fails_in_the_piece_where_it_arrives() {
    // Autobahn 6.4.3: one frame, sent in three pieces; the middle piece holds F4 90.
    let (mut conn, now) = open_connection();
    let mut bytes = frame(true, OpCode::Text, "κόσμε\u{f4}".as_bytes());
    let payload_start = bytes.len() - "κόσμε\u{f4}".len();
    // Replace the encoded U+00F4 with the raw start of an out-of-range sequence.
    bytes.truncate(payload_start);
    let payload = [
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5".as_slice(),
        b"\xf4\x90\x80\x80",
        b"edited",
    ]
    .concat();
    let mut masked = payload.clone();
    crate::mask::apply_mask(&mut masked, KEY, 0);
    let mut header = Vec::new();
    FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: Some(KEY),
        payload_len: payload.len() as u64,
    }
    .encode(&mut header);
    let all = [header.clone(), masked].concat();
    let first = header.len() + 11;
    let (seen, _) = feed(&mut conn, now, &all[..first], &[]);
    assert!(seen.is_empty());
    let (seen, out) = feed(&mut conn, now, &all[first..first + 2], &[]);
    assert_eq!(seen, [Seen::Failed(ProtocolError::InvalidUtf8)]);
    assert_eq!(close_frame_code(&out), Some(1007));
}

#[test]
fn ping_gets_pong_with_same_payload_even_inside_a_fragmented_message() {
    let (mut conn, now) = open_connection();
    let mut bytes = frame(false, OpCode::Text, b"Hel");
    bytes.extend(frame(true, OpCode::Ping, b"are you there"));
    bytes.extend(frame(true, OpCode::Pong, b"unsolicited"));
    bytes.extend(frame(true, OpCode::Continuation, b"lo"));
    let (seen, out) = feed(&mut conn, now, &bytes, &[]);
    assert_eq!(seen, [Seen::Text("Hello".into())]);
    let mut pong = Vec::new();
    frame::write_frame(&mut pong, OpCode::Pong, b"are you there");
    assert_eq!(out, pong);
}

#[test]
fn close_is_answered_with_the_same_code_and_ends_input() {
    let (mut conn, now) = open_connection();
    let mut bytes = frame(true, OpCode::Close, b"\x0f\xa0bye");
    bytes.extend(frame(true, OpCode::Text, b"after close"));
    let (seen, out) = feed(&mut conn, now, &bytes, &[]);
    assert_eq!(seen, [Seen::Closed(Some(4000), "bye".into())]);
    assert_eq!(out, [0x88, 0x02, 0x0f, 0xa0]);
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.send_text(&mut Vec::new(), "x"), Err(SendError::NotOpen));

    let (mut conn, now) = open_connection();
    let (seen, out) = feed(&mut conn, now, &frame(true, OpCode::Close, b""), &[]);
    assert_eq!(seen, [Seen::Closed(None, String::new())]);
    assert_eq!(out, [0x88, 0x00]);
}

#[test]
fn server_initiated_close_waits_for_the_peer_then_times_out() {
    let (mut conn, now) = open_connection();
    let mut out = Vec::new();
    conn.close(&mut out, CloseCode::GOING_AWAY, "bye", now).unwrap();
    assert_eq!(out, [0x88, 0x05, 0x03, 0xe9, b'b', b'y', b'e']);
    assert_eq!(conn.state(), State::CloseSent);
    assert_eq!(conn.send_text(&mut out, "x"), Err(SendError::NotOpen));
    // Data frames still arrive while we wait for the peer's Close.
    let (seen, _) = feed(&mut conn, now, &frame(true, OpCode::Text, b"late"), &[]);
    assert_eq!(seen, [Seen::Text("late".into())]);
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(conn.handle_timeout(deadline - Duration::from_millis(1), &mut out), None);
    assert_eq!(conn.handle_timeout(deadline, &mut out), Some(Event::TimedOut(State::CloseSent)));
    assert_eq!(conn.state(), State::Closed);
}

/// §1.4: "It is safe for both peers to initiate this handshake simultaneously." Our Close and the
/// peer's cross on the wire, so the peer's is its own (1000, "mine"), not an answer to ours
/// (1001). §5.5.1 asks for a Close in response only of an endpoint that "did not previously
/// send a Close frame": nothing more is written, the handshake is complete, the peer's code is
/// what is reported, and the one deadline left is that of any closed connection (TCP must end
/// by then), which writes nothing either.
#[test]
fn simultaneous_closes_complete_the_handshake_without_a_second_close() {
    let (mut conn, now) = open_connection();
    let mut out = Vec::new();
    conn.close(&mut out, CloseCode::GOING_AWAY, "bye", now).unwrap();
    assert_eq!(close_frame_code(&out), Some(1001));
    let (seen, out) = feed(&mut conn, now, &frame(true, OpCode::Close, b"\x03\xe8mine"), &[]);
    assert_eq!(seen, [Seen::Closed(Some(1000), "mine".into())]);
    assert!(out.is_empty(), "a second Close was written: {out:x?}");
    assert_eq!(conn.state(), State::Closed);
    let deadline = conn.poll_timeout().expect("the deadline for TCP to end");
    let mut late = Vec::new();
    assert_eq!(conn.handle_timeout(deadline, &mut late), Some(Event::TimedOut(State::Closed)));
    assert!(late.is_empty(), "written at the deadline: {late:x?}");
}

#[test]
fn handshake_deadline_is_not_extended_by_new_bytes() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let deadline = conn.poll_timeout().unwrap();
    let mut out = Vec::new();
    let later = now + Duration::from_secs(5);
    conn.receive(&mut b"GET / HT".to_vec(), later, &mut out);
    assert_eq!(conn.poll_timeout(), Some(deadline));
    assert_eq!(conn.handle_timeout(deadline, &mut out), Some(Event::TimedOut(State::Connecting)));
}

fn encode_messages(messages: &[(bool, Vec<u8>, usize)]) -> (Vec<u8>, Vec<Seen>) {
    // Each message: (is_text, payload, fragment size); a ping goes between fragments.
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for (is_text, payload, fragment) in messages {
        let opcode = if *is_text { OpCode::Text } else { OpCode::Binary };
        let chunks: Vec<&[u8]> =
            if payload.is_empty() { vec![&[]] } else { payload.chunks(*fragment).collect() };
        for (i, chunk) in chunks.iter().enumerate() {
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            write_masked_frame(
                &mut bytes,
                i + 1 == chunks.len(),
                0,
                op,
                chunk,
                [i as u8, 7, 1, 200],
            );
            if i == 0 {
                write_masked_frame(&mut bytes, true, 0, OpCode::Ping, b"p", KEY);
            }
        }
        expected.push(if *is_text {
            Seen::Text(String::from_utf8(payload.clone()).unwrap())
        } else {
            Seen::Binary(payload.clone())
        });
    }
    (bytes, expected)
}

fn arb_message() -> impl Strategy<Value = (bool, Vec<u8>, usize)> {
    prop_oneof![
        ("\\PC{0,40}", 1usize..20).prop_map(|(s, f)| (true, s.into_bytes(), f)),
        (proptest::collection::vec(any::<u8>(), 0..300), 1usize..400)
            .prop_map(|(b, f)| (false, b, f)),
    ]
}

proptest! {
    /// The same, the event loop's way: incomplete frames kept and presented again whole.
    #[test]
    fn messages_round_trip_when_tails_are_kept(
        messages in proptest::collection::vec(arb_message(), 1..6),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
        max_tail in 0usize..600,
    ) {
        let (bytes, expected) = encode_messages(&messages);
        let (mut conn, now) = open_connection();
        let (seen, _) = feed_keeping_tails(&mut conn, now, &bytes, &cuts, max_tail);
        prop_assert_eq!(seen, expected);
    }

    /// Encode then decode through arbitrary split points gives back the same messages.
    #[test]
    fn messages_round_trip_through_any_split(
        messages in proptest::collection::vec(arb_message(), 1..6),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
    ) {
        let (bytes, expected) = encode_messages(&messages);
        let (mut conn, now) = open_connection();
        let (seen, _) = feed(&mut conn, now, &bytes, &cuts);
        prop_assert_eq!(seen, expected);
        prop_assert_eq!(conn.state(), State::Open);
    }

    /// Any bytes at all: the connection ends in an event or waits for more, never panics, and
    /// a failure always comes with a Close frame carrying the error's code.
    #[test]
    fn arbitrary_input_is_handled(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                  cuts in proptest::collection::vec(0usize..200, 0..4)) {
        let (mut conn, now) = open_connection();
        let (seen, out) = feed(&mut conn, now, &bytes, &cuts);
        if let Some(Seen::Failed(e)) = seen.last() {
            prop_assert_eq!(close_frame_code(&out[out.len() - close_len(&out)..]), Some(e.close_code().0));
        }
    }
}

/// The length of the last frame in `out`, which the failure appended.
fn close_len(out: &[u8]) -> usize {
    let mut pos = 0;
    let mut last = 0;
    while let Ok(Some((h, n))) = frame::decode_header(&out[pos..]) {
        last = n + h.payload_len as usize;
        pos += last;
    }
    last
}

#[test]
fn keepalive_ping_then_pong_or_timeout() {
    let config = Arc::new(Config {
        ping_interval: Some(Duration::from_secs(5)),
        pong_timeout: Duration::from_secs(3),
        ..Config::default()
    });
    let now = Instant::now();
    let mut conn = Connection::new(config, now);
    let mut out = Vec::new();
    accept_request(&mut conn, now, &mut out);
    let ping_at = conn.poll_timeout().unwrap();
    assert_eq!(ping_at, now + Duration::from_secs(5));
    out.clear();
    assert_eq!(conn.handle_timeout(ping_at, &mut out), None);
    assert_eq!(out, [0x89, 0x00], "an empty Ping");
    assert_eq!(conn.poll_timeout(), Some(ping_at + Duration::from_secs(3)));
    // A Pong answers it; the next Ping is due an interval later.
    let later = ping_at + Duration::from_secs(1);
    let (seen, _) = feed(&mut conn, later, &frame(true, OpCode::Pong, b""), &[]);
    assert!(seen.is_empty());
    assert_eq!(conn.poll_timeout(), Some(later + Duration::from_secs(5)));
    // No Pong this time: the connection is failed with 1011.
    let ping_at = later + Duration::from_secs(5);
    conn.handle_timeout(ping_at, &mut out);
    out.clear();
    let due = conn.poll_timeout().unwrap();
    assert_eq!(conn.handle_timeout(due, &mut out), Some(Event::TimedOut(State::Open)));
    assert_eq!(close_frame_code(&out), Some(1011));
    assert_eq!(conn.state(), State::Closed);
}

/// The application's answer is checked before it is sent: a plain HTTP request cannot be
/// upgraded, a subprotocol must have been offered, header fields must be well-formed and not
/// the handshake's own, and a response's status is 200-599. Each gets its status instead.
#[test]
fn answers_are_checked_before_they_are_sent() {
    let answer = |request: &[u8], reply: &dyn Fn(&mut Connection, &mut Vec<u8>, Instant)| {
        let now = Instant::now();
        let mut conn = Connection::new(config(), now);
        let mut out = Vec::new();
        let mut request = request.to_vec();
        let r = conn.receive(&mut request, now, &mut out);
        assert_eq!(r.event, Some(Event::Request));
        reply(&mut conn, &mut out, now);
        (String::from_utf8(out).unwrap(), conn.state())
    };
    let accept = |accept: Accept, expected: Result<(), AnswerError>| {
        move |conn: &mut Connection, out: &mut Vec<u8>, now: Instant| {
            assert_eq!(conn.accept(&accept, out, now), expected);
        }
    };
    let page = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let not_an_upgrade = Err(AnswerError::NotAnUpgrade(HandshakeError::MissingUpgrade));
    let (out, state) = answer(page, &accept(Accept::new(), not_an_upgrade));
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert_eq!(state, State::Closed);
    let unoffered =
        accept(Accept::new().with_subprotocol("chat"), Err(AnswerError::SubprotocolNotOffered));
    let (out, _) = answer(REQUEST, &unoffered);
    assert!(out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{out}");
    let offered = std::str::from_utf8(REQUEST)
        .unwrap()
        .replace("Version: 13\r\n", "Version: 13\r\nSec-WebSocket-Protocol: x, chat\r\n");
    let (out, state) =
        answer(offered.as_bytes(), &accept(Accept::new().with_subprotocol("chat"), Ok(())));
    assert!(out.contains("\r\nSec-WebSocket-Protocol: chat\r\n"), "{out}");
    assert_eq!(state, State::Open);
    let cookie = Accept::new().with_header("Set-Cookie", "id=1");
    let (out, _) = answer(REQUEST, &accept(cookie, Ok(())));
    assert!(out.starts_with("HTTP/1.1 101 ") && out.contains("\r\nSet-Cookie: id=1\r\n"));
    for (name, value, error) in [
        ("Upgrade", "h2c", AnswerError::ReservedHeader),
        ("Sec-WebSocket-Accept", "x", AnswerError::ReservedHeader),
        ("X-Split", "a\r\nX-Injected: 1", AnswerError::InvalidHeader),
    ] {
        let (out, _) = answer(REQUEST, &accept(Accept::new().with_header(name, value), Err(error)));
        assert!(out.starts_with("HTTP/1.1 500 "), "{name}: {out}");
        assert!(!out.contains("X-Injected"), "{out}");
    }
    // Any response the application likes, with a status in 200-599; HEAD gets the head only.
    let unauthorized = |conn: &mut Connection, out: &mut Vec<u8>, now: Instant| {
        let response = Response::text(401, "token required");
        assert_eq!(conn.respond(&response, out, now), Ok(()));
    };
    let (out, state) = answer(REQUEST, &unauthorized);
    assert!(out.starts_with("HTTP/1.1 401 Unauthorized\r\n") && out.ends_with("token required\n"));
    assert_eq!(state, State::Closed);
    let (out, _) = answer(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", &unauthorized);
    assert!(out.ends_with("\r\n\r\n"), "{out}");
    let switching = |conn: &mut Connection, out: &mut Vec<u8>, now: Instant| {
        let error = Err(AnswerError::InvalidStatus(101));
        assert_eq!(conn.respond(&Response::new(101), out, now), error);
    };
    let (out, _) = answer(REQUEST, &switching);
    assert!(out.starts_with("HTTP/1.1 500 "), "{out}");
    // Before the request has arrived: a refusal such as the server's 503.
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let mut out = Vec::new();
    let busy = Response::text(503, "full").with_header("Retry-After", "1");
    assert_eq!(conn.respond(&busy, &mut out, now), Ok(()));
    assert!(String::from_utf8(out).unwrap().contains("\r\nRetry-After: 1\r\n"));
    assert_eq!(conn.accept(&Accept::new(), &mut Vec::new(), now), Err(AnswerError::NoRequest));
}

#[test]
fn an_incomplete_frame_within_the_tail_limit_is_left_unconsumed() {
    let (mut conn, now) = open_connection();
    let whole = [frame(true, OpCode::Text, b"one"), frame(true, OpCode::Text, b"two")].concat();
    let mut input = whole[..whole.len() - 1].to_vec();
    let mut out = Vec::new();
    let r = conn.receive_leaving_partial(&mut input, 64, now, &mut out);
    assert!(matches!(r.event, Some(Event::Message(_))));
    let first = r.consumed;
    let r = conn.receive_leaving_partial(&mut input[first..], 64, now, &mut out);
    assert_eq!((r.consumed, r.event), (0, None), "the second frame is kept for later");
    // Over the limit, the connection takes the bytes itself.
    let rest = input.len() - first;
    let r = conn.receive_leaving_partial(&mut input[first..], 4, now, &mut out);
    assert_eq!((r.consumed, r.event), (rest, None));
}

#[test]
fn trace_records_the_handshake_frames_and_states_only_when_on() {
    let (mut quiet, now) = open_connection();
    feed(&mut quiet, now, &frame(true, OpCode::Text, b"Hello"), &[]);
    assert!(quiet.take_trace().is_empty());

    let config = Arc::new(Config { trace: true, ..Config::default() });
    let mut conn = Connection::new(config, now);
    let mut out = Vec::new();
    accept_request(&mut conn, now, &mut out);
    let mut hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    conn.receive(&mut hello, now, &mut out);
    conn.send_text(&mut out, "Hello").unwrap();
    assert_eq!(
        conn.take_trace(),
        [
            "§4.1 TCP connection accepted, waiting for the opening handshake",
            "§4.2.1 <- GET /chat HTTP/1.1",
            "§4.2.2 -> HTTP/1.1 101 Switching Protocols",
            "§4.2.2 state Connecting -> Open (OPEN)",
            "<- §5.6 frame fin=1 rsv=000 op=Text(0x1) mask=37fa213d len=5 \"Hello\"",
            "-> §5.6 frame fin=1 rsv=000 op=Text(0x1) mask=- len=5 \"Hello\"",
        ]
    );
    assert!(conn.take_trace().is_empty(), "taken lines are gone");
}

/// §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response, unless
/// it already received a Close frame": having *sent* one is no excuse.
#[test]
fn a_ping_after_our_close_still_gets_its_pong() {
    let (mut conn, now) = open_connection();
    let mut out = Vec::new();
    conn.close(&mut out, CloseCode::GOING_AWAY, "", now).unwrap();
    let (_, out) = feed(&mut conn, now, &frame(true, OpCode::Ping, b"still?"), &[]);
    let mut pong = Vec::new();
    frame::write_frame(&mut pong, OpCode::Pong, b"still?");
    assert_eq!(out, pong);
}

/// §7.4.1: codes reserved for reporting (1005, 1006, 1015) are never sent.
#[test]
fn reserved_close_codes_are_not_sent() {
    for code in [1005, 1006, 1015, 999, 5000] {
        let (mut conn, now) = open_connection();
        let mut out = Vec::new();
        assert_eq!(
            conn.close(&mut out, CloseCode(code), "", now),
            Err(SendError::InvalidCloseCode)
        );
        assert!(out.is_empty());
        assert_eq!(conn.state(), State::Open);
    }
}

/// §5.5: a control frame's payload is at most 125 bytes, when sending too.
#[test]
fn control_frames_we_send_are_at_most_125_bytes() {
    let (mut conn, now) = open_connection();
    let mut out = Vec::new();
    assert_eq!(conn.ping(&mut out, &[0; 126]), Err(SendError::ControlFrameTooLong));
    assert_eq!(
        conn.close(&mut out, CloseCode::NORMAL, &"x".repeat(124), now),
        Err(SendError::ControlFrameTooLong)
    );
    assert!(out.is_empty());
    conn.ping(&mut out, &[0; 125]).unwrap();
    assert_eq!(out.len(), 2 + 125);
}
