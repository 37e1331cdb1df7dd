//! Why a WebSocket connection was failed: one variant per MUST of RFC 6455 that a peer can break,
//! each mapped to the close code the server sends (§7.4.1) before closing.
//!
//! §7.1.7: "If _The WebSocket Connection is Established_ prior to the point where the endpoint is
//! required to _Fail the WebSocket Connection_, the endpoint SHOULD send a Close frame with an
//! appropriate status code before proceeding to _Close the WebSocket Connection_."

use crate::close::CloseCode;
use std::fmt;

/// A violation by the peer that fails the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// §5.2: "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated that
    /// defines meanings for non-zero values."
    ReservedBitsSet,
    /// §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
    /// Connection_."
    UnknownOpcode(u8),
    /// §5.2: "If 127, the following 8 bytes interpreted as a 64-bit unsigned integer (the most
    /// significant bit MUST be 0) are the payload length."
    LengthTopBitSet,
    /// §5.2: "in all cases, the minimal number of bytes MUST be used to encode the length".
    NonMinimalLength,
    /// §5.1: "The server MUST close the connection upon receiving a frame that is not masked."
    UnmaskedFrame,
    /// §5.1: "A client MUST close a connection if it detects a masked frame."
    MaskedFrame,
    /// §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    ControlFrameTooLong,
    /// §5.5: "[control frames] MUST NOT be fragmented."
    FragmentedControlFrame,
    /// §5.4: a continuation frame arrived when no fragmented message was in progress.
    ContinuationWithoutStart,
    /// §5.4: "the fragments of one message MUST NOT be interleaved between the fragments of
    /// another message": a new text or binary frame arrived inside a fragmented message.
    DataFrameInsideMessage,
    /// §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
    /// stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
    /// Connection_." Applies to text messages.
    InvalidUtf8,
    /// §5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned
    /// integer" — a close body of exactly one byte has no room for it.
    CloseBodyTooShort,
    /// §7.4: a close code that an endpoint must not send or that is not defined (§7.4.1, §7.4.2).
    InvalidCloseCode(u16),
    /// §5.5.1: the close reason "is not guaranteed to be human readable" but is UTF-8; invalid
    /// UTF-8 there fails like text (§8.1).
    InvalidCloseReason,
    /// §10.4: a frame whose declared length is over the configured limit, refused at header time.
    FrameTooBig,
    /// §10.4: a message whose running total is over the configured limit.
    MessageTooBig,
    /// §10.4: a message split into more frames than the configured limit (a policy, 1008).
    TooManyFragments,
    /// RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of control
    /// frames and non-first fragments of a data message. An endpoint receiving such a frame
    /// MUST _Fail the WebSocket Connection_."
    CompressedBitMisplaced,
    /// RFC 7692 §7.2.2: a compressed message that does not inflate (not DEFLATE data). Closed
    /// with 1007, as for text that is not UTF-8: the frames were well formed, their payload is
    /// not what the negotiated extension says it is.
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code sent to the peer for this violation (§7.4.1).
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig | ProtocolError::MessageTooBig => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::TooManyFragments => CloseCode::POLICY_VIOLATION,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short reason for the close frame (at most 123 bytes, §5.5).
    pub fn reason(self) -> &'static str {
        match self {
            ProtocolError::ReservedBitsSet => "reserved bits set without an extension",
            ProtocolError::UnknownOpcode(_) => "unknown opcode",
            ProtocolError::LengthTopBitSet => "64-bit length with top bit set",
            ProtocolError::NonMinimalLength => "payload length not minimally encoded",
            ProtocolError::UnmaskedFrame => "client frame not masked",
            ProtocolError::MaskedFrame => "server frame masked",
            ProtocolError::ControlFrameTooLong => "control frame longer than 125 bytes",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::ContinuationWithoutStart => "continuation frame without a message",
            ProtocolError::DataFrameInsideMessage => "new data frame inside a fragmented message",
            ProtocolError::InvalidUtf8 => "invalid UTF-8 in text message",
            ProtocolError::CloseBodyTooShort => "close body of one byte",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::InvalidCloseReason => "invalid UTF-8 in close reason",
            ProtocolError::FrameTooBig => "frame too big",
            ProtocolError::MessageTooBig => "message too big",
            ProtocolError::TooManyFragments => "too many fragments in one message",
            ProtocolError::CompressedBitMisplaced => "RSV1 on a control frame or a continuation",
            ProtocolError::InvalidCompressedData => "compressed message does not inflate",
        }
    }

    /// The RFC 6455 section this error enforces, for logs and traces.
    pub fn section(self) -> &'static str {
        match self {
            ProtocolError::UnmaskedFrame | ProtocolError::MaskedFrame => "§5.1",
            ProtocolError::ReservedBitsSet
            | ProtocolError::UnknownOpcode(_)
            | ProtocolError::LengthTopBitSet
            | ProtocolError::NonMinimalLength => "§5.2",
            ProtocolError::ContinuationWithoutStart | ProtocolError::DataFrameInsideMessage => {
                "§5.4"
            }
            ProtocolError::ControlFrameTooLong | ProtocolError::FragmentedControlFrame => "§5.5",
            ProtocolError::CloseBodyTooShort | ProtocolError::InvalidCloseReason => "§5.5.1",
            ProtocolError::InvalidCloseCode(_) => "§7.4",
            ProtocolError::InvalidUtf8 => "§8.1",
            ProtocolError::FrameTooBig
            | ProtocolError::MessageTooBig
            | ProtocolError::TooManyFragments => "§10.4",
            ProtocolError::CompressedBitMisplaced => "RFC 7692 §6.1",
            ProtocolError::InvalidCompressedData => "RFC 7692 §7.2.2",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnknownOpcode(op) => {
                write!(f, "{} {op:#x} ({})", self.reason(), self.section())
            }
            ProtocolError::InvalidCloseCode(code) => {
                write!(f, "{} {code} ({})", self.reason(), self.section())
            }
            _ => write!(f, "{} ({})", self.reason(), self.section()),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_by_kind() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(ProtocolError::FrameTooBig.close_code(), CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(ProtocolError::MessageTooBig.close_code(), CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(ProtocolError::MaskedFrame.close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(ProtocolError::InvalidCloseCode(999).close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(ProtocolError::CompressedBitMisplaced.close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(ProtocolError::InvalidCompressedData.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn reasons_fit_a_control_frame() {
        // A close body is 2 bytes of code plus the reason, within the 125-byte control limit.
        for e in [
            ProtocolError::ReservedBitsSet,
            ProtocolError::UnknownOpcode(3),
            ProtocolError::DataFrameInsideMessage,
            ProtocolError::ContinuationWithoutStart,
        ] {
            assert!(e.reason().len() <= 123);
        }
    }

    #[test]
    fn the_enum_stays_small() {
        // Errors are passed by value on the hot path; keep them a couple of words at most.
        assert!(std::mem::size_of::<ProtocolError>() <= 4);
    }
}
