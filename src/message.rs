//! What a connection delivers to the application: whole messages (RFC 6455 §5.6 Data Frames).
//!
//! A message that arrived in one frame inside one read is handed out as a slice of the read
//! buffer (unmasked in place, no copy, no allocation); one that was fragmented (§5.4) or split
//! across reads was assembled in a buffer that is handed over whole.

use std::ops::Deref;

/// The bytes of a message: borrowed from the caller's input, or assembled and owned.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// A slice of the input passed to `Connection::receive`.
    Borrowed(&'a [u8]),
    /// A message assembled from several frames or reads.
    Owned(Vec<u8>),
}

impl Deref for Payload<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(bytes) => bytes,
            Payload::Owned(bytes) => bytes,
        }
    }
}

/// A complete data message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// %x1: "The "Payload data" is text data encoded as UTF-8." Already validated.
    Text(Text<'a>),
    /// %x2: "The "Payload data" is arbitrary binary data".
    Binary(Payload<'a>),
}

impl<'a> Message<'a> {
    /// The payload bytes, whatever the type.
    pub fn payload(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.0.deref(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The assembled buffer of a message that arrived in pieces, for reuse once the message
    /// has been handled (`None` for a message borrowed from the input).
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        let payload = match self {
            Message::Text(text) => text.into_payload(),
            Message::Binary(payload) => payload,
        };
        match payload {
            Payload::Owned(buf) => Some(buf),
            Payload::Borrowed(_) => None,
        }
    }

    /// The text, for a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }
}

/// The payload of a text message, known to be valid UTF-8.
#[derive(Debug, PartialEq, Eq)]
pub struct Text<'a>(Payload<'a>);

impl<'a> Text<'a> {
    /// Wraps a payload that the connection's validator accepted, checking it again in debug
    /// builds (and so in every test).
    pub(crate) fn validated(payload: Payload<'a>) -> Text<'a> {
        debug_assert!(std::str::from_utf8(&payload).is_ok());
        Text(payload)
    }

    /// The payload, as bytes.
    pub fn into_payload(self) -> Payload<'a> {
        self.0
    }
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        // SAFETY: a `Text` is only built by `Text::validated`, which the connection calls on a
        // payload after its incremental validator (`crate::utf8`, tested against
        // `std::str::from_utf8` by proptest) accepted every byte and the end of the message.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}
