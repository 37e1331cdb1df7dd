//! Reading frames once the connection is open (RFC 6455 §5): headers decoded as they arrive,
//! payloads unmasked and validated piece by piece, messages delivered in place when they fit
//! one read, control frames answered, violations turned into a Close with their code.

use super::{Connection, Event, Received, Role, Timer};
use crate::close::parse_close_body;
use crate::error::ProtocolError;
use crate::frame::{self, FrameHeader, MAX_HEADER_LEN, OpCode, RSV1_BIT};
use crate::mask::apply_mask;
use crate::message::{Message, Payload, Text};
use crate::state::State;
use crate::utf8::Utf8Validator;
use std::time::Instant;

/// Where the decoder is inside the current frame.
#[derive(Clone, Copy, Debug)]
pub(super) enum FrameState {
    /// Between frames, with `len` bytes of a header that arrived in an earlier read.
    Header { stash: [u8; MAX_HEADER_LEN], len: u8 },
    /// Inside a frame's payload, `received` of its bytes already taken.
    Payload { header: FrameHeader, received: u64 },
}

pub(super) const AT_FRAME_START: FrameState =
    FrameState::Header { stash: [0; MAX_HEADER_LEN], len: 0 };

/// The kind of data message being assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Binary,
}

/// What the frame loop decided, before the event is built (so that borrowed payloads can be
/// cut from the input after the loop).
enum Step {
    NeedMore,
    Deliver(Event<'static>),
    DeliverBorrowed { kind: Kind, start: usize, end: usize },
}

impl Connection {
    pub(super) fn receive_frames<'a>(
        &mut self,
        input: &'a mut [u8],
        max_tail: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Received<'a> {
        let mut pos = 0;
        let step = loop {
            match self.next_step(input, &mut pos, max_tail, now, out) {
                Ok(Some(step)) => break step,
                Ok(None) => continue,
                Err(error) => break Step::Deliver(self.fail(error, now, out)),
            }
        };
        if self.state == State::Closed {
            // Nothing after a Close frame or a failure is interpreted.
            pos = input.len();
        }
        let event = match step {
            Step::NeedMore => None,
            Step::Deliver(event) => Some(event),
            Step::DeliverBorrowed { kind, start, end } => {
                let payload = Payload::Borrowed(&input[start..end]);
                Some(Event::Message(match kind {
                    Kind::Text => Message::Text(Text::validated(payload)),
                    Kind::Binary => Message::Binary(payload),
                }))
            }
        };
        Received { consumed: pos, event }
    }

    /// Advances through one frame header or one piece of payload. `Ok(None)` means "go on".
    fn next_step(
        &mut self,
        input: &mut [u8],
        pos: &mut usize,
        max_tail: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<Step>, ProtocolError> {
        match self.frame {
            FrameState::Header { mut stash, len } => {
                let len = usize::from(len);
                let frame_start = *pos;
                let (header, used) = if len == 0 {
                    match frame::decode_header(&input[*pos..])? {
                        Some(found) => found,
                        // A partial header the caller will present again.
                        None if input.len() - *pos <= max_tail => {
                            return Ok(Some(Step::NeedMore));
                        }
                        None => {
                            self.stash_header(&input[*pos..], 0);
                            *pos = input.len();
                            return Ok(Some(Step::NeedMore));
                        }
                    }
                } else {
                    let take = (MAX_HEADER_LEN - len).min(input.len() - *pos);
                    stash[len..len + take].copy_from_slice(&input[*pos..*pos + take]);
                    match frame::decode_header(&stash[..len + take])? {
                        Some((header, header_len)) => (header, header_len - len),
                        None => {
                            self.stash_header(&input[*pos..*pos + take], len);
                            *pos += take;
                            return Ok(Some(Step::NeedMore));
                        }
                    }
                };
                *pos += used;
                self.frame = AT_FRAME_START;
                self.check_header(&header)?;
                let frame_len = (used as u64).saturating_add(header.payload_len);
                if len == 0
                    && frame_len > (input.len() - frame_start) as u64
                    && frame_len <= max_tail as u64
                {
                    // The frame is checked but incomplete: leave it all for the caller to
                    // present again, whole, with the rest of its bytes.
                    *pos = frame_start;
                    return Ok(Some(Step::NeedMore));
                }
                self.on_header(header, input, pos, now, out)
            }
            FrameState::Payload { header, received } => {
                let remaining = header.payload_len - received;
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len() - *pos);
                let chunk = &mut input[*pos..*pos + take];
                *pos += take;
                if let Some(key) = header.mask {
                    apply_mask(chunk, key, (received % 4) as usize);
                }
                if header.opcode.is_control() {
                    self.extras().control.extend_from_slice(chunk);
                } else if let Some(compression) = self.compression.filter(|_| self.inflating) {
                    // RFC 7692 §7.2.2: inflated as it arrives, into the message's buffer.
                    self.inflate_piece(compression, chunk)?;
                } else {
                    if self.message == Some(Kind::Text) {
                        self.utf8.feed(chunk).map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    self.assembled.extend_from_slice(chunk);
                }
                let received = received + take as u64;
                if received < header.payload_len {
                    self.frame = FrameState::Payload { header, received };
                    return Ok(Some(Step::NeedMore));
                }
                self.frame = AT_FRAME_START;
                if header.opcode.is_control() {
                    let payload = std::mem::take(&mut self.extras().control);
                    self.tidy_extras();
                    return self.on_control(header.opcode, &payload, now, out);
                }
                self.finish_data_frame(header.fin)
            }
        }
    }

    fn stash_header(&mut self, bytes: &[u8], len: usize) {
        let mut stash = match self.frame {
            FrameState::Header { stash, .. } => stash,
            FrameState::Payload { .. } => [0; MAX_HEADER_LEN],
        };
        stash[len..len + bytes.len()].copy_from_slice(bytes);
        self.frame = FrameState::Header { stash, len: (len + bytes.len()) as u8 };
    }

    /// The checks that depend on the connection, at header time, before any payload is kept.
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that defines meanings for
        // non-zero values."
        if header.rsv & !self.allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        // RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of control
        // frames and non-first fragments of a data message. An endpoint receiving such a frame
        // MUST _Fail the WebSocket Connection_."
        if header.rsv & RSV1_BIT != 0
            && (header.opcode.is_control() || header.opcode == OpCode::Continuation)
        {
            return Err(ProtocolError::CompressedBitMisplaced);
        }
        match (self.role(), header.mask) {
            // §5.1: "The server MUST close the connection upon receiving a frame that is not
            // masked."
            (Role::Server, None) => return Err(ProtocolError::UnmaskedFrame),
            // §5.1: "A client MUST close a connection if it detects a masked frame."
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.opcode.is_control() {
            return Ok(());
        }
        match (header.opcode, self.message) {
            // §5.4: a continuation frame only follows "a single frame with the FIN bit clear and
            // the opcode other than 0".
            (OpCode::Continuation, None) => return Err(ProtocolError::ContinuationWithoutStart),
            // §5.4: "the fragments of one message MUST NOT be interleaved between the fragments
            // of another message".
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::DataFrameInsideMessage);
            }
            (OpCode::Continuation, Some(_)) if self.fragments >= self.config.max_fragments => {
                return Err(ProtocolError::TooManyFragments);
            }
            _ => {}
        }
        // §10.4: "implementations SHOULD impose an appropriate limit on frame sizes and the total
        // message size after reassembly from multiple frames". Checked before allocating.
        if header.payload_len > self.config.max_frame_size {
            return Err(ProtocolError::FrameTooBig);
        }
        if self.message_len.saturating_add(header.payload_len) > self.config.max_message_size {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(())
    }

    fn on_header(
        &mut self,
        header: FrameHeader,
        input: &mut [u8],
        pos: &mut usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<Step>, ProtocolError> {
        let available = (input.len() - *pos) as u64;
        let whole = header.payload_len <= available;
        let here = usize::try_from(header.payload_len.min(available)).unwrap_or(0);
        self.trace_received(&header, &input[*pos..*pos + here]);
        if whole && header.opcode.is_control() {
            // The whole control frame is here: handle it where it lies.
            let end = *pos + header.payload_len as usize;
            let payload = &mut input[*pos..end];
            *pos = end;
            if let Some(key) = header.mask {
                apply_mask(payload, key, 0);
            }
            return self.on_control(header.opcode, payload, now, out);
        }
        let compressed = header.rsv & RSV1_BIT != 0;
        if whole && header.fin && header.opcode != OpCode::Continuation && !compressed {
            // The common case: a whole single-frame message in this read. Deliver it in place.
            let (start, end) = (*pos, *pos + header.payload_len as usize);
            *pos = end;
            if let Some(key) = header.mask {
                apply_mask(&mut input[start..end], key, 0);
            }
            let kind = if header.opcode == OpCode::Text {
                std::str::from_utf8(&input[start..end]).map_err(|_| ProtocolError::InvalidUtf8)?;
                Kind::Text
            } else {
                Kind::Binary
            };
            return Ok(Some(Step::DeliverBorrowed { kind, start, end }));
        }
        // The frame's payload arrives in pieces, or belongs to a fragmented message.
        // A compressed message is inflated into the reassembly buffer, however it arrives.
        match header.opcode {
            OpCode::Text => self.start_message(Kind::Text, compressed),
            OpCode::Binary => self.start_message(Kind::Binary, compressed),
            _ => {}
        }
        if !header.opcode.is_control() {
            self.message_len += header.payload_len;
            self.fragments += 1;
        }
        self.frame = FrameState::Payload { header, received: 0 };
        Ok(None)
    }

    fn start_message(&mut self, kind: Kind, compressed: bool) {
        self.message = Some(kind);
        self.inflating = compressed;
        self.message_len = 0;
        self.fragments = 0;
        self.utf8 = Utf8Validator::new();
    }

    fn finish_data_frame(&mut self, fin: bool) -> Result<Option<Step>, ProtocolError> {
        if !fin {
            return Ok(None);
        }
        if let Some(compression) = self.compression.filter(|_| self.inflating) {
            self.inflate_end(compression)?;
            self.inflating = false;
        }
        let kind = self.message.take();
        self.message_len = 0;
        self.fragments = 0;
        let payload = Payload::Owned(std::mem::take(&mut self.assembled));
        let message = match kind {
            Some(Kind::Text) => {
                // §8.1: the message must not end inside a code point.
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                Message::Text(Text::validated(payload))
            }
            _ => Message::Binary(payload),
        };
        Ok(Some(Step::Deliver(Event::Message(message))))
    }

    fn on_control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<Step>, ProtocolError> {
        match opcode {
            OpCode::Ping => {
                // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
                // response [...]. A Pong frame sent in response to a Ping frame must have
                // identical "Application data" as found in the message body of the Ping frame".
                // §5.5.3: "If an endpoint receives a Ping frame and has not yet sent Pong frame(s)
                // in response to previous Ping frame(s), the endpoint MAY elect to send a Pong
                // frame for only the most recently processed Ping frame." While the peer does not
                // read, that is what we do: one Pong owed, however many Pings.
                // Our own Close does not end the duty: only a Close received does (then the state
                // is Closed and nothing more is read).
                if matches!(self.state, State::Open | State::CloseSent) {
                    if self.latest_pong_only {
                        let owed = self.extras().owed_pong.get_or_insert_with(Vec::new);
                        owed.clear();
                        owed.extend_from_slice(payload);
                    } else {
                        if let Some(extras) = &mut self.extras {
                            extras.owed_pong = None;
                        }
                        self.write_frame(out, OpCode::Pong, payload);
                    }
                }
                Ok(None)
            }
            // §5.5.3: "A Pong frame MAY be sent unsolicited. [...] A response to an unsolicited
            // Pong frame is not expected."
            OpCode::Pong => {
                if self.timer == Timer::Pong {
                    self.deadline = self.config.ping_interval.map(|interval| now + interval);
                    self.timer = Timer::Ping;
                }
                Ok(None)
            }
            OpCode::Close => {
                let body = parse_close_body(payload)?;
                if self.state == State::Open {
                    // §5.5.1: "If an endpoint receives a Close frame and did not previously send
                    // a Close frame, the endpoint MUST send a Close frame in response. [...] it
                    // typically echos the status code it received."
                    self.write_close(out, body.code, "");
                }
                let event =
                    Event::CloseReceived { code: body.code, reason: body.reason.to_owned() };
                self.transition(State::Closed, Some(now));
                Ok(Some(Step::Deliver(event)))
            }
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                unreachable!("on_control is only called for control opcodes")
            }
        }
    }

    /// §7.1.7 _Fail the WebSocket Connection_: send a Close frame with the error's code (unless
    /// one was sent already), then stop interpreting input.
    fn fail(&mut self, error: ProtocolError, now: Instant, out: &mut Vec<u8>) -> Event<'static> {
        if self.state == State::Open {
            self.write_close(out, Some(error.close_code()), error.reason());
        }
        self.transition(State::Closed, Some(now));
        Event::Failed(error)
    }
}
