//! A message encoded once for many connections (a broadcast): the frame is built once, and
//! every recipient's outbox holds the same bytes (`bytes::Bytes`), never a copy.
//!
//! With permessage-deflate (RFC 7692) a recipient may need the message compressed. Without
//! context takeover (the server's default) the compressed frame depends only on the message
//! and the window size, so it too is made once, the first time a recipient with that window
//! needs it, and shared by all of them.

use crate::frame::{self, OpCode};
use bytes::Bytes;
use std::sync::Arc;
#[cfg(feature = "deflate")]
use std::sync::OnceLock;

/// A frame encoded once, to be queued for many connections without copying. Cheap to clone,
/// and `Send + Sync`: it can be handed to other threads' loops.
#[derive(Clone, Debug)]
pub struct SharedFrame(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    /// The frame as sent uncompressed.
    plain: Bytes,
    /// Where the payload starts in `plain`.
    header_len: usize,
    opcode: OpCode,
    /// The frame compressed with each window size, 2^9 to 2^15, made when first needed.
    #[cfg(feature = "deflate")]
    deflated: [OnceLock<Bytes>; 7],
}

impl SharedFrame {
    /// A text message in one frame.
    pub fn text(text: &str) -> SharedFrame {
        SharedFrame::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    pub fn binary(data: &[u8]) -> SharedFrame {
        SharedFrame::encode(OpCode::Binary, data)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> SharedFrame {
        let mut out = Vec::new();
        frame::write_frame(&mut out, opcode, payload);
        let header_len = out.len() - payload.len();
        SharedFrame(Arc::new(Encoded {
            plain: Bytes::from(out),
            header_len,
            opcode,
            #[cfg(feature = "deflate")]
            deflated: Default::default(),
        }))
    }

    /// The encoded frame, uncompressed.
    pub fn bytes(&self) -> &Bytes {
        &self.0.plain
    }

    /// The message's payload.
    pub fn payload(&self) -> &[u8] {
        &self.0.plain[self.0.header_len..]
    }

    /// The message's opcode (text or binary).
    pub fn opcode(&self) -> OpCode {
        self.0.opcode
    }

    /// The frame compressed with a `window_bits` window (9-15), compressing it with `compress`
    /// the first time.
    #[cfg(feature = "deflate")]
    pub(crate) fn deflated(
        &self,
        window_bits: u8,
        compress: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> &Bytes {
        let slot = usize::from(window_bits.clamp(9, 15) - 9);
        self.0.deflated[slot].get_or_init(|| {
            let payload = compress(self.payload());
            let mut out = Vec::with_capacity(payload.len() + frame::MAX_HEADER_LEN);
            frame::write_frame_with_rsv(&mut out, self.0.opcode, frame::RSV1_BIT, &payload);
            Bytes::from(out)
        })
    }
}

impl PartialEq for SharedFrame {
    fn eq(&self, other: &SharedFrame) -> bool {
        self.0.plain == other.0.plain
    }
}

impl Eq for SharedFrame {}
