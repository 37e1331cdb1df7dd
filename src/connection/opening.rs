//! Reading the opening handshake (RFC 6455 §4.2) inside a connection: collecting the request
//! head across reads, then answering it with 101, a page, or an HTTP error.

use super::{Connection, Event, Opened, Received};
use crate::handshake::{self, HandshakeError};
use crate::http::{self, Route};
use crate::state::State;
use std::time::Instant;

/// How a complete request head was answered.
enum Answer {
    Open(Opened),
    Served(String),
    /// Refused, with the response already written.
    Refused(HandshakeError),
}

impl Connection {
    pub(super) fn receive_handshake<'a>(
        &mut self,
        input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Received<'a> {
        let max = self.config.max_head_size;
        let buffered = self.extras.as_ref().is_some_and(|extras| !extras.head.is_empty());
        let (consumed, result) = if !buffered {
            // Common case: the whole head in one read, parsed where it lies.
            let window = &input[..input.len().min(max)];
            match handshake::find_head_end(window, 0) {
                Some(end) => (end, self.answer_head(&input[..end], out)),
                None if input.len() >= max => (input.len(), Err(HandshakeError::HeadTooLarge)),
                None => {
                    self.extras().head.extend_from_slice(input);
                    return Received { consumed: input.len(), event: None };
                }
            }
        } else {
            let head = &mut self.extras().head;
            let scanned = head.len();
            let take = input.len().min(max - scanned);
            head.extend_from_slice(&input[..take]);
            match handshake::find_head_end(head, scanned) {
                Some(end) => {
                    let head = std::mem::take(head);
                    (end - scanned, self.answer_head(&head[..end], out))
                }
                None if head.len() >= max => (take, Err(HandshakeError::HeadTooLarge)),
                None => return Received { consumed: take, event: None },
            }
        };
        let event = match result {
            Ok(Answer::Open(opened)) => {
                self.transition(State::Open, Some(now));
                Event::Opened(opened)
            }
            Ok(Answer::Served(path)) => {
                self.transition(State::Closed, Some(now));
                Event::Served(path)
            }
            Ok(Answer::Refused(error)) => {
                self.transition(State::Closed, Some(now));
                Event::Rejected(error)
            }
            Err(error) => {
                error.write_response(out);
                self.transition(State::Closed, Some(now));
                Event::Rejected(error)
            }
        };
        Received { consumed, event: Some(event) }
    }

    /// Answers a complete request head: writes the 101 response or a page into `out`, or
    /// returns the handshake error for the caller to answer.
    fn answer_head(&mut self, head: &[u8], out: &mut Vec<u8>) -> Result<Answer, HandshakeError> {
        self.trace(|| format!("§4.2.1 <- {}", first_line(head)));
        let start = out.len();
        let answer = self.answer_parsed_head(head, out);
        // Handshake errors are written by the caller; the others are in `out` now.
        self.trace(|| match &answer {
            Err(error) => format!("§4.2.2 -> HTTP/1.1 {error}"),
            Ok(_) => format!("§4.2.2 -> {}", first_line(&out[start..])),
        });
        answer
    }

    fn answer_parsed_head(&self, head: &[u8], out: &mut Vec<u8>) -> Result<Answer, HandshakeError> {
        let config = &self.config;
        let head = handshake::parse_head(head, config.max_headers, &config.subprotocols)?;
        match http::route(&head, &config.pages, config.websocket_path.as_deref()) {
            Route::WebSocket => {}
            Route::Page { page, head_only } => {
                http::write_page(out, page, head_only);
                return Ok(Answer::Served(page.path.clone()));
            }
            Route::PageMethodNotAllowed => {
                http::write_page_method_not_allowed(out);
                return Ok(Answer::Refused(HandshakeError::MethodNotAllowed));
            }
            Route::NotFound => return Err(HandshakeError::NotFound),
        }
        let request = head.validate()?;
        // §10.2: "Servers that are not intended to process input from any web page but only for
        // certain sites SHOULD verify the |Origin| field is an origin they expect."
        if let Some(origin) = request.origin
            && !config.allowed_origins.is_empty()
            && !config.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Err(HandshakeError::OriginNotAllowed);
        }
        handshake::write_accept(out, &request);
        Ok(Answer::Open(Opened {
            path: request.path.to_owned(),
            protocol: request.protocol,
            origin: request.origin.map(str::to_owned),
        }))
    }
}

/// The first line of an HTTP head, for the trace.
fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()
}
