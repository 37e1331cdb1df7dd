//! The server side of one WebSocket connection as a state machine with no I/O: bytes and time
//! in, events and bytes out.
//!
//! # Call order
//!
//! 1. [`Connection::new`] when a TCP connection is accepted.
//! 2. [`Connection::receive`] with bytes read from the socket, again and again while it consumes
//!    less than it was given; each call returns at most one [`Event`]. Bytes it writes into `out`
//!    (the 101 response, pongs, close frames) are to be sent, in order.
//! 3. [`Connection::send_text`], [`Connection::send_binary`], [`Connection::ping`],
//!    [`Connection::close`] to send; they append frames to `out`.
//! 4. [`Connection::poll_timeout`] says when to call [`Connection::handle_timeout`].
//! 5. Once [`Connection::state`] is [`State::Closed`] and `out` is sent, the TCP connection is
//!    closed by the server (§7.1.1: "the underlying TCP connection, in most normal cases, SHOULD
//!    be closed first by the server").
//!
//! Receiving is streaming: a frame's payload is unmasked and validated as its bytes arrive, so
//! invalid UTF-8 fails the connection in the read where it appears (Autobahn 6.4.x), and limits
//! are checked from the header before any payload is buffered.
//!
//! The code is in three parts: this file holds the state, the configuration, the events and
//! the sending side; `opening.rs` reads the opening handshake (§4.2) and `frames.rs` reads
//! frames (§5) once the connection is open.

mod frames;
mod opening;
mod trace;

use crate::close::CloseCode;
use crate::error::ProtocolError;
use crate::frame::{self, OpCode};
use crate::handshake::{self, HandshakeError};
use crate::http::{self, Page};
use crate::message::Message;
use crate::state::State;
use crate::utf8::Utf8Validator;
use frames::{AT_FRAME_START, FrameState, Kind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits and choices for every connection of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// The largest frame payload accepted, checked at header time (1009 past it).
    pub max_frame_size: u64,
    /// The largest message accepted, checked as each frame header arrives (1009 past it).
    pub max_message_size: u64,
    /// The most frames one message may arrive in (1008 past it): a flood of tiny or empty
    /// fragments costs work without ever reaching the size limit.
    pub max_fragments: u32,
    /// The largest opening handshake head in bytes (431 past it).
    pub max_head_size: usize,
    /// The most header fields in the opening handshake (431 past it).
    pub max_headers: usize,
    /// Subprotocols this server speaks; the first one the client offers is chosen.
    pub subprotocols: Vec<String>,
    /// Time from accept to the end of the opening handshake; not extended by new bytes.
    pub handshake_timeout: Duration,
    /// Time allowed for the peer to answer our Close frame, and then to close TCP.
    pub close_timeout: Duration,
    /// Send a Ping this long after the last Pong (or the opening); `None`: never.
    pub ping_interval: Option<Duration>,
    /// Fail the connection (1011) when a Pong has not come this long after our Ping.
    pub pong_timeout: Duration,
    /// Pages served to plain `GET`/`HEAD` requests on the same port.
    pub pages: Vec<Page>,
    /// The one path WebSockets are opened at (`None`: any path).
    pub websocket_path: Option<String>,
    /// Record a line per handshake, frame and state change (`Connection::take_trace`).
    pub trace: bool,
    /// Origins allowed to open a WebSocket (§10.2), compared case-insensitively; empty: any.
    /// A request without an Origin header (not from a browser) is not refused by this list.
    pub allowed_origins: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 128 * 1024,
            max_head_size: handshake::DEFAULT_MAX_HEAD,
            max_headers: handshake::DEFAULT_MAX_HEADERS,
            subprotocols: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            pages: Vec::new(),
            websocket_path: None,
            allowed_origins: Vec::new(),
            trace: false,
        }
    }
}

/// What the opening handshake agreed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The request-target of the upgrade request.
    pub path: String,
    /// The chosen subprotocol, if any.
    pub protocol: Option<String>,
    /// The client's Origin header, if any.
    pub origin: Option<String>,
}

/// Something that happened on the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// §4.2.2: the handshake was accepted and the 101 response written; the connection is open.
    Opened(Opened),
    /// The handshake was refused and the HTTP error response written; close once it is sent.
    Rejected(HandshakeError),
    /// A plain HTTP request was answered with the page at this path; close once it is sent.
    Served(String),
    /// A complete text or binary message.
    Message(Message<'a>),
    /// §7.1.5: the peer's Close frame arrived (and was answered, if we had not closed first).
    Closed {
        /// The peer's code; `None` for an empty close body (1005, "no status received").
        code: Option<CloseCode>,
        /// The peer's reason.
        reason: String,
    },
    /// §7.1.7: the peer broke the protocol; a Close frame with the matching code was written.
    Failed(ProtocolError),
    /// A deadline passed in this state: the handshake's, the closing handshake's, the TCP
    /// close's, or (in `Open`) the Pong's, which writes a Close frame with 1011. The TCP
    /// connection is to be closed at once.
    TimedOut(State),
}

/// What one call to [`Connection::receive`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// How many bytes of the input were used; call again with the rest.
    pub consumed: usize,
    /// At most one event.
    pub event: Option<Event<'a>>,
}

/// Sending was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection is not open: handshake not done, or closing started (§5.5.1: "After
    /// sending a Close frame, the endpoint MUST NOT send any further data frames").
    NotOpen,
    /// §5.5: a control frame payload longer than 125 bytes.
    ControlFrameTooLong,
    /// The event loop refused to queue more for a connection that reads too slowly, and closed
    /// it with 1008 (`server::Options::max_outbox`).
    Overflow,
    /// §7.4.1: a close code an endpoint may not send (1005, 1006, 1015, or an undefined one).
    InvalidCloseCode,
}

/// What the connection's one deadline is for. A connection never waits for two things at once:
/// in `Open` it waits for the time to Ping or for a Pong; in the other states, for the state's
/// own deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// The handshake's, the closing handshake's, or the lingering TCP close's deadline.
    State,
    /// Time to send a keepalive Ping.
    Ping,
    /// The Pong for our Ping is overdue.
    Pong,
}

/// Buffers that most connections never need, allocated together when one of them is.
#[derive(Debug, Default)]
struct Extras {
    /// Opening handshake bytes that arrived in pieces.
    head: Vec<u8>,
    /// A control frame's payload that is arriving in pieces.
    control: Vec<u8>,
    /// The payload of the latest Ping not answered yet (only while backlogged).
    owed_pong: Option<Vec<u8>>,
    /// Trace lines not yet taken, when tracing is on.
    trace: Option<Vec<String>>,
}

impl Extras {
    fn is_idle(&self) -> bool {
        self.head.capacity() == 0
            && self.control.capacity() == 0
            && self.owed_pong.is_none()
            && self.trace.is_none()
    }
}

/// One server-side WebSocket connection. See the module docs for the call order.
#[derive(Debug)]
pub struct Connection {
    config: Arc<Config>,
    state: State,
    /// The next deadline, and what it is for.
    deadline: Option<Instant>,
    timer: Timer,
    frame: FrameState,
    /// The data message in progress, if its frames or bytes are arriving in pieces.
    message: Option<Kind>,
    message_len: u64,
    /// Frames in the data message in progress.
    fragments: u32,
    assembled: Vec<u8>,
    utf8: Utf8Validator,
    /// RSV bits an extension allows (none yet: permessage-deflate would allow RSV1 here).
    allowed_rsv: u8,
    /// The peer is not taking our output: answer only its latest Ping, later.
    backlogged: bool,
    /// The rarely needed buffers (`None` for almost every connection, almost all the time).
    extras: Option<Box<Extras>>,
}

impl Connection {
    /// A connection whose TCP connection was accepted at `now`, awaiting the opening handshake.
    pub fn new(config: Arc<Config>, now: Instant) -> Connection {
        let deadline = Some(now + config.handshake_timeout);
        let mut conn = Connection {
            config,
            state: State::Connecting,
            deadline,
            timer: Timer::State,
            frame: AT_FRAME_START,
            message: None,
            message_len: 0,
            fragments: 0,
            assembled: Vec::new(),
            utf8: Utf8Validator::new(),
            allowed_rsv: 0,
            backlogged: false,
            extras: None,
        };
        if conn.config.trace {
            conn.extras().trace = Some(vec![
                "§4.1 TCP connection accepted, waiting for the opening handshake".into(),
            ]);
        }
        conn
    }

    /// The rarely needed buffers, allocated on first use.
    fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Frees the rarely needed buffers once none of them holds anything.
    fn tidy_extras(&mut self) {
        if self.extras.as_ref().is_some_and(|extras| extras.is_idle()) {
            self.extras = None;
        }
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Refuses the connection before its handshake with a plain HTTP response (for example 503
    /// when the server is full): the response goes to `out`, and the connection is closed once
    /// it is sent. Does nothing after the handshake.
    pub fn refuse(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        headers: &str,
        reason: &str,
        now: Instant,
    ) {
        if self.state == State::Connecting {
            http::write_plain_response(out, status, headers, reason);
            self.transition(State::Closed, Some(now));
        }
    }

    /// Whether data messages can be sent.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The one place the state changes: checks the move is legal, sets the state's deadline, and
    /// frees buffers the new state cannot use.
    fn transition(&mut self, next: State, now: Option<Instant>) {
        debug_assert!(self.state.can_become(next), "{:?} -> {next:?}", self.state);
        self.trace_state(self.state, next);
        self.state = next;
        (self.deadline, self.timer) = match (next, now) {
            (State::Open, Some(now)) => {
                (self.config.ping_interval.map(|interval| now + interval), Timer::Ping)
            }
            (State::Open, None) => (None, Timer::Ping),
            (_, now) => (now.map(|now| now + self.config.close_timeout), Timer::State),
        };
        if let Some(extras) = &mut self.extras {
            extras.head = Vec::new();
            if next == State::Closed {
                extras.owed_pong = None;
                extras.control = Vec::new();
            }
        }
        if next == State::Closed {
            self.assembled = Vec::new();
            self.message = None;
        }
        self.tidy_extras();
    }

    /// Feeds bytes read from the peer. Unmasks them in place. Returns how many were used and at
    /// most one event; call again with the rest of the input while `consumed < input.len()`.
    pub fn receive<'a>(
        &mut self,
        input: &'a mut [u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Received<'a> {
        self.receive_keeping_tail(input, 0, now, out)
    }

    /// Like [`Connection::receive`], except that an incomplete frame of at most `max_tail`
    /// bytes that ends the input is left unconsumed (`consumed < input.len()` and no event):
    /// the caller presents those bytes again with more after them.
    ///
    /// An event loop with one large read buffer uses this to decode every frame where it lies,
    /// instead of copying the pieces of a frame that straddles two reads into the connection:
    /// it moves the tail to the front of its buffer and reads more behind it. When the socket
    /// has nothing more for now, it hands the tail to [`Connection::receive`], which keeps it.
    pub fn receive_keeping_tail<'a>(
        &mut self,
        input: &'a mut [u8],
        max_tail: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Received<'a> {
        match self.state {
            State::Connecting => self.receive_handshake(input, now, out),
            State::Open | State::CloseSent => self.receive_frames(input, max_tail, now, out),
            // §7.1.7: after failing or closing, nothing more from the peer is interpreted.
            State::Closed => Received { consumed: input.len(), event: None },
        }
    }

    /// Offers a spare buffer for assembling a message that arrives in pieces; gives it back if
    /// the connection has one already. With [`Connection::reclaim_buffer`], this lets an event
    /// loop recycle buffers instead of allocating one per straddling message.
    pub fn lend_buffer(&mut self, mut buf: Vec<u8>) -> Option<Vec<u8>> {
        if self.assembled.capacity() > 0 {
            return Some(buf);
        }
        buf.clear();
        self.assembled = buf;
        None
    }

    /// Takes back the assembly buffer while no message is being assembled, so that an idle
    /// connection holds none.
    pub fn reclaim_buffer(&mut self) -> Option<Vec<u8>> {
        (self.message.is_none() && self.assembled.capacity() > 0)
            .then(|| std::mem::take(&mut self.assembled))
    }

    /// Sends a text message.
    pub fn send_text(&mut self, out: &mut Vec<u8>, text: &str) -> Result<(), SendError> {
        self.send_frame(out, OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), SendError> {
        self.send_frame(out, OpCode::Binary, data)
    }

    /// Sends a message of the same type as `message`.
    pub fn send(&mut self, out: &mut Vec<u8>, message: &Message<'_>) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_text(out, text),
            Message::Binary(data) => self.send_binary(out, data),
        }
    }

    /// Appends only the header of a data frame whose payload the caller sends itself, right
    /// after it (an event loop writes a large payload from where it lies instead of copying it
    /// behind the header).
    pub fn send_header(
        &mut self,
        out: &mut Vec<u8>,
        message: &Message<'_>,
    ) -> Result<(), SendError> {
        self.can_send()?;
        let opcode = match message {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        let payload = message.payload();
        self.trace_sent(opcode, payload);
        let header = frame::FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        header.encode(out);
        Ok(())
    }

    /// Sends a Ping (§5.5.2) with up to 125 bytes of application data.
    pub fn ping(&mut self, out: &mut Vec<u8>, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() as u64 > frame::MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlFrameTooLong);
        }
        self.send_frame(out, OpCode::Ping, payload)
    }

    /// Starts the closing handshake (§7.1.2): sends a Close frame and waits for the peer's, up to
    /// the close timeout.
    pub fn close(
        &mut self,
        out: &mut Vec<u8>,
        code: CloseCode,
        reason: &str,
        now: Instant,
    ) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::NotOpen);
        }
        if reason.len() > 123 {
            return Err(SendError::ControlFrameTooLong);
        }
        // §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control
        // frame by an endpoint"; nor may an undefined code be sent.
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode);
        }
        self.write_close(out, Some(code), reason);
        self.transition(State::CloseSent, Some(now));
        Ok(())
    }

    /// Tells the connection whether the peer is taking its output (the event loop knows: its
    /// outbox for the peer is empty or not). While backlogged, Pings are answered only by
    /// [`Connection::write_owed_pong`], once, for the latest one.
    pub fn set_output_backlogged(&mut self, backlogged: bool) {
        self.backlogged = backlogged;
    }

    /// Writes the Pong owed for the latest Ping received while backlogged, if any.
    pub fn write_owed_pong(&mut self, out: &mut Vec<u8>) {
        let owed = self.extras.as_mut().and_then(|extras| extras.owed_pong.take());
        if let Some(payload) = owed
            && matches!(self.state, State::Open | State::CloseSent)
        {
            self.write_frame(out, OpCode::Pong, &payload);
        }
        self.tidy_extras();
    }

    /// Whether a data frame may be sent now; the event loop asks before queueing a frame that
    /// was encoded once for many connections (a broadcast).
    pub fn can_send(&self) -> Result<(), SendError> {
        if self.state == State::Open { Ok(()) } else { Err(SendError::NotOpen) }
    }

    fn send_frame(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.can_send()?;
        self.write_frame(out, opcode, payload);
        Ok(())
    }

    /// When [`Connection::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Handles the passing of time: sends a keepalive Ping when one is due, and returns
    /// [`Event::TimedOut`] when a deadline has passed (the TCP connection is then to be closed
    /// at once).
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<Event<'static>> {
        let was = self.state;
        if self.deadline.is_none_or(|deadline| now < deadline) {
            return None;
        }
        self.deadline = None;
        match self.timer {
            Timer::State => {
                if was != State::Closed {
                    self.transition(State::Closed, None);
                }
                Some(Event::TimedOut(was))
            }
            Timer::Pong => {
                // The peer has not answered a Ping: it is gone, or not reading.
                self.write_close(out, Some(CloseCode::INTERNAL_ERROR), "ping timeout");
                self.transition(State::Closed, None);
                Some(Event::TimedOut(was))
            }
            Timer::Ping => {
                // §5.5.2: "A Ping frame MAY be sent [...] as a keepalive or as a means to verify
                // that the remote endpoint is still responsive."
                self.write_frame(out, OpCode::Ping, b"");
                (self.deadline, self.timer) = (Some(now + self.config.pong_timeout), Timer::Pong);
                None
            }
        }
    }
}

impl Connection {
    /// Appends a frame we send (unmasked, FIN set) to `out`.
    fn write_frame(&mut self, out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
        self.trace_sent(opcode, payload);
        frame::write_frame(out, opcode, payload);
    }

    /// Appends a Close frame with an optional code and a reason (only sent with a code).
    fn write_close(&mut self, out: &mut Vec<u8>, code: Option<CloseCode>, reason: &str) {
        let mut body = [0u8; 125];
        let len = match code {
            None => 0,
            Some(code) => {
                let reason = &reason.as_bytes()[..reason.len().min(123)];
                body[..2].copy_from_slice(&code.0.to_be_bytes());
                body[2..2 + reason.len()].copy_from_slice(reason);
                2 + reason.len()
            }
        };
        self.write_frame(out, OpCode::Close, &body[..len]);
    }
}

#[cfg(test)]
mod tests;
