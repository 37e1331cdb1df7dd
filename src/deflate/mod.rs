//! RFC 7692 Compression Extensions for WebSocket: `permessage-deflate`.
//!
//! An extension sits between frames and messages: after a message is reassembled from its
//! frames it is inflated, and before a message is framed it is deflated; RSV1 on its first
//! frame says which (§6). Nothing else about framing changes.
//!
//! ```text
//!  handshake   offer (Sec-WebSocket-Extensions) ─▶ negotiate.rs ─▶ Agreed + the 101's answer
//!  receiving   frames (RSV1 on the first) ─▶ payload pieces ─▶ codec.rs inflate ─▶ message
//!  sending     message ─▶ codec.rs deflate (− 00 00 ff ff) ─▶ one frame with RSV1
//! ```
//!
//! Memory is the design constraint: a server holds thousands of idle connections, and a zlib
//! compressor costs some 300 KiB, an inflater some 40 KiB. So by default the server answers
//! with `server_no_context_takeover` (§7.1.1.1: "A server MAY include the
//! "server_no_context_takeover" extension parameter in an extension negotiation response even
//! if the extension negotiation offer being accepted by the extension negotiation response
//! didn't include the "server_no_context_takeover" extension parameter") and with
//! `client_no_context_takeover` (§7.1.1.2: "A server MAY include the
//! "client_no_context_takeover" extension parameter in an extension negotiation response").
//! Then no message refers to an earlier one, the zlib states are needed only while a message
//! is being compressed or inflated, and they come from a pool per thread (`codec.rs`): an idle
//! connection that negotiated compression holds no zlib state at all, and a broadcast is
//! compressed once for every member that shares its window size. [`DeflateConfig`] turns
//! context takeover on for either direction, at that memory cost per connection.
//!
//! The codec (zlib-rs) is behind the cargo feature `deflate`, on by default; without it the
//! server never agrees to the extension, and its grammar is still checked (§9.1).

mod client;
mod negotiate;

#[cfg(feature = "deflate")]
mod codec;

pub use client::{accept_answer, client_offer};
#[cfg(feature = "deflate")]
pub(crate) use codec::{Compressor, Decompressor, InflateError, compress_message};
#[cfg(feature = "deflate")]
pub use negotiate::negotiate_server;
pub use negotiate::{DeflateOffer, OfferError, parse_offer};

/// The extension's name in |Sec-WebSocket-Extensions| (§5).
pub const EXTENSION_NAME: &str = "permessage-deflate";
/// §7.2.1: the empty stored block a sync flush ends with, removed from every compressed
/// message and appended again before inflating it (§7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The smallest window zlib can compress with: it cannot deflate with 2^8 bytes (it would use
/// 2^9), so an offer that requires `server_max_window_bits=8` is declined.
pub const MIN_WINDOW_BITS: u8 = 9;
/// §7.1.2: "between 8 to 15, inclusive".
pub const MAX_WINDOW_BITS: u8 = 15;

/// How this endpoint takes part in permessage-deflate: what it agrees to, and how it
/// compresses. Field names are from this endpoint's side; the docs name the RFC's parameters
/// for the server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The largest LZ77 window this endpoint compresses with, 9-15 (a server answers
    /// `server_max_window_bits` with at most this when the client asks for a limit).
    pub max_send_window_bits: u8,
    /// The largest window the peer may compress with, 9-15 (a server answers
    /// `client_max_window_bits` with at most this, when the client offered the parameter).
    pub max_receive_window_bits: u8,
    /// Keep this endpoint's compressor between messages: better ratios on similar messages,
    /// one compressor per connection (some 300 KiB at 15 bits), and no broadcast compressed
    /// once. Off by default (a server then answers `server_no_context_takeover`).
    pub send_context_takeover: bool,
    /// Let the peer keep its compressor between messages: this endpoint then keeps an inflater
    /// per connection (some 40 KiB) for the connection's life. Off by default (a server then
    /// answers `client_no_context_takeover`).
    pub receive_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed (§6: "an endpoint MAY ... send an
    /// uncompressed message"): below a few hundred bytes deflate saves little and costs a
    /// compressor's work.
    pub threshold: usize,
    /// zlib's compression level, 1 (fastest) to 9 (smallest).
    pub level: u8,
    /// zlib's memLevel, 1-9: memory for the compressor's internal state (8 is zlib's default).
    pub mem_level: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            max_send_window_bits: MAX_WINDOW_BITS,
            max_receive_window_bits: MAX_WINDOW_BITS,
            send_context_takeover: false,
            receive_context_takeover: false,
            threshold: 128,
            level: 6,
            mem_level: 8,
        }
    }
}

impl DeflateConfig {
    /// What a client offers by default: what browsers offer (any window, context kept both
    /// ways, `permessage-deflate; client_max_window_bits`). A client holds one connection or a
    /// few, so the memory a kept context costs buys better ratios.
    pub fn for_client() -> DeflateConfig {
        DeflateConfig {
            send_context_takeover: true,
            receive_context_takeover: true,
            ..DeflateConfig::default()
        }
    }

    /// The same configuration with its values brought into their ranges.
    pub(crate) fn clamped(&self) -> DeflateConfig {
        let bits = |b: u8| b.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        DeflateConfig {
            max_send_window_bits: bits(self.max_send_window_bits),
            max_receive_window_bits: bits(self.max_receive_window_bits),
            level: self.level.clamp(1, 9),
            mem_level: self.mem_level.clamp(1, 9),
            ..self.clone()
        }
    }
}

/// What the two endpoints agreed to for one connection, from this endpoint's side. Small and
/// `Copy`: it is all an idle connection keeps of the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The window this endpoint compresses with.
    pub send_window_bits: u8,
    /// The window the peer compresses with (what this endpoint's inflater needs).
    pub receive_window_bits: u8,
    /// This endpoint keeps its compressor's history between messages.
    pub send_context_takeover: bool,
    /// The peer keeps its history: this endpoint's inflater lives as long as the connection.
    pub receive_context_takeover: bool,
}
