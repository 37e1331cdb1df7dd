//! Plain HTTP/1.1 on the WebSocket's port: the responses that are not a `101`. An opening
//! handshake refused (§4.2.2: "an appropriate HTTP error code"), a page served to a browser, a
//! `503` when the server is full: each is a [`Response`], written by [`write_response`].
//!
//! Every response closes the connection (`Connection: close`): the server speaks HTTP only to
//! answer one request or to upgrade.

use bytes::Bytes;

/// An HTTP response other than `101 Switching Protocols`: a status, header fields and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status, 200-599.
    pub status: u16,
    /// Header fields, in order. `Content-Length` and `Connection` are written by the server.
    pub headers: Vec<(String, String)>,
    /// The body (not sent in answer to `HEAD`).
    pub body: Bytes,
}

impl Response {
    /// A response with `status`, no header fields and no body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Bytes::new() }
    }

    /// A refusal with a one-line `text/plain` reason as its body (a newline is added).
    pub fn text(status: u16, reason: &str) -> Response {
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(format!("{reason}\n"))
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = body.into();
        self
    }

    /// Checks the status and the header fields; the connection sends a 500 instead of a
    /// response that fails.
    pub(crate) fn check(&self) -> Result<(), crate::handshake::AnswerError> {
        use crate::handshake::AnswerError;
        if !(200..=599).contains(&self.status) {
            return Err(AnswerError::InvalidStatus(self.status));
        }
        for (name, value) in &self.headers {
            check_header(name, value, &["content-length", "connection", "transfer-encoding"])
                .map_err(|e| match e {
                    HeaderError::Reserved => AnswerError::ReservedHeader,
                    HeaderError::Invalid => AnswerError::InvalidHeader,
                })?;
        }
        Ok(())
    }
}

/// Why a header field cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The name is not an RFC 7230 token, or the value holds CR, LF or NUL.
    Invalid,
    /// The name is one the server writes itself.
    Reserved,
}

/// Checks a header field the application wants to send: a token for a name (RFC 7230 §3.2.6),
/// a value without CR, LF or NUL (so that it cannot end the head or add a field), and a name
/// not in `reserved` (lower case).
pub(crate) fn check_header(name: &str, value: &str, reserved: &[&str]) -> Result<(), HeaderError> {
    let token = crate::handshake::is_tchar;
    if name.is_empty() || !name.bytes().all(token) || value.bytes().any(|c| b"\r\n\0".contains(&c))
    {
        return Err(HeaderError::Invalid);
    }
    if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err(HeaderError::Reserved);
    }
    Ok(())
}

/// Appends `name: value\r\n`.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `response` to `out` (only its head if `head_only`, the answer to `HEAD`), with
/// `Content-Length` and `Connection: close`. The caller has checked it.
pub fn write_response(out: &mut Vec<u8>, response: &Response, head_only: bool) {
    let status = response.status;
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", status_text(status)).as_bytes());
    for (name, value) in &response.headers {
        write_field(out, name, value);
    }
    write_field(out, "Content-Length", &response.body.len().to_string());
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    if !head_only {
        out.extend_from_slice(&response.body);
    }
}

/// Appends an HTTP/1.1 response with a one-line `text/plain` body and `Connection: close`.
/// `extra_headers` is empty or complete header lines, each ending in CRLF.
pub(crate) fn write_plain_response(
    out: &mut Vec<u8>,
    status: u16,
    extra_headers: &str,
    body: &str,
) {
    let text = status_text(status);
    let len = body.len() + 1;
    let head = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {len}\r\nConnection: close\r\n{extra_headers}\r\n{body}\n"
    );
    out.extend_from_slice(head.as_bytes());
}

/// The reason phrase of a status (RFC 9110 §15), or `Error` for one it does not name.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_complete_http() {
        let response = Response::text(401, "token required").with_header("WWW-Authenticate", "x");
        let mut out = Vec::new();
        write_response(&mut out, &response, false);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n\
             WWW-Authenticate: x\r\nContent-Length: 15\r\nConnection: close\r\n\r\n\
             token required\n"
        );
        let mut out = Vec::new();
        write_response(&mut out, &response, true);
        assert!(String::from_utf8(out).unwrap().ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn header_fields_are_checked() {
        assert_eq!(check_header("Set-Cookie", "a=b; Path=/", &[]), Ok(()));
        assert_eq!(check_header("X-Bad Name", "v", &[]), Err(HeaderError::Invalid));
        assert_eq!(check_header("", "v", &[]), Err(HeaderError::Invalid));
        assert_eq!(check_header("X-A", "v\r\nX-Injected: 1", &[]), Err(HeaderError::Invalid));
        assert_eq!(
            check_header("CONNECTION", "keep-alive", &["connection"]),
            Err(HeaderError::Reserved)
        );
        assert!(Response::new(101).check().is_err());
        assert!(Response::new(200).check().is_ok());
        assert!(Response::new(200).with_header("Content-Length", "3").check().is_err());
    }
}
