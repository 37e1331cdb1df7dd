//! Helpers shared by the fuzz targets (see fuzz/README.md).

use rfc6455::frame::{MAX_CONTROL_PAYLOAD, OpCode, decode_header};

/// Reads cut points from the front of `input`: the first byte gives their number (at most
/// `max`), then one byte each. Returns the cuts (sorted, each in `0..=rest.len()`) and the rest.
pub fn split_points(input: &[u8], max: usize) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = input.split_first() else {
        return (Vec::new(), input);
    };
    let n = (usize::from(n) % (max + 1)).min(rest.len());
    let (raw, data) = rest.split_at(n);
    let mut cuts: Vec<usize> = raw.iter().map(|&b| scale(b, data.len())).collect();
    cuts.sort_unstable();
    (cuts, data)
}

/// A position in `0..=len` from one byte: exact for short inputs, spread out for long ones.
fn scale(b: u8, len: usize) -> usize {
    if len < 256 { usize::from(b) % (len + 1) } else { usize::from(b) * len / 255 }
}

/// FNV-1a: a position-independent way to pick split points from the input itself.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// A frame the server wrote, as [`check_server_frames`] found it.
#[derive(Debug)]
pub struct ServerFrame<'a> {
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The frame's payload.
    pub payload: &'a [u8],
}

/// Checks that `out` is a sequence of whole frames as a server sends them (§5.1: unmasked; FIN
/// set, RSV clear, control payloads of at most 125 bytes) and returns them.
pub fn check_server_frames(mut out: &[u8]) -> Vec<ServerFrame<'_>> {
    let mut frames = Vec::new();
    while !out.is_empty() {
        let (h, n) = match decode_header(out) {
            Ok(Some(found)) => found,
            other => panic!(
                "server output is not a frame: {other:?} at {:x?}",
                &out[..out.len().min(16)]
            ),
        };
        assert!(h.mask.is_none(), "server frame masked: {h:?}");
        assert!(h.fin && h.rsv == 0, "server frame {h:?}");
        assert!(!h.opcode.is_control() || h.payload_len <= MAX_CONTROL_PAYLOAD, "{h:?}");
        let len = usize::try_from(h.payload_len).expect("payload length fits usize");
        assert!(out.len() - n >= len, "server frame cut short: {h:?}, {} bytes", out.len() - n);
        frames.push(ServerFrame { opcode: h.opcode, payload: &out[n..n + len] });
        out = &out[n + len..];
    }
    frames
}

/// A connection that agreed to permessage-deflate, for feeding compressed frames.
pub struct DeflateConnection {
    conn: rfc6455::Connection,
    limit: usize,
}

impl DeflateConnection {
    /// Open, with messages of at most `limit` bytes (inflated).
    pub fn new(limit: usize) -> DeflateConnection {
        use rfc6455::{Accept, Config, Connection, Event};
        let mut config = Config::default();
        config.max_message_size = limit as u64;
        config.max_frame_size = limit as u64;
        let now = std::time::Instant::now();
        let mut conn = Connection::new(std::sync::Arc::new(config), now);
        let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            .to_vec();
        let mut out = Vec::new();
        let received = conn.receive(&mut request, now, &mut out);
        assert_eq!(received.event, Some(Event::Request));
        conn.accept(&Accept::new(), &mut out, now).expect("the request is valid");
        assert!(String::from_utf8_lossy(&out).contains("permessage-deflate"));
        DeflateConnection { conn, limit }
    }

    /// Sends `payload`, cut at `cuts`, as one compressed message in as many frames (RSV1 on the
    /// first), then checks what came of it.
    pub fn feed_compressed(&mut self, payload: &[u8], cuts: &[usize]) {
        use rfc6455::frame::{FrameHeader, OpCode, RSV1_BIT};
        use rfc6455::{CloseCode, Event};
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(payload.len());
        let (mut wire, mut start) = (Vec::new(), 0);
        for (i, &end) in bounds.iter().enumerate() {
            let (fin, first) = (i + 1 == bounds.len(), i == 0);
            let header = FrameHeader {
                fin,
                rsv: if first { RSV1_BIT } else { 0 },
                opcode: if first { OpCode::Binary } else { OpCode::Continuation },
                mask: Some([0; 4]),
                payload_len: (end - start) as u64,
            };
            header.encode(&mut wire);
            wire.extend_from_slice(&payload[start..end]);
            start = end;
        }
        let now = std::time::Instant::now();
        let (mut pos, mut out) = (0, Vec::new());
        while pos < wire.len() {
            let received = self.conn.receive(&mut wire[pos..], now, &mut out);
            pos += received.consumed;
            match received.event {
                Some(Event::Message(message)) => assert!(message.payload().len() <= self.limit),
                Some(Event::Failed(error)) => {
                    let code = error.close_code();
                    assert!(
                        code == CloseCode::INVALID_PAYLOAD || code == CloseCode::MESSAGE_TOO_BIG,
                        "{error:?}"
                    );
                }
                Some(other) => panic!("{other:?}"),
                None => {}
            }
        }
    }
}

/// Checks that `out` is a sequence of whole frames as a client sends them (§5.1, §5.3: masked,
/// each with another key; FIN set; control payloads of at most 125 bytes).
pub fn check_client_frames(mut out: &[u8]) {
    let mut keys = Vec::new();
    while !out.is_empty() {
        let (h, n) = match decode_header(out) {
            Ok(Some(found)) => found,
            other => panic!("client output is not a frame: {other:?}"),
        };
        let key = h.mask.expect("client frames are masked");
        assert!(!keys.contains(&key), "a masking key used twice: {key:x?}");
        keys.push(key);
        assert!(h.fin, "{h:?}");
        assert!(!h.opcode.is_control() || h.payload_len <= MAX_CONTROL_PAYLOAD, "{h:?}");
        let len = usize::try_from(h.payload_len).expect("payload length fits usize");
        assert!(out.len() - n >= len, "client frame cut short: {h:?}");
        out = &out[n + len..];
    }
}
