//! RFC 6455 §4.2 Server-Side Requirements: reading the client's opening handshake and answering
//! it, with no I/O.
//!
//! The request head is collected until its end (`\r\n\r\n`) is found by [`find_head_end`], which
//! looks only at bytes it has not looked at before, so a head trickling in a byte at a time costs
//! linear, not quadratic, work. The complete head is then parsed once with `httparse` into a
//! [`Request`]; [`Request::validate`] turns every rule of §4.2.1 that it breaks into a
//! [`HandshakeError`] with an HTTP status and a one-line reason.
//!
//! The core does not decide whom to accept: the application looks at the [`Request`] and
//! answers with an [`Accept`] (written by [`write_accept`] as `101 Switching Protocols`) or a
//! plain HTTP [`Response`](crate::http::Response). The core checks the answer against the
//! request ([`AnswerError`]) before a byte of it is sent.

mod accept;
mod client;
mod extensions;
mod request;

pub use accept::{Accept, write_accept};
pub use client::{ClientRequest, RequestError, UpgradeError, Upgraded};
pub(crate) use client::{check_response, write_request};
pub(crate) use extensions::is_tchar;
pub use extensions::{Extension, MalformedExtensions, parse_extensions};
pub(crate) use request::first_line;
pub use request::{Request, SUPPORTED_VERSION, Upgrade};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use std::fmt;

/// §1.3: the GUID the server appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Default cap on the request head, in bytes (status 431 past it).
pub const DEFAULT_MAX_HEAD: usize = 8 * 1024;
/// Default cap on the number of header fields (status 431 past it).
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// §4.2.2 step 5.4: the `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// "the base64-encoded SHA-1 of the concatenation of the |Sec-WebSocket-Key| (as a string, not
/// base64-decoded) with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"".
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Looks for the end of the request head (`\r\n\r\n`) in `buf`, given that the first `scanned`
/// bytes were already searched without finding it. Returns the length of the head including the
/// blank line.
pub fn find_head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    // Back up three bytes so that a terminator split across reads is still found.
    let from = scanned.saturating_sub(3);
    buf.get(from..)?.windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4)
}

/// Why a request was refused by the core, before the application was asked; each maps to an
/// HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head is not HTTP/1.1 as httparse reads it.
    Malformed,
    /// §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    NotHttp11,
    /// §4.2.1 item 1: the method is not GET (405, `Allow: GET`).
    MethodNotAllowed,
    /// §4.2.1 item 2: "A |Host| header field containing the server's authority."
    MissingHost,
    /// §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket", treated as an
    /// ASCII case-insensitive value."
    MissingUpgrade,
    /// §4.2.1 item 4: "A |Connection| header field that includes the token "Upgrade", treated as
    /// an ASCII case-insensitive value."
    MissingConnectionUpgrade,
    /// §4.2.1 item 5: no |Sec-WebSocket-Key|.
    MissingKey,
    /// §4.1: the key "MUST be a nonce consisting of a randomly selected 16-byte value that has
    /// been base64-encoded"; this one does not decode to 16 bytes, or appears twice.
    InvalidKey,
    /// §11.3.5: "The |Sec-WebSocket-Version| header field MUST NOT appear more than once in an
    /// HTTP request" (unless the server answered 426 first, §4.4).
    RepeatedVersion,
    /// §4.2.1 item 6: no |Sec-WebSocket-Version|.
    MissingVersion,
    /// §4.2.2: a version other than 13 gets "an appropriate HTTP error code (such as 426 Upgrade
    /// Required) and a |Sec-WebSocket-Version| header field indicating the version(s) the server
    /// is capable of understanding."
    UnsupportedVersion,
    /// §9.1: a |Sec-WebSocket-Extensions| value that does not follow the ABNF.
    MalformedExtensions,
    /// §4.2.1: a |Sec-WebSocket-Protocol| value that does not follow its ABNF, `1#token` (a
    /// list of at least one token: no spaces, slashes or other separators inside one).
    MalformedSubprotocols,
    /// The upgrade request carries a body (`Content-Length` other than 0, or
    /// `Transfer-Encoding`): after the head come frames, not a body.
    UnexpectedBody,
    /// The head is longer than the configured limit (431).
    HeadTooLarge,
    /// The head has more header fields than the configured limit (431).
    TooManyHeaders,
}

impl HandshakeError {
    /// The HTTP status code of the response.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// The one-line reason sent as the response body.
    pub fn reason(self) -> &'static str {
        match self {
            HandshakeError::Malformed => "malformed HTTP request",
            HandshakeError::NotHttp11 => "HTTP/1.1 required",
            HandshakeError::MethodNotAllowed => "only GET can open a WebSocket",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::MissingUpgrade => "missing or invalid Upgrade: websocket header",
            HandshakeError::MissingConnectionUpgrade => "Connection header must include Upgrade",
            HandshakeError::MissingKey => "missing Sec-WebSocket-Key header",
            HandshakeError::InvalidKey => "Sec-WebSocket-Key must be base64 of 16 bytes",
            HandshakeError::MissingVersion => "missing Sec-WebSocket-Version header",
            HandshakeError::RepeatedVersion => "Sec-WebSocket-Version appears more than once",
            HandshakeError::UnsupportedVersion => "unsupported Sec-WebSocket-Version, use 13",
            HandshakeError::UnexpectedBody => "an upgrade request must not have a body",
            HandshakeError::MalformedExtensions => "malformed Sec-WebSocket-Extensions header",
            HandshakeError::MalformedSubprotocols => {
                "malformed Sec-WebSocket-Protocol header: a comma-separated list of tokens"
            }
            HandshakeError::HeadTooLarge => "request head too large",
            HandshakeError::TooManyHeaders => "too many header fields",
        }
    }

    /// Appends the complete HTTP response for this error to `out`. The connection is to be
    /// closed after it is sent.
    pub fn write_response(self, out: &mut Vec<u8>) {
        let extra = match self {
            HandshakeError::MethodNotAllowed => "Allow: GET\r\n",
            HandshakeError::UnsupportedVersion => {
                "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
            }
            _ => "",
        };
        crate::http::write_plain_response(out, self.status(), extra, self.reason());
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

impl std::error::Error for HandshakeError {}

/// Why the application's answer to a request could not be sent as it was. The connection
/// sends the HTTP status named here instead and closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// Accepted a request that is not a valid opening handshake; its error is sent (§4.2.1).
    NotAnUpgrade(HandshakeError),
    /// §4.2.2: the chosen subprotocol is not one the client offered (500).
    SubprotocolNotOffered,
    /// A header field whose name is not a token or whose value holds CR, LF or NUL (500).
    InvalidHeader,
    /// A header field that only the handshake itself may write, such as `Upgrade` or
    /// `Content-Length` (500).
    ReservedHeader,
    /// A response status outside 200-599 (500): a 101 comes only from an `Accept`.
    InvalidStatus(u16),
    /// There is no request waiting for an answer (nothing is sent).
    NoRequest,
}

impl AnswerError {
    /// The HTTP status sent instead of the answer (`None` for [`AnswerError::NoRequest`]).
    pub fn status(self) -> Option<u16> {
        match self {
            AnswerError::NotAnUpgrade(error) => Some(error.status()),
            AnswerError::NoRequest => None,
            _ => Some(500),
        }
    }

    /// A one-line reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            AnswerError::NotAnUpgrade(error) => error.reason(),
            AnswerError::SubprotocolNotOffered => "the chosen subprotocol was not offered",
            AnswerError::InvalidHeader => "invalid header field in the answer",
            AnswerError::ReservedHeader => "the answer sets a header field reserved to the core",
            AnswerError::InvalidStatus(_) => "the answer's status is not in 200-599",
            AnswerError::NoRequest => "no request is waiting for an answer",
        }
    }
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status() {
            Some(status) => write!(f, "{status} {}", self.reason()),
            None => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for AnswerError {}

#[cfg(test)]
mod tests;
