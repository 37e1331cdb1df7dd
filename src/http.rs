//! Plain HTTP/1.1 on the WebSocket's port: the error responses of the opening handshake, and
//! static pages (the chat page) for requests that do not ask for a WebSocket.
//!
//! Every response closes the connection (`Connection: close`): the server speaks HTTP only to
//! answer one request or to upgrade.

use crate::handshake::RequestHead;
use bytes::Bytes;

/// A static resource served at an exact path to `GET` and `HEAD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The path, e.g. `/`. A query string in the request is ignored.
    pub path: String,
    /// The `Content-Type`, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
}

/// How a request head is to be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'c> {
    /// Serve this page (only its headers for `HEAD`).
    Page {
        /// The page.
        page: &'c Page,
        /// The request was `HEAD`.
        head_only: bool,
    },
    /// Hold the request to the opening handshake (§4.2.1).
    WebSocket,
    /// A page exists at this path, but not for this method (405 with `Allow: GET, HEAD`).
    PageMethodNotAllowed,
    /// Nothing is served at this path (404).
    NotFound,
}

/// Decides how to answer `head`, given the server's pages and the one path its WebSockets
/// live at (`None`: any path).
pub fn route<'c>(
    head: &RequestHead<'_>,
    pages: &'c [Page],
    websocket_path: Option<&str>,
) -> Route<'c> {
    let path = head.path();
    if head.wants_websocket() {
        return match websocket_path {
            Some(p) if p != path => Route::NotFound,
            _ => Route::WebSocket,
        };
    }
    match pages.iter().find(|page| page.path == path) {
        Some(page) => match head.method {
            "GET" => Route::Page { page, head_only: false },
            "HEAD" => Route::Page { page, head_only: true },
            _ => Route::PageMethodNotAllowed,
        },
        // A server with pages answers 404 for any other path; a WebSocket-only server explains
        // what is missing from the handshake instead.
        None if !pages.is_empty() && websocket_path.is_none_or(|p| p != path) => Route::NotFound,
        None => Route::WebSocket,
    }
}

/// Appends a `200 OK` response with the page (the body only if `!head_only`).
pub fn write_page(out: &mut Vec<u8>, page: &Page, head_only: bool) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        page.content_type,
        page.body.len()
    );
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(&page.body);
    }
}

/// Appends the 405 for a page asked for with a method other than `GET` or `HEAD`.
pub fn write_page_method_not_allowed(out: &mut Vec<u8>) {
    write_plain_response(out, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD are allowed here");
}

/// Appends an HTTP/1.1 response with a one-line `text/plain` body and `Connection: close`.
/// `extra_headers` is empty or complete header lines, each ending in CRLF.
pub fn write_plain_response(out: &mut Vec<u8>, status: u16, extra_headers: &str, body: &str) {
    let text = status_text(status);
    let len = body.len() + 1;
    let head = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {len}\r\nConnection: close\r\n{extra_headers}\r\n{body}\n"
    );
    out.extend_from_slice(head.as_bytes());
}

/// The reason phrase of the statuses this server sends.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_head;

    fn pages() -> Vec<Page> {
        vec![Page {
            path: "/".into(),
            content_type: "text/html".into(),
            body: Bytes::from_static(b"<p>hi"),
        }]
    }

    fn route_of(request: &str, pages: &[Page], ws: Option<&str>) -> String {
        let head = parse_head(request.as_bytes(), 64, &[]).unwrap();
        format!("{:?}", route(&head, pages, ws))
    }

    const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n";

    #[test]
    fn routes() {
        let p = pages();
        let get =
            |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        assert!(route_of(&get("/", ""), &p, Some("/")).starts_with("Page"));
        assert!(route_of(&get("/?x=1", ""), &p, Some("/")).starts_with("Page"));
        assert!(
            route_of("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", &p, Some("/"))
                .contains("head_only: true")
        );
        assert_eq!(
            route_of("POST / HTTP/1.1\r\nHost: x\r\n\r\n", &p, Some("/")),
            "PageMethodNotAllowed"
        );
        assert_eq!(route_of(&get("/nope", ""), &p, Some("/")), "NotFound");
        assert_eq!(route_of(&get("/", UPGRADE), &p, Some("/")), "WebSocket");
        assert_eq!(route_of(&get("/other", UPGRADE), &p, Some("/")), "NotFound");
        // A WebSocket-only server (no pages) sends every request to the handshake rules.
        assert_eq!(route_of(&get("/any", ""), &[], None), "WebSocket");
        assert_eq!(route_of(&get("/any", UPGRADE), &[], None), "WebSocket");
    }

    #[test]
    fn page_responses() {
        let p = pages();
        let mut out = Vec::new();
        write_page(&mut out, &p[0], false);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n")
        );
        assert!(text.ends_with("\r\n\r\n<p>hi"));
        let mut out = Vec::new();
        write_page(&mut out, &p[0], true);
        assert!(String::from_utf8(out).unwrap().ends_with("Content-Length: 5\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"));
    }
}
