//! The server's opening handshake (RFC 6455 §4.2.2): what the application may put in a
//! `101 Switching Protocols`, and the checks the core applies to it before it is sent.

use super::{AnswerError, Request, accept_key};
use crate::http::{self, HeaderError};

/// How the application accepts an opening handshake. Built with [`Accept::new`] and its
/// `with_*` methods; the connection checks it against the request (§4.2.2) before anything is
/// sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accept {
    /// The subprotocol chosen from the client's |Sec-WebSocket-Protocol| list, if any.
    pub subprotocol: Option<String>,
    /// Extra header fields for the 101 response (a cookie, say).
    pub headers: Vec<(String, String)>,
    /// Agree to an extension the client offers, as the server's configuration allows
    /// (permessage-deflate); `false` keeps this connection uncompressed.
    pub extensions: bool,
}

impl Default for Accept {
    fn default() -> Self {
        Accept { subprotocol: None, headers: Vec::new(), extensions: true }
    }
}

impl Accept {
    /// An answer with no subprotocol and no extra header fields.
    pub fn new() -> Accept {
        Accept::default()
    }

    /// Chooses `name`, which must be one of the subprotocols the client offered.
    pub fn with_subprotocol(mut self, name: impl Into<String>) -> Accept {
        self.subprotocol = Some(name.into());
        self
    }

    /// Agrees to no extension on this connection, whatever the client offers.
    pub fn without_extensions(mut self) -> Accept {
        self.extensions = false;
        self
    }

    /// Adds a header field to the 101 response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Accept {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks the answer against the request it answers.
    pub(crate) fn check(&self, request: &Request) -> Result<(), AnswerError> {
        // §4.2.2 /subprotocol/: "The value chosen MUST be derived from the client's handshake,
        // specifically by selecting one of the values from the |Sec-WebSocket-Protocol| field".
        if let Some(chosen) = &self.subprotocol
            && !request.subprotocols().any(|offered| offered == chosen)
        {
            return Err(AnswerError::SubprotocolNotOffered);
        }
        for (name, value) in &self.headers {
            http::check_header(name, value, RESERVED).map_err(|e| match e {
                HeaderError::Reserved => AnswerError::ReservedHeader,
                HeaderError::Invalid => AnswerError::InvalidHeader,
            })?;
        }
        Ok(())
    }
}

/// Header fields of the 101 that only the handshake itself writes: the application sets the
/// subprotocol through [`Accept::subprotocol`], and extensions are negotiated by the core.
const RESERVED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// Appends the `101 Switching Protocols` response (§4.2.2 step 5) for the client's `key` to
/// `out`, with what `accept` adds and the extensions agreed to (the value of
/// |Sec-WebSocket-Extensions|). The caller has checked `accept` against the request.
pub fn write_accept(out: &mut Vec<u8>, key: &[u8], accept: &Accept, extensions: Option<&str>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = &accept.subprotocol {
        http::write_field(out, "Sec-WebSocket-Protocol", p);
    }
    // §9.1: "the server ... responds with a |Sec-WebSocket-Extensions| header field containing
    // the extensions it agrees to"; §11.3.2: at most once in a response.
    if let Some(extensions) = extensions {
        http::write_field(out, "Sec-WebSocket-Extensions", extensions);
    }
    for (name, value) in &accept.headers {
        http::write_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}
