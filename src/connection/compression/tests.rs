//! permessage-deflate through the connection state machine, in memory.

use crate::connection::{Config, Connection, Event};
use crate::deflate::{Agreed, Compressor, Decompressor, DeflateConfig};
use crate::error::ProtocolError;
use crate::frame::{self, FrameHeader, OpCode, RSV1_BIT};
use crate::handshake::Accept;
use crate::mask::apply_mask;
use crate::message::Message;
use crate::state::State;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Instant;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

fn request(extensions: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    )
    .into_bytes()
}

fn config(max_message: u64, deflate: DeflateConfig) -> Arc<Config> {
    Arc::new(Config {
        max_message_size: max_message,
        max_frame_size: max_message,
        deflate: Some(deflate),
        ..Config::default()
    })
}

/// What a read gave: messages (text or not, and their bytes) and failures.
type Seen = Vec<Result<(bool, Vec<u8>), ProtocolError>>;

/// A connection that accepted `extensions`, and the 101 it wrote.
fn open(extensions: &str, config: Arc<Config>) -> (Connection, String) {
    let now = Instant::now();
    let mut conn = Connection::new(config, now);
    let mut out = Vec::new();
    let mut input = request(extensions);
    let r = conn.receive(&mut input, now, &mut out);
    assert_eq!(r.event, Some(Event::Request));
    conn.accept(&Accept::new(), &mut out, now).unwrap();
    (conn, String::from_utf8(out).unwrap())
}

fn deflating() -> (Connection, String) {
    open("permessage-deflate; client_max_window_bits", config(1 << 20, DeflateConfig::default()))
}

/// A client frame with `rsv`, masked.
fn client_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header =
        FrameHeader { fin, rsv, opcode, mask: Some(KEY), payload_len: payload.len() as u64 };
    let mut out = Vec::new();
    header.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

/// What the client's compressor makes of `message` (RFC 7692 §7.2.1).
fn compressed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressor::new(15, &DeflateConfig::default()).compress(message, &mut out);
    out
}

/// Feeds `bytes` in one read (again on the rest while it consumes less) and collects events.
fn feed(conn: &mut Connection, bytes: &[u8]) -> (Seen, Vec<u8>) {
    let now = Instant::now();
    let mut input = bytes.to_vec();
    let (mut seen, mut out, mut pos) = (Vec::new(), Vec::new(), 0);
    while pos < input.len() {
        let r = conn.receive(&mut input[pos..], now, &mut out);
        pos += r.consumed;
        match r.event {
            Some(Event::Message(Message::Text(t))) => seen.push(Ok((true, t.as_bytes().to_vec()))),
            Some(Event::Message(Message::Binary(b))) => seen.push(Ok((false, b.to_vec()))),
            Some(Event::Failed(e)) => seen.push(Err(e)),
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    (seen, out)
}

fn close_code(out: &[u8]) -> Option<u16> {
    let (h, n) = frame::decode_header(out).ok()??;
    (h.opcode == OpCode::Close).then(|| u16::from_be_bytes([out[n], out[n + 1]]))
}

/// The server agrees to what a browser offers, asking both sides not to take context over.
#[test]
fn a_browser_offer_is_accepted_without_context_takeover() {
    let (conn, response) = deflating();
    assert!(response.contains(&format!("\r\nSec-WebSocket-Extensions: {BOTH}\r\n")), "{response}");
    assert_eq!(conn.state(), State::Open);
    // Turned off by the application for this connection, or by the configuration: no answer.
    let now = Instant::now();
    let mut conn = Connection::new(config(1 << 20, DeflateConfig::default()), now);
    let mut out = Vec::new();
    conn.receive(&mut request("permessage-deflate"), now, &mut out);
    conn.accept(&Accept::new().without_extensions(), &mut out, now).unwrap();
    assert!(!String::from_utf8(out).unwrap().contains("Extensions"));
    let off = Config { deflate: None, ..Config::default() };
    let (_, response) = open("permessage-deflate", Arc::new(off));
    assert!(!response.contains("Extensions"));
    // Unknown extensions are not agreed to.
    let (_, response) = open("x-webkit-deflate-frame", config(1 << 20, DeflateConfig::default()));
    assert!(!response.contains("Extensions"));
}

/// §9.1: a malformed |Sec-WebSocket-Extensions| fails the handshake (400), before the
/// application is asked.
#[test]
fn a_malformed_extensions_header_is_400() {
    let now = Instant::now();
    let mut conn = Connection::new(config(1 << 20, DeflateConfig::default()), now);
    let mut out = Vec::new();
    let mut input = request("permessage-deflate; =1");
    let r = conn.receive(&mut input, now, &mut out);
    assert_eq!(
        r.event,
        Some(Event::Rejected(crate::handshake::HandshakeError::MalformedExtensions))
    );
    assert!(out.starts_with(b"HTTP/1.1 400 "));
}

/// RFC 7692 §7.2.3.1's compressed "Hello", in one frame and in two fragments; an uncompressed
/// message on the same connection is fine (§6).
#[test]
fn compressed_messages_whole_and_fragmented() {
    let (mut conn, _) = deflating();
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let (seen, _) = feed(&mut conn, &client_frame(true, RSV1_BIT, OpCode::Text, &hello));
    assert_eq!(seen, [Ok((true, b"Hello".to_vec()))]);
    // §7.2.3.5: "Two Frames": RSV1 on the first only.
    let mut two = client_frame(false, RSV1_BIT, OpCode::Text, &hello[..3]);
    two.extend(client_frame(true, 0, OpCode::Continuation, &hello[3..]));
    let (seen, _) = feed(&mut conn, &two);
    assert_eq!(seen, [Ok((true, b"Hello".to_vec()))]);
    let (seen, _) = feed(&mut conn, &client_frame(true, 0, OpCode::Binary, b"plain"));
    assert_eq!(seen, [Ok((false, b"plain".to_vec()))]);
    // An empty compressed message (§7.2.3.6: "0x00").
    let (seen, _) = feed(&mut conn, &client_frame(true, RSV1_BIT, OpCode::Binary, &[0x00]));
    assert_eq!(seen, [Ok((false, Vec::new()))]);
}

#[test]
fn rsv1_misuse_is_1002() {
    for (frame, error) in [
        (client_frame(true, RSV1_BIT, OpCode::Ping, b""), ProtocolError::CompressedBitMisplaced),
        (
            [
                client_frame(false, 0, OpCode::Text, b"a"),
                client_frame(true, RSV1_BIT, OpCode::Continuation, b"b"),
            ]
            .concat(),
            ProtocolError::CompressedBitMisplaced,
        ),
        (client_frame(true, 0x20, OpCode::Text, b"a"), ProtocolError::ReservedBitsSet),
    ] {
        let (mut conn, _) = deflating();
        let (seen, out) = feed(&mut conn, &frame);
        assert_eq!(seen.last(), Some(&Err(error)));
        assert_eq!(close_code(&out), Some(1002));
    }
    // Without the extension, RSV1 is a reserved bit like the others (RFC 6455 §5.2).
    let (mut conn, _) = open("x-unknown", config(1 << 20, DeflateConfig::default()));
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let (seen, out) = feed(&mut conn, &client_frame(true, RSV1_BIT, OpCode::Text, &hello));
    assert_eq!(seen, [Err(ProtocolError::ReservedBitsSet)]);
    assert_eq!(close_code(&out), Some(1002));
}

/// A mebibyte of zeros in a kilobyte: inflating stops at the limit, 1009, and the buffer never
/// grew much past the limit. Corrupt data is 1007, and so is text that inflates to bad UTF-8,
/// in the piece where it appears.
#[test]
fn bombs_corrupt_data_and_bad_text() {
    let limit = 64 * 1024;
    let (mut conn, _) = open("permessage-deflate", config(limit, DeflateConfig::default()));
    let bomb = compressed(&vec![0; 1 << 20]);
    assert!(bomb.len() < 2048);
    let (seen, out) = feed(&mut conn, &client_frame(true, RSV1_BIT, OpCode::Binary, &bomb));
    assert_eq!(seen, [Err(ProtocolError::MessageTooBig)]);
    assert_eq!(close_code(&out), Some(1009));
    let (mut conn, _) = deflating();
    let (seen, out) =
        feed(&mut conn, &client_frame(true, RSV1_BIT, OpCode::Binary, b"\xff\xff\xff"));
    assert_eq!(seen, [Err(ProtocolError::InvalidCompressedData)]);
    assert_eq!(close_code(&out), Some(1007));
    let (mut conn, _) = deflating();
    let bad = compressed(b"valid, then \xed\xa0\x80 a surrogate");
    let (seen, out) = feed(&mut conn, &client_frame(false, RSV1_BIT, OpCode::Text, &bad));
    assert_eq!(seen, [Err(ProtocolError::InvalidUtf8)], "fails before the message ends");
    assert_eq!(close_code(&out), Some(1007));
}

/// What the server sends: compressed with RSV1 from the threshold up, plain below it, control
/// frames never; the compressed frame inflates to the message.
#[test]
fn sending_compresses_from_the_threshold() {
    let (mut conn, _) = deflating();
    let mut out = Vec::new();
    conn.send_text(&mut out, "short").unwrap();
    let (h, _) = frame::decode_header(&out).unwrap().unwrap();
    assert_eq!(h.rsv, 0);
    out.clear();
    let long = "the chat's JSON repeats itself ".repeat(20);
    conn.send_text(&mut out, &long).unwrap();
    let (h, n) = frame::decode_header(&out).unwrap().unwrap();
    assert_eq!((h.rsv, h.opcode), (RSV1_BIT, OpCode::Text));
    assert!(
        (h.payload_len as usize) < long.len() / 5,
        "{} bytes for {}",
        h.payload_len,
        long.len()
    );
    let mut inflater = Decompressor::new(15);
    let mut message = Vec::new();
    inflater.inflate(&out[n..], &mut message, 1 << 20).unwrap();
    inflater.finish(&mut message, 1 << 20).unwrap();
    assert_eq!(message, long.as_bytes());
    out.clear();
    conn.ping(&mut out, &long.as_bytes()[..100]).unwrap();
    assert_eq!(frame::decode_header(&out).unwrap().unwrap().0.rsv, 0);
    assert!(conn.compresses(long.len()) && !conn.compresses(5));
}

/// A shared frame is compressed once per window size and the same bytes serve everyone.
#[test]
fn a_broadcast_is_compressed_once() {
    let frame = crate::shared::SharedFrame::text(&"all the same ".repeat(40));
    let (mut a, _) = deflating();
    let (mut b, _) = deflating();
    let (x, y) = (a.frame_for(&frame).unwrap(), b.frame_for(&frame).unwrap());
    assert_eq!(x.as_ptr(), y.as_ptr(), "the very same bytes");
    assert_eq!(frame::decode_header(&x).unwrap().unwrap().0.rsv, RSV1_BIT);
    let (mut plain, _) = open("x-none", config(1 << 20, DeflateConfig::default()));
    assert_eq!(plain.frame_for(&frame).unwrap(), frame.bytes());
}

/// With context takeover on both sides (when configured), each message may refer to the ones
/// before: the connection keeps its states, and messages still round-trip.
#[test]
fn context_takeover_when_configured() {
    let keep = DeflateConfig {
        send_context_takeover: true,
        receive_context_takeover: true,
        ..DeflateConfig::default()
    };
    let (mut conn, response) = open("permessage-deflate", config(1 << 20, keep));
    assert!(
        response.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{response}"
    );
    let mut client = Compressor::new(15, &DeflateConfig::default());
    let message = "a message, and then the same message again ".repeat(4);
    for round in 0..3 {
        let mut piece = Vec::new();
        client.compress(message.as_bytes(), &mut piece);
        let (seen, _) = feed(&mut conn, &client_frame(true, RSV1_BIT, OpCode::Text, &piece));
        assert_eq!(seen, [Ok((true, message.as_bytes().to_vec()))], "round {round}");
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    conn.send_text(&mut first, &message).unwrap();
    conn.send_text(&mut second, &message).unwrap();
    assert!(second.len() < first.len() / 2, "{} then {}", first.len(), second.len());
}

fn agreed_for(bits: u8) -> Agreed {
    Agreed {
        send_window_bits: bits,
        receive_window_bits: bits,
        send_context_takeover: false,
        receive_context_takeover: false,
    }
}

proptest! {
    /// Client messages compressed with any window, with or without takeover, fragmented and
    /// cut into reads anywhere, arrive as they were sent.
    #[test]
    fn compressed_messages_round_trip_through_any_split(
        messages in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..600), 1..5),
        bits in 9u8..=15,
        takeover in any::<bool>(),
        fragment_at in any::<prop::sample::Index>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let deflate = DeflateConfig { receive_context_takeover: takeover, ..DeflateConfig::default() };
        let offer = format!("permessage-deflate; client_max_window_bits={bits}");
        let (mut conn, _) = open(&offer, config(1 << 20, deflate));
        let agreed = agreed_for(bits);
        let mut client = Compressor::new(agreed.send_window_bits, &DeflateConfig::default());
        let mut wire = Vec::new();
        for message in &messages {
            let mut payload = Vec::new();
            client.compress(message, &mut payload);
            if !takeover {
                client.reset();
            }
            let at = fragment_at.index(payload.len() + 1);
            wire.extend(client_frame(false, RSV1_BIT, OpCode::Binary, &payload[..at]));
            wire.extend(client_frame(true, 0, OpCode::Continuation, &payload[at..]));
        }
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        bounds.sort();
        bounds.push(wire.len());
        let (mut seen, mut start) = (Vec::new(), 0);
        for end in bounds {
            let (got, _) = feed(&mut conn, &wire[start..end]);
            seen.extend(got);
            start = end;
        }
        let expected: Vec<_> = messages.iter().map(|m| Ok((false, m.clone()))).collect();
        prop_assert_eq!(seen, expected);
    }
}
