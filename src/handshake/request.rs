//! The client's request head (RFC 6455 §4.2.1), parsed once with httparse and kept whole, so
//! that the application can look at any part of it (the target, a cookie, an `Authorization`
//! header) before it decides how to answer.

use super::HandshakeError;
use super::extensions::{Extension, MalformedExtensions, parse_extensions};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::ops::Range;

/// §4.1: "The value of this header field MUST be 13."
pub const SUPPORTED_VERSION: &str = "13";

/// A complete HTTP request head, as the client sent it.
///
/// A WebSocket server meets two kinds of request on its port: opening handshakes (§4.2.1) and
/// plain HTTP requests (for a page, say). [`Request::is_websocket`] tells them apart;
/// [`Request::validate`] says whether an opening handshake obeys §4.2.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The head's bytes, up to and including the blank line.
    head: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    http11: bool,
    /// Each header field: the name's and the (trimmed) value's place in `head`.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

/// What a valid opening handshake asks for: the parts of the request that the answer is built
/// from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgrade<'r> {
    /// The |Sec-WebSocket-Key| as sent (base64 text), hashed into the accept value.
    pub key: &'r [u8],
}

impl Request {
    /// Parses a complete request head (up to and including the blank line) with httparse;
    /// `max_headers` caps the number of header fields (431 past it).
    pub fn parse(head: &[u8], max_headers: usize) -> Result<Request, HandshakeError> {
        let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            // The caller found the blank line, so a partial parse means a malformed head.
            Ok(httparse::Status::Partial) => return Err(HandshakeError::Malformed),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(_) => return Err(HandshakeError::Malformed),
        }
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return Err(HandshakeError::Malformed);
        };
        // httparse hands out slices of `head`; keep their places instead, with the bytes.
        let place = |part: &[u8]| {
            let start = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
            let start = start.min(head.len());
            start..(start + part.len()).min(head.len())
        };
        let fields = req
            .headers
            .iter()
            .map(|h| (place(h.name.as_bytes()), place(h.value.trim_ascii())))
            .collect();
        Ok(Request {
            method: place(method.as_bytes()),
            target: place(target.as_bytes()),
            http11: version == 1,
            fields,
            head: head.to_vec(),
        })
    }

    fn text(&self, range: &Range<usize>) -> &str {
        // httparse accepts only visible ASCII in the method, the target and header names.
        std::str::from_utf8(&self.head[range.clone()]).unwrap_or_default()
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.text(&self.method)
    }

    /// The request-target as sent, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        self.text(&self.target)
    }

    /// The path of the target, without its query: `/chat` for `/chat?room=1`. An absolute-form
    /// target (`GET ws://host/chat`, RFC 7230 §5.3.2) names the same resource as its path.
    pub fn path(&self) -> &str {
        let target = self.origin_form();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The query of the target, without the `?`: `room=1` for `/chat?room=1`.
    pub fn query(&self) -> Option<&str> {
        self.origin_form().split_once('?').map(|(_, query)| query)
    }

    /// The value of the query parameter `name` as it appears (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if pair == name => Some(""),
            _ => None,
        })
    }

    fn origin_form(&self) -> &str {
        let target = self.target();
        match target.split_once("://") {
            Some((scheme, rest)) if !scheme.contains('/') => {
                rest.find('/').map_or("/", |slash| &rest[slash..])
            }
            _ => target,
        }
    }

    /// Every header field in order, as (name, value) with the value trimmed.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.fields.iter().map(|(name, value)| (self.text(name), &self.head[value.clone()]))
    }

    /// Every value of the header field `name` (ASCII case-insensitive), in order.
    pub fn header_values<'r, 'n>(
        &'r self,
        name: &'n str,
    ) -> impl Iterator<Item = &'r [u8]> + use<'r, 'n> {
        self.headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The first value of the header field `name`, if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_values(name).next()
    }

    /// The first value of the header field `name`, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The |Origin| header (§4.2.1 item 7, §10.2), if any. A browser always sends it; other
    /// clients may leave it out or send anything.
    pub fn origin(&self) -> Option<&str> {
        self.header_str("origin")
    }

    /// The subprotocols the client offers in |Sec-WebSocket-Protocol| (§4.2.1 item 8), in its
    /// order of preference, over every line of the header (§11.3.4).
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> + '_ {
        self.header_values("sec-websocket-protocol")
            .flat_map(tokens)
            .filter_map(|t| std::str::from_utf8(t).ok())
    }

    /// The extensions the client offers in |Sec-WebSocket-Extensions| (§4.2.1 item 9), in its
    /// order of preference, over every line of the header (§11.3.2).
    pub fn extensions(&self) -> Result<Vec<Extension<'_>>, MalformedExtensions> {
        parse_extensions(self.header_values("sec-websocket-extensions"))
    }

    /// Whether the client asks for a WebSocket at all (an |Upgrade| header or a key). Such a
    /// request is held to the opening handshake's rules (§4.2.1), never answered with a page.
    pub fn is_websocket(&self) -> bool {
        self.header("upgrade").is_some() || self.header("sec-websocket-key").is_some()
    }

    /// Whether the request carries a body (`Content-Length` other than 0, or
    /// `Transfer-Encoding`).
    pub fn has_body(&self) -> bool {
        self.header_values("content-length").any(|v| v != b"0")
            || self.header("transfer-encoding").is_some()
    }

    /// Checks the head against §4.2.1, in the order of its items.
    pub fn validate(&self) -> Result<Upgrade<'_>, HandshakeError> {
        if self.method() != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if !self.http11 {
            return Err(HandshakeError::NotHttp11);
        }
        if self.header("host").is_none() {
            return Err(HandshakeError::MissingHost);
        }
        // §4.1: the |Upgrade| value "MUST include the "websocket" keyword"; it may list other
        // protocols too.
        if !self.has_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !self.has_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // §11.3.1: "The |Sec-WebSocket-Key| header field MUST NOT appear more than once in an
        // HTTP request."
        let mut keys = self.header_values("sec-websocket-key");
        let key = keys.next().ok_or(HandshakeError::MissingKey)?;
        if keys.next().is_some() || !is_valid_key(key) {
            return Err(HandshakeError::InvalidKey);
        }
        // §11.3.5: "The |Sec-WebSocket-Version| header field MUST NOT appear more than once in
        // an HTTP request."
        let mut versions = self.header_values("sec-websocket-version");
        let version = versions.next().ok_or(HandshakeError::MissingVersion)?;
        if versions.next().is_some() {
            return Err(HandshakeError::RepeatedVersion);
        }
        if version != SUPPORTED_VERSION.as_bytes() {
            return Err(HandshakeError::UnsupportedVersion);
        }
        // §4.2.1: "including but not limited to any violations of the ABNF grammar specified
        // for the components of the handshake, the server MUST stop processing the client's
        // handshake"; |Sec-WebSocket-Protocol|'s is 1#token (§4.1 item 10), where RFC 2616's
        // list rule lets empty elements be, but a non-token or no element at all is malformed.
        if self.header("sec-websocket-protocol").is_some() && !self.subprotocols_follow_the_abnf() {
            return Err(HandshakeError::MalformedSubprotocols);
        }
        // After the head come frames, not a body.
        if self.has_body() {
            return Err(HandshakeError::UnexpectedBody);
        }
        // §9.1: "If a value is received by either the client or the server during negotiation
        // that does not conform to the ABNF below, the recipient of such malformed data MUST
        // immediately _Fail the WebSocket Connection_."
        if self.extensions().is_err() {
            return Err(HandshakeError::MalformedExtensions);
        }
        Ok(Upgrade { key })
    }

    /// Whether the |Sec-WebSocket-Protocol| lines list at least one element, and only tokens.
    fn subprotocols_follow_the_abnf(&self) -> bool {
        let mut offered = self.header_values("sec-websocket-protocol").flat_map(tokens).peekable();
        offered.peek().is_some()
            && offered.all(|t| t.iter().all(|&b| super::extensions::is_tchar(b)))
    }

    /// Whether some line of header `name` lists `token` (ASCII case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name).flat_map(tokens).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The request line, for logs and traces (at most 200 bytes).
    pub fn request_line(&self) -> String {
        first_line(&self.head)
    }
}

/// The first line of an HTTP head, for traces (at most 200 bytes, lossy UTF-8).
pub(crate) fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()
}

/// §4.1: the key is base64 of exactly 16 bytes, which is always 24 characters ending in `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && matches!(BASE64.decode(key), Ok(bytes) if bytes.len() == 16)
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}
