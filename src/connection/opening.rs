//! The opening handshake inside a connection: collecting a head across reads (the request on a
//! server's connection, §4.2; the response on a client's, §4.1, read in `client.rs`), holding
//! the request until the application answers it, and sending the answer once the core has
//! checked it.

use super::{Connection, Event, Received, Role};
use crate::handshake::{self, Accept, AnswerError, HandshakeError, Request, UpgradeError};
use crate::http::{self, Response};
use crate::state::State;
use std::time::Instant;

impl Connection {
    /// Collects the opening handshake's head (the client's request, or the server's response
    /// on a client's connection) until its blank line, within `max_head_size`, then hands the
    /// complete head to the role's reader.
    pub(super) fn receive_handshake<'a>(
        &mut self,
        input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Received<'a> {
        if self.request().is_some() {
            // The request waits for its answer; the bytes after it wait too.
            return Received { consumed: 0, event: None };
        }
        let max = self.config.max_head_size;
        let buffered = self.extras.as_ref().is_some_and(|extras| !extras.head.is_empty());
        let (consumed, event) = if !buffered {
            // Common case: the whole head in one read, read where it lies.
            let window = &input[..input.len().min(max)];
            match handshake::find_head_end(window, 0) {
                Some(end) => (end, self.on_head(Ok(&input[..end]), now, out)),
                None if input.len() >= max => (input.len(), self.on_head(Err(()), now, out)),
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
                    (end - scanned, self.on_head(Ok(&head[..end]), now, out))
                }
                None if head.len() >= max => (take, self.on_head(Err(()), now, out)),
                None => return Received { consumed: take, event: None },
            }
        };
        Received { consumed, event: Some(event) }
    }

    /// A complete head (or `Err`: one past the size limit), read as the role reads it.
    fn on_head(
        &mut self,
        head: Result<&[u8], ()>,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Event<'static> {
        if self.role() == Role::Client {
            return match head {
                Ok(head) => self.check_upgrade(head, now),
                Err(()) => {
                    self.transition(State::Closed, Some(now));
                    Event::UpgradeFailed(UpgradeError::HeadTooLarge)
                }
            };
        }
        let parsed =
            head.map_err(|()| HandshakeError::HeadTooLarge).and_then(|h| self.parse_head(h));
        match parsed {
            Ok(request) => {
                self.extras().request = Some(request);
                Event::Request
            }
            Err(error) => {
                self.trace(|| format!("§4.2.2 -> HTTP/1.1 {error}"));
                error.write_response(out);
                self.transition(State::Closed, Some(now));
                Event::Rejected(error)
            }
        }
    }

    /// Parses a complete head. An opening handshake that breaks §4.2.1 is refused here, before
    /// the application is asked: "the server MUST stop processing the client's handshake and
    /// return an HTTP response with an appropriate error code (such as 400 Bad Request)".
    fn parse_head(&mut self, head: &[u8]) -> Result<Request, HandshakeError> {
        self.trace(|| format!("§4.2.1 <- {}", handshake::first_line(head)));
        let request = Request::parse(head, self.config.max_headers)?;
        if request.is_websocket() {
            request.validate()?;
        }
        Ok(request)
    }

    /// The request waiting for an answer, after [`Event::Request`].
    pub fn request(&self) -> Option<&Request> {
        self.extras.as_ref().and_then(|extras| extras.request.as_ref())
    }

    /// Accepts the waiting request as a WebSocket: writes the `101 Switching Protocols`
    /// (§4.2.2) into `out`, and the connection is open.
    ///
    /// The core holds the answer to the RFC first. A request that is not a valid opening
    /// handshake (a plain HTTP request) gets its §4.2.1 error instead; an answer that breaks
    /// §4.2.2 (a subprotocol the client did not offer) or carries a bad header field gets a
    /// 500. Either way the connection is closed once `out` is sent, and the error says why.
    pub fn accept(
        &mut self,
        accept: &Accept,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), AnswerError> {
        let request = self.take_request()?;
        let checked = match request.validate() {
            Ok(upgrade) => accept.check(&request).map(|()| upgrade),
            Err(error) => Err(AnswerError::NotAnUpgrade(error)),
        };
        match checked {
            Ok(upgrade) => {
                let extensions = self.negotiate_compression(&request, accept.extensions);
                let start = out.len();
                handshake::write_accept(out, upgrade.key, accept, extensions.as_deref());
                self.trace(|| format!("§4.2.2 -> {}", handshake::first_line(&out[start..])));
                self.transition(State::Open, Some(now));
                Ok(())
            }
            Err(error) => {
                self.refuse_answer(error, out, now);
                Err(error)
            }
        }
    }

    /// Answers the waiting request with a plain HTTP response (a page, a redirect, a refusal
    /// such as 401 or 403), or refuses a connection before its request has arrived (503 when
    /// the server is full). The connection is closed once `out` is sent. A response with a
    /// status outside 200-599 or a bad header field is replaced by a 500.
    pub fn respond(
        &mut self,
        response: &Response,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), AnswerError> {
        if self.state != State::Connecting || self.role() == Role::Client {
            return Err(AnswerError::NoRequest);
        }
        let head_only = self.request().is_some_and(|request| request.method() == "HEAD");
        if let Some(extras) = &mut self.extras {
            extras.request = None;
        }
        if let Err(error) = response.check() {
            self.refuse_answer(error, out, now);
            return Err(error);
        }
        let start = out.len();
        http::write_response(out, response, head_only);
        self.trace(|| format!("§4.2.2 -> {}", handshake::first_line(&out[start..])));
        self.transition(State::Closed, Some(now));
        Ok(())
    }

    fn take_request(&mut self) -> Result<Request, AnswerError> {
        let request = self.extras.as_mut().and_then(|extras| extras.request.take());
        request.ok_or(AnswerError::NoRequest)
    }

    /// Sends the status of an answer that could not be sent, and closes.
    fn refuse_answer(&mut self, error: AnswerError, out: &mut Vec<u8>, now: Instant) {
        match error {
            AnswerError::NotAnUpgrade(refusal) => refusal.write_response(out),
            _ => http::write_plain_response(out, 500, "", "internal server error"),
        }
        self.trace(|| format!("§4.2.2 -> HTTP/1.1 {error}"));
        self.transition(State::Closed, Some(now));
    }
}
