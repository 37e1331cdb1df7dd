//! One WebSocket connection, either side, as a state machine with no I/O: bytes and time in,
//! events and bytes out.
//!
//! # Call order
//!
//! 1. [`Connection::new`] when a server accepts a TCP connection; [`Connection::client`] when a
//!    client's TCP connection opens (it writes the opening handshake, and the rest of this
//!    list applies with [`Event::Upgraded`] in place of step 3).
//! 2. [`Connection::receive`] with bytes read from the socket, again and again while it consumes
//!    less than it was given; each call returns at most one [`Event`]. Bytes it writes into `out`
//!    (pongs, close frames, refusals) are to be sent, in order.
//! 3. On [`Event::Request`], look at [`Connection::request`] and answer it with
//!    [`Connection::accept`] (the `101`) or [`Connection::respond`] (any other HTTP response),
//!    before receiving more: until then, `receive` consumes nothing.
//! 4. [`Connection::send_text`], [`Connection::send_binary`], [`Connection::ping`],
//!    [`Connection::close`] to send; they append frames to `out`.
//! 5. [`Connection::poll_timeout`] says when to call [`Connection::handle_timeout`].
//! 6. Once [`Connection::state`] is [`State::Closed`] and `out` is sent, the TCP connection is
//!    closed by the server (§7.1.1: "the underlying TCP connection, in most normal cases, SHOULD
//!    be closed first by the server"); a client waits for that, up to the close timeout
//!    ([`Connection::closes_tcp_first`]).
//!
//! Receiving is streaming: a frame's payload is unmasked and validated as its bytes arrive, so
//! invalid UTF-8 fails the connection in the read where it appears (Autobahn 6.4.x), and limits
//! are checked from the header before any payload is buffered.
//!
//! The code is in parts: this file holds the state, the configuration, the events and time;
//! `opening.rs` reads the opening handshake and sends its answer (§4.2), `client.rs` is what
//! only a client does (§4.1, §5.3), `frames.rs` reads frames (§5) once the connection is open,
//! `sending.rs` writes them, `compression.rs` is permessage-deflate (RFC 7692).

mod client;
mod compression;
mod frames;
mod opening;
mod sending;
mod trace;

use crate::close::CloseCode;
use crate::error::ProtocolError;
use crate::handshake::{self, HandshakeError, Request, UpgradeError, Upgraded};
use crate::message::Message;
use crate::state::State;
use crate::utf8::Utf8Validator;
use compression::Compression;
use frames::{AT_FRAME_START, FrameState, Kind};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use sending::SendError;

/// Limits and choices for every connection of a server. Which requests are welcome is not
/// here: the application answers each one (see [`Connection::request`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    /// Time from accept to the end of the opening handshake; not extended by new bytes.
    pub handshake_timeout: Duration,
    /// Time allowed for the peer to answer our Close frame, and then to close TCP.
    pub close_timeout: Duration,
    /// Send a Ping this long after the last Pong (or the opening); `None`: never.
    pub ping_interval: Option<Duration>,
    /// Fail the connection (1011) when a Pong has not come this long after our Ping.
    pub pong_timeout: Duration,
    /// Record a line per handshake, frame and state change (`Connection::take_trace`).
    pub trace: bool,
    /// permessage-deflate (RFC 7692): what a server agrees to when a client offers it, and
    /// what a client offers; `None`: never. On by default.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 128 * 1024,
            max_head_size: handshake::DEFAULT_MAX_HEAD,
            max_headers: handshake::DEFAULT_MAX_HEADERS,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            trace: false,
            #[cfg(feature = "deflate")]
            deflate: Some(crate::deflate::DeflateConfig::default()),
        }
    }
}

/// Something that happened on the connection.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// §4.2.1: a complete request head arrived and is well-formed HTTP: a valid opening
    /// handshake, or a plain HTTP request (for a page). Look at [`Connection::request`] and
    /// answer with [`Connection::accept`] or [`Connection::respond`].
    Request,
    /// The core refused the request itself (a malformed or oversized head, or an opening
    /// handshake that breaks §4.2.1) and wrote the HTTP error; close once it is sent.
    Rejected(HandshakeError),
    /// A complete text or binary message.
    Message(Message<'a>),
    /// §7.1.5: the peer's Close frame arrived (and was answered, if we had not closed first).
    CloseReceived {
        /// The peer's code; `None` for an empty close body (1005, "no status received").
        code: Option<CloseCode>,
        /// The peer's reason.
        reason: String,
    },
    /// §7.1.7: the peer broke the protocol; a Close frame with the matching code was written.
    Failed(ProtocolError),
    /// A client's opening handshake was answered with a 101 that passed §4.1's checks: the
    /// connection is open.
    Upgraded(Upgraded),
    /// A client's opening handshake failed: refused (any status but 101, with what the server
    /// said), or answered in a way §4.1 says to fail. Close the TCP connection.
    UpgradeFailed(UpgradeError),
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

/// Which side of the connection an endpoint is (§1.3: "the client" sends the opening
/// handshake and masks its frames; "the server" answers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that accepted the TCP connection.
    Server,
    /// The side that opened it.
    Client,
}

/// Buffers that most connections never need, allocated together when one of them is.
#[derive(Debug, Default)]
struct Extras {
    /// Opening handshake bytes that arrived in pieces.
    head: Vec<u8>,
    /// The request waiting for the application's answer.
    request: Option<Request>,
    /// A control frame's payload that is arriving in pieces.
    control: Vec<u8>,
    /// The payload of the latest Ping not answered yet (only while Pongs are held).
    owed_pong: Option<Vec<u8>>,
    /// Trace lines not yet taken, when tracing is on.
    trace: Option<Vec<String>>,
    /// A client's own state (its masking keys): a client's connection keeps it for life.
    client: Option<client::ClientSide>,
    /// The inflater of the compressed message in progress, or the connection's own when the
    /// peer takes context over (RFC 7692 §7.1.1.2).
    #[cfg(feature = "deflate")]
    inflater: Option<Box<crate::deflate::Decompressor>>,
    /// Our compressor, when we take context over (RFC 7692 §7.1.1.1).
    #[cfg(feature = "deflate")]
    deflater: Option<Box<crate::deflate::Compressor>>,
}

impl Extras {
    fn is_idle(&self) -> bool {
        #[cfg(feature = "deflate")]
        if self.inflater.is_some() || self.deflater.is_some() {
            return false;
        }
        self.head.capacity() == 0
            && self.request.is_none()
            && self.control.capacity() == 0
            && self.owed_pong.is_none()
            && self.trace.is_none()
            && self.client.is_none()
    }
}

/// One WebSocket connection, a server's or a client's. See the module docs for the call order.
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
    /// The message in progress is compressed (RSV1 on its first frame, RFC 7692 §6).
    inflating: bool,
    message_len: u64,
    /// Frames in the data message in progress.
    fragments: u32,
    /// §5.4: the message being reassembled from its fragments (or from several reads).
    assembled: Vec<u8>,
    utf8: Utf8Validator,
    /// RSV bits the negotiated extensions allow (RSV1 with permessage-deflate).
    allowed_rsv: u8,
    /// What permessage-deflate agreed to, if it did.
    compression: Option<Compression>,
    /// §5.5.3: answer only the latest Ping, later (the peer is not taking our output).
    latest_pong_only: bool,
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
            inflating: false,
            message_len: 0,
            fragments: 0,
            assembled: Vec::new(),
            utf8: Utf8Validator::new(),
            allowed_rsv: 0,
            compression: None,
            latest_pong_only: false,
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
            extras.request = None;
            if next == State::Closed {
                extras.owed_pong = None;
                extras.control = Vec::new();
            }
        }
        if next == State::Closed {
            self.assembled = Vec::new();
            self.message = None;
            self.drop_codecs();
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
        self.receive_leaving_partial(input, 0, now, out)
    }

    /// Like [`Connection::receive`], except that a frame (§5.2) that is not complete at the end
    /// of the input, and is at most `max_partial` bytes long in all, is left unconsumed
    /// (`consumed < input.len()` and no event): the caller presents those bytes again with
    /// more after them.
    ///
    /// An event loop with one large read buffer uses this to decode every frame where it lies,
    /// instead of copying the pieces of a frame that straddles two reads into the connection:
    /// it moves the partial frame to the front of its buffer and reads more behind it. When the
    /// socket has nothing more for now, it hands the rest to [`Connection::receive`], which
    /// keeps it.
    pub fn receive_leaving_partial<'a>(
        &mut self,
        input: &'a mut [u8],
        max_partial: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Received<'a> {
        match self.state {
            State::Connecting => self.receive_handshake(input, now, out),
            State::Open | State::CloseSent => self.receive_frames(input, max_partial, now, out),
            // §7.1.7: after failing or closing, nothing more from the peer is interpreted.
            State::Closed => Received { consumed: input.len(), event: None },
        }
    }

    /// Offers a spare buffer to reassemble a message that arrives in pieces (§5.4, or one frame
    /// over several reads); gives it back if the connection has one already. With
    /// [`Connection::take_reassembly_buffer`], this lets an event loop recycle buffers instead
    /// of allocating one per fragmented message.
    pub fn provide_reassembly_buffer(&mut self, mut buf: Vec<u8>) -> Option<Vec<u8>> {
        if self.assembled.capacity() > 0 {
            return Some(buf);
        }
        buf.clear();
        self.assembled = buf;
        None
    }

    /// Takes back the reassembly buffer while no message is being reassembled, so that an idle
    /// connection holds none.
    pub fn take_reassembly_buffer(&mut self) -> Option<Vec<u8>> {
        (self.message.is_none() && self.assembled.capacity() > 0)
            .then(|| std::mem::take(&mut self.assembled))
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
                self.write_frame(out, crate::frame::OpCode::Ping, b"");
                (self.deadline, self.timer) = (Some(now + self.config.pong_timeout), Timer::Pong);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
