//! A ready-made answer to the opening handshake: the choices most servers make (which paths
//! serve pages, where WebSockets live, which origins and subprotocols are welcome), built on
//! the handshake hook rather than read by the protocol core.
//!
//! The core asks the application about every request ([`crate::server::Handler::on_request`]);
//! a handler that has no opinion of its own hands the request to a [`Policy`]:
//!
//! ```
//! use rfc6455::handshake::Request;
//! use rfc6455::policy::Policy;
//!
//! let mut policy = Policy::default();
//! policy.allowed_origins.push("https://chat.example".into());
//! policy.subprotocols.push("chat.v1".into());
//! let head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
//!     Origin: https://evil.example\r\n\r\n";
//! let request = Request::parse(head, 64).unwrap();
//! assert_eq!(policy.decide(&request).unwrap_err().status, 403);
//! ```

use crate::handshake::{Accept, Request};
use crate::http::Response;
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

impl Page {
    /// The `200 OK` that serves this page.
    pub fn response(&self) -> Response {
        Response::new(200)
            .with_header("Content-Type", self.content_type.clone())
            .with_header("Cache-Control", "no-cache")
            .with_header("X-Content-Type-Options", "nosniff")
            .with_body(self.body.clone())
    }
}

/// Which requests get a page, a WebSocket, or a refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Pages served to plain `GET`/`HEAD` requests on the same port.
    pub pages: Vec<Page>,
    /// The one path WebSockets are opened at (`None`: any path).
    pub websocket_path: Option<String>,
    /// Origins allowed to open a WebSocket (§10.2), compared ASCII case-insensitively; empty:
    /// any. A request without an Origin header (not from a browser) is not refused by this
    /// list: such a client can send any Origin it likes anyway.
    pub allowed_origins: Vec<String>,
    /// Subprotocols this server speaks; the first one the client offers is chosen.
    pub subprotocols: Vec<String>,
}

impl Policy {
    /// Answers `request`: `Ok` to accept it as a WebSocket (the core then holds it to §4.2.1),
    /// `Err` with the response to send instead (a page, 403, 404 or 405).
    pub fn decide(&self, request: &Request) -> Result<Accept, Response> {
        let path = request.path();
        if !request.is_websocket() {
            return match self.pages.iter().find(|page| page.path == path) {
                Some(page) if matches!(request.method(), "GET" | "HEAD") => Err(page.response()),
                Some(_) => Err(Response::text(405, "only GET and HEAD are allowed here")
                    .with_header("Allow", "GET, HEAD")),
                // A server with pages answers 404 for any other path; a WebSocket-only server
                // lets the core explain what is missing from the handshake instead.
                None if !self.pages.is_empty()
                    && self.websocket_path.as_deref().is_none_or(|p| p != path) =>
                {
                    Err(Response::text(404, "not found"))
                }
                None => Ok(Accept::new()),
            };
        }
        // §4.2.2 /resource name/: "If the requested service is not available, the server MUST
        // send an appropriate HTTP error code (such as 404 Not Found)".
        if self.websocket_path.as_deref().is_some_and(|p| p != path) {
            return Err(Response::text(404, "not found"));
        }
        // §10.2: "Servers that are not intended to process input from any web page but only for
        // certain sites SHOULD verify the |Origin| field is an origin they expect. If the
        // origin indicated is unacceptable to the server, then it SHOULD respond to the
        // WebSocket handshake with a reply containing HTTP 403 Forbidden status code."
        if let Some(origin) = request.origin()
            && !self.allowed_origins.is_empty()
            && !self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Err(Response::text(403, "origin not allowed"));
        }
        // §4.2.2 /subprotocol/: one of the values the client offered, in its order of preference.
        let chosen =
            request.subprotocols().find(|offered| self.subprotocols.iter().any(|p| p == offered));
        Ok(match chosen {
            Some(name) => Accept::new().with_subprotocol(name),
            None => Accept::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_policy() -> Policy {
        let page = Page {
            path: "/".into(),
            content_type: "text/html".into(),
            body: Bytes::from_static(b"<p>hi"),
        };
        Policy { pages: vec![page], websocket_path: Some("/".into()), ..Policy::default() }
    }

    fn decide(policy: &Policy, head: &str) -> Result<Accept, u16> {
        let request = Request::parse(head.as_bytes(), 64).unwrap();
        policy.decide(&request).map_err(|response| response.status)
    }

    const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n";

    fn get(path: &str, extra: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
    }

    #[test]
    fn routes() {
        let p = chat_policy();
        assert_eq!(decide(&p, &get("/", "")), Err(200));
        assert_eq!(decide(&p, &get("/?x=1", "")), Err(200));
        assert_eq!(decide(&p, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"), Err(200));
        assert_eq!(decide(&p, "POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Err(405));
        assert_eq!(decide(&p, &get("/nope", "")), Err(404));
        assert_eq!(decide(&p, &get("/", UPGRADE)), Ok(Accept::new()));
        assert_eq!(decide(&p, &get("/other", UPGRADE)), Err(404));
        // A WebSocket-only server (no pages) sends every request to the handshake rules.
        assert_eq!(decide(&Policy::default(), &get("/any", "")), Ok(Accept::new()));
        assert_eq!(decide(&Policy::default(), &get("/any", UPGRADE)), Ok(Accept::new()));
    }

    #[test]
    fn origins_and_subprotocols() {
        let mut p = Policy::default();
        p.allowed_origins.push("https://chat.example".into());
        p.subprotocols = vec!["b".into(), "a".into()];
        let with = |extra: &str| get("/", &format!("{UPGRADE}{extra}"));
        assert_eq!(decide(&p, &with("Origin: https://evil.example\r\n")), Err(403));
        assert_eq!(decide(&p, &with("Origin: HTTPS://CHAT.EXAMPLE\r\n")), Ok(Accept::new()));
        assert_eq!(decide(&p, &with("")), Ok(Accept::new()), "no Origin: not a browser");
        // The client's order of preference wins.
        let offered = with("Sec-WebSocket-Protocol: x, a\r\nSec-WebSocket-Protocol: b\r\n");
        assert_eq!(decide(&p, &offered), Ok(Accept::new().with_subprotocol("a")));
    }

    #[test]
    fn a_page_response_carries_its_type() {
        let response = chat_policy().pages[0].response();
        assert_eq!(response.status, 200);
        assert!(response.headers.contains(&("Content-Type".into(), "text/html".into())));
        assert_eq!(&response.body[..], b"<p>hi");
    }
}
