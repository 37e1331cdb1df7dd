//! The client side of RFC 6455 on one mio `Poll`: non-blocking connect, the opening handshake,
//! a streaming frame reader that never buffers a payload (it keeps only the first
//! [`PREFIX`] bytes of each message, where the timestamp is), and a writer that stamps a
//! pre-encoded, pre-masked frame and batches pipelined frames into one write.

use crate::deflate::{self, ConnZ, Zctx};
use crate::sock::Sock;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rfc6455::frame::{self, OpCode};
use rfc6455::mask::apply_mask;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// First byte: RSV1, which marks a compressed message (RFC 7692 §6).
const RSV1: u8 = 0x40;
/// Bytes of each message kept for the timestamp search. The chat's JSON puts ours at byte 21.
pub const PREFIX: usize = 64;
/// The shared read buffer.
const READ_BUF: usize = 1 << 20;
/// Pipelined frames are stamped into one buffer this large and written with one call.
const SCRATCH: usize = 256 * 1024;
/// The handshake response head may not be longer than this.
const MAX_HEAD: usize = 16 * 1024;
/// The one Sec-WebSocket-Key every connection sends (RFC 6455's own example).
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Nanoseconds since the load generator started.
#[derive(Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Clock {
        Clock(Instant::now())
    }
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// A payload of `size` bytes: `t=` + 16 zeros (the stamp, rewritten per message) + `;`, then
/// `x` padding, or with `text` the [`deflate::TEXT`] sentence repeated and cut to the size.
pub fn payload(size: usize, text: bool) -> Vec<u8> {
    assert!(size >= MIN_PAYLOAD);
    let mut payload = vec![b'x'; size];
    payload[..2].copy_from_slice(b"t=");
    payload[2..18].fill(b'0');
    payload[18] = b';';
    if text {
        for (b, t) in payload[MIN_PAYLOAD..].iter_mut().zip(deflate::TEXT.iter().cycle()) {
            *b = *t;
        }
    }
    payload
}

/// Writes the 16 hex digits of `t` into an unmasked payload made by [`payload`].
#[inline]
pub fn stamp_plain(payload: &mut [u8], t: u64) {
    payload[2..10].copy_from_slice(&hex8((t >> 32) as u32).to_be_bytes());
    payload[10..18].copy_from_slice(&hex8(t as u32).to_be_bytes());
}

/// A masked text frame whose payload starts `t=<16 hex digits>;` (see [`payload`]),
/// encoded once; [`Template::stamp`] rewrites the 16 digits (already masked) in place.
pub struct Template {
    pub frame: Vec<u8>,
    ts_off: usize,
    ts_mask: [u8; 16],
}

/// The smallest payload that holds a timestamp: `t=` + 16 hex digits + `;`.
pub const MIN_PAYLOAD: usize = 19;

impl Template {
    #[cfg(test)]
    pub fn new(size: usize, key: [u8; 4]) -> Template {
        Template::with_payload(&payload(size, false), key)
    }

    /// The frame of a [`payload`].
    pub fn with_payload(payload: &[u8], key: [u8; 4]) -> Template {
        let size = payload.len();
        assert!(size >= MIN_PAYLOAD);
        let mut frame = Vec::with_capacity(size + frame::MAX_HEADER_LEN);
        write_masked_frame(&mut frame, OpCode::Text, payload, key);
        let header = frame.len() - size;
        let mut ts_mask = [0u8; 16];
        for (i, m) in ts_mask.iter_mut().enumerate() {
            *m = key[(2 + i) % 4];
        }
        Template { frame, ts_off: header + 2, ts_mask }
    }

    #[inline]
    pub fn stamp(&mut self, t: u64) {
        let hi = hex8((t >> 32) as u32) ^ u64::from_be_bytes(self.ts_mask[..8].try_into().unwrap());
        let lo = hex8(t as u32) ^ u64::from_be_bytes(self.ts_mask[8..].try_into().unwrap());
        self.frame[self.ts_off..self.ts_off + 8].copy_from_slice(&hi.to_be_bytes());
        self.frame[self.ts_off + 8..self.ts_off + 16].copy_from_slice(&lo.to_be_bytes());
    }
}

/// Eight lowercase hex digits of `v`, most significant first when written big-endian.
#[inline]
fn hex8(v: u32) -> u64 {
    // Spread the nibbles one per byte.
    let mut x = u64::from(v);
    x = ((x & 0xFFFF_0000) << 16) | (x & 0xFFFF);
    x = ((x & 0x0000_FF00_0000_FF00) << 8) | (x & 0x0000_00FF_0000_00FF);
    x = ((x & 0x00F0_00F0_00F0_00F0) << 4) | (x & 0x000F_000F_000F_000F);
    // '0' + n, and 'a' - '0' - 10 = 0x27 more where n > 9.
    let above9 = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    x + 0x3030_3030_3030_3030 + above9 * 0x27
}

/// Lowercase hex digit values; 0x10 marks every other byte.
const UNHEX: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The value of 16 lowercase hex digits, without a branch per digit.
#[inline]
fn parse_hex16(digits: &[u8]) -> Option<u64> {
    let digits: &[u8; 16] = digits.try_into().ok()?;
    let mut v = 0u64;
    let mut bad = 0u8;
    for &b in digits {
        let d = UNHEX[b as usize];
        bad |= d;
        v = (v << 4) | u64::from(d & 0xF);
    }
    (bad & 0x10 == 0).then_some(v)
}

/// Finds `t=` + 16 lowercase hex digits + `;` in `p` and returns the timestamp.
#[inline]
pub fn find_stamp(p: &[u8]) -> Option<u64> {
    // Echoed payloads start with the stamp.
    if p.len() >= MIN_PAYLOAD
        && p[0] == b't'
        && p[1] == b'='
        && p[18] == b';'
        && let Some(v) = parse_hex16(&p[2..18])
    {
        return Some(v);
    }
    let mut from = 0;
    while from + MIN_PAYLOAD <= p.len() {
        let i = from + p[from..p.len() - MIN_PAYLOAD + 1].iter().position(|&b| b == b't')?;
        if p[i + 1] == b'='
            && p[i + 18] == b';'
            && let Some(v) = parse_hex16(&p[i + 2..i + 18])
        {
            return Some(v);
        }
        from = i + 1;
    }
    None
}

/// What [`Rx::step`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Ev {
    /// Everything given was consumed; call again with more bytes.
    NeedMore,
    /// A whole data message ended: see `msg_len`, `prefix()`.
    Message,
    Ping,
    Pong,
    Close,
    Error(&'static str),
    /// A piece of a compressed message's payload: `data[at..at + len]`, masked with `mask`
    /// from frame offset `off` when masked (negotiated connections only); `whole`: the piece is
    /// the entire message (one frame, all in this read).
    Compressed {
        at: usize,
        len: usize,
        mask: Option<[u8; 4]>,
        off: usize,
        whole: bool,
    },
    /// A compressed message ended: inflate the tail, then it is a whole message.
    Inflate,
}

/// The streaming frame reader. Masked frames (a raw TCP "echo" sends ours back) are accepted
/// and unmasked, only as far as the prefix needs.
pub struct Rx {
    hdr: [u8; frame::MAX_HEADER_LEN],
    hdr_len: usize,
    in_frame: bool,
    remaining: u64,
    frame_off: usize,
    mask: Option<[u8; 4]>,
    op: OpCode,
    fin: bool,
    msg_active: bool,
    pub msg_len: u64,
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// How much of each message to keep (at most PREFIX): the less, the less to copy and unmask.
    want: usize,
    ctrl: [u8; 125],
    ctrl_len: usize,
    /// permessage-deflate was negotiated: RSV1 may mark a message compressed.
    pub deflate: bool,
    /// The current message is compressed (RSV1 on its first frame).
    pub compressed: bool,
}

impl Default for Rx {
    fn default() -> Self {
        Rx {
            hdr: [0; frame::MAX_HEADER_LEN],
            hdr_len: 0,
            in_frame: false,
            remaining: 0,
            frame_off: 0,
            mask: None,
            op: OpCode::Text,
            fin: true,
            msg_active: false,
            msg_len: 0,
            prefix: [0; PREFIX],
            prefix_len: 0,
            want: PREFIX,
            ctrl: [0; 125],
            ctrl_len: 0,
            deflate: false,
            compressed: false,
        }
    }
}

impl Rx {
    /// A reader that keeps the first `want` bytes (at most [`PREFIX`]) of each message.
    pub fn keeping(want: usize) -> Rx {
        Rx { want: want.min(PREFIX), ..Rx::default() }
    }

    /// The first bytes (up to [`PREFIX`]) of the message just completed, unmasked.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..self.prefix_len]
    }

    /// Inflated output of the current compressed message: counted, and kept as far as the
    /// prefix goes.
    #[inline]
    pub fn push_inflated(&mut self, out: &[u8]) {
        self.msg_len += out.len() as u64;
        if self.prefix_len < self.want {
            let k = (self.want - self.prefix_len).min(out.len());
            self.prefix[self.prefix_len..self.prefix_len + k].copy_from_slice(&out[..k]);
            self.prefix_len += k;
        }
    }

    /// A compressed message's inflated prefix and length, known without inflating it.
    pub fn set_inflated(&mut self, prefix: &[u8], len: u64) {
        let k = prefix.len().min(self.want);
        self.prefix[..k].copy_from_slice(&prefix[..k]);
        self.prefix_len = k;
        self.msg_len = len;
    }

    /// The payload of the control frame just completed, unmasked.
    pub fn control(&self) -> &[u8] {
        &self.ctrl[..self.ctrl_len]
    }

    /// Consumes bytes of `data` from `*pos` until an event or the end of `data`.
    #[inline]
    pub fn step(&mut self, data: &[u8], pos: &mut usize) -> Ev {
        // The common case in one go: a whole, final, small text or binary frame (7- or 16-bit
        // length) at the start of a message, with nothing carried over.
        if !self.in_frame && self.hdr_len == 0 && !self.msg_active {
            let avail = &data[*pos..];
            if let [b0, b1, rest @ ..] = avail
                && matches!(*b0, 0x81 | 0x82)
            {
                let (len, len_bytes) = match b1 & 0x7F {
                    126 => match rest {
                        [h, l, ..] => (usize::from(u16::from_be_bytes([*h, *l])), 2),
                        _ => (0, 0),
                    },
                    127 => (0, 0),
                    n => (usize::from(n), 0),
                };
                let masked = b1 & 0x80 != 0;
                let header = 2 + len_bytes + if masked { 4 } else { 0 };
                let minimal = len_bytes == 0 || len >= 126;
                if (len_bytes > 0 || b1 & 0x7F < 126) && minimal && avail.len() >= header + len {
                    let payload = &avail[header..header + len];
                    let k = len.min(self.want);
                    self.prefix[..k].copy_from_slice(&payload[..k]);
                    if masked {
                        let m = &avail[2 + len_bytes..2 + len_bytes + 4];
                        for (i, b) in self.prefix[..k].iter_mut().enumerate() {
                            *b ^= m[i & 3];
                        }
                    }
                    self.prefix_len = k;
                    self.msg_len = len as u64;
                    *pos += header + len;
                    return Ev::Message;
                }
            }
        }
        loop {
            if !self.in_frame {
                let avail = &data[*pos..];
                if avail.is_empty() {
                    return Ev::NeedMore;
                }
                let (h, used) = if self.hdr_len == 0 {
                    match frame::decode_header(avail) {
                        Ok(Some(found)) => found,
                        Ok(None) => {
                            self.hdr[..avail.len()].copy_from_slice(avail);
                            self.hdr_len = avail.len();
                            *pos = data.len();
                            return Ev::NeedMore;
                        }
                        Err(_) => return Ev::Error("bad frame header"),
                    }
                } else {
                    let take = (frame::MAX_HEADER_LEN - self.hdr_len).min(avail.len());
                    self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&avail[..take]);
                    match frame::decode_header(&self.hdr[..self.hdr_len + take]) {
                        Ok(Some((h, n))) => {
                            let used = n - self.hdr_len;
                            self.hdr_len = 0;
                            (h, used)
                        }
                        Ok(None) => {
                            self.hdr_len += take;
                            *pos += take;
                            return Ev::NeedMore;
                        }
                        Err(_) => return Ev::Error("bad frame header"),
                    }
                };
                *pos += used;
                // RFC 7692 §6: RSV1 on the first frame of a message marks it compressed, once
                // the extension is negotiated; any other reserved bit is an error.
                if h.rsv != 0
                    && !(self.deflate
                        && h.rsv == RSV1
                        && matches!(h.opcode, OpCode::Text | OpCode::Binary))
                {
                    return Ev::Error("reserved bits set");
                }
                match h.opcode {
                    OpCode::Text | OpCode::Binary => {
                        if self.msg_active {
                            return Ev::Error("new message inside a fragmented one");
                        }
                        self.msg_active = true;
                        self.msg_len = 0;
                        self.prefix_len = 0;
                        self.compressed = h.rsv != 0;
                    }
                    OpCode::Continuation => {
                        if !self.msg_active {
                            return Ev::Error("continuation without a message");
                        }
                    }
                    _ => self.ctrl_len = 0,
                }
                self.in_frame = true;
                self.op = h.opcode;
                self.fin = h.fin;
                self.mask = h.mask;
                self.remaining = h.payload_len;
                self.frame_off = 0;
            }
            if self.remaining > 0 {
                let avail = data.len() - *pos;
                if avail == 0 {
                    return Ev::NeedMore;
                }
                let n = self.remaining.min(avail as u64) as usize;
                let chunk = &data[*pos..*pos + n];
                if self.op.is_control() {
                    let dst = &mut self.ctrl[self.ctrl_len..self.ctrl_len + n];
                    dst.copy_from_slice(chunk);
                    if let Some(key) = self.mask {
                        apply_mask(dst, key, self.frame_off);
                    }
                    self.ctrl_len += n;
                } else if self.compressed {
                    // The inflater (in `process`) reads it; `msg_len` counts what it inflates.
                    let whole = self.fin
                        && self.op != OpCode::Continuation
                        && self.frame_off == 0
                        && self.remaining == n as u64;
                    let ev = Ev::Compressed {
                        at: *pos,
                        len: n,
                        mask: self.mask,
                        off: self.frame_off,
                        whole,
                    };
                    self.frame_off += n;
                    self.remaining -= n as u64;
                    *pos += n;
                    return ev;
                } else {
                    self.msg_len += n as u64;
                    if self.prefix_len < self.want {
                        let k = (self.want - self.prefix_len).min(n);
                        let dst = &mut self.prefix[self.prefix_len..self.prefix_len + k];
                        dst.copy_from_slice(&chunk[..k]);
                        if let Some(key) = self.mask {
                            apply_mask(dst, key, self.frame_off);
                        }
                        self.prefix_len += k;
                    }
                }
                self.frame_off += n;
                self.remaining -= n as u64;
                *pos += n;
                if self.remaining > 0 {
                    return Ev::NeedMore;
                }
            }
            self.in_frame = false;
            match self.op {
                OpCode::Ping => return Ev::Ping,
                OpCode::Pong => return Ev::Pong,
                OpCode::Close => return Ev::Close,
                _ if self.fin => {
                    self.msg_active = false;
                    return if self.compressed { Ev::Inflate } else { Ev::Message };
                }
                _ => {}
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Upgrading,
    Open,
    /// Finished (successfully or not): removed after this wakeup.
    Done,
}

/// Why a connection went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The mode ended it on purpose (connect mode: a full cycle).
    Finished,
    Connect,
    Handshake,
    Protocol,
    /// The server sent a Close the mode did not ask for.
    Closed,
    /// TCP ended without a Close.
    Eof,
    Io,
    Timeout,
    /// `--deflate`: the server did not agree to permessage-deflate (or answered wrongly).
    Deflate,
    /// The server answered 503 with `Retry-After` (seconds; 0 when it gave none).
    Busy(u32),
}

/// One client connection.
pub struct Conn {
    pub sock: Sock,
    pub phase: Phase,
    /// When the connection was started (connect mode times full cycles with it).
    pub started: Instant,
    /// Removed with [`Gone::Timeout`] past this instant.
    pub deadline: Option<Instant>,
    head: Vec<u8>,
    pub out: Vec<u8>,
    out_pos: usize,
    /// The data frame this connection sends, when it sends any.
    pub tmpl: Option<Box<Template>>,
    /// Frames still to stamp and send.
    pub owed: u32,
    /// Frames sent and not yet answered (echo).
    pub inflight: u32,
    /// Offset into `tmpl.frame` of a large frame written straight from the template.
    direct: Option<usize>,
    pub rx: Rx,
    pub key: [u8; 4],
    pub close_sent: bool,
    /// The upgrade completed.
    pub opened: bool,
    /// Why it is `Done`.
    pub gone: Option<Gone>,
    /// permessage-deflate, when negotiated.
    pub z: Option<Box<ConnZ>>,
}

fn write_nb(sock: &mut Sock, buf: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < buf.len() {
        match sock.write(&buf[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

impl Conn {
    /// Queues a masked control frame.
    pub fn queue_control(&mut self, op: OpCode, payload: &[u8]) {
        write_masked_frame(&mut self.out, op, payload, self.key);
    }

    /// Queues a Close with status 1000.
    pub fn queue_close(&mut self) {
        if !self.close_sent {
            self.close_sent = true;
            self.queue_control(OpCode::Close, &1000u16.to_be_bytes());
        }
    }

    /// Sets the message this connection sends: compressed per message when permessage-deflate
    /// was negotiated, else the pre-encoded [`Template`].
    pub fn set_message(&mut self, payload: Vec<u8>) {
        match self.z.as_deref_mut() {
            Some(z) => z.plain = payload,
            None => self.tmpl = Some(Box::new(Template::with_payload(&payload, self.key))),
        }
    }

    /// Bytes queued and not yet written.
    pub fn backlog(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes what is queued, then stamps and writes owed frames, until done or the socket is
    /// full (the rest waits for WRITABLE).
    pub fn flush(&mut self, scratch: &mut Vec<u8>, z: &mut Zctx, now_ns: u64) -> io::Result<()> {
        self.sock.flush_pending()?;
        if self.out_pos < self.out.len() {
            self.out_pos += write_nb(&mut self.sock, &self.out[self.out_pos..])?;
            if self.out_pos < self.out.len() {
                return Ok(());
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.phase != Phase::Open {
            return Ok(());
        }
        let Some(t) = self.tmpl.as_mut() else { return self.flush_deflate(scratch, z, now_ns) };
        if let Some(pos) = self.direct {
            let pos = pos + write_nb(&mut self.sock, &t.frame[pos..])?;
            if pos < t.frame.len() {
                self.direct = Some(pos);
                return Ok(());
            }
            self.direct = None;
        }
        let flen = t.frame.len();
        while self.owed > 0 {
            if self.owed > 1 && flen * 2 <= SCRATCH {
                let n = (self.owed as usize).min(SCRATCH / flen);
                scratch.clear();
                for _ in 0..n {
                    t.stamp(now_ns);
                    scratch.extend_from_slice(&t.frame);
                }
                self.owed -= n as u32;
                self.inflight += n as u32;
                let w = write_nb(&mut self.sock, scratch)?;
                if w < scratch.len() {
                    self.out.extend_from_slice(&scratch[w..]);
                    return Ok(());
                }
            } else {
                t.stamp(now_ns);
                self.owed -= 1;
                self.inflight += 1;
                let w = write_nb(&mut self.sock, &t.frame)?;
                if w < flen {
                    self.direct = Some(w);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// [`Conn::flush`]'s owed frames with permessage-deflate: each message stamped, compressed
    /// (§7.2.1), framed with RSV1 and masked; batched into `scratch` and written as one.
    #[cold]
    fn flush_deflate(
        &mut self,
        scratch: &mut Vec<u8>,
        z: &mut Zctx,
        now_ns: u64,
    ) -> io::Result<()> {
        let Some(cz) = self.z.as_deref_mut() else { return Ok(()) };
        if cz.plain.is_empty() {
            return Ok(());
        }
        let Zctx { level, shared, cbuf, stats, .. } = z;
        let bits = cz.agreed.send_window_bits();
        scratch.clear();
        while self.owed > 0 {
            stamp_plain(&mut cz.plain, now_ns);
            cbuf.clear();
            if cz.agreed.client_no_context_takeover {
                // §7.1.1.2: a fresh history for every message, so one compressor serves all.
                let c = match shared {
                    Some(c) if c.bits == bits => c,
                    _ => shared.insert(deflate::Compressor::new(*level, bits)),
                };
                c.compress(&cz.plain, cbuf);
                c.reset();
            } else {
                cz.compressor
                    .get_or_insert_with(|| deflate::Compressor::new(*level, bits))
                    .compress(&cz.plain, cbuf);
            }
            let header = frame::FrameHeader {
                fin: true,
                rsv: RSV1,
                opcode: OpCode::Text,
                mask: Some(self.key),
                payload_len: cbuf.len() as u64,
            };
            header.encode(scratch);
            let start = scratch.len();
            scratch.extend_from_slice(cbuf);
            apply_mask(&mut scratch[start..], self.key, 0);
            stats.tx_messages += 1;
            stats.tx_payload += cz.plain.len() as u64;
            stats.tx_wire += cbuf.len() as u64;
            self.owed -= 1;
            self.inflight += 1;
            if scratch.len() >= SCRATCH || self.owed == 0 {
                let w = write_nb(&mut self.sock, scratch)?;
                if w < scratch.len() {
                    self.out.extend_from_slice(&scratch[w..]);
                    return Ok(());
                }
                scratch.clear();
            }
        }
        Ok(())
    }
}

/// Connection counters every mode reports.
#[derive(Default, Debug)]
pub struct Errors {
    pub connect: u64,
    pub handshake: u64,
    pub protocol: u64,
    pub closed: u64,
    pub eof: u64,
    pub io: u64,
    pub timeout: u64,
    pub deflate: u64,
    /// 503 answers (a server refusing for now, not an error of the server's).
    pub busy: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect
            + self.handshake
            + self.protocol
            + self.closed
            + self.eof
            + self.io
            + self.timeout
            + self.deflate
            + self.busy
    }
    fn count(&mut self, g: Gone) {
        match g {
            Gone::Finished => {}
            Gone::Connect => self.connect += 1,
            Gone::Handshake => self.handshake += 1,
            Gone::Protocol => self.protocol += 1,
            Gone::Closed => self.closed += 1,
            Gone::Eof => self.eof += 1,
            Gone::Io => self.io += 1,
            Gone::Timeout => self.timeout += 1,
            Gone::Deflate => self.deflate += 1,
            Gone::Busy(_) => self.busy += 1,
        }
    }
    pub fn json(&self) -> String {
        format!(
            "{{\"connect\":{},\"handshake\":{},\"protocol\":{},\"closed\":{},\"eof\":{},\"io\":{},\"timeout\":{},\"deflate\":{},\"busy\":{}}}",
            self.connect,
            self.handshake,
            self.protocol,
            self.closed,
            self.eof,
            self.io,
            self.timeout,
            self.deflate,
            self.busy
        )
    }
}

/// What a mode does with a connection's events.
pub trait Handler {
    /// The upgrade completed.
    fn on_open(&mut self, _idx: usize, _conn: &mut Conn, _now_ns: u64) {}
    /// A whole data message arrived (`conn.rx.prefix()`, `conn.rx.msg_len`).
    fn on_message(&mut self, idx: usize, conn: &mut Conn, now_ns: u64);
    /// The server's Close arrived. The default answers it and counts an unexpected close.
    fn on_close_frame(&mut self, _idx: usize, conn: &mut Conn, _now_ns: u64) {
        conn.queue_close();
        conn.phase = Phase::Done;
        conn.gone = Some(Gone::Closed);
    }
    /// The connection was removed.
    fn on_gone(&mut self, _idx: usize, _why: Gone, _was_open: bool) {}
}

/// All connections on one `Poll`.
pub struct Net {
    poll: Poll,
    events: Option<Events>,
    pub conns: Vec<Option<Conn>>,
    addr: SocketAddr,
    request: Vec<u8>,
    accept: String,
    rbuf: Vec<u8>,
    scratch: Vec<u8>,
    pub clock: Clock,
    /// Connections between `connect` and the end of the upgrade.
    pub pending: usize,
    /// Connections upgraded and not yet gone.
    pub open: usize,
    /// Connections ever started.
    pub started: u64,
    pub errors: Errors,
    pub handshake_timeout: Duration,
    /// Bytes of each message the readers keep for the timestamp search.
    pub keep: usize,
    /// Connections read in this wakeup, flushed at its end.
    dirty: Vec<usize>,
    /// permessage-deflate: the offer, shared buffers and states, byte counts.
    pub z: Zctx,
    /// `wss://`: every connection speaks TLS with this configuration.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// One connection slot that connects elsewhere (broadcast `--sender-url`: the sender on
    /// another chat process than the receivers).
    pub other_addr: Option<(usize, SocketAddr)>,
}

impl Net {
    pub fn new(addr: SocketAddr, host: &str, path: &str, clock: Clock) -> io::Result<Net> {
        Net::with_deflate(addr, host, path, clock, None)
    }

    /// With `deflate: Some(level)`, every handshake offers permessage-deflate and a connection
    /// whose server does not agree fails ([`Gone::Deflate`]); what it sends is compressed at
    /// zlib level `level`.
    pub fn with_deflate(
        addr: SocketAddr,
        host: &str,
        path: &str,
        clock: Clock,
        deflate: Option<u8>,
    ) -> io::Result<Net> {
        let extension = match deflate {
            Some(_) => format!("Sec-WebSocket-Extensions: {}\r\n", deflate::OFFER),
            None => String::new(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{extension}\r\n"
        )
        .into_bytes();
        Ok(Net {
            poll: Poll::new()?,
            events: Some(Events::with_capacity(4096)),
            conns: Vec::new(),
            addr,
            request,
            accept: rfc6455::handshake::accept_key(WS_KEY.as_bytes()),
            rbuf: vec![0; READ_BUF],
            scratch: Vec::with_capacity(SCRATCH),
            clock,
            pending: 0,
            open: 0,
            started: 0,
            errors: Errors::default(),
            handshake_timeout: Duration::from_secs(10),
            keep: PREFIX,
            dirty: Vec::new(),
            z: Zctx::new(deflate.is_some(), deflate.unwrap_or(0)),
            tls: None,
            other_addr: None,
        })
    }

    /// Starts a connection in slot `idx` (which must be empty).
    pub fn connect(&mut self, idx: usize, h: &mut impl Handler) {
        if self.conns.len() <= idx {
            self.conns.resize_with(idx + 1, || None);
        }
        self.started += 1;
        let now = Instant::now();
        let addr = match self.other_addr {
            Some((slot, addr)) if slot == idx => addr,
            _ => self.addr,
        };
        let sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => {
                self.errors.count(Gone::Connect);
                h.on_gone(idx, Gone::Connect, false);
                return;
            }
        };
        let mut sock = sock;
        if self
            .poll
            .registry()
            .register(&mut sock, Token(idx), Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            self.errors.count(Gone::Connect);
            h.on_gone(idx, Gone::Connect, false);
            return;
        }
        let sock = match &self.tls {
            Some(config) => match Sock::tls(sock, config.clone(), addr.ip()) {
                Ok(sock) => sock,
                Err(_) => {
                    self.errors.count(Gone::Connect);
                    h.on_gone(idx, Gone::Connect, false);
                    return;
                }
            },
            None => Sock::plain(sock),
        };
        let k = (idx as u32).wrapping_mul(0x9E37_79B9) ^ 0x5A5A_A5A5;
        self.conns[idx] = Some(Conn {
            sock,
            phase: Phase::Connecting,
            started: now,
            deadline: Some(now + self.handshake_timeout),
            head: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            tmpl: None,
            owed: 0,
            inflight: 0,
            direct: None,
            rx: Rx::keeping(self.keep),
            key: k.to_le_bytes(),
            close_sent: false,
            opened: false,
            gone: None,
            z: None,
        });
        self.pending += 1;
    }

    /// Flushes one connection (after a mode queued something outside of an event).
    pub fn flush(&mut self, idx: usize, h: &mut impl Handler) {
        let now_ns = self.clock.now_ns();
        self.flush_at(idx, now_ns, h);
    }

    fn reap_if_done(&mut self, idx: usize, h: &mut impl Handler) {
        let done = matches!(&self.conns[idx], Some(c) if c.phase == Phase::Done);
        if done {
            self.remove(idx, h);
        }
    }

    /// Removes slot `idx`, counting why.
    pub fn remove(&mut self, idx: usize, h: &mut impl Handler) {
        let Some(conn) = self.conns[idx].take() else { return };
        let why = conn.gone.unwrap_or(Gone::Finished);
        let was_open = conn.opened;
        if was_open {
            self.open -= 1;
        } else {
            self.pending -= 1;
        }
        self.errors.count(why);
        h.on_gone(idx, why, was_open);
        drop(conn);
    }

    /// Removes every connection whose deadline has passed.
    pub fn reap_timeouts(&mut self, h: &mut impl Handler) {
        let now = Instant::now();
        for idx in 0..self.conns.len() {
            if let Some(c) = &mut self.conns[idx]
                && c.deadline.is_some_and(|d| d <= now)
            {
                c.phase = Phase::Done;
                c.gone = Some(Gone::Timeout);
                self.remove(idx, h);
            }
        }
    }

    /// Waits for events (at most `timeout`) and handles them.
    pub fn poll(&mut self, timeout: Option<Duration>, h: &mut impl Handler) -> io::Result<()> {
        let mut events = self.events.take().expect("events");
        match self.poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.events = Some(events);
                return Err(e);
            }
        }
        // Read everything that is ready first, then write (a cork): when the server shares our
        // CPU, our writes wake it once per wakeup rather than once per connection.
        let mut dirty = std::mem::take(&mut self.dirty);
        for ev in events.iter() {
            let idx = ev.token().0;
            let drain = ev.is_read_closed() || ev.is_error();
            if self.handle(idx, ev.is_readable() || drain, drain, h) {
                dirty.push(idx);
            }
        }
        self.events = Some(events);
        if !dirty.is_empty() {
            let now_ns = self.clock.now_ns();
            for &idx in &dirty {
                self.flush_at(idx, now_ns, h);
            }
            dirty.clear();
        }
        self.dirty = dirty;
        Ok(())
    }

    /// Handles one readiness event; true when the connection is to be flushed.
    fn handle(&mut self, idx: usize, readable: bool, drain: bool, h: &mut impl Handler) -> bool {
        let Net { conns, rbuf, clock, accept, pending, open, z, request, .. } = self;
        let Some(conn) = conns.get_mut(idx).and_then(Option::as_mut) else { return false };
        if conn.phase == Phase::Connecting {
            match conn.sock.tcp().take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => {
                    conn.phase = Phase::Done;
                    conn.gone = Some(Gone::Connect);
                }
            }
            if conn.phase == Phase::Connecting {
                match conn.sock.tcp().peer_addr() {
                    Ok(_) => {
                        let _ = conn.sock.tcp().set_nodelay(true);
                        conn.phase = Phase::Upgrading;
                        conn.out.extend_from_slice(request);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                    Err(_) => {
                        conn.phase = Phase::Done;
                        conn.gone = Some(Gone::Connect);
                    }
                }
            }
        }
        if readable && conn.phase != Phase::Done {
            loop {
                match conn.sock.read(rbuf) {
                    Ok(0) => {
                        conn.phase = Phase::Done;
                        conn.gone.get_or_insert(Gone::Eof);
                        break;
                    }
                    Ok(n) => {
                        let now_ns = clock.now_ns();
                        process(idx, conn, &rbuf[..n], now_ns, accept, pending, open, z, h);
                        // TLS may hold more plaintext than the kernel shows: read to WouldBlock.
                        let drained = n < rbuf.len() && !drain && !conn.sock.is_tls();
                        if conn.phase == Phase::Done || drained {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        conn.phase = Phase::Done;
                        conn.gone.get_or_insert(Gone::Io);
                        break;
                    }
                }
            }
        }
        true
    }

    /// Writes what connection `idx` has to write, stamping frames with `now_ns`; removes it if
    /// it is done.
    fn flush_at(&mut self, idx: usize, now_ns: u64, h: &mut impl Handler) {
        let Net { conns, scratch, z, .. } = self;
        let Some(conn) = conns.get_mut(idx).and_then(Option::as_mut) else { return };
        if conn.flush(scratch, z, now_ns).is_err() && conn.phase != Phase::Done {
            conn.phase = Phase::Done;
            conn.gone.get_or_insert(Gone::Io);
        }
        self.reap_if_done(idx, h);
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.conns.len()
    }
}

/// A 503 response head's `Retry-After` seconds (0 without one); `None` for any other status.
fn busy(head: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut status = lines.next()?.split(' ');
    if !status.next()?.starts_with("HTTP/1.") || status.next()? != "503" {
        return None;
    }
    let retry = lines.filter_map(|line| line.split_once(':')).find_map(|(name, value)| {
        name.trim().eq_ignore_ascii_case("retry-after").then(|| value.trim().parse().ok())?
    });
    Some(retry.unwrap_or(0))
}

/// Checks the 101 response head (status line and Sec-WebSocket-Accept).
fn response_ok(head: &[u8], accept: &str) -> bool {
    let Ok(text) = std::str::from_utf8(head) else { return false };
    let mut lines = text.split("\r\n");
    let Some(status) = lines.next() else { return false };
    let mut parts = status.split(' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) || parts.next() != Some("101") {
        return false;
    }
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("sec-websocket-accept")
        {
            return value.trim() == accept;
        }
    }
    false
}

#[allow(clippy::too_many_arguments)]
fn process(
    idx: usize,
    conn: &mut Conn,
    data: &[u8],
    now_ns: u64,
    accept: &str,
    pending: &mut usize,
    open: &mut usize,
    z: &mut Zctx,
    h: &mut impl Handler,
) {
    let leftover;
    let mut data = data;
    if conn.phase == Phase::Upgrading {
        conn.head.extend_from_slice(data);
        let Some(end) = rfc6455::handshake::find_head_end(&conn.head, 0) else {
            if conn.head.len() > MAX_HEAD {
                conn.phase = Phase::Done;
                conn.gone = Some(Gone::Handshake);
            }
            return;
        };
        if !response_ok(&conn.head[..end], accept) {
            conn.phase = Phase::Done;
            conn.gone = Some(busy(&conn.head[..end]).map_or(Gone::Handshake, Gone::Busy));
            return;
        }
        if z.offered {
            let head = std::str::from_utf8(&conn.head[..end]).unwrap_or("");
            let answer = deflate::extension_headers(head);
            match deflate::parse_answer(&answer) {
                Ok(agreed) => {
                    if z.answer.is_none() {
                        z.answer = Some(answer.join(", "));
                    }
                    conn.z = Some(Box::new(ConnZ::new(agreed)));
                    conn.rx.deflate = true;
                }
                Err(why) => {
                    if z.answer.is_none() {
                        eprintln!("loadgen: permessage-deflate: {why} (answer: {answer:?})");
                        z.answer = Some(format!("refused: {why}"));
                    }
                    conn.phase = Phase::Done;
                    conn.gone = Some(Gone::Deflate);
                    return;
                }
            }
        }
        leftover = conn.head.split_off(end);
        conn.head = Vec::new();
        conn.opened = true;
        conn.phase = Phase::Open;
        conn.deadline = None;
        *pending -= 1;
        *open += 1;
        h.on_open(idx, conn, now_ns);
        data = &leftover;
    }
    if conn.phase != Phase::Open {
        return;
    }
    let mut pos = 0;
    loop {
        match conn.rx.step(data, &mut pos) {
            Ev::NeedMore => return,
            Ev::Message => h.on_message(idx, conn, now_ns),
            Ev::Compressed { at, len, mask, off, whole } => {
                if inflate_piece(conn, z, &data[at..at + len], mask, off, whole).is_err() {
                    conn.phase = Phase::Done;
                    conn.gone = Some(Gone::Protocol);
                }
            }
            Ev::Inflate => {
                if finish_inflate(conn, z).is_ok() {
                    h.on_message(idx, conn, now_ns);
                } else {
                    conn.phase = Phase::Done;
                    conn.gone = Some(Gone::Protocol);
                }
            }
            Ev::Ping => {
                let mut payload = [0u8; 125];
                let n = conn.rx.control().len();
                payload[..n].copy_from_slice(conn.rx.control());
                conn.queue_control(OpCode::Pong, &payload[..n]);
            }
            Ev::Pong => {}
            Ev::Close => h.on_close_frame(idx, conn, now_ns),
            Ev::Error(_) => {
                conn.phase = Phase::Done;
                conn.gone = Some(Gone::Protocol);
            }
        }
        if conn.phase == Phase::Done {
            return;
        }
    }
}

/// Inflates a piece of the current compressed message of `conn` (§7.2.2). Without context
/// takeover the inflater comes from the pool for this one message.
#[cold]
fn inflate_piece(
    conn: &mut Conn,
    z: &mut Zctx,
    piece: &[u8],
    mask: Option<[u8; 4]>,
    off: usize,
    whole: bool,
) -> Result<(), &'static str> {
    let Conn { z: cz, rx, .. } = conn;
    let cz = cz.as_deref_mut().ok_or("compressed data without the extension")?;
    if whole && z.memo_on && mask.is_none() && cz.agreed.server_no_context_takeover {
        if let Some((prefix, len)) = z.memo.get(piece) {
            rx.set_inflated(prefix, *len);
            z.memo_hit = true;
            z.stats.rx_memo_hits += 1;
            z.stats.rx_wire += piece.len() as u64;
            return Ok(());
        }
        z.memo_key = Some(piece.into());
    }
    let inf = match &mut cz.inflater {
        Some(inf) => inf,
        slot => slot.insert(if cz.agreed.server_no_context_takeover {
            z.take_inflater()
        } else {
            deflate::Inflater::default()
        }),
    };
    z.stats.rx_wire += piece.len() as u64;
    let Zctx { out, unmask, .. } = z;
    let input = match mask {
        Some(key) => {
            unmask.clear();
            unmask.extend_from_slice(piece);
            apply_mask(unmask, key, off);
            &unmask[..]
        }
        None => piece,
    };
    inf.feed(input, out, |o| rx.push_inflated(o))
}

/// The end of a compressed message: the tail inflated, the inflater back to the pool (without
/// context takeover).
#[cold]
fn finish_inflate(conn: &mut Conn, z: &mut Zctx) -> Result<(), &'static str> {
    if std::mem::take(&mut z.memo_hit) {
        z.stats.rx_messages += 1;
        z.stats.rx_payload += conn.rx.msg_len;
        return Ok(());
    }
    // A message may be one empty compressed frame: it still needs an inflater for the tail.
    inflate_piece(conn, z, &[], None, 0, false)?;
    let Conn { z: cz, rx, .. } = conn;
    let cz = cz.as_deref_mut().ok_or("compressed data without the extension")?;
    let inf = cz.inflater.as_mut().ok_or("no inflater")?;
    inf.finish(&mut z.out, |o| rx.push_inflated(o))?;
    z.stats.rx_messages += 1;
    z.stats.rx_payload += rx.msg_len;
    if let Some(key) = z.memo_key.take() {
        z.remember(key, rx.prefix(), rx.msg_len);
    }
    if cz.agreed.server_no_context_takeover
        && let Some(inf) = cz.inflater.take()
    {
        z.give_inflater(inf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip_masked_and_split() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let mut t = Template::new(100, key);
        t.stamp(0x0123_4567_89ab_cdef);
        // Feed it a byte at a time: the reader unmasks the prefix.
        let mut rx = Rx::default();
        let mut events = Vec::new();
        for b in t.frame.clone() {
            let mut pos = 0;
            loop {
                match rx.step(&[b], &mut pos) {
                    Ev::NeedMore => break,
                    e => events.push(e),
                }
            }
        }
        assert_eq!(events, [Ev::Message]);
        assert_eq!(rx.msg_len, 100);
        assert_eq!(find_stamp(rx.prefix()), Some(0x0123_4567_89ab_cdef));
    }

    #[test]
    fn stamp_inside_json_and_fragmented() {
        let text = "{\"type\":2,\"message\":\"t=00000000000004d2;xxxxxxxx\",\"name\":\"g\"}";
        let mut wire = Vec::new();
        let (a, b) = text.as_bytes().split_at(25);
        wire.extend_from_slice(&[0x01, a.len() as u8]);
        wire.extend_from_slice(a);
        wire.extend_from_slice(&[0x89, 0x01, b'p']);
        wire.extend_from_slice(&[0x80, b.len() as u8]);
        wire.extend_from_slice(b);
        let mut rx = Rx::default();
        let mut pos = 0;
        assert_eq!(rx.step(&wire, &mut pos), Ev::Ping);
        assert_eq!(rx.control(), b"p");
        assert_eq!(rx.step(&wire, &mut pos), Ev::Message);
        assert_eq!(find_stamp(rx.prefix()), Some(1234));
        assert_eq!(rx.step(&wire, &mut pos), Ev::NeedMore);
        assert_eq!(pos, wire.len());
    }

    #[test]
    fn hex_both_ways() {
        for t in [0u64, 1, 0x0123_4567_89ab_cdef, u64::MAX, 0xfedc_ba98_7654_3210] {
            let mut tm = Template::new(19, [0, 0, 0, 0]);
            tm.stamp(t);
            let digits = &tm.frame[tm.ts_off..tm.ts_off + 16];
            assert_eq!(digits, format!("{t:016x}").as_bytes());
            assert_eq!(parse_hex16(digits), Some(t));
        }
        assert_eq!(parse_hex16(b"0123456789abcdeF"), None);
        assert_eq!(parse_hex16(b"0123456789abcde:"), None);
        assert_eq!(parse_hex16(b"0123456789abcde/"), None);
        assert_eq!(parse_hex16(b"g123456789abcdef"), None);
    }

    /// The fast path and the general path agree, frame by frame, whole or split anywhere.
    #[test]
    fn fast_path_equals_slow_path() {
        let mut wire = Vec::new();
        for (size, key) in [
            (19usize, Some([1u8, 2, 3, 4])),
            (64, None),
            (125, Some([9, 8, 7, 6])),
            (126, None),
            (300, Some([5, 5, 5, 5])),
            (70_000, None),
        ] {
            let mut t = Template::new(size, key.unwrap_or([0; 4]));
            t.stamp(size as u64);
            if key.is_some() {
                wire.extend_from_slice(&t.frame);
            } else {
                // An unmasked frame, as a server sends.
                let payload_start = t.frame.len() - size;
                let mut payload = t.frame[payload_start..].to_vec();
                rfc6455::mask::apply_mask(&mut payload, [0; 4], 0);
                rfc6455::frame::write_frame(&mut wire, OpCode::Text, &payload);
            }
        }
        let run = |cut: usize| {
            let mut rx = Rx::keeping(PREFIX);
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                let mut pos = 0;
                loop {
                    match rx.step(part, &mut pos) {
                        Ev::NeedMore => break,
                        Ev::Message => got.push((rx.msg_len, find_stamp(rx.prefix()))),
                        e => panic!("{e:?}"),
                    }
                }
            }
            got
        };
        let whole = run(wire.len());
        assert_eq!(whole.len(), 6);
        for (len, stamp) in &whole {
            assert_eq!(Some(*len), *stamp);
        }
        for cut in (0..wire.len()).step_by(7) {
            assert_eq!(run(cut), whole, "cut at {cut}");
        }
    }

    /// Reads `wire` with a negotiated reader, inflating its compressed messages as `process`
    /// does; returns (inflated length, stamp) per message.
    fn read_deflated(wire: &[u8], cut: usize, takeover: bool) -> Vec<(u64, Option<u64>)> {
        let mut rx = Rx::keeping(PREFIX);
        rx.deflate = true;
        let mut inf = deflate::Inflater::default();
        let mut buf = [0u8; 40];
        let mut got = Vec::new();
        for part in [&wire[..cut], &wire[cut..]] {
            let mut pos = 0;
            loop {
                match rx.step(part, &mut pos) {
                    Ev::NeedMore => break,
                    Ev::Message => got.push((rx.msg_len, find_stamp(rx.prefix()))),
                    Ev::Compressed { at, len, mask, off, .. } => {
                        let mut piece = part[at..at + len].to_vec();
                        if let Some(key) = mask {
                            apply_mask(&mut piece, key, off);
                        }
                        let mut outs = Vec::new();
                        inf.feed(&piece, &mut buf, |o| outs.extend_from_slice(o)).unwrap();
                        rx.push_inflated(&outs);
                    }
                    Ev::Inflate => {
                        let mut outs = Vec::new();
                        inf.finish(&mut buf, |o| outs.extend_from_slice(o)).unwrap();
                        rx.push_inflated(&outs);
                        got.push((rx.msg_len, find_stamp(rx.prefix())));
                        if !takeover {
                            inf.reset();
                        }
                    }
                    Ev::Ping => assert_eq!(rx.control(), b""),
                    e => panic!("{e:?}"),
                }
            }
        }
        got
    }

    /// Compressed messages (RSV1), fragmented and interleaved with a ping and a plain message,
    /// split anywhere, inflate to their payloads; without the extension RSV1 is an error.
    #[test]
    fn compressed_messages_are_inflated() {
        for takeover in [false, true] {
            let mut c = deflate::Compressor::new(6, 15);
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for (i, size) in [1024usize, 19, 5000, 300].into_iter().enumerate() {
                let mut p = payload(size, true);
                stamp_plain(&mut p, 1000 + i as u64);
                let mut z = Vec::new();
                c.compress(&p, &mut z);
                if !takeover {
                    c.reset();
                }
                assert!(size < 1000 || z.len() * 3 < size, "{} of {size}", z.len());
                if i == 2 {
                    // Three fragments, RSV1 on the first only, a ping between.
                    let (a, rest) = z.split_at(z.len() / 3);
                    let (b, d) = rest.split_at(rest.len() / 2);
                    for (fin, rsv, op, part) in
                        [(false, RSV1, OpCode::Text, a), (false, 0, OpCode::Continuation, b)]
                    {
                        frame::FrameHeader {
                            fin,
                            rsv,
                            opcode: op,
                            mask: None,
                            payload_len: part.len() as u64,
                        }
                        .encode(&mut wire);
                        wire.extend_from_slice(part);
                    }
                    wire.extend_from_slice(&[0x89, 0x00]);
                    frame::FrameHeader {
                        fin: true,
                        rsv: 0,
                        opcode: OpCode::Continuation,
                        mask: Some([1, 2, 3, 4]),
                        payload_len: d.len() as u64,
                    }
                    .encode(&mut wire);
                    let s = wire.len();
                    wire.extend_from_slice(d);
                    apply_mask(&mut wire[s..], [1, 2, 3, 4], 0);
                } else {
                    frame::write_frame_with_rsv(&mut wire, OpCode::Text, RSV1, &z);
                }
                want.push((size as u64, Some(1000 + i as u64)));
            }
            // And a plain one.
            let mut p = payload(200, false);
            stamp_plain(&mut p, 7);
            frame::write_frame(&mut wire, OpCode::Text, &p);
            want.push((200, Some(7)));
            assert_eq!(read_deflated(&wire, wire.len(), takeover), want);
            for cut in (0..wire.len()).step_by(3) {
                assert_eq!(read_deflated(&wire, cut, takeover), want, "cut at {cut}");
            }
            let mut rx = Rx::default();
            let mut pos = 0;
            assert_eq!(rx.step(&wire, &mut pos), Ev::Error("reserved bits set"));
        }
    }

    /// An open, negotiated connection over a real loopback socket, and the server's end.
    fn test_conn(agreed: deflate::Agreed) -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let mut rx = Rx::keeping(PREFIX);
        rx.deflate = true;
        let conn = Conn {
            sock: Sock::plain(TcpStream::from_std(client)),
            phase: Phase::Open,
            started: Instant::now(),
            deadline: None,
            head: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            tmpl: None,
            owed: 0,
            inflight: 0,
            direct: None,
            rx,
            key: [9, 8, 7, 6],
            close_sent: false,
            opened: true,
            gone: None,
            z: Some(Box::new(ConnZ::new(agreed))),
        };
        (conn, server)
    }

    struct Seen(Vec<(u64, Option<u64>)>);
    impl Handler for Seen {
        fn on_message(&mut self, _idx: usize, conn: &mut Conn, _now_ns: u64) {
            self.0.push((conn.rx.msg_len, find_stamp(conn.rx.prefix())));
        }
    }

    /// `process` inflates compressed messages (pooled inflaters without context takeover)
    /// and, with the memo, inflates the same bytes once; a message in two reads is inflated.
    #[test]
    fn process_inflates_and_remembers() {
        for memo in [false, true] {
            let (mut conn, _server) = test_conn(deflate::Agreed {
                server_no_context_takeover: true,
                ..Default::default()
            });
            let mut z = Zctx::new(true, 1);
            z.memo_on = memo;
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for (t, size) in [(5u64, 1024usize), (5, 1024), (6, 700), (5, 1024), (6, 700)] {
                let mut p = payload(size, true);
                stamp_plain(&mut p, t);
                let mut c = deflate::Compressor::new(6, 15);
                let mut zbytes = Vec::new();
                c.compress(&p, &mut zbytes);
                frame::write_frame_with_rsv(&mut wire, OpCode::Text, RSV1, &zbytes);
                want.push((size as u64, Some(t)));
            }
            let (mut pending, mut open) = (0, 1);
            let mut h = Seen(Vec::new());
            let cut = wire.len() - 50;
            for part in [&wire[..cut], &wire[cut..]] {
                process(0, &mut conn, part, 0, "", &mut pending, &mut open, &mut z, &mut h);
            }
            assert_eq!(conn.phase, Phase::Open);
            assert_eq!(h.0, want);
            assert_eq!(z.stats.rx_messages, 5);
            assert_eq!(z.stats.rx_payload, 3 * 1024 + 2 * 700);
            // The last message came in two reads: inflated, not looked up.
            assert_eq!(z.stats.rx_memo_hits, if memo { 2 } else { 0 });
            assert!(conn.z.as_ref().unwrap().inflater.is_none(), "back in the pool");
            assert_eq!(z.pool.len(), 1);
        }
    }

    /// What a negotiated connection sends: stamped, compressed, RSV1, masked; through a real
    /// socket, read back by the reader and inflated.
    #[test]
    fn deflate_send_path() {
        for (takeover, window) in [(false, 15u8), (true, 10)] {
            let (mut conn, mut server) = test_conn(deflate::Agreed {
                client_no_context_takeover: !takeover,
                client_max_window_bits: Some(window),
                ..Default::default()
            });
            conn.set_message(payload(1024, true));
            assert!(conn.tmpl.is_none());
            let mut z = Zctx::new(true, 6);
            let mut scratch = Vec::with_capacity(SCRATCH);
            conn.owed = 3;
            conn.flush(&mut scratch, &mut z, 0x1234).unwrap();
            conn.owed = 2;
            conn.flush(&mut scratch, &mut z, 0x5678).unwrap();
            assert_eq!((conn.owed, conn.inflight, conn.out.len()), (0, 5, 0));
            assert_eq!((z.stats.tx_messages, z.stats.tx_payload), (5, 5 * 1024));
            assert!(z.stats.tx_wire < 5 * 1024 / 3, "{}", z.stats.tx_wire);
            drop(conn);
            let mut wire = Vec::new();
            std::io::Read::read_to_end(&mut server, &mut wire).unwrap();
            assert_eq!(wire[0], 0xc1, "FIN, RSV1, text");
            assert_eq!(wire[1] & 0x80, 0x80, "masked");
            let got = read_deflated(&wire, wire.len(), takeover);
            let stamps = [0x1234, 0x1234, 0x1234, 0x5678, 0x5678];
            assert_eq!(got, stamps.map(|t| (1024, Some(t))));
            if takeover {
                // Later messages refer back to the first: they are smaller.
                assert!(z.stats.tx_wire < 5 * 1024 / 6, "{}", z.stats.tx_wire);
            }
        }
    }

    #[test]
    fn text_payload() {
        let p = payload(300, true);
        assert_eq!(&p[..19], b"t=0000000000000000;");
        assert_eq!(&p[19..19 + 20], &deflate::TEXT[..20]);
        assert!(p.iter().all(|b| b.is_ascii() && *b != b'"' && *b != b'\\'));
        let mut q = payload(19, false);
        stamp_plain(&mut q, 0xfedc_ba98_7654_3210);
        assert_eq!(find_stamp(&q), Some(0xfedc_ba98_7654_3210));
        assert_eq!(
            Template::with_payload(&payload(64, false), [1, 2, 3, 4]).frame,
            Template::new(64, [1, 2, 3, 4]).frame
        );
    }

    #[test]
    fn no_stamp_in_presence() {
        let p = br#"{"type":3,"event":"join","name":"guest-12","online":3,"ts":1700000000000}"#;
        assert_eq!(find_stamp(p), None);
        assert_eq!(find_stamp(b"t=0123"), None);
    }

    #[test]
    fn accepts_response() {
        let accept = rfc6455::handshake::accept_key(WS_KEY.as_bytes());
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSEC-WEBSOCKET-ACCEPT: {accept}\r\n\r\n"
        );
        assert!(response_ok(head.as_bytes(), &accept));
        assert!(!response_ok(b"HTTP/1.1 200 OK\r\n\r\n", &accept));
    }
}

/// Appends a client's frame (§5.3): FIN set, the header with `key`, the payload masked.
fn write_masked_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], key: [u8; 4]) {
    let header = frame::FrameHeader {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    header.encode(out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}
