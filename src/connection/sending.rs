//! The sending side of a connection (RFC 6455 §5.1, §5.5, §7.1.2): data frames, Pings, the
//! Close frame, and the Pongs owed for the peer's Pings.

use super::{Connection, Role};
use crate::close::CloseCode;
use crate::frame::{self, OpCode, RSV1_BIT};
use crate::message::Message;
use crate::shared::SharedFrame;
use crate::state::State;
use bytes::Bytes;
use std::time::Instant;

/// Sending was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// `send_header` for a message that permessage-deflate compresses: send it whole instead.
    Compressed,
    /// `send_header` on a client's connection: its payload is masked (§5.3), so the header
    /// alone cannot be sent ahead of it.
    Masked,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::NotOpen => "the connection is not open",
            SendError::ControlFrameTooLong => "control frame payload over 125 bytes",
            SendError::Overflow => "the peer reads too slowly: its queue is over the limit",
            SendError::InvalidCloseCode => "close code that may not be sent",
            SendError::Compressed => "the message is compressed: its header alone cannot be sent",
            SendError::Masked => "a client's payload is masked: its header alone cannot be sent",
        })
    }
}

impl std::error::Error for SendError {}

impl Connection {
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

    /// Whether a message of `len` bytes would be sent compressed (permessage-deflate): its
    /// payload is then not what goes on the wire, so [`Connection::send_header`] cannot be used.
    pub fn compresses(&self, len: usize) -> bool {
        self.compression_for(len).is_some()
    }

    /// Appends only the header of a data frame for `message`; the caller sends its payload
    /// right after it (an event loop writes a large payload from where it lies instead of
    /// copying it behind the header). Refused for a message that would be compressed
    /// ([`Connection::compresses`]), and on a client's connection (its payloads are masked).
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
        if self.compresses(payload.len()) {
            return Err(SendError::Compressed);
        }
        if self.role() == Role::Client {
            return Err(SendError::Masked);
        }
        self.trace_sent(opcode, 0, None, payload);
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

    /// §5.5.3: "If an endpoint receives a Ping frame and has not yet sent Pong frame(s) in
    /// response to previous Ping frame(s), the endpoint MAY elect to send a Pong frame for only
    /// the most recently processed Ping frame."
    ///
    /// While `latest_only` is set (the event loop knows the peer is not taking our output), each
    /// Ping replaces the Pong owed for the one before it, instead of adding to a queue the peer
    /// does not read. When it is cleared, the Pong owed, if any, is written to `out`.
    pub fn pong_latest_only(&mut self, latest_only: bool, out: &mut Vec<u8>) {
        self.latest_pong_only = latest_only;
        if latest_only {
            return;
        }
        let owed = self.extras.as_mut().and_then(|extras| extras.owed_pong.take());
        if let Some(payload) = owed
            && matches!(self.state, State::Open | State::CloseSent)
        {
            self.write_frame(out, OpCode::Pong, &payload);
        }
        self.tidy_extras();
    }

    /// Whether a data frame may be sent now.
    pub fn can_send(&self) -> Result<(), SendError> {
        if self.state == State::Open { Ok(()) } else { Err(SendError::NotOpen) }
    }

    /// The bytes to queue for this connection for a message encoded once for many (a
    /// broadcast): the shared frame itself, or, when this connection compresses messages of
    /// its size, its compressed form (made once per window size and shared too, unless this
    /// connection takes context over). Refused when a data frame may not be sent now. A
    /// client's connection cannot share frames (each is masked with its own key): it gets
    /// its own copy.
    pub fn frame_for(&mut self, frame: &SharedFrame) -> Result<Bytes, SendError> {
        self.can_send()?;
        if self.role() == Role::Client {
            let mut out = Vec::new();
            self.send_frame(&mut out, frame.opcode(), frame.payload())?;
            return Ok(Bytes::from(out));
        }
        let bytes = match self.compression_for(frame.payload().len()) {
            Some(compression) => self.deflate_shared(compression, frame),
            None => frame.bytes().clone(),
        };
        self.trace_shared_frame(&bytes);
        Ok(bytes)
    }

    fn send_frame(
        &mut self,
        out: &mut Vec<u8>,
        opcode: OpCode,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.can_send()?;
        // RFC 7692 §6: a data message is compressed, and its one frame has RSV1 set; control
        // frames never are.
        match self.compression_for(payload.len()).filter(|_| !opcode.is_control()) {
            Some(compression) => {
                let compressed = self.deflate_payload(compression, payload);
                self.put_frame(out, opcode, RSV1_BIT, &compressed);
            }
            None => self.write_frame(out, opcode, payload),
        }
        Ok(())
    }

    /// Appends an uncompressed frame we send (FIN set) to `out`.
    pub(super) fn write_frame(&mut self, out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
        self.put_frame(out, opcode, 0, payload);
    }

    /// Every frame we send goes out here: unmasked from a server, masked with a fresh key
    /// from a client (§5.1, §5.3).
    fn put_frame(&mut self, out: &mut Vec<u8>, opcode: OpCode, rsv: u8, payload: &[u8]) {
        let mask = self.next_mask();
        self.trace_sent(opcode, rsv, mask, payload);
        match mask {
            None => frame::write_frame_with_rsv(out, opcode, rsv, payload),
            Some(key) => frame::write_masked_frame(out, true, rsv, opcode, payload, key),
        }
    }

    /// Appends a Close frame with an optional code and a reason (only sent with a code).
    pub(super) fn write_close(&mut self, out: &mut Vec<u8>, code: Option<CloseCode>, reason: &str) {
        let mut body = [0u8; 125];
        let len = match code {
            None => 0,
            Some(code) => {
                // At most 123 bytes of reason, cut at a character boundary so it stays UTF-8.
                let mut end = reason.len().min(123);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                let reason = &reason.as_bytes()[..end];
                body[..2].copy_from_slice(&code.0.to_be_bytes());
                body[2..2 + reason.len()].copy_from_slice(reason);
                2 + reason.len()
            }
        };
        self.write_frame(out, OpCode::Close, &body[..len]);
    }
}
