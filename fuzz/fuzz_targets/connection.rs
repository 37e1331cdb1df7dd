//! `Connection` driven in memory by a list of operations: bytes in, time passing, sends and
//! closes. Requests are answered by a `Policy`, as a handler would. Two connections get the
//! same operations: one through plain `receive`, one the way the event loop drives it
//! (`receive_leaving_partial`, reassembly buffers, Pongs held, tracing on); both are checked
//! after every call, and they must agree. See fuzz/README.md.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rfc6455::close::parse_close_body;
use rfc6455::connection::SendError;
use rfc6455::frame::{FrameHeader, OpCode};
use rfc6455::http::Response;
use rfc6455::mask::apply_mask;
use rfc6455::policy::{Page, Policy};
use rfc6455::{CloseCode, Config, Connection, Event, Message, Payload, State};
use rfc6455_fuzz::check_server_frames;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 6455 §1.2's request (with a key that decodes to 16 bytes).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";
const MAX_MESSAGE: u64 = 4096;
/// Most output one operation may cause.
const MAX_OUTPUT_PER_OP: usize = MAX_MESSAGE as usize + 64 * 1024;

#[derive(Arbitrary, Debug)]
struct Input {
    /// `None`: the connection first receives [`REQUEST`] and must open; otherwise these bytes.
    start: Option<Vec<u8>>,
    /// Serve WebSockets only at `/chat` (else at any path).
    websocket_path: bool,
    /// Allow only the Origin `http://example.com` (else any).
    check_origin: bool,
    /// The event-loop connection leaves incomplete frames of up to this many bytes (mod 4096)
    /// unconsumed, to be presented again with the next read.
    max_tail: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Bytes from the peer, as one read.
    Feed(Vec<u8>),
    /// One well-formed masked frame from the peer, in two reads cut at `cut`.
    Frame {
        fin: bool,
        rsv1: bool,
        opcode: FrameOp,
        key: [u8; 4],
        payload: Body,
        cut: u8,
    },
    /// Time passes by this many milliseconds, then `handle_timeout`.
    Advance(u16),
    /// Time jumps to `poll_timeout()`, then `handle_timeout`.
    AdvanceToTimeout,
    /// `send_text` of these bytes made UTF-8 (lossily).
    SendText(Vec<u8>),
    SendBinary(Vec<u8>),
    Ping(Vec<u8>),
    /// `close` with a code picked by `code` (mostly ones a server may send) and the reason made
    /// UTF-8.
    Close {
        code: u16,
        reason: Vec<u8>,
    },
    /// `pong_latest_only`, as the event loop does while its outbox for the peer is not empty
    /// (and with `false` once it drains).
    Backlogged(bool),
    /// `respond` with 503, as the event loop does when it is full.
    Refuse,
    /// `send_header` of a binary message, then its payload written by the caller.
    SendHeader(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FrameOp {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Bytes(Vec<u8>),
    /// These bytes made UTF-8 (lossily).
    Text(Vec<u8>),
    /// A close body: the code as given, and the reason made UTF-8.
    Close(u16, Vec<u8>),
    /// `len % 2049` copies of a byte: frames and messages past the limits in a short input.
    Fill(u8, u16),
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let plain = config(false);
    let looped = config(true);
    let mut a = Harness::new(plain, policy(&input), start, 0);
    let mut b = Harness::new(looped, policy(&input), start, usize::from(input.max_tail) % 4096);
    match &input.start {
        None => {
            for h in [&mut a, &mut b] {
                h.feed(REQUEST);
                h.flush();
                assert_eq!(h.conn.state(), State::Open, "the fixed request must open");
            }
        }
        Some(bytes) => {
            a.feed(bytes);
            b.feed(bytes);
        }
    }
    for op in &input.ops {
        if !matches!(op, Op::Feed(_) | Op::Frame { .. }) {
            // The event loop hands a kept tail to `receive` before it does anything else.
            a.flush();
            b.flush();
            agree(&a, &b);
        }
        for h in [&mut a, &mut b] {
            let before = h.out.len();
            h.apply(op);
            let grown = h.out.len() - before;
            assert!(grown <= MAX_OUTPUT_PER_OP, "{op:?} wrote {grown} bytes");
        }
    }
    a.flush();
    b.flush();
    agree(&a, &b);
});

// `..Config::default()` although every field is set today: fields the crate adds later keep
// their defaults instead of breaking this target.
#[allow(clippy::needless_update)]
fn config(event_loop: bool) -> Arc<Config> {
    let mut config = Config::default();
    config.max_frame_size = 1024;
    config.max_message_size = MAX_MESSAGE;
    config.max_fragments = 16;
    config.max_head_size = 1024;
    config.max_headers = 16;
    config.handshake_timeout = Duration::from_secs(5);
    config.close_timeout = Duration::from_secs(2);
    config.ping_interval = Some(Duration::from_secs(3));
    config.pong_timeout = Duration::from_secs(1);
    config.trace = event_loop;
    Arc::new(config)
}

/// How the harness answers requests, as a handler with a `Policy` does.
fn policy(input: &Input) -> Policy {
    let mut policy = Policy::default();
    policy.subprotocols = vec!["chat".into()];
    policy.pages =
        vec![Page { path: "/".into(), content_type: "text/plain".into(), body: "page".into() }];
    policy.websocket_path = input.websocket_path.then(|| "/chat".into());
    if input.check_origin {
        policy.allowed_origins = vec!["http://example.com".into()];
    }
    policy
}

/// A frame as a client sends it, with RSV bits as given.
fn masked_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let header =
        FrameHeader { fin, rsv, opcode, mask: Some(key), payload_len: payload.len() as u64 };
    let mut frame = Vec::new();
    header.encode(&mut frame);
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], key, 0);
    frame
}

/// Plain `receive` and the event loop's way see the same events and write the same bytes
/// (compared where the event loop has no tail left).
fn agree(a: &Harness, b: &Harness) {
    assert_eq!(a.log, b.log, "the two ways of receiving saw different events");
    assert!(a.out == b.out, "the two ways of receiving wrote different bytes");
    assert_eq!(a.conn.state(), b.conn.state());
    assert_eq!(a.conn.poll_timeout(), b.conn.poll_timeout());
}

struct Harness {
    conn: Connection,
    config: Arc<Config>,
    policy: Policy,
    now: Instant,
    /// Everything the server wrote.
    out: Vec<u8>,
    /// The events, with payloads as bytes (borrowed or owned alike).
    log: Vec<String>,
    /// `receive_leaving_partial`'s limit (0: plain `receive`, no reassembly buffers, no
    /// tracing).
    max_tail: usize,
    /// An incomplete frame left unconsumed by the last read, presented again with the next.
    tail: Vec<u8>,
    /// Where the server's frames start in `out` (after the 101), once open.
    frames_from: Option<usize>,
    /// How much of `out` was checked as frames.
    checked: usize,
    /// The server wrote a Close frame: no data frame and no other Close may follow (§5.5.1).
    close_sent: bool,
    /// The peer is not taking our output: Pings are answered only when this is cleared.
    backlogged: bool,
    /// The connection ended with an event (failed, closed, refused, served): from then on
    /// nothing but the TCP close deadline's `TimedOut(Closed)`.
    ended: bool,
    /// A `TimedOut` was returned: from then on nothing at all.
    timed_out: bool,
}

impl Harness {
    fn new(config: Arc<Config>, policy: Policy, now: Instant, max_tail: usize) -> Harness {
        let conn = Connection::new(config.clone(), now);
        Harness {
            conn,
            config,
            policy,
            now,
            out: Vec::new(),
            log: Vec::new(),
            max_tail,
            tail: Vec::new(),
            frames_from: None,
            checked: 0,
            close_sent: false,
            backlogged: false,
            ended: false,
            timed_out: false,
        }
    }

    fn event_loop(&self) -> bool {
        self.config.trace
    }

    fn name(&self) -> &'static str {
        if self.event_loop() { "loop " } else { "plain" }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Feed(bytes) => self.feed(bytes),
            Op::Frame { fin, rsv1, opcode, key, payload, cut } => {
                let opcode = match opcode {
                    FrameOp::Continuation => OpCode::Continuation,
                    FrameOp::Text => OpCode::Text,
                    FrameOp::Binary => OpCode::Binary,
                    FrameOp::Close => OpCode::Close,
                    FrameOp::Ping => OpCode::Ping,
                    FrameOp::Pong => OpCode::Pong,
                };
                let payload = match payload {
                    Body::Bytes(b) => b.clone(),
                    Body::Text(s) => String::from_utf8_lossy(s).into_owned().into_bytes(),
                    Body::Fill(byte, len) => vec![*byte; usize::from(*len) % 2049],
                    Body::Close(code, reason) => {
                        let reason = String::from_utf8_lossy(reason);
                        [&code.to_be_bytes()[..], reason.as_bytes()].concat()
                    }
                };
                let rsv = if *rsv1 { 0x40 } else { 0 };
                let frame = masked_frame(*fin, rsv, opcode, &payload, *key);
                let cut = usize::from(*cut).min(frame.len());
                self.feed(&frame[..cut]);
                self.feed(&frame[cut..]);
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timeout();
            }
            Op::AdvanceToTimeout => {
                if let Some(due) = self.conn.poll_timeout() {
                    self.now = self.now.max(due);
                }
                self.timeout();
            }
            Op::SendText(text) => {
                let text = &String::from_utf8_lossy(text);
                let (was, before) = (self.conn.state(), self.out.len());
                let r = self.conn.send_text(&mut self.out, text);
                self.check_send(was, before, r, OpCode::Text, text.as_bytes());
            }
            Op::SendBinary(data) => {
                let (was, before) = (self.conn.state(), self.out.len());
                let r = self.conn.send_binary(&mut self.out, data);
                self.check_send(was, before, r, OpCode::Binary, data);
            }
            Op::SendHeader(data) => {
                let (was, before) = (self.conn.state(), self.out.len());
                let message = Message::Binary(Payload::Borrowed(data));
                let r = self.conn.send_header(&mut self.out, &message);
                if r.is_ok() {
                    self.out.extend_from_slice(data);
                }
                self.check_send(was, before, r, OpCode::Binary, data);
            }
            Op::Ping(data) => {
                let (was, before) = (self.conn.state(), self.out.len());
                let r = self.conn.ping(&mut self.out, data);
                if data.len() > 125 {
                    // Refused; when not open either, for either reason.
                    let not_open = was != State::Open && r == Err(SendError::NotOpen);
                    assert!(r == Err(SendError::ControlFrameTooLong) || not_open, "{r:?}");
                    assert_eq!(self.out.len(), before);
                } else {
                    self.check_send(was, before, r, OpCode::Ping, data);
                }
            }
            Op::Close { code, reason } => {
                let code = close_code(*code);
                let reason = &String::from_utf8_lossy(reason);
                let (was, before) = (self.conn.state(), self.out.len());
                let r = self.conn.close(&mut self.out, code, reason, self.now);
                let too_long = reason.len() > 123;
                let invalid = !code.is_valid_on_wire();
                if was != State::Open || too_long || invalid {
                    // Refused, for one of the reasons that apply.
                    let ok = match r {
                        Err(SendError::NotOpen) => was != State::Open,
                        Err(SendError::ControlFrameTooLong) => too_long,
                        Err(SendError::InvalidCloseCode) => invalid,
                        _ => false,
                    };
                    assert!(ok, "close({code}) in {was:?} with {} bytes: {r:?}", reason.len());
                    assert_eq!(self.out.len(), before, "a refused close wrote bytes");
                    assert_eq!(self.conn.state(), was);
                } else {
                    assert_eq!(r, Ok(()));
                    assert_eq!(self.conn.state(), State::CloseSent);
                    let frames = self.check_frames(before);
                    assert!(matches!(&frames[..], [(OpCode::Close, body)]
                        if body[..2] == code.0.to_be_bytes() && body[2..] == *reason.as_bytes()));
                }
            }
            Op::Backlogged(backlogged) => {
                let (was, before) = (self.conn.state(), self.out.len());
                self.conn.pong_latest_only(*backlogged, &mut self.out);
                self.backlogged = *backlogged;
                if *backlogged {
                    assert_eq!(self.out.len(), before, "holding Pongs wrote bytes");
                } else {
                    // At most the one Pong owed, and only while the peer's Pings are answered.
                    if self.out.len() > before {
                        assert!(matches!(was, State::Open | State::CloseSent), "Pong in {was:?}");
                        let frames = self.check_frames(before);
                        assert!(matches!(&frames[..], [(OpCode::Pong, _)]), "{frames:?}");
                    }
                    let again = self.out.len();
                    self.conn.pong_latest_only(false, &mut self.out);
                    assert_eq!(self.out.len(), again, "a Pong owed twice");
                }
            }
            Op::Refuse => {
                let (was, before) = (self.conn.state(), self.out.len());
                let now = self.now;
                let busy = Response::text(503, "server full").with_header("Retry-After", "1");
                let answered = self.conn.respond(&busy, &mut self.out, now);
                if was == State::Connecting {
                    assert_eq!(answered, Ok(()));
                    assert_eq!(self.conn.state(), State::Closed);
                    assert!(self.out[before..].starts_with(b"HTTP/1.1 503 "));
                    self.log.push("Refused".into());
                    self.ended = true;
                } else {
                    assert_eq!((self.conn.state(), self.out.len()), (was, before));
                }
            }
        }
        if self.event_loop() {
            let lines = self.conn.take_trace();
            assert!(lines.iter().all(|line| !line.is_empty()));
        }
    }

    /// One read from the peer: after the event loop's kept tail, if any.
    fn feed(&mut self, bytes: &[u8]) {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(bytes);
        self.read(buf, self.max_tail);
    }

    /// The socket has nothing more for now: a kept tail goes to the connection.
    fn flush(&mut self) {
        if !self.tail.is_empty() {
            let buf = std::mem::take(&mut self.tail);
            self.read(buf, 0);
        }
    }

    /// Hands a read to the connection the way the event loop does: `receive` again on the rest
    /// while it consumes less than it was given (and, with `max_tail`, until only an incomplete
    /// frame is left, which is kept for the next read).
    fn read(&mut self, mut buf: Vec<u8>, max_tail: usize) {
        if self.event_loop() {
            // A buffer from the pool, in case a message arrives in pieces.
            let _ = self.conn.provide_reassembly_buffer(Vec::with_capacity(256));
        }
        let mut pos = 0;
        loop {
            let was = self.conn.state();
            let before = self.out.len();
            let rest = buf.len() - pos;
            let r = if self.event_loop() {
                let now = self.now;
                self.conn.receive_leaving_partial(&mut buf[pos..], max_tail, now, &mut self.out)
            } else {
                self.conn.receive(&mut buf[pos..], self.now, &mut self.out)
            };
            let consumed = r.consumed;
            assert!(consumed <= rest, "consumed {consumed} of {rest}");
            if rest == 0 {
                assert!(r.event.is_none() && consumed == 0, "an empty read gave {:?}", r.event);
                assert_eq!(self.out.len(), before, "an empty read wrote bytes");
                break;
            }
            if was == State::Closed || self.ended {
                assert_eq!(
                    (consumed, &r.event, self.out.len()),
                    (rest, &None, before),
                    "input after the end was interpreted"
                );
            }
            let kept = r.event.is_none() && consumed < rest;
            if kept {
                // No progress, or a tail kept: only an incomplete frame that ends the input, of
                // at most `max_tail` bytes.
                let left = rest - consumed;
                assert!(left <= max_tail, "{left} of {rest} bytes left (max_tail {max_tail})");
            }
            self.on_event(was, before, r.event);
            pos += consumed;
            if kept {
                self.tail = buf[pos..].to_vec();
                break;
            }
            if pos == buf.len() {
                break;
            }
        }
        if self.event_loop() {
            let _ = self.conn.take_reassembly_buffer();
        }
    }

    fn on_event(&mut self, was: State, before: usize, event: Option<Event<'_>>) {
        let now = self.conn.state();
        let who = self.name();
        trace(format_args!(
            "{who}: {was:?} -> {now:?}: {event:?}, wrote {:x?}",
            &self.out[before..]
        ));
        let Some(event) = event else {
            assert_eq!(now, was, "the state changed with no event");
            if self.frames_from.is_some() {
                // Only Pongs answer a read that gives no event (none while backlogged).
                let frames = self.check_frames(before);
                self.check_pongs(&frames);
            } else {
                assert_eq!(self.out.len(), before, "wrote bytes before the head was complete");
            }
            return;
        };
        assert!(!self.ended && !self.timed_out, "{event:?} after the end");
        let written = &self.out[before..];
        match &event {
            Event::Request => {
                assert_eq!((was, now), (State::Connecting, State::Connecting));
                assert!(written.is_empty(), "wrote before the application answered");
                self.answer();
            }
            Event::Rejected(error) => {
                assert_eq!((was, now), (State::Connecting, State::Closed));
                let status = error.status();
                assert!(matches!(status, 400 | 405 | 426 | 431), "{error:?} has status {status}");
                let prefix = format!("HTTP/1.1 {status} ");
                assert!(written.starts_with(prefix.as_bytes()), "{error:?}");
            }
            Event::Message(message) => {
                assert!(matches!(was, State::Open | State::CloseSent), "message in {was:?}");
                assert_eq!(now, was);
                assert!(message.payload().len() as u64 <= self.config.max_message_size);
                if let Message::Text(text) = message {
                    // `Text` derefs to `str` unchecked: it must really be UTF-8.
                    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
                }
                let frames = self.check_frames(before);
                self.check_pongs(&frames);
            }
            Event::CloseReceived { code, reason } => {
                assert!(matches!(was, State::Open | State::CloseSent), "closed in {was:?}");
                assert_eq!(now, State::Closed);
                assert!(code.is_none_or(CloseCode::is_valid_on_wire), "{code:?} {reason:?}");
                let frames = self.check_frames(before);
                let answered = frames.last().is_some_and(|(op, _)| *op == OpCode::Close);
                // §5.5.1: answered with a Close exactly when we had not sent one.
                assert_eq!(answered, was == State::Open, "{frames:?}");
                let (before_close, _) = frames.split_at(frames.len() - usize::from(answered));
                self.check_pongs(before_close);
            }
            Event::Failed(error) => {
                assert!(matches!(was, State::Open | State::CloseSent), "failed in {was:?}");
                assert_eq!(now, State::Closed);
                let frames = self.check_frames(before);
                let rest = if was == State::Open {
                    // §7.1.7: a Close frame with the error's code.
                    let code = error.close_code().0.to_be_bytes();
                    assert!(
                        matches!(frames.last(), Some((OpCode::Close, body)) if body[..2] == code),
                        "{error:?}: {frames:?}"
                    );
                    &frames[..frames.len() - 1]
                } else {
                    &frames[..]
                };
                // Before it, only the Pongs of this read.
                self.check_pongs(rest);
            }
            Event::TimedOut(_) => panic!("receive returned {event:?}"),
            other => panic!("unknown event {other:?}"),
        }
        self.log.push(match &event {
            Event::Message(Message::Text(text)) => format!("Text({:x?})", text.as_bytes()),
            Event::Message(Message::Binary(data)) => format!("Binary({:x?})", &data[..]),
            other => format!("{other:?}"),
        });
        if self.conn.state() == State::Closed {
            self.ended = true;
        }
    }

    /// Answers the waiting request as a handler with a `Policy` would, and checks what was
    /// written: a 101 and the open state, or a page or refusal and the closed state.
    fn answer(&mut self) {
        let request = self.conn.request().expect("a request after Event::Request");
        let decided = self.policy.decide(request);
        let websocket = request.is_websocket();
        let before = self.out.len();
        let now = self.now;
        match decided {
            Ok(accept) => match self.conn.accept(&accept, &mut self.out, now) {
                Ok(()) => {
                    assert!(websocket, "a plain request was upgraded");
                    assert_eq!(self.conn.state(), State::Open);
                    assert!(self.out[before..].starts_with(b"HTTP/1.1 101 "));
                    self.frames_from = Some(self.out.len());
                    self.checked = self.out.len();
                    self.log.push("Opened".into());
                }
                Err(error) => {
                    // Only a plain request on a path without a page, refused by the core.
                    assert!(!websocket, "a valid handshake was refused: {error:?}");
                    let status = error.status().expect("a status");
                    assert!(matches!(status, 400 | 405), "{error:?}");
                    assert_eq!(self.conn.state(), State::Closed);
                    let prefix = format!("HTTP/1.1 {status} ");
                    assert!(self.out[before..].starts_with(prefix.as_bytes()));
                    self.log.push(format!("Refused({status})"));
                }
            },
            Err(response) => {
                assert_eq!(self.conn.respond(&response, &mut self.out, now), Ok(()));
                assert!(matches!(response.status, 200 | 403 | 404 | 405), "{response:?}");
                let forbidden = response.status == 403;
                assert!(
                    !forbidden || !self.policy.allowed_origins.is_empty(),
                    "403 without a list"
                );
                assert_eq!(self.conn.state(), State::Closed);
                let prefix = format!("HTTP/1.1 {} ", response.status);
                assert!(self.out[before..].starts_with(prefix.as_bytes()));
                self.log.push(format!("Responded({})", response.status));
            }
        }
    }

    /// Frames a read wrote besides its event's: Pongs, and none while backlogged.
    fn check_pongs(&self, frames: &[(OpCode, Vec<u8>)]) {
        assert!(frames.iter().all(|(op, _)| *op == OpCode::Pong), "{frames:?}");
        assert!(!self.backlogged || frames.is_empty(), "Pong while backlogged: {frames:?}");
    }

    fn timeout(&mut self) {
        let due = self.conn.poll_timeout();
        let was = self.conn.state();
        let before = self.out.len();
        if was != State::Closed && !self.timed_out {
            // Every live state has a deadline: the handshake's, the keepalive's (configured
            // here), or the closing handshake's.
            assert!(due.is_some(), "no timer in {was:?}");
        }
        let event = self.conn.handle_timeout(self.now, &mut self.out);
        let now = self.conn.state();
        trace(format_args!(
            "{}: timeout (due {due:?}) {was:?} -> {now:?}: {event:?}, wrote {:x?}",
            self.name(),
            &self.out[before..]
        ));
        if due.is_none_or(|due| self.now < due) {
            assert!(event.is_none(), "{event:?} before its time ({due:?})");
            assert_eq!(self.out.len(), before, "timer output before its time");
            assert_eq!(now, was);
            return;
        }
        match event {
            None => {
                assert_eq!(now, was);
                // Only a keepalive Ping.
                if self.out.len() > before {
                    assert_eq!(was, State::Open);
                    let frames = self.check_frames(before);
                    let ping = matches!(&frames[..], [(OpCode::Ping, b)] if b.is_empty());
                    assert!(ping, "{frames:?}");
                }
            }
            Some(Event::TimedOut(state)) => {
                assert!(!self.timed_out, "timed out twice");
                assert_eq!(state, was);
                assert_eq!(now, State::Closed);
                if self.ended {
                    assert_eq!(state, State::Closed, "after the end, only the TCP close deadline");
                }
                if was == State::Open {
                    // The Pong is overdue: 1011.
                    let frames = self.check_frames(before);
                    let close = matches!(&frames[..],
                        [(OpCode::Close, b)] if b[..2] == 1011u16.to_be_bytes());
                    assert!(close, "{frames:?}");
                } else {
                    assert_eq!(self.out.len(), before, "{state:?} timed out with output");
                }
                self.log.push(format!("TimedOut({state:?})"));
                self.timed_out = true;
                self.ended = true;
            }
            Some(other) => panic!("handle_timeout returned {other:?}"),
        }
    }

    /// Checks a send: written as one frame when open, refused with nothing written otherwise.
    fn check_send(
        &mut self,
        was: State,
        before: usize,
        r: Result<(), SendError>,
        opcode: OpCode,
        payload: &[u8],
    ) {
        assert_eq!(self.conn.state(), was);
        if was == State::Open {
            assert_eq!(r, Ok(()));
            let frames = self.check_frames(before);
            assert!(matches!(&frames[..], [(op, p)] if *op == opcode && p == payload));
        } else {
            assert_eq!(r, Err(SendError::NotOpen));
            assert_eq!(self.out.len(), before);
        }
    }

    /// Checks what the server wrote since `before` (all of it since the last check) as server
    /// frames, and returns them.
    fn check_frames(&mut self, before: usize) -> Vec<(OpCode, Vec<u8>)> {
        let start = self.frames_from.expect("frames only after the 101");
        assert!(self.checked >= start && self.checked == before, "unchecked output");
        let mut frames = Vec::new();
        for f in check_server_frames(&self.out[self.checked..]) {
            if self.close_sent {
                assert!(
                    f.opcode.is_control() && f.opcode != OpCode::Close,
                    "{:?} after our Close frame",
                    f.opcode
                );
            }
            if f.opcode == OpCode::Close {
                // A valid body: empty (echoing an empty one) or a code a peer may receive.
                let body = parse_close_body(f.payload);
                assert!(body.is_ok(), "our Close body {:x?}: {body:?}", f.payload);
                self.close_sent = true;
            }
            frames.push((f.opcode, f.payload.to_vec()));
        }
        self.checked = self.out.len();
        frames
    }
}

/// Prints what happened when `FUZZ_TRACE` is set (to read a crash: `FUZZ_TRACE=1 cargo fuzz
/// run connection <input>`).
fn trace(what: std::fmt::Arguments<'_>) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
        eprintln!("{what}");
    }
}

/// A close code from any number: mostly ones a server may send, sometimes any at all (which
/// `close` must refuse unless valid).
fn close_code(n: u16) -> CloseCode {
    const DEFINED: [u16; 12] =
        [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
    match n {
        0..0x8000 => CloseCode(DEFINED[usize::from(n) % DEFINED.len()]),
        0x8000..0xF000 => CloseCode(3000 + n % 2000),
        _ => CloseCode(n % 0x1000 + 990),
    }
}
