//! RFC 6455 §4.2 Server-Side Requirements: reading the client's opening handshake and answering
//! it, with no I/O.
//!
//! The request head is collected until its end (`\r\n\r\n`) is found by [`find_head_end`], which
//! looks only at bytes it has not looked at before, so a head trickling in a byte at a time costs
//! linear, not quadratic, work. The complete head is then parsed once with `httparse` by
//! [`parse_request`]; every rule of §4.2.1 that it breaks becomes a [`HandshakeError`] with an
//! HTTP status and a one-line reason. A good request is answered by [`write_accept`]
//! (`101 Switching Protocols`), a bad one by [`HandshakeError::write_response`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use std::fmt;

/// §1.3: the GUID the server appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// §4.1: "The value of this header field MUST be 13."
pub const SUPPORTED_VERSION: &str = "13";
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

/// Why an opening handshake was refused; each maps to an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The upgrade request carries a body (`Content-Length` other than 0, or
    /// `Transfer-Encoding`): after the head come frames, not a body.
    UnexpectedBody,
    /// The head is longer than the configured limit (431).
    HeadTooLarge,
    /// The head has more header fields than the configured limit (431).
    TooManyHeaders,
    /// Nothing is served at this path (404).
    NotFound,
    /// §4.2.2 / §10.2: the |Origin| is not on the server's allowlist (403).
    OriginNotAllowed,
}

impl HandshakeError {
    /// The HTTP status code of the response.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::NotFound => 404,
            HandshakeError::OriginNotAllowed => 403,
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
            HandshakeError::HeadTooLarge => "request head too large",
            HandshakeError::TooManyHeaders => "too many header fields",
            HandshakeError::NotFound => "not found",
            HandshakeError::OriginNotAllowed => "origin not allowed",
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

/// A valid opening handshake request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'h> {
    /// The request-target, e.g. `/` or `/chat?room=1`.
    pub path: &'h str,
    /// The |Sec-WebSocket-Key| as sent (base64 text).
    pub key: &'h [u8],
    /// The |Origin| header, if any (§4.2.1 item 7, §10.2).
    pub origin: Option<&'h str>,
    /// The subprotocol the server picked from the client's |Sec-WebSocket-Protocol| list.
    pub protocol: Option<String>,
}

/// The fields of a request head that the server looks at, read in one pass by
/// [`parse_head`]. Whether they make a valid opening handshake is [`RequestHead::validate`]'s
/// question; a plain HTTP request for a page is answered from the same fields (`crate::http`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead<'h> {
    /// The method, e.g. `GET`.
    pub method: &'h str,
    /// The request-target, e.g. `/` or `/chat?room=1`.
    pub target: &'h str,
    /// The |Origin| header, if any (§4.2.1 item 7, §10.2).
    pub origin: Option<&'h str>,
    http11: bool,
    host: bool,
    upgrade_header: bool,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    key: Option<&'h [u8]>,
    repeated_key: bool,
    version: Option<&'h [u8]>,
    repeated_version: bool,
    protocol: Option<&'h str>,
    body: bool,
}

/// Parses a complete request head (up to and including the blank line) with httparse.
///
/// `max_headers` caps the number of header fields; `supported_protocols` lists the subprotocols
/// the server speaks: the first one the client offers that is in the list is chosen (§4.2.2 step
/// 5.3: "The value chosen MUST be derived from the values received from the client").
///
/// Extensions (§9): no extension is negotiated yet, so |Sec-WebSocket-Extensions| is ignored
/// and every RSV bit must be 0. permessage-deflate (RFC 7692) would read that header here and
/// return what it agreed to in [`Request`], which the connection then uses to allow RSV1.
pub fn parse_head<'h>(
    head: &'h [u8],
    max_headers: usize,
    supported_protocols: &[String],
) -> Result<RequestHead<'h>, HandshakeError> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        // The caller found the blank line, so a partial parse means a malformed head.
        Ok(httparse::Status::Partial) => return Err(HandshakeError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(_) => return Err(HandshakeError::Malformed),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::Malformed);
    };
    let mut parsed = RequestHead {
        method,
        target,
        origin: None,
        http11: version == 1,
        host: false,
        upgrade_header: false,
        upgrade_websocket: false,
        connection_upgrade: false,
        key: None,
        repeated_key: false,
        version: None,
        repeated_version: false,
        protocol: None,
        body: false,
    };
    for h in req.headers.iter() {
        let name = h.name;
        let value = trim(h.value);
        if name.eq_ignore_ascii_case("host") {
            parsed.host = true;
        } else if name.eq_ignore_ascii_case("upgrade") {
            parsed.upgrade_header = true;
            // §4.1: the |Upgrade| value "MUST include the "websocket" keyword"; it may list
            // other protocols too.
            parsed.upgrade_websocket |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.connection_upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            parsed.repeated_key |= parsed.key.replace(value).is_some();
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            parsed.repeated_version |= parsed.version.replace(value).is_some();
        } else if name.eq_ignore_ascii_case("origin") {
            parsed.origin = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            if parsed.protocol.is_none() {
                parsed.protocol = tokens(value)
                    .find(|t| supported_protocols.iter().any(|p| p.as_bytes() == *t))
                    .and_then(|t| std::str::from_utf8(t).ok());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            parsed.body |= value != b"0";
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.body = true;
        }
    }
    Ok(parsed)
}

impl<'h> RequestHead<'h> {
    /// The path of the target, without its query.
    pub fn path(&self) -> &'h str {
        // An absolute-form target (`GET ws://host/chat`, RFC 7230 §5.3.2) names the same
        // resource as its path.
        let target = match self.target.split_once("://") {
            Some((scheme, rest)) if !scheme.contains('/') => {
                rest.find('/').map_or("/", |slash| &rest[slash..])
            }
            _ => self.target,
        };
        target.split('?').next().unwrap_or(target)
    }

    /// Whether the client asks for a WebSocket at all (an |Upgrade| header or a key). Such a
    /// request is held to the handshake's rules, never answered with a page.
    pub fn wants_websocket(&self) -> bool {
        self.upgrade_header || self.key.is_some()
    }

    /// Whether the request carries a body (`Content-Length` other than 0, or
    /// `Transfer-Encoding`).
    pub fn has_body(&self) -> bool {
        self.body
    }

    /// Checks the head against §4.2.1, in the order of its items.
    pub fn validate(self) -> Result<Request<'h>, HandshakeError> {
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if !self.http11 {
            return Err(HandshakeError::NotHttp11);
        }
        if !self.host {
            return Err(HandshakeError::MissingHost);
        }
        if !self.upgrade_websocket {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !self.connection_upgrade {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // §11.3.1: "The |Sec-WebSocket-Key| header field MUST NOT appear more than once in an
        // HTTP request."
        let key = self.key.ok_or(HandshakeError::MissingKey)?;
        if self.repeated_key || !is_valid_key(key) {
            return Err(HandshakeError::InvalidKey);
        }
        if self.repeated_version {
            return Err(HandshakeError::RepeatedVersion);
        }
        match self.version {
            None => return Err(HandshakeError::MissingVersion),
            Some(v) if v != SUPPORTED_VERSION.as_bytes() => {
                return Err(HandshakeError::UnsupportedVersion);
            }
            Some(_) => {}
        }
        // After the head come frames, not a body.
        if self.body {
            return Err(HandshakeError::UnexpectedBody);
        }
        Ok(Request {
            path: self.target,
            key,
            origin: self.origin,
            protocol: self.protocol.map(str::to_owned),
        })
    }
}

/// Parses and checks a complete request head as an opening handshake: [`parse_head`] then
/// [`RequestHead::validate`].
pub fn parse_request<'h>(
    head: &'h [u8],
    max_headers: usize,
    supported_protocols: &[String],
) -> Result<Request<'h>, HandshakeError> {
    parse_head(head, max_headers, supported_protocols)?.validate()
}

/// Appends the `101 Switching Protocols` response (§4.2.2 step 5) for `request` to `out`.
pub fn write_accept(out: &mut Vec<u8>, request: &Request<'_>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(request.key).as_bytes());
    if let Some(p) = &request.protocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// §4.1: the key is base64 of exactly 16 bytes, which is always 24 characters ending in `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && matches!(BASE64.decode(key), Ok(bytes) if bytes.len() == 16)
}

fn trim(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parse(head: &str) -> Result<Request<'_>, HandshakeError> {
        parse_request(head.as_bytes(), DEFAULT_MAX_HEADERS, &["superchat".to_owned()])
    }

    /// §1.3: "the server would append the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...]
    /// This value is then base64-encoded [...] to give the value "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="".
    #[test]
    fn rfc_1_3_accept_key() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_the_rfc_request() {
        let req = parse(GOOD).unwrap();
        assert_eq!(req.path, "/chat");
        assert_eq!(req.origin, Some("http://example.com"));
        assert_eq!(req.protocol.as_deref(), Some("superchat"));
        let mut out = Vec::new();
        write_accept(&mut out, &req);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: superchat\r\n\r\n"
        );
    }

    #[test]
    fn first_offered_supported_protocol_wins_and_none_is_omitted() {
        let head = GOOD.replace("chat, superchat", "a, b");
        let p = parse_request(head.as_bytes(), 64, &["b".into(), "a".into()]).unwrap();
        assert_eq!(p.protocol.as_deref(), Some("a"));
        let p = parse_request(head.as_bytes(), 64, &[]).unwrap();
        assert_eq!(p.protocol, None);
        let mut out = Vec::new();
        write_accept(&mut out, &p);
        assert!(!String::from_utf8(out).unwrap().contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn header_names_and_values_are_case_insensitive() {
        let head = GOOD
            .replace("Upgrade: websocket", "UPGRADE: WebSocket")
            .replace("Connection: Upgrade", "connection: keep-alive, upgrade");
        assert!(parse(&head).is_ok());
    }

    #[test]
    fn each_rejection_has_its_status() {
        let cases: Vec<(String, HandshakeError, u16)> = vec![
            (GOOD.replace("GET", "POST"), HandshakeError::MethodNotAllowed, 405),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), HandshakeError::NotHttp11, 400),
            (GOOD.replace("Host: server.example.com\r\n", ""), HandshakeError::MissingHost, 400),
            (GOOD.replace("Upgrade: websocket\r\n", ""), HandshakeError::MissingUpgrade, 400),
            (
                GOOD.replace("Upgrade: websocket", "Upgrade: h2c"),
                HandshakeError::MissingUpgrade,
                400,
            ),
            (
                GOOD.replace("Connection: Upgrade", "Connection: close"),
                HandshakeError::MissingConnectionUpgrade,
                400,
            ),
            (
                GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                HandshakeError::MissingKey,
                400,
            ),
            (
                GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!!!!!!!!!!!!!!!!!!!!=="),
                HandshakeError::InvalidKey,
                400,
            ),
            (
                GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""),
                HandshakeError::MissingVersion,
                400,
            ),
            (GOOD.replace("Version: 13", "Version: 8"), HandshakeError::UnsupportedVersion, 426),
            (
                GOOD.replace("\r\n\r\n", "\r\nContent-Length: 5\r\n\r\n"),
                HandshakeError::UnexpectedBody,
                400,
            ),
            (
                GOOD.replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n"),
                HandshakeError::UnexpectedBody,
                400,
            ),
            (
                GOOD.replace("\r\n\r\n", "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
                HandshakeError::InvalidKey,
                400,
            ),
            ("GARBAGE\r\n\r\n".to_owned(), HandshakeError::Malformed, 400),
        ];
        for (head, error, status) in cases {
            assert_eq!(parse(&head), Err(error), "{head}");
            assert_eq!(error.status(), status);
        }
    }

    #[test]
    fn upgrade_may_list_other_protocols_and_extensions_are_ignored() {
        let head = GOOD.replace("Upgrade: websocket", "Upgrade: h2c, WebSocket").replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        );
        let request = parse(&head).unwrap();
        let mut out = Vec::new();
        write_accept(&mut out, &request);
        // §4.2.1 item 9 / §9.1: no extension is agreed to, so none is named in the answer.
        assert!(!String::from_utf8(out).unwrap().contains("Extensions"));
    }

    /// §11.3.4: |Sec-WebSocket-Protocol| may be split over several header lines.
    #[test]
    fn subprotocols_offered_over_several_lines() {
        let head = GOOD.replace(
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n",
        );
        assert_eq!(parse(&head).unwrap().protocol.as_deref(), Some("superchat"));
    }

    #[test]
    fn a_repeated_version_is_400() {
        let head = GOOD.replace("\r\n\r\n", "\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(parse(&head), Err(HandshakeError::RepeatedVersion));
        assert_eq!(HandshakeError::RepeatedVersion.status(), 400);
    }

    #[test]
    fn an_absolute_form_target_names_its_path() {
        for (target, path) in
            [("/chat?x=1", "/chat"), ("ws://example.com/chat?x", "/chat"), ("http://h", "/")]
        {
            let head = GOOD.replacen("/chat", target, 1);
            let head = parse_head(head.as_bytes(), 64, &[]).unwrap();
            assert_eq!(head.path(), path, "{target}");
        }
    }

    #[test]
    fn too_many_headers_is_431() {
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        let head = GOOD.replace("\r\n\r\n", &format!("\r\n{many}\r\n"));
        assert_eq!(parse(&head), Err(HandshakeError::TooManyHeaders));
        assert_eq!(HandshakeError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn error_responses_are_complete_http() {
        let mut out = Vec::new();
        HandshakeError::UnsupportedVersion.write_response(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));

        let mut out = Vec::new();
        HandshakeError::MethodNotAllowed.write_response(&mut out);
        assert!(String::from_utf8(out).unwrap().contains("\r\nAllow: GET\r\n"));
    }

    #[test]
    fn head_end_is_found_across_pieces_scanning_only_new_bytes() {
        let head = GOOD.as_bytes();
        for cut in 0..head.len() {
            let mut scanned = 0;
            let mut found = None;
            for end in [cut, head.len()] {
                if found.is_none() {
                    found = find_head_end(&head[..end], scanned);
                    scanned = end;
                }
            }
            assert_eq!(found, Some(head.len()), "cut {cut}");
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", 0), None);
    }

    proptest::proptest! {
        /// Any bytes as a request head: parsed and checked without panicking, and every
        /// refusal is one of the statuses the server documents.
        #[test]
        fn any_head_is_accepted_or_refused_with_a_known_status(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            split in 0usize..300,
        ) {
            let whole = find_head_end(&bytes, 0);
            let split = split.min(bytes.len());
            let in_two = find_head_end(&bytes[..split], 0).or_else(|| find_head_end(&bytes, split));
            proptest::prop_assert_eq!(whole, in_two);
            match parse_request(&bytes, DEFAULT_MAX_HEADERS, &["chat".to_owned()]) {
                Ok(request) => {
                    let mut out = Vec::new();
                    write_accept(&mut out, &request);
                    proptest::prop_assert!(out.starts_with(b"HTTP/1.1 101 "));
                }
                Err(e) => proptest::prop_assert!([400, 403, 404, 405, 426, 431].contains(&e.status())),
            }
        }

        /// A valid request with noise header lines in any order and case is still accepted.
        #[test]
        fn valid_requests_survive_noise(noise in proptest::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,20}", 0..8)) {
            let extra: String = noise.iter().filter(|line| {
                let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                !["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                  "content-length", "transfer-encoding", "sec-websocket-protocol", "origin"]
                    .contains(&name.as_str())
            }).map(|line| format!("{line}\r\n")).collect();
            let head = GOOD.replace("\r\n\r\n", &format!("\r\n{extra}\r\n"));
            proptest::prop_assert!(parse(&head).is_ok(), "{}", head);
        }
    }
}
