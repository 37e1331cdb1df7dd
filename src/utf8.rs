//! Incremental UTF-8 validation for text messages (RFC 6455 §5.6, §8.1).
//!
//! > §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
//! > stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! > Connection_."
//!
//! A text message can arrive in many frames, and one frame in many reads; a code point may be
//! split anywhere. [`Utf8Validator`] takes the pieces as they come and fails in the piece where
//! the first impossible byte arrives ("fail fast"), not when the message ends: a peer streaming
//! garbage is cut off at once, and nothing is buffered to find out. The heavy lifting is done by
//! `std::str::from_utf8`, which is fast and exact; this type only carries the at most three bytes
//! of a code point that a piece ends in the middle of.

/// The piece of text held invalid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a UTF-8 stream fed in arbitrary pieces.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    /// The start of a code point that the last piece ended in (`len` bytes of it).
    partial: [u8; 4],
    len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub const fn new() -> Self {
        Utf8Validator { partial: [0; 4], len: 0 }
    }

    /// Validates the next piece. Fails as soon as the bytes so far cannot begin valid UTF-8.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let want = sequence_len(self.partial[0]);
            let take = (want - have).min(piece.len());
            self.partial[have..have + take].copy_from_slice(&piece[..take]);
            piece = &piece[take..];
            match std::str::from_utf8(&self.partial[..have + take]) {
                Ok(_) => self.len = 0,
                // Still a valid prefix, and the piece is used up.
                Err(e) if e.error_len().is_none() => {
                    self.len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the piece ends inside a code point whose bytes so far are a
            // valid prefix (from_utf8 checks each byte's range as it goes, so an impossible
            // second byte such as F4 90 is already `Some`). Keep the tail for the next piece.
            Err(e) if e.error_len().is_none() => {
                let tail = &piece[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the stream: fails if it stopped in the middle of a code point. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.len == 0;
        *self = Utf8Validator::new();
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

/// The length of the sequence a lead byte starts. Only called on a byte that `from_utf8`
/// accepted as the start of an incomplete sequence, so one of C2..=F4.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(bytes: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, bytes.len());
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn known_cases() {
        let cases: &[(&[u8], bool)] = &[
            (b"", true),
            ("κόσμε".as_bytes(), true),
            (b"\xf0\x9f\x98\x80", true),
            (b"\xc0\xaf", false),         // overlong
            (b"\xed\xa0\x80", false),     // surrogate
            (b"\xf4\x90\x80\x80", false), // above U+10FFFF
            (b"\xce\xba\xe1\xbd", false), // ends inside a code point
            (b"\x80", false),
        ];
        for (bytes, ok) in cases {
            for cut in 0..=bytes.len() {
                assert_eq!(validate_in_pieces(bytes, &[cut]).is_ok(), *ok, "{bytes:x?} cut {cut}");
            }
        }
    }

    /// Autobahn 6.4.x: the impossible byte fails its own piece, before the message ends.
    #[test]
    fn fails_fast() {
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert!(v.feed(b"\xf4").is_ok());
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));

        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ab\xf4\x90\x80\x80cd"), Err(InvalidUtf8));
    }

    proptest! {
        /// The oracle: any bytes split at any points validate as `std::str::from_utf8` says.
        #[test]
        fn agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                           cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort();
            prop_assert_eq!(validate_in_pieces(&bytes, &cuts).is_ok(), std::str::from_utf8(&bytes).is_ok());
        }

        /// Same, on mostly valid text with one byte changed, where errors are subtle.
        #[test]
        fn agrees_with_std_near_valid(s in "\\PC{0,24}", pos in any::<prop::sample::Index>(),
                                      byte in any::<u8>(), cut in 0usize..100) {
            let mut bytes = s.into_bytes();
            if !bytes.is_empty() {
                let i = pos.index(bytes.len());
                bytes[i] = byte;
            }
            prop_assert_eq!(validate_in_pieces(&bytes, &[cut]).is_ok(), std::str::from_utf8(&bytes).is_ok());
        }
    }
}
