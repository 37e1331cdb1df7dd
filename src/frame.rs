//! RFC 6455 §5.2 Base Framing Protocol: the frame header, decoded from bytes and encoded to bytes.
//!
//! ```text
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-------+-+-------------+-------------------------------+
//!  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//!  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//!  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//!  | |1|2|3|       |K|             |                               |
//!  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//!  |     Extended payload length continued, if payload len == 127  |
//!  + - - - - - - - - - - - - - - - +-------------------------------+
//!  |                               |Masking-key, if MASK set to 1  |
//!  +-------------------------------+-------------------------------+
//!  | Masking-key (continued)       |          Payload Data         |
//!  +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! [`decode_header`] takes a byte slice and returns `Ok(None)` ("need more") without consuming
//! anything when the header is not all there. It enforces every rule that the header alone can
//! break; rules that depend on the connection (masking, RSV bits an extension may use, message
//! limits, fragmentation order) are the connection's (`crate::connection`).

use crate::error::ProtocolError;

/// First byte: "FIN: 1 bit. Indicates that this is the final fragment in a message."
pub const FIN_BIT: u8 = 0x80;
/// First byte: RSV1, RSV2, RSV3.
pub const RSV_MASK: u8 = 0x70;
/// First byte: RSV1, the bit permessage-deflate (RFC 7692) uses to mark a compressed message.
pub const RSV1_BIT: u8 = 0x40;
/// First byte: "Opcode: 4 bits".
pub const OPCODE_MASK: u8 = 0x0F;
/// Second byte: "Mask: 1 bit. Defines whether the "Payload data" is masked."
pub const MASK_BIT: u8 = 0x80;
/// Second byte: "Payload length: 7 bits, 7+16 bits, or 7+64 bits".
pub const PAYLOAD_LEN_MASK: u8 = 0x7F;
/// 7-bit length value meaning "the following 2 bytes [...] are the payload length".
pub const LEN_16_BIT: u8 = 126;
/// 7-bit length value meaning "the following 8 bytes [...] are the payload length".
pub const LEN_64_BIT: u8 = 127;
/// The longest header: 2 bytes, 8 bytes of extended length, 4 bytes of masking key.
pub const MAX_HEADER_LEN: usize = 14;
/// §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// §5.2 "Opcode: 4 bits. Defines the interpretation of the "Payload data"."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// %x0 denotes a continuation frame
    Continuation,
    /// %x1 denotes a text frame
    Text,
    /// %x2 denotes a binary frame
    Binary,
    /// %x8 denotes a connection close
    Close,
    /// %x9 denotes a ping
    Ping,
    /// %xA denotes a pong
    Pong,
}

impl OpCode {
    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// §5.5: "Control frames are identified by opcodes where the most significant bit of the
    /// opcode is 1."
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

impl TryFrom<u8> for OpCode {
    type Error = ProtocolError;

    /// §5.2: "%x3-7 are reserved for further non-control frames", "%xB-F are reserved for
    /// further control frames"; "If an unknown opcode is received, the receiving endpoint MUST
    /// _Fail the WebSocket Connection_."
    fn try_from(bits: u8) -> Result<Self, Self::Error> {
        match bits {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            other => Err(ProtocolError::UnknownOpcode(other)),
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// The three RSV bits, in place (a subset of [`RSV_MASK`]).
    pub rsv: u8,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The number of bytes this header takes on the wire.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends this header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode_into(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }

    /// Writes this header into `buf` and returns its length.
    pub fn encode_into(&self, buf: &mut [u8; MAX_HEADER_LEN]) -> usize {
        buf[0] = if self.fin { FIN_BIT } else { 0 } | (self.rsv & RSV_MASK) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { MASK_BIT } else { 0 };
        // §5.2: "the minimal number of bytes MUST be used to encode the length".
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                buf[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                buf[1] = mask_bit | LEN_16_BIT;
                buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                buf[1] = mask_bit | LEN_64_BIT;
                buf[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            buf[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

/// Decodes a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a header (nothing is consumed: call again
/// with more bytes), or the header and its length in bytes. Fails on the header-level MUSTs:
/// unknown opcode, 64-bit length with the top bit set, a length not minimally encoded, a control
/// frame that is fragmented or longer than 125 bytes.
pub fn decode_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    let fin = b0 & FIN_BIT != 0;
    let opcode = OpCode::try_from(b0 & OPCODE_MASK)?;
    let masked = b1 & MASK_BIT != 0;
    let (payload_len, len_bytes) = match b1 & PAYLOAD_LEN_MASK {
        LEN_16_BIT => {
            let Some(bytes) = rest.first_chunk::<2>() else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes(*bytes));
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 2)
        }
        LEN_64_BIT => {
            let Some(bytes) = rest.first_chunk::<8>() else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(*bytes);
            // §5.2: "the most significant bit MUST be 0".
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthTopBitSet);
            }
            if len <= 0xFFFF {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 8)
        }
        len => (u64::from(len), 0),
    };
    if opcode.is_control() {
        // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST
        // NOT be fragmented." Checked here, before a byte of payload is buffered.
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if payload_len > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooLong);
        }
    }
    let mask = if masked {
        let Some(key) = rest[len_bytes..].first_chunk::<4>() else {
            return Ok(None);
        };
        Some(*key)
    } else {
        None
    };
    let header = FrameHeader { fin, rsv: b0 & RSV_MASK, opcode, mask, payload_len };
    Ok(Some((header, 2 + len_bytes + if masked { 4 } else { 0 })))
}

/// Appends an unmasked frame (as a server sends, §5.1) with FIN set to `out`.
pub fn write_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    write_frame_with_rsv(out, opcode, 0, payload);
}

/// Appends an unmasked frame with FIN set and the RSV bits `rsv` (RSV1 for a compressed
/// message, RFC 7692 §6) to `out`.
pub fn write_frame_with_rsv(out: &mut Vec<u8>, opcode: OpCode, rsv: u8, payload: &[u8]) {
    let header =
        FrameHeader { fin: true, rsv, opcode, mask: None, payload_len: payload.len() as u64 };
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    out.extend_from_slice(payload);
}

/// Appends a masked frame, as a client sends (§5.3), to `out`: the payload is copied and masked
/// with `key`. `rsv` is put in place as given (tests set reserved bits with it).
pub(crate) fn write_masked_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    key: [u8; 4],
) {
    let header =
        FrameHeader { fin, rsv, opcode, mask: Some(key), payload_len: payload.len() as u64 };
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    let start = out.len();
    out.extend_from_slice(payload);
    crate::mask::apply_mask(&mut out[start..], key, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, len: u64) -> FrameHeader {
        FrameHeader { fin, rsv: 0, opcode, mask, payload_len: len }
    }

    /// §5.7 examples, byte for byte.
    #[test]
    fn rfc_5_7_examples() {
        // "A single-frame unmasked text message"
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Text, b"Hello");
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);

        // "A single-frame masked text message"
        let masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, n) = decode_header(&masked).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Text, true, Some([0x37, 0xfa, 0x21, 0x3d]), 5));
        assert_eq!(n, 6);

        // "A fragmented unmasked text message": "Hel" then "lo".
        let (h, n) = decode_header(&[0x01, 0x03, 0x48, 0x65, 0x6c]).unwrap().unwrap();
        assert_eq!((h, n), (header(OpCode::Text, false, None, 3), 2));
        let (h, _) = decode_header(&[0x80, 0x02, 0x6c, 0x6f]).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Continuation, true, None, 2));

        // "Unmasked Ping request and masked Ping response"
        let mut ping = Vec::new();
        write_frame(&mut ping, OpCode::Ping, b"Hello");
        assert_eq!(ping, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, _) = decode_header(&pong).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Pong, true, Some([0x37, 0xfa, 0x21, 0x3d]), 5));

        // "256 bytes binary message in a single unmasked frame": 0x82 0x7E 0x0100
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Binary, &[0u8; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);

        // "64KiB binary message in a single unmasked frame": 0x82 0x7F 0x0000000000010000
        let h = header(OpCode::Binary, true, None, 65536);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(decode_header(&out).unwrap().unwrap(), (h, 10));
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(decode_header(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(decode_header(&full).unwrap().is_some());
    }

    #[test]
    fn rejects_top_bit_of_64_bit_length() {
        let buf = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(decode_header(&buf), Err(ProtocolError::LengthTopBitSet));
    }

    #[test]
    fn rejects_non_minimal_lengths() {
        assert_eq!(decode_header(&[0x82, 0x7e, 0x00, 0x7d]), Err(ProtocolError::NonMinimalLength));
        let buf = [0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(decode_header(&buf), Err(ProtocolError::NonMinimalLength));
    }

    #[test]
    fn rejects_unknown_opcodes() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(decode_header(&[0x80 | op, 0x80]), Err(ProtocolError::UnknownOpcode(op)));
        }
    }

    #[test]
    fn rejects_bad_control_frames_at_header_time() {
        // A ping declaring 126 bytes, with none of them sent yet.
        assert_eq!(
            decode_header(&[0x89, 0xfe, 0x00, 0x7e]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert_eq!(decode_header(&[0x09, 0x80]), Err(ProtocolError::FragmentedControlFrame));
    }

    #[test]
    fn encoded_len_matches_encoding() {
        for len in [0u64, 125, 126, 0xFFFF, 0x10000, 1 << 40] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = header(OpCode::Binary, true, mask, len);
                let mut out = Vec::new();
                h.encode(&mut out);
                assert_eq!(out.len(), h.encoded_len());
                assert_eq!(decode_header(&out).unwrap().unwrap(), (h, out.len()));
            }
        }
    }

    #[test]
    fn opcode_round_trip() {
        for bits in 0u8..16 {
            if let Ok(op) = OpCode::try_from(bits) {
                assert_eq!(op.bits(), bits);
                assert_eq!(op.is_control(), bits >= 8);
            }
        }
    }

    proptest::proptest! {
        /// The fuzz oracle on stable: any bytes decode to a header that re-encodes to exactly
        /// the bytes it came from, or need more (only below 14 bytes), or fail; never panic.
        #[test]
        fn decode_is_exact_or_refuses(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20)) {
            match decode_header(&bytes) {
                Ok(Some((header, n))) => {
                    let mut again = Vec::new();
                    header.encode(&mut again);
                    proptest::prop_assert_eq!(&again[..], &bytes[..n]);
                    if header.opcode.is_control() {
                        proptest::prop_assert!(header.fin && header.payload_len <= 125);
                    }
                }
                Ok(None) => proptest::prop_assert!(bytes.len() < MAX_HEADER_LEN),
                Err(_) => {}
            }
        }
    }
}
