//! The client's side of a connection (RFC 6455 §4.1, §5.3, §7.1.1): the opening handshake it
//! sends and the 101 it checks, the masking key of every frame it sends, and its part in
//! closing (the server closes TCP first; the client waits for that, up to a deadline).
//!
//! Everything after the handshake is shared with the server: the frame reader, the UTF-8
//! validator, the close handshake and permessage-deflate. Only the direction of masking
//! differs (§5.1: "a client MUST mask all frames that it sends to the server"; "A server MUST
//! NOT mask any frames that it sends to the client").

use super::{Config, Connection, Event, Role};
use crate::handshake::{self, ClientRequest, RequestError, UpgradeError};
use crate::random::Keys;
use crate::state::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::sync::Arc;
use std::time::Instant;

/// What only a client keeps.
#[derive(Debug)]
pub(super) struct ClientSide {
    /// §5.3: where every masking key comes from.
    keys: Keys,
    /// Our |Sec-WebSocket-Key| (§4.1), until the server's answer is checked.
    key: String,
    /// The subprotocols offered, until the answer is checked.
    subprotocols: Vec<String>,
    /// We offered permessage-deflate.
    offered_deflate: bool,
    /// The 101 was accepted (the WebSocket connection was established).
    established: bool,
}

impl Connection {
    /// A client connection whose TCP connection to the server opened at `now`: writes the
    /// opening handshake (§4.1) into `out` and waits for the server's answer
    /// ([`Event::Upgraded`] or [`Event::UpgradeFailed`]).
    ///
    /// `seed` seeds the generator of masking keys and of the handshake's nonce: 32 bytes from
    /// a strong source ([`crate::random::os_seed`]), secret. Tests pass a fixed one.
    pub fn client(
        config: Arc<Config>,
        request: &ClientRequest,
        seed: [u8; 32],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Connection, RequestError> {
        request.check()?;
        let mut keys = Keys::new(seed);
        // §4.1: "The request MUST include a header field with the name |Sec-WebSocket-Key|.
        // The value of this header field MUST be a nonce consisting of a randomly selected
        // 16-byte value that has been base64-encoded".
        let mut nonce = [0u8; 16];
        keys.fill(&mut nonce);
        let key = BASE64.encode(nonce);
        let mut conn = Connection::new(config, now);
        if let Some(lines) = conn.extras().trace.as_mut() {
            lines.clear();
            lines.push("§4.1 TCP connection open, sending the opening handshake".into());
        }
        let offer = conn.compression_offer();
        // From here on the connection is a client's: it holds its `ClientSide` for life.
        conn.extras().client = Some(ClientSide {
            keys,
            key: key.clone(),
            subprotocols: request.subprotocols.clone(),
            offered_deflate: offer.is_some(),
            established: false,
        });
        let start = out.len();
        handshake::write_request(out, request, &key, offer.as_deref());
        conn.trace(|| format!("§4.1 -> {}", handshake::first_line(&out[start..])));
        Ok(conn)
    }

    /// Which side of the connection this is: a client's holds its `ClientSide` from
    /// [`Connection::client`] to the end, a server's never has one.
    pub fn role(&self) -> Role {
        if self.client_side().is_some() { Role::Client } else { Role::Server }
    }

    /// Whether this side closes the TCP connection as soon as it reaches [`State::Closed`]
    /// and its output is sent. §7.1.1: "the underlying TCP connection, in most normal cases,
    /// SHOULD be closed first by the server"; so a server does, and so does a client whose
    /// handshake failed (there is no WebSocket to close). Otherwise a client waits for the
    /// server to close, until [`Connection::poll_timeout`] (the close timeout), and then
    /// [`Connection::handle_timeout`] says [`Event::TimedOut`] and it closes itself.
    pub fn closes_tcp_first(&self) -> bool {
        self.client_side().is_none_or(|client| !client.established)
    }

    fn client_side(&self) -> Option<&ClientSide> {
        self.extras.as_ref().and_then(|extras| extras.client.as_ref())
    }

    /// §5.3: "The masking key is a 32-bit value chosen at random by the client. When sending a
    /// frame, the client MUST choose a new masking key from the set of allowed 32-bit values."
    /// `None` for a server, whose frames are never masked.
    pub(super) fn next_mask(&mut self) -> Option<[u8; 4]> {
        let client = self.extras.as_mut().and_then(|extras| extras.client.as_mut())?;
        Some(client.keys.mask())
    }

    /// Checks the server's complete response head (§4.1) and opens the connection, or fails
    /// it. Nothing is written either way: a failed handshake has no WebSocket to send a Close
    /// on.
    pub(super) fn check_upgrade(&mut self, head: &[u8], now: Instant) -> Event<'static> {
        self.trace(|| format!("§4.1 <- {}", handshake::first_line(head)));
        let Some(client) = self.extras.as_mut().and_then(|extras| extras.client.as_mut()) else {
            // Only a client's connection reads a response.
            self.transition(State::Closed, Some(now));
            return Event::UpgradeFailed(UpgradeError::Malformed);
        };
        let key = std::mem::take(&mut client.key);
        let subprotocols = std::mem::take(&mut client.subprotocols);
        let offered_deflate = client.offered_deflate;
        let checked = handshake::check_response(head, self.config.max_headers, &key, &subprotocols)
            .and_then(|checked| {
                self.negotiate_client_compression(&checked.extensions, offered_deflate)?;
                Ok(checked.upgraded)
            });
        match checked {
            Ok(upgraded) => {
                if let Some(client) = self.extras().client.as_mut() {
                    client.established = true;
                }
                self.trace(|| {
                    let none = || "none".to_owned();
                    format!(
                        "§4.1 the 101 is valid: subprotocol {}, extensions {}",
                        upgraded.subprotocol.clone().unwrap_or_else(none),
                        upgraded.extensions.clone().unwrap_or_else(none)
                    )
                });
                self.transition(State::Open, Some(now));
                Event::Upgraded(upgraded)
            }
            Err(error) => {
                self.trace(|| format!("§4.1 the client fails the connection: {error}"));
                self.transition(State::Closed, Some(now));
                Event::UpgradeFailed(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
