//! Compressing and inflating messages (RFC 7692 §7.2) with zlib-rs, raw DEFLATE (RFC 1951):
//! no zlib header, as §7.2 says.
//!
//! Without context takeover, a zlib state is needed only while one message is processed, so
//! states come from a small pool per thread (an event loop is one thread) and go back to it,
//! reset, when the message is done. Memory never follows what a peer declares or what its data
//! inflates to: inflating writes into the message's buffer in bounded steps and stops the
//! moment the output would pass the message limit.

use super::{Agreed, DeflateConfig, MAX_WINDOW_BITS, MIN_WINDOW_BITS, TAIL};
use std::cell::RefCell;
use zlib_rs::{DeflateFlush, InflateFlush, Status};

/// The most bytes of output one call to zlib is given room for.
const STEP: usize = 64 * 1024;
/// Pooled states kept per thread, for each kind: enough for the messages one loop has in
/// flight at once, few enough that an idle server gives the memory back.
const MAX_POOLED: usize = 4;

/// Why a compressed message could not be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The data is not a DEFLATE stream.
    Corrupt,
    /// The output would pass the limit it was given.
    TooBig,
}

/// A raw DEFLATE compressor for one window size, level and memLevel.
pub(crate) struct Compressor {
    inner: zlib_rs::Deflate,
    key: (u8, u8, u8),
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compressor {:?}", self.key)
    }
}

impl Compressor {
    /// A compressor for `window_bits` (9-15) with the configuration's level and memLevel.
    pub(crate) fn new(window_bits: u8, config: &DeflateConfig) -> Compressor {
        let key = key(window_bits, config);
        let settings = zlib_rs::DeflateConfig {
            level: i32::from(key.1),
            // Negative: raw DEFLATE, no zlib header or trailer.
            window_bits: -i32::from(key.0),
            mem_level: i32::from(key.2),
            ..zlib_rs::DeflateConfig::default()
        };
        Compressor { inner: zlib_rs::Deflate::new_with_config(settings), key }
    }

    /// §7.2.1: compresses `message` and appends it to `out` without the final `00 00 ff ff`.
    /// The compressor keeps its history (context takeover) until [`Compressor::reset`].
    pub(crate) fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut consumed = 0;
        loop {
            // "1. Compress all the octets of the payload of the message using DEFLATE." A sync
            // flush ends the output with an empty stored block, "0x00 0x00 0xff 0xff".
            let room = STEP.min(message.len() - consumed + 64).max(64);
            let len = out.len();
            out.resize(len + room, 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status =
                self.inner.compress(&message[consumed..], &mut out[len..], DeflateFlush::SyncFlush);
            let read = usize::try_from(self.inner.total_in() - in_before).unwrap_or(0);
            let wrote = usize::try_from(self.inner.total_out() - out_before).unwrap_or(0);
            out.truncate(len + wrote);
            consumed += read;
            // Done when all input is taken and the flush did not fill the room it had. An
            // error is impossible for a valid state with room to write; stop rather than spin.
            if status.is_err() || (consumed == message.len() && wrote < room) {
                break;
            }
        }
        // "3. Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end."
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        // zlib writes nothing for an empty message right after a flush (a second flush in a
        // row has nothing to do), but an empty payload would leave the peer's inflater inside
        // the stored block that the tail it appends begins. §7.2.3.6 gives the payload for
        // "an empty DEFLATE block with no compression": the single octet 0x00.
        if out.len() == start {
            out.push(0x00);
        }
    }

    /// Forgets the history: the next message refers to nothing before it.
    pub(crate) fn reset(&mut self) {
        self.inner.reset();
    }
}

/// A raw DEFLATE decompressor for one message at a time (or, with context takeover, for a
/// connection's messages in turn).
pub(crate) struct Decompressor {
    inner: zlib_rs::Inflate,
    /// The stream ended with a BFINAL block: what follows in this message is not inflated.
    ended: bool,
    /// Some of this message's payload has been inflated (see [`Decompressor::finish`]).
    fed: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decompressor")
    }
}

impl Decompressor {
    /// An inflater for a peer that compresses with at most `window_bits`.
    pub(crate) fn new(window_bits: u8) -> Decompressor {
        // zlib compresses a promised 2^8 window with 2^9: inflate with at least that.
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Decompressor { inner: zlib_rs::Inflate::new(false, bits), ended: false, fed: false }
    }

    /// Inflates `input`, a piece of a compressed message, appending to `out`, which may hold
    /// at most `limit` bytes in all. Fails as soon as the output would pass `limit`, having
    /// written at most one byte past it.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        self.fed |= !input.is_empty();
        let mut consumed = 0;
        while !self.ended {
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            // Room for what this input may become, never more than one step, and never more
            // than one byte past the limit (which then shows that the limit is passed).
            let left = input.len() - consumed;
            let room =
                left.saturating_mul(4).saturating_add(256).min(STEP).min(limit - out.len() + 1);
            let len = out.len();
            out.resize(len + room, 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result =
                self.inner.decompress(&input[consumed..], &mut out[len..], InflateFlush::SyncFlush);
            let read = usize::try_from(self.inner.total_in() - in_before).unwrap_or(0);
            let wrote = usize::try_from(self.inner.total_out() - out_before).unwrap_or(0);
            out.truncate(len + wrote);
            consumed += read;
            match result {
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(_) => {}
                Err(_) => return Err(InflateError::Corrupt),
            }
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if consumed == input.len() && wrote < room {
                break;
            }
            if read == 0 && wrote == 0 {
                // No progress with input left: the data cannot be a DEFLATE stream.
                return Err(InflateError::Corrupt);
            }
        }
        Ok(())
    }

    /// §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload of the
    /// message" and inflate them: the end of the message.
    ///
    /// A message whose payload is empty is the empty message, and its tail is not inflated:
    /// alone, `00 00 ff ff` begins a stored block of 0xff00 octets, which would swallow the
    /// next message of a connection that keeps its context (RFC 7692 gives no meaning to an
    /// empty compressed payload; this is our reading, and zlib-based senders produce one).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        if !self.fed {
            return Ok(());
        }
        let result = self.inflate(&TAIL, out, limit);
        self.fed = false;
        result?;
        if self.ended {
            // A BFINAL block ended the stream: the next message starts a new one (a peer that
            // ends its stream cannot take context over).
            self.inner.reset(false);
            self.ended = false;
        }
        Ok(())
    }

    /// Forgets the history, for the next message.
    pub(crate) fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
        self.fed = false;
    }
}

fn key(window_bits: u8, config: &DeflateConfig) -> (u8, u8, u8) {
    (
        window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
        config.level.clamp(1, 9),
        config.mem_level.clamp(1, 9),
    )
}

/// States given back after a message, for the next one on this thread.
#[derive(Default)]
struct Pool {
    compressors: Vec<Compressor>,
    decompressors: Vec<Decompressor>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

impl Compressor {
    /// A compressor from this thread's pool, or a new one.
    fn take(window_bits: u8, config: &DeflateConfig) -> Compressor {
        let key = key(window_bits, config);
        let pooled = POOL.with_borrow_mut(|pool| {
            let found = pool.compressors.iter().position(|c| c.key == key)?;
            Some(pool.compressors.swap_remove(found))
        });
        pooled.unwrap_or_else(|| Compressor::new(window_bits, config))
    }

    /// Resets it and gives it back to the pool (or frees it, if the pool is full).
    fn give(mut self) {
        self.reset();
        POOL.with_borrow_mut(|pool| {
            if pool.compressors.len() < MAX_POOLED {
                pool.compressors.push(self);
            }
        });
    }
}

impl Decompressor {
    /// An inflater from this thread's pool (they all take 2^15), for one message.
    pub(crate) fn take() -> Decompressor {
        POOL.with_borrow_mut(|pool| pool.decompressors.pop())
            .unwrap_or_else(|| Decompressor::new(MAX_WINDOW_BITS))
    }

    /// Resets it and gives it back to the pool (or frees it, if the pool is full).
    pub(crate) fn give(mut self) {
        self.reset();
        POOL.with_borrow_mut(|pool| {
            if pool.decompressors.len() < MAX_POOLED {
                pool.decompressors.push(self);
            }
        });
    }
}

/// Compresses one message without context takeover, with a pooled compressor: §7.2.1's
/// algorithm, for `agreed.send_window_bits`.
pub(crate) fn compress_message(
    message: &[u8],
    agreed: &Agreed,
    config: &DeflateConfig,
    out: &mut Vec<u8>,
) {
    let mut compressor = Compressor::take(agreed.send_window_bits, config);
    compressor.compress(message, out);
    compressor.give();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(bits: u8) -> Agreed {
        Agreed {
            send_window_bits: bits,
            receive_window_bits: bits,
            send_context_takeover: false,
            receive_context_takeover: false,
        }
    }

    fn inflate_all(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut inflater = Decompressor::take();
        let mut out = Vec::new();
        let result = inflater
            .inflate(compressed, &mut out, limit)
            .and_then(|()| inflater.finish(&mut out, limit));
        inflater.give();
        result.map(|()| out)
    }

    /// RFC 7692 §7.2.3.1's example: "Hello" compressed is `f2 48 cd c9 c9 07 00`.
    #[test]
    fn rfc_7692_hello() {
        let mut out = Vec::new();
        compress_message(b"Hello", &agreed(15), &DeflateConfig::default(), &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(inflate_all(&out, 100).unwrap(), b"Hello");
        // §7.2.3.3: the same message in a block with no compression inflates too.
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate_all(&stored, 100).unwrap(), b"Hello");
        // §7.2.3.4: in a block with BFINAL set to 1.
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&last, 100).unwrap(), b"Hello");
    }

    /// §7.2.3.2: a second "Hello" with context takeover refers back to the first.
    #[test]
    fn context_takeover_shrinks_a_repeated_message() {
        let config = DeflateConfig::default();
        let mut compressor = Compressor::new(15, &config);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        compressor.compress(b"Hello", &mut first);
        compressor.compress(b"Hello", &mut second);
        assert_eq!(first, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut inflater = Decompressor::new(15);
        let mut out = Vec::new();
        for piece in [&first, &second] {
            inflater.inflate(piece, &mut out, 100).unwrap();
            inflater.finish(&mut out, 100).unwrap();
        }
        assert_eq!(out, b"HelloHello");
    }

    /// §7.2.3.6: empty messages in a row with context takeover. zlib has nothing to flush
    /// for the second, so the compressor sends the empty stored block's one octet, 0x00; an
    /// empty payload from a peer that does not is the empty message, and what follows it
    /// still inflates. (Found by the connection's round-trip property test.)
    #[test]
    fn empty_messages_with_context_takeover() {
        let config = DeflateConfig::default();
        let mut compressor = Compressor::new(9, &config);
        let mut payloads = Vec::new();
        for message in [&b""[..], b"", b"", b"after"] {
            let mut out = Vec::new();
            compressor.compress(message, &mut out);
            assert!(!out.is_empty());
            payloads.push(out);
        }
        assert_eq!(payloads[1], [0x00]);
        // And a peer's empty payload, between two messages.
        payloads.insert(2, Vec::new());
        let mut inflater = Decompressor::new(9);
        let mut messages = Vec::new();
        for payload in &payloads {
            let mut out = Vec::new();
            inflater.inflate(payload, &mut out, 100).unwrap();
            inflater.finish(&mut out, 100).unwrap();
            messages.push(out);
        }
        assert_eq!(messages, [&b""[..], b"", b"", b"", b"after"]);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // A mebibyte of zeros compresses to about a kilobyte; 64 KiB is the limit.
        let mut bomb = Vec::new();
        compress_message(&vec![0; 1 << 20], &agreed(15), &DeflateConfig::default(), &mut bomb);
        assert!(bomb.len() < 2048, "{}", bomb.len());
        let mut inflater = Decompressor::take();
        let mut out = Vec::new();
        assert_eq!(inflater.inflate(&bomb, &mut out, 64 * 1024), Err(InflateError::TooBig));
        assert!(
            out.len() <= 64 * 1024 + 1 && out.capacity() <= 2 * 64 * 1024 + 256,
            "{}",
            out.capacity()
        );
        assert_eq!(inflate_all(b"\xff\xff\xff\xff", 100), Err(InflateError::Corrupt));
    }

    proptest::proptest! {
        /// Any message, any window, compressed then inflated in pieces cut anywhere, is itself.
        #[test]
        fn round_trip_through_any_split(
            message in proptest::collection::vec(0u8..4, 0..3000),
            bits in MIN_WINDOW_BITS..=MAX_WINDOW_BITS,
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let mut compressed = Vec::new();
            compress_message(&message, &agreed(bits), &DeflateConfig::default(), &mut compressed);
            let cut = cut.index(compressed.len() + 1);
            let mut inflater = Decompressor::new(bits);
            let mut out = Vec::new();
            inflater.inflate(&compressed[..cut], &mut out, 1 << 20).unwrap();
            inflater.inflate(&compressed[cut..], &mut out, 1 << 20).unwrap();
            inflater.finish(&mut out, 1 << 20).unwrap();
            proptest::prop_assert_eq!(out, message);
        }
    }
}
