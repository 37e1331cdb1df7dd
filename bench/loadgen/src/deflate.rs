//! The client side of permessage-deflate (RFC 7692) for `--deflate`: the offer, the server's
//! answer (§7), compressing what a connection sends (§7.2.1) and inflating what it receives
//! (§7.2.2), with zlib-rs (raw DEFLATE, no zlib header). Nothing here runs without
//! `--deflate`: a connection that did not negotiate has no [`ConnZ`] and its frames take the
//! paths they always took.

use std::collections::HashMap;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status};

/// What the handshake offers: the extension, and that the server may limit our window (what
/// browsers send).
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";
/// §7.2.1: the empty stored block a sync flush ends with, removed from every compressed
/// message; §7.2.2: appended again before inflating.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Inflated output is written in steps of this much (and only the first bytes are kept).
const OUT_STEP: usize = 16 * 1024;
/// Inflaters kept for messages without context takeover: a connection holds one only while one
/// of its messages is being read.
const MAX_POOLED: usize = 64;
/// Inflated messages remembered by [`Zctx::memo`] before it starts over.
const MAX_MEMO: usize = 4096;

/// The server's answer (§7.1), from the client's side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agreed {
    /// §7.1.1.1: the server resets its compressor per message (our inflater is reset too).
    pub server_no_context_takeover: bool,
    /// §7.1.1.2: we must reset our compressor per message.
    pub client_no_context_takeover: bool,
    /// §7.1.2.1: the window the server compresses with, if it said.
    pub server_max_window_bits: Option<u8>,
    /// §7.1.2.2: the largest window we may compress with, if the server said.
    pub client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The window our compressor uses.
    pub fn send_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(15)
    }
}

/// The values of every |Sec-WebSocket-Extensions| header of a response head, in order.
pub fn extension_headers(head: &str) -> Vec<&str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| value.trim())
        .collect()
}

/// §7.1.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

/// Reads the server's answer to [`OFFER`] (the values of its |Sec-WebSocket-Extensions|
/// headers). RFC 6455 §9.1: the extensions are a comma-separated list, parameters after `;`,
/// a value a token or a quoted string. RFC 7692 §7: the client fails the connection when the
/// answer has an unknown parameter, an invalid value or a parameter twice, or (§7.1.2.2)
/// `client_max_window_bits` without a value; §5: and the server may accept only what was
/// offered, so any other extension is an error too. No permessage-deflate at all: `Err`.
pub fn parse_answer(values: &[&str]) -> Result<Agreed, &'static str> {
    let mut found: Option<Agreed> = None;
    for value in values {
        for ext in value.split(',') {
            let ext = ext.trim();
            if ext.is_empty() {
                continue;
            }
            let mut parts = ext.split(';');
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case("permessage-deflate") {
                return Err("the server answered with an extension that was not offered");
            }
            if found.is_some() {
                return Err("permessage-deflate answered twice");
            }
            let mut a = Agreed::default();
            let mut seen: Vec<&str> = Vec::new();
            for param in parts {
                let (pname, pvalue) = match param.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim())),
                    None => (param.trim(), None),
                };
                // A quoted-string value must conform once unquoted (§7.1.2.1, §7.1.2.2).
                let pvalue = pvalue
                    .map(|v| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v));
                if seen.contains(&pname) {
                    return Err("a permessage-deflate parameter appears twice");
                }
                seen.push(pname);
                match (pname, pvalue) {
                    ("server_no_context_takeover", None) => a.server_no_context_takeover = true,
                    ("client_no_context_takeover", None) => a.client_no_context_takeover = true,
                    ("server_max_window_bits", Some(v)) => {
                        a.server_max_window_bits =
                            Some(window_bits(v).ok_or("invalid server_max_window_bits")?);
                    }
                    ("client_max_window_bits", Some(v)) => {
                        let bits = window_bits(v).ok_or("invalid client_max_window_bits")?;
                        // zlib cannot compress with a 2^8 window (it would use 2^9).
                        if bits < 9 {
                            return Err("client_max_window_bits=8 is not supported by zlib");
                        }
                        a.client_max_window_bits = Some(bits);
                    }
                    ("server_no_context_takeover" | "client_no_context_takeover", Some(_)) => {
                        return Err("a no_context_takeover parameter with a value");
                    }
                    ("client_max_window_bits" | "server_max_window_bits", None) => {
                        return Err("a max_window_bits parameter without a value");
                    }
                    _ => return Err("an unknown permessage-deflate parameter"),
                }
            }
            found = Some(a);
        }
    }
    found.ok_or("the server did not agree to permessage-deflate")
}

/// A raw DEFLATE compressor.
pub struct Compressor {
    inner: Deflate,
    pub bits: u8,
}

impl Compressor {
    pub fn new(level: u8, bits: u8) -> Compressor {
        let config = DeflateConfig {
            level: i32::from(level),
            // Negative: raw DEFLATE, no zlib header or trailer.
            window_bits: -i32::from(bits),
            ..DeflateConfig::default()
        };
        Compressor { inner: Deflate::new_with_config(config), bits }
    }

    /// §7.2.1: compresses `message` with a sync flush and appends it to `out` without the
    /// final `00 00 ff ff`. The history stays (context takeover) until [`Compressor::reset`].
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut consumed = 0;
        loop {
            let room = (message.len() - consumed) + (message.len() >> 3) + 64;
            let len = out.len();
            out.resize(len + room, 0);
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            let status =
                self.inner.compress(&message[consumed..], &mut out[len..], DeflateFlush::SyncFlush);
            let read = (self.inner.total_in() - in0) as usize;
            let wrote = (self.inner.total_out() - out0) as usize;
            out.truncate(len + wrote);
            consumed += read;
            // Done when all input is taken and the flush did not fill its room; an error is
            // impossible for a valid state with room to write: stop rather than spin.
            if status.is_err() || (consumed == message.len() && wrote < room) {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
    }

    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

/// A raw DEFLATE inflater (always for a 2^15 window, which reads any smaller one).
pub struct Inflater {
    inner: Inflate,
    /// A BFINAL block ended the stream: the rest of this message is not inflated.
    ended: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater { inner: Inflate::new(false, 15), ended: false }
    }
}

impl Inflater {
    /// Inflates `input` (a piece of a compressed message) through `buf`, handing every piece
    /// of output to `sink`.
    pub fn feed(
        &mut self,
        input: &[u8],
        buf: &mut [u8],
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), &'static str> {
        let mut consumed = 0;
        while !self.ended {
            let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.decompress(&input[consumed..], buf, InflateFlush::SyncFlush);
            let read = (self.inner.total_in() - in0) as usize;
            let wrote = (self.inner.total_out() - out0) as usize;
            consumed += read;
            if wrote > 0 {
                sink(&buf[..wrote]);
            }
            match result {
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(_) => {}
                Err(_) => return Err("not a DEFLATE stream"),
            }
            if consumed == input.len() && wrote < buf.len() {
                break;
            }
            if read == 0 && wrote == 0 {
                return Err("not a DEFLATE stream");
            }
        }
        Ok(())
    }

    /// §7.2.2: the message ended: inflate `00 00 ff ff` too.
    pub fn finish(&mut self, buf: &mut [u8], sink: impl FnMut(&[u8])) -> Result<(), &'static str> {
        self.feed(&TAIL, buf, sink)?;
        if self.ended {
            // The server ended its stream: the next message starts a new one.
            self.reset();
        }
        Ok(())
    }

    pub fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
    }
}

/// A connection's side of the extension, once negotiated.
pub struct ConnZ {
    pub agreed: Agreed,
    /// The payload this connection sends (stamped per message, then compressed); empty when it
    /// sends nothing.
    pub plain: Vec<u8>,
    /// Our compressor, kept when the server lets us take context over.
    pub compressor: Option<Compressor>,
    /// The inflater: for the message being read, or for the connection's life when the server
    /// takes context over.
    pub inflater: Option<Inflater>,
}

impl ConnZ {
    pub fn new(agreed: Agreed) -> ConnZ {
        ConnZ { agreed, plain: Vec::new(), compressor: None, inflater: None }
    }
}

/// Byte counts over the whole run (warmup included): only their ratios are reported.
#[derive(Default, Debug)]
pub struct Stats {
    pub tx_messages: u64,
    /// Payload bytes before compression.
    pub tx_payload: u64,
    /// Compressed payload bytes as framed (frame headers not counted).
    pub tx_wire: u64,
    pub rx_messages: u64,
    pub rx_payload: u64,
    pub rx_wire: u64,
    /// Received messages whose inflated prefix and length came from [`Zctx::memo`].
    pub rx_memo_hits: u64,
}

/// Whole compressed messages -> (the prefix they inflate to, their inflated length).
pub type Memo = HashMap<Box<[u8]>, (Box<[u8]>, u64)>;

/// What every connection of a [`crate::net::Net`] shares: settings, buffers, pooled states.
pub struct Zctx {
    /// `--deflate` was given: the handshake offers the extension and needs it answered.
    pub offered: bool,
    pub level: u8,
    /// The first accepted answer, for the report.
    pub answer: Option<String>,
    /// The compressor of connections that must reset per message (one message is compressed
    /// at a time, so one serves them all).
    pub shared: Option<Compressor>,
    /// Compressed output of one message.
    pub cbuf: Vec<u8>,
    /// Inflated output, in steps (discarded after the prefix is kept).
    pub out: Vec<u8>,
    /// Masked compressed input (a raw TCP echo returns our frames), unmasked.
    pub unmask: Vec<u8>,
    pub pool: Vec<Inflater>,
    pub stats: Stats,
    /// Broadcast: a server without context takeover that compresses a message once sends every
    /// receiver the same bytes, and they inflate to the same message (a fresh inflater is a
    /// function of its input), so a whole compressed message already inflated is not inflated
    /// again: its bytes are compared and its prefix and length reused. Off: every message is
    /// inflated.
    pub memo_on: bool,
    pub memo: Memo,
    /// The bytes of the message being inflated, to remember when it is done.
    pub memo_key: Option<Box<[u8]>>,
    /// The message being read was found in the memo.
    pub memo_hit: bool,
}

impl Zctx {
    pub fn new(offered: bool, level: u8) -> Zctx {
        Zctx {
            offered,
            level,
            answer: None,
            shared: None,
            cbuf: Vec::new(),
            out: if offered { vec![0; OUT_STEP] } else { Vec::new() },
            unmask: Vec::new(),
            pool: Vec::new(),
            stats: Stats::default(),
            memo_on: false,
            memo: HashMap::new(),
            memo_key: None,
            memo_hit: false,
        }
    }

    /// Remembers what a whole compressed message inflated to.
    pub fn remember(&mut self, key: Box<[u8]>, prefix: &[u8], len: u64) {
        if self.memo.len() >= MAX_MEMO {
            self.memo.clear();
        }
        self.memo.insert(key, (prefix.into(), len));
    }

    /// An inflater for a message without context takeover.
    pub fn take_inflater(&mut self) -> Inflater {
        self.pool.pop().unwrap_or_default()
    }

    pub fn give_inflater(&mut self, mut inf: Inflater) {
        if self.pool.len() < MAX_POOLED {
            inf.reset();
            self.pool.push(inf);
        }
    }

    /// JSON fields for the report: `"deflate":false`, or the answer and the byte counts.
    pub fn json_fields(&self) -> String {
        if !self.offered {
            return "\"deflate\":false".into();
        }
        let s = &self.stats;
        let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        format!(
            "\"deflate\":true,\"deflate_answer\":{},\"deflate_level\":{},\"tx_compressed_messages\":{},\
             \"tx_payload_bytes\":{},\"tx_wire_bytes\":{},\"tx_ratio\":{:.4},\"rx_compressed_messages\":{},\
             \"rx_payload_bytes\":{},\"rx_wire_bytes\":{},\"rx_ratio\":{:.4},\"inflate_memo\":{},\"rx_memo_hits\":{}",
            crate::modes::json_str(self.answer.as_deref().unwrap_or("")),
            self.level,
            s.tx_messages,
            s.tx_payload,
            s.tx_wire,
            ratio(s.tx_wire, s.tx_payload),
            s.rx_messages,
            s.rx_payload,
            s.rx_wire,
            ratio(s.rx_wire, s.rx_payload),
            self.memo_on,
            s.rx_memo_hits
        )
    }
}

/// The `--text` sentence: plain ASCII chat, nothing a JSON encoder would escape.
pub const TEXT: &[u8] = b"Hi all, quick update from the team: the new build is on staging now, \
please try the login page and the chat window, and tell me if anything looks slow or broken. \
Thanks, and see you at the review meeting tomorrow morning! ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let a = parse_answer(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ])
        .unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!((a.server_max_window_bits, a.client_max_window_bits), (None, None));
        assert_eq!(a.send_window_bits(), 15);
        let a = parse_answer(&[
            "PerMessage-Deflate ; client_max_window_bits=\"10\";server_max_window_bits=12",
        ])
        .unwrap();
        assert_eq!((a.server_max_window_bits, a.client_max_window_bits), (Some(12), Some(10)));
        assert!(!a.server_no_context_takeover && !a.client_no_context_takeover);
        assert_eq!(a.send_window_bits(), 10);
        // Two headers, the extension in the second.
        assert!(parse_answer(&["", "permessage-deflate"]).is_ok());
        for bad in [
            &[][..],
            &[""],
            &["x-webkit-deflate-frame"],
            &["permessage-deflate, permessage-deflate"],
            &["permessage-deflate; foo"],
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            &["permessage-deflate; server_no_context_takeover=1"],
            &["permessage-deflate; client_max_window_bits"],
            &["permessage-deflate; client_max_window_bits=8"],
            &["permessage-deflate; client_max_window_bits=16"],
            &["permessage-deflate; server_max_window_bits=09"],
            &["permessage-deflate; server_max_window_bits=7"],
            &["permessage-deflate", "permessage-deflate"],
        ] {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
        let head = "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-extensions: permessage-deflate\r\nX: y\r\n";
        assert_eq!(extension_headers(head), ["permessage-deflate"]);
        assert!(extension_headers("HTTP/1.1 101 x\r\nUpgrade: websocket\r\n").is_empty());
    }

    fn inflate(inf: &mut Inflater, msg: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 7];
        let mut out = Vec::new();
        // In pieces, through a tiny buffer, as the reader feeds it.
        for piece in msg.chunks(5) {
            inf.feed(piece, &mut buf, |o| out.extend_from_slice(o)).unwrap();
        }
        inf.finish(&mut buf, |o| out.extend_from_slice(o)).unwrap();
        out
    }

    /// RFC 7692 §7.2.3.1 and §7.2.3.2: "Hello" is `f2 48 cd c9 c9 07 00`, and again with
    /// context takeover `f2 00 11 00 00`.
    #[test]
    fn rfc_examples() {
        let mut c = Compressor::new(6, 15);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        c.compress(b"Hello", &mut first);
        c.compress(b"Hello", &mut second);
        assert_eq!(first, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut inf = Inflater::default();
        assert_eq!(inflate(&mut inf, &first), b"Hello");
        assert_eq!(inflate(&mut inf, &second), b"Hello");
        // §7.2.3.4: a BFINAL block; the inflater starts over after it.
        let mut inf = Inflater::default();
        assert_eq!(inflate(&mut inf, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]), b"Hello");
        assert_eq!(inflate(&mut inf, &first), b"Hello");
        let mut buf = [0u8; 16];
        assert!(Inflater::default().feed(&[0xff; 8], &mut buf, |_| {}).is_err());
    }

    /// Many messages, with and without context takeover, any level and window.
    #[test]
    fn round_trips() {
        let text: Vec<u8> = TEXT.iter().cycle().take(3000).copied().collect();
        for (level, bits, takeover) in [(1, 15, true), (6, 15, false), (9, 9, true), (6, 12, false)]
        {
            let mut c = Compressor::new(level, bits);
            let mut inf = Inflater::default();
            for i in 0..20usize {
                let msg = &text[i * 7..i * 7 + 100 + i * 97];
                let mut z = Vec::new();
                c.compress(msg, &mut z);
                assert!(z.len() < msg.len(), "{} of {}", z.len(), msg.len());
                assert_eq!(inflate(&mut inf, &z), msg);
                if !takeover {
                    c.reset();
                    inf.reset();
                }
            }
        }
        // Incompressible bytes too (the output grows a little).
        let noise: Vec<u8> =
            (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut z = Vec::new();
        Compressor::new(6, 15).compress(&noise, &mut z);
        assert_eq!(inflate(&mut Inflater::default(), &z), noise);
    }
}
