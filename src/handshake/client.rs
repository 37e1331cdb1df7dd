//! The client's opening handshake (RFC 6455 §4.1): the request it sends, and the checks it
//! applies to the server's answer before the connection is open.

use super::{Extension, accept_key, parse_extensions};
use crate::http::{self, HeaderError};
use std::fmt;

/// What a client asks for in its opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientRequest {
    /// The |Host| header's value: the host, and `:port` unless it is the scheme's default.
    pub host: String,
    /// The /resource name/ (§3): the path and the query, e.g. `/chat?room=1`.
    pub resource: String,
    /// The |Origin| to send (§4.1: required of browsers, optional for others).
    pub origin: Option<String>,
    /// Subprotocols to offer, in order of preference.
    pub subprotocols: Vec<String>,
    /// More header fields (a cookie, an `Authorization`).
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `resource` (`/` if empty) on `host`.
    pub fn new(host: impl Into<String>, resource: impl Into<String>) -> ClientRequest {
        let resource = resource.into();
        ClientRequest {
            host: host.into(),
            resource: if resource.is_empty() { "/".into() } else { resource },
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Sends an |Origin|.
    pub fn with_origin(mut self, origin: impl Into<String>) -> ClientRequest {
        self.origin = Some(origin.into());
        self
    }

    /// Offers a subprotocol (after those offered before).
    pub fn with_subprotocol(mut self, name: impl Into<String>) -> ClientRequest {
        self.subprotocols.push(name.into());
        self
    }

    /// Adds a header field.
    pub fn with_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> ClientRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks what would go into the request: host, resource and origin in visible ASCII (so no
    /// CR or LF, which would end the head, and no raw Unicode, §11.1.1),
    /// header names that are tokens, subprotocols that are tokens (§4.1: "non-empty strings
    /// with characters in the range U+0021 to U+007E not including separator characters"),
    /// no header the handshake writes itself.
    pub(crate) fn check(&self) -> Result<(), RequestError> {
        // Visible ASCII only: a resource with Unicode in it is percent-encoded first (§11.1.1,
        // `client::Url` does it), a host given in its ASCII form.
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !plain(&self.host) || !self.resource.starts_with('/') || !plain(&self.resource) {
            return Err(RequestError::InvalidTarget);
        }
        if self.origin.as_deref().is_some_and(|o| !plain(o)) {
            return Err(RequestError::InvalidHeader);
        }
        let token = |s: &str| !s.is_empty() && s.bytes().all(super::is_tchar);
        let mut seen: Vec<&str> = Vec::new();
        for protocol in &self.subprotocols {
            // §4.1: the elements "MUST all be unique strings".
            if !token(protocol) || seen.contains(&protocol.as_str()) {
                return Err(RequestError::InvalidSubprotocol);
            }
            seen.push(protocol);
        }
        for (name, value) in &self.headers {
            http::check_header(name, value, RESERVED).map_err(|e| match e {
                HeaderError::Reserved => RequestError::ReservedHeader,
                HeaderError::Invalid => RequestError::InvalidHeader,
            })?;
        }
        Ok(())
    }
}

/// Header fields only the handshake writes.
const RESERVED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "origin",
    "content-length",
    "transfer-encoding",
];

/// A request that cannot be sent as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The host is empty, or the resource does not start with `/`, or either holds spaces or
    /// control characters.
    InvalidTarget,
    /// A header field whose name is not a token or whose value holds CR, LF or NUL.
    InvalidHeader,
    /// A header field the handshake writes itself (`Host`, `Upgrade`, `Sec-WebSocket-Key`...).
    ReservedHeader,
    /// §4.1: a subprotocol that is not a token, or offered twice.
    InvalidSubprotocol,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestError::InvalidTarget => "invalid host or resource name",
            RequestError::InvalidHeader => "invalid header field",
            RequestError::ReservedHeader => "a header field the handshake writes itself",
            RequestError::InvalidSubprotocol => {
                "a subprotocol that is not a token, or offered twice"
            }
        })
    }
}

impl std::error::Error for RequestError {}

/// Appends the opening handshake's request (§4.1) to `out`, with the client's `key` (base64 of
/// 16 random bytes) and the extensions it offers.
pub(crate) fn write_request(
    out: &mut Vec<u8>,
    request: &ClientRequest,
    key: &str,
    extensions: Option<&str>,
) {
    out.extend_from_slice(format!("GET {} HTTP/1.1\r\n", request.resource).as_bytes());
    http::write_field(out, "Host", &request.host);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    http::write_field(out, "Sec-WebSocket-Key", key);
    out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    if let Some(origin) = &request.origin {
        http::write_field(out, "Origin", origin);
    }
    if !request.subprotocols.is_empty() {
        http::write_field(out, "Sec-WebSocket-Protocol", &request.subprotocols.join(", "));
    }
    if let Some(extensions) = extensions {
        http::write_field(out, "Sec-WebSocket-Extensions", extensions);
    }
    for (name, value) in &request.headers {
        http::write_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Why the server's answer does not open the connection (§4.1: the client "MUST _Fail the
/// WebSocket Connection_").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The answer is not an HTTP/1.1 response head as httparse reads it.
    Malformed,
    /// The head is longer than the configured limit.
    HeadTooLarge,
    /// The head has more header fields than the configured limit.
    TooManyHeaders,
    /// "If the status code received from the server is not 101, the client handles the response
    /// per HTTP \[RFC2616\] procedures": here, an error that carries what the server said.
    Refused {
        /// The status, e.g. 401.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The header fields, in order.
        headers: Vec<(String, String)>,
    },
    /// "If the response lacks an |Upgrade| header field or the |Upgrade| header field contains
    /// a value that is not an ASCII case-insensitive match for the value "websocket", the client
    /// MUST _Fail the WebSocket Connection_."
    MissingUpgrade,
    /// "If the response lacks a |Connection| header field or the |Connection| header field
    /// doesn't contain a token that is an ASCII case-insensitive match for the value "Upgrade",
    /// the client MUST _Fail the WebSocket Connection_."
    MissingConnectionUpgrade,
    /// "If the response lacks a |Sec-WebSocket-Accept| header field or the
    /// |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of the
    /// concatenation of the |Sec-WebSocket-Key| ... the client MUST _Fail the WebSocket
    /// Connection_."
    WrongAccept,
    /// "If the response includes a |Sec-WebSocket-Extensions| header field and this header
    /// field indicates the use of an extension that was not present in the client's handshake
    /// ... the client MUST _Fail the WebSocket Connection_." Also: a value that breaks §9.1's
    /// grammar.
    UnofferedExtension(String),
    /// RFC 7692 §7: the server accepted permessage-deflate with an answer the client cannot
    /// use (an unknown, repeated or invalid parameter, or a window it did not offer).
    InvalidDeflateAnswer(crate::deflate::OfferError),
    /// "If the response includes a |Sec-WebSocket-Protocol| header field and this header field
    /// indicates the use of a subprotocol that was not present in the client's handshake ...
    /// the client MUST _Fail the WebSocket Connection_."
    UnofferedSubprotocol(String),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::Malformed => f.write_str("malformed HTTP response"),
            UpgradeError::HeadTooLarge => f.write_str("response head too large"),
            UpgradeError::TooManyHeaders => f.write_str("too many header fields in the response"),
            UpgradeError::Refused { status, reason, .. } => {
                write!(f, "the server refused the upgrade: {status} {reason}")
            }
            UpgradeError::MissingUpgrade => {
                f.write_str("response without Upgrade: websocket (§4.1)")
            }
            UpgradeError::MissingConnectionUpgrade => {
                f.write_str("response without Connection: Upgrade (§4.1)")
            }
            UpgradeError::WrongAccept => {
                f.write_str("wrong or missing Sec-WebSocket-Accept (§4.1)")
            }
            UpgradeError::UnofferedExtension(name) => {
                write!(f, "the server answered with an extension not offered: {name} (§4.1)")
            }
            UpgradeError::InvalidDeflateAnswer(why) => {
                write!(f, "the server's permessage-deflate answer breaks RFC 7692 §7.1: {why}")
            }
            UpgradeError::UnofferedSubprotocol(name) => {
                write!(f, "the server chose a subprotocol not offered: {name} (§4.1)")
            }
        }
    }
}

impl std::error::Error for UpgradeError {}

/// A server's answer that opened the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    /// The value of its |Sec-WebSocket-Extensions|, if any (what was agreed).
    pub extensions: Option<String>,
    /// All its header fields, in order.
    pub headers: Vec<(String, String)>,
}

/// A 101 whose headers passed §4.1's checks, before its extensions are looked at.
pub(crate) struct Checked<'h> {
    pub(crate) upgraded: Upgraded,
    /// The |Sec-WebSocket-Extensions| lines, parsed.
    pub(crate) extensions: Vec<Extension<'h>>,
}

/// Parses a complete response head (up to the blank line) and checks it against §4.1, for the
/// request that sent `key` and offered `subprotocols`.
pub(crate) fn check_response<'h>(
    head: &'h [u8],
    max_headers: usize,
    key: &str,
    subprotocols: &[String],
) -> Result<Checked<'h>, UpgradeError> {
    let mut fields = vec![httparse::EMPTY_HEADER; max_headers];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(UpgradeError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(UpgradeError::TooManyHeaders),
        Err(_) => return Err(UpgradeError::Malformed),
    }
    let (Some(version), Some(status)) = (response.version, response.code) else {
        return Err(UpgradeError::Malformed);
    };
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value.trim_ascii()).into_owned()))
        .collect();
    // "If the status code received from the server is not 101, the client handles the response
    // per HTTP [RFC2616] procedures." This client does not follow redirects or authenticate: it
    // reports what the server said.
    if status != 101 || version != 1 {
        let reason = response.reason.unwrap_or_default().to_owned();
        return Err(UpgradeError::Refused { status, reason, headers });
    }
    let values = |name: &'static str| {
        response
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim_ascii())
    };
    let has_token = |name: &'static str, token: &str| {
        values(name)
            .flat_map(super::request::tokens)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    };
    // The Upgrade value is one token here: "a value that is not an ASCII case-insensitive match
    // for the value "websocket"".
    let mut upgrades = values("upgrade");
    if !upgrades.next().is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"))
        || upgrades.next().is_some()
    {
        return Err(UpgradeError::MissingUpgrade);
    }
    if !has_token("connection", "upgrade") {
        return Err(UpgradeError::MissingConnectionUpgrade);
    }
    let mut accepts = values("sec-websocket-accept");
    let expected = accept_key(key.as_bytes());
    if accepts.next() != Some(expected.as_bytes()) || accepts.next().is_some() {
        return Err(UpgradeError::WrongAccept);
    }
    // §4.1: the server picks at most one of the subprotocols offered, and says it once.
    let mut protocols = values("sec-websocket-protocol");
    let subprotocol = match (protocols.next(), protocols.next()) {
        (None, _) => None,
        (Some(chosen), None) => {
            let chosen = String::from_utf8_lossy(chosen).into_owned();
            if !subprotocols.contains(&chosen) {
                return Err(UpgradeError::UnofferedSubprotocol(chosen));
            }
            Some(chosen)
        }
        (Some(_), Some(_)) => return Err(UpgradeError::UnofferedSubprotocol("(several)".into())),
    };
    // §11.3.2: |Sec-WebSocket-Extensions| "MUST NOT appear more than once in an HTTP response".
    let lines: Vec<&'h [u8]> = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| h.value.trim_ascii())
        .collect();
    if lines.len() > 1 {
        return Err(UpgradeError::UnofferedExtension("(Sec-WebSocket-Extensions twice)".into()));
    }
    let extensions = parse_extensions(lines.iter().copied())
        .map_err(|_| UpgradeError::UnofferedExtension("(malformed)".into()))?;
    let agreed = lines.first().map(|v| String::from_utf8_lossy(v).into_owned());
    Ok(Checked { upgraded: Upgraded { subprotocol, extensions: agreed, headers }, extensions })
}
