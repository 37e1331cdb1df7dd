//! The sending side of a connection (RFC 6455 §5.1, §5.5, §7.1.2): data frames, Pings, the
//! Close frame, and the Pongs owed for the peer's Pings.

use super::Connection;
use crate::close::CloseCode;
use crate::frame::{self, OpCode};
use crate::message::Message;
use crate::state::State;
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
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::NotOpen => "the connection is not open",
            SendError::ControlFrameTooLong => "control frame payload over 125 bytes",
            SendError::Overflow => "the peer reads too slowly: its queue is over the limit",
            SendError::InvalidCloseCode => "close code that may not be sent",
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

    /// Appends only the header of a data frame for `message`; the caller sends its payload
    /// right after it (an event loop writes a large payload from where it lies instead of
    /// copying it behind the header).
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

    /// Appends a frame we send (unmasked, FIN set) to `out`.
    pub(super) fn write_frame(&mut self, out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
        self.trace_sent(opcode, payload);
        frame::write_frame(out, opcode, payload);
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
