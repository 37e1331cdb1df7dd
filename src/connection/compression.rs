//! permessage-deflate inside a connection (RFC 7692 §6, §7.2): negotiating it at the
//! handshake, inflating a compressed message as its pieces arrive, and compressing what is
//! sent. The frame reader and writer only ask whether a message is compressed; everything else
//! is here.
//!
//! Without the cargo feature `deflate`, [`Compression`] has no values: no connection agrees
//! to the extension, and the functions here cannot be called.

use super::Connection;
use crate::error::ProtocolError;
use crate::handshake::{Extension, Request, UpgradeError};
use crate::shared::SharedFrame;
use bytes::Bytes;

#[cfg(feature = "deflate")]
pub(super) use with_codec::Compression;
#[cfg(not(feature = "deflate"))]
pub(super) use without_codec::Compression;

impl Connection {
    /// What to compress a message of `len` bytes with, if it is sent compressed.
    pub(super) fn compression_for(&self, len: usize) -> Option<Compression> {
        self.compression.filter(|c| c.wants(self, len))
    }

    /// A client's check of the extensions in the server's 101 (§4.1: "If the response includes
    /// a |Sec-WebSocket-Extensions| header field and this header field indicates the use of an
    /// extension that was not present in the client's handshake [...], the client MUST _Fail
    /// the WebSocket Connection_"). The only extension a client offers is permessage-deflate,
    /// once; its answer is read by `crate::deflate::accept_answer`.
    pub(super) fn negotiate_client_compression(
        &mut self,
        extensions: &[Extension<'_>],
        offered: bool,
    ) -> Result<(), UpgradeError> {
        let mut answers = extensions.iter();
        let Some(answer) = answers.next() else { return Ok(()) };
        if !offered || !answer.name.eq_ignore_ascii_case(crate::deflate::EXTENSION_NAME) {
            return Err(UpgradeError::UnofferedExtension(answer.name.to_owned()));
        }
        if let Some(extra) = answers.next() {
            // One offer, so at most one acceptance.
            return Err(UpgradeError::UnofferedExtension(extra.name.to_owned()));
        }
        self.agree_as_client(answer)
    }
}

#[cfg(feature = "deflate")]
mod with_codec {
    use super::*;
    use crate::deflate::{self, Agreed, Compressor, Decompressor, DeflateConfig, InflateError};

    /// What the handshake agreed to.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Compression {
        pub(crate) agreed: Agreed,
    }

    impl Compression {
        pub(super) fn wants(&self, conn: &Connection, len: usize) -> bool {
            // A peer may hold us to a 2^8 window, which zlib cannot compress with: then every
            // message goes uncompressed (RFC 7692 §6 allows that).
            self.agreed.can_compress()
                && conn.config.deflate.as_ref().is_some_and(|config| len >= config.threshold)
        }
    }

    impl Connection {
        /// §5: the server's answer to the request's offers, if the configuration (and the
        /// application's answer, `allowed`) lets it agree to one. Sets the connection up and
        /// returns the value of the 101's |Sec-WebSocket-Extensions|.
        pub(in crate::connection) fn negotiate_compression(
            &mut self,
            request: &Request,
            allowed: bool,
        ) -> Option<String> {
            let config = self.config.deflate.as_ref().filter(|_| allowed)?;
            // The header's grammar was checked with the rest of the request (§9.1).
            let offers = request.extensions().ok()?;
            let (agreed, answer) = deflate::negotiate_server(&offers, config)?;
            self.compression = Some(Compression { agreed });
            // §6: "the "Per-Message Compressed" bit" is RSV1.
            self.allowed_rsv = crate::frame::RSV1_BIT;
            Some(answer)
        }

        /// What permessage-deflate agreed to on this connection, if it did.
        pub fn deflate_agreed(&self) -> Option<Agreed> {
            self.compression.map(|compression| compression.agreed)
        }

        /// The value of a client's |Sec-WebSocket-Extensions|, if it offers compression.
        pub(in crate::connection) fn compression_offer(&self) -> Option<String> {
            self.config.deflate.as_ref().map(deflate::client_offer)
        }

        /// A client takes the server's acceptance of its offer (RFC 7692 §7.1).
        pub(in crate::connection) fn agree_as_client(
            &mut self,
            answer: &Extension<'_>,
        ) -> Result<(), UpgradeError> {
            let config = self.deflate_config();
            let agreed = deflate::accept_answer(answer, &config)
                .map_err(UpgradeError::InvalidDeflateAnswer)?;
            self.compression = Some(Compression { agreed });
            self.allowed_rsv = crate::frame::RSV1_BIT;
            Ok(())
        }

        fn deflate_config(&self) -> DeflateConfig {
            self.config.deflate.clone().unwrap_or_default()
        }

        /// Inflates a piece of the compressed message in progress into the reassembly buffer,
        /// and validates what it became when the message is text.
        pub(in crate::connection) fn inflate_piece(
            &mut self,
            compression: Compression,
            piece: &[u8],
        ) -> Result<(), ProtocolError> {
            let limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
            let mut inflater = self.take_inflater(compression);
            let start = self.assembled.len();
            let result = inflater.inflate(piece, &mut self.assembled, limit);
            self.keep_inflater(inflater);
            result.map_err(inflate_error)?;
            self.validate_inflated(start)
        }

        /// §7.2.2: the message's last frame has arrived; inflates the tail `00 00 ff ff`.
        pub(in crate::connection) fn inflate_end(
            &mut self,
            compression: Compression,
        ) -> Result<(), ProtocolError> {
            let limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
            let mut inflater = self.take_inflater(compression);
            let start = self.assembled.len();
            let result = inflater.finish(&mut self.assembled, limit);
            let inflated = self.assembled.len();
            self.trace(|| format!("§7.2.2 message inflated to {inflated} bytes"));
            if compression.agreed.receive_context_takeover {
                self.keep_inflater(inflater);
            } else {
                // No context takeover: the next message starts afresh, with a pooled inflater.
                inflater.give();
            }
            result.map_err(inflate_error)?;
            self.validate_inflated(start)
        }

        /// The inflater for the message in progress: the connection's own (context takeover),
        /// the one this message started with, or one from the pool.
        fn take_inflater(&mut self, compression: Compression) -> Decompressor {
            let kept = self.extras.as_mut().and_then(|extras| extras.inflater.take());
            kept.map(|boxed| *boxed).unwrap_or_else(|| {
                if compression.agreed.receive_context_takeover {
                    Decompressor::new(compression.agreed.receive_window_bits)
                } else {
                    Decompressor::take()
                }
            })
        }

        fn keep_inflater(&mut self, inflater: Decompressor) {
            self.extras().inflater = Some(Box::new(inflater));
        }

        /// The connection failed or closed: its zlib states go back to the pool.
        pub(in crate::connection) fn drop_codecs(&mut self) {
            if let Some(extras) = &mut self.extras {
                if let Some(inflater) = extras.inflater.take() {
                    inflater.give();
                }
                extras.deflater = None;
            }
        }

        /// §8.1: text is UTF-8 after inflating; checked on each piece as it is inflated, so a
        /// bad byte fails the message in the read where it arrives.
        fn validate_inflated(&mut self, start: usize) -> Result<(), ProtocolError> {
            if self.message == Some(super::super::Kind::Text) {
                self.utf8.feed(&self.assembled[start..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Ok(())
        }

        /// §7.2.1: `payload` compressed, for a frame with RSV1 set.
        pub(in crate::connection) fn deflate_payload(
            &mut self,
            compression: Compression,
            payload: &[u8],
        ) -> Vec<u8> {
            let config = self.deflate_config();
            let mut out = Vec::with_capacity(payload.len() / 2 + 64);
            if compression.agreed.send_context_takeover {
                let bits = compression.agreed.send_window_bits;
                let mut deflater = self
                    .extras
                    .as_mut()
                    .and_then(|extras| extras.deflater.take())
                    .unwrap_or_else(|| Box::new(Compressor::new(bits, &config)));
                deflater.compress(payload, &mut out);
                self.extras().deflater = Some(deflater);
            } else {
                deflate::compress_message(payload, &compression.agreed, &config, &mut out);
            }
            let (plain, compressed) = (payload.len(), out.len());
            self.trace(|| format!("§7.2.1 message of {plain} bytes deflated to {compressed}"));
            out
        }

        /// A shared message, compressed for this connection: once per window size for every
        /// connection without context takeover, or with this connection's own compressor.
        pub(in crate::connection) fn deflate_shared(
            &mut self,
            compression: Compression,
            frame: &SharedFrame,
        ) -> Bytes {
            let agreed = compression.agreed;
            if agreed.send_context_takeover {
                let payload = self.deflate_payload(compression, frame.payload());
                let mut out = Vec::with_capacity(payload.len() + crate::frame::MAX_HEADER_LEN);
                crate::frame::write_frame_with_rsv(
                    &mut out,
                    frame.opcode(),
                    crate::frame::RSV1_BIT,
                    &payload,
                );
                return Bytes::from(out);
            }
            let config = self.deflate_config();
            frame
                .deflated(agreed.send_window_bits, |payload| {
                    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
                    deflate::compress_message(payload, &agreed, &config, &mut out);
                    out
                })
                .clone()
        }
    }

    fn inflate_error(error: InflateError) -> ProtocolError {
        match error {
            // §10.4: the limit applies to the message as the application gets it.
            InflateError::TooBig => ProtocolError::MessageTooBig,
            InflateError::Corrupt => ProtocolError::InvalidCompressedData,
        }
    }
}

#[cfg(not(feature = "deflate"))]
mod without_codec {
    use super::*;

    /// Without the codec nothing is ever agreed to: this type has no values.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Compression {}

    impl Compression {
        pub(super) fn wants(&self, _: &Connection, _: usize) -> bool {
            match *self {}
        }
    }

    impl Connection {
        /// Without the codec nothing is ever agreed to.
        pub fn deflate_agreed(&self) -> Option<crate::deflate::Agreed> {
            None
        }

        /// Without the codec a client offers nothing.
        pub(in crate::connection) fn compression_offer(&self) -> Option<String> {
            None
        }

        /// Never called: nothing was offered, so any answer is refused before it is read.
        pub(in crate::connection) fn agree_as_client(
            &mut self,
            answer: &Extension<'_>,
        ) -> Result<(), UpgradeError> {
            Err(UpgradeError::UnofferedExtension(answer.name.to_owned()))
        }

        /// Without the codec, no offer is ever accepted.
        pub(in crate::connection) fn negotiate_compression(
            &mut self,
            _: &Request,
            _: bool,
        ) -> Option<String> {
            None
        }

        pub(in crate::connection) fn inflate_piece(
            &mut self,
            c: Compression,
            _: &[u8],
        ) -> Result<(), ProtocolError> {
            match c {}
        }

        pub(in crate::connection) fn inflate_end(
            &mut self,
            c: Compression,
        ) -> Result<(), ProtocolError> {
            match c {}
        }

        pub(in crate::connection) fn drop_codecs(&mut self) {}

        pub(in crate::connection) fn deflate_payload(
            &mut self,
            c: Compression,
            _: &[u8],
        ) -> Vec<u8> {
            match c {}
        }

        pub(in crate::connection) fn deflate_shared(
            &mut self,
            c: Compression,
            _: &SharedFrame,
        ) -> Bytes {
            match c {}
        }
    }
}

#[cfg(all(test, feature = "deflate"))]
mod tests;
