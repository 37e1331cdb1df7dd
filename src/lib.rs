//! # rfc6455: a WebSocket server (and client) written from the RFC up
//!
//! ```text
//!  application      echo, chat: a [`server::Handler`] (policy: pages, origins, subprotocols)
//!  ─────────────────────────────────────────────────────────────
//!  event loop       server: mio, sockets, buffers, timers      ◀─ the only I/O
//!                   client: a blocking socket, or mio sessions
//!  ─────────────────────────────────────────────────────────────
//!  state machine    connection, state: bytes + time in, events + bytes out
//!  ─────────────────────────────────────────────────────────────
//!  protocol core    handshake §4 · frame §5.2 · mask §5.3 · close §7.4 · utf8 §8.1 · http
//! ```
//!
//! Contents, bottom up (a reading order):
//!
//! 1. [`frame`]: §5.2 Base Framing Protocol, header decode and encode.
//! 2. [`mask`]: §5.3 Client-to-Server Masking.
//! 3. [`utf8`]: §8.1 incremental UTF-8 validation that fails fast.
//! 4. [`close`]: §7.4 status codes and the Close frame body.
//! 5. [`error`]: one [`error::ProtocolError`] per MUST a peer can break, with its close code.
//! 6. [`handshake`]: §4.2 the opening handshake: the client's [`handshake::Request`], the
//!    server's [`handshake::Accept`]; [`http`]: every other response on the same port.
//! 7. [`state`] and [`connection`]: one connection as a sans-I/O state machine, in either role
//!    ([`Connection::new`] for a server, [`Connection::client`] for a client, whose masking
//!    keys come from [`random`]).
//! 8. [`server`]: the mio event loop and the [`server::Handler`] API; [`client`]: the client's
//!    drivers (blocking, and mio sessions) and `ws://` URIs.
//! 9. [`policy`]: the usual answer to a handshake (pages, WebSocket path, origins,
//!    subprotocols), built on the handler's hook; [`echo`] and [`chat`]: two handlers.
//!
//! Nothing below [`server`] and [`client`] performs I/O or reads the clock: the protocol can be tested, fuzzed
//! and driven by any transport. Long explanations live in `docs/`: `architecture.md` (the
//! layers and how bytes and time flow through them), `protocol.md` (a session byte by byte),
//! `rfc-map.md` (every requirement of the RFC, where it is enforced and tested),
//! `security.md` (limits and their defaults).
//!
//! # The sans-I/O core, in memory
//!
//! A [`Connection`] takes bytes and the time, and gives events and bytes to send. Here a client's
//! opening handshake and the RFC's own masked `Hello` (§5.7) go in, and the 101 response and an
//! unmasked echo come out; no socket anywhere.
//!
//! ```
//! use rfc6455::handshake::Accept;
//! use rfc6455::{Config, Connection, Event, Message};
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut conn = Connection::new(Arc::new(Config::default()), now);
//! let mut out = Vec::new();
//!
//! // 1. The opening handshake (RFC 6455 §1.3's example key): the core parses and checks it,
//! //    the application decides, the core writes the answer.
//! let mut request = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! let received = conn.receive(&mut request, now, &mut out);
//! assert_eq!(received.event, Some(Event::Request));
//! let asked = conn.request().unwrap();
//! assert_eq!((asked.path(), asked.query_param("room")), ("/chat", Some("1")));
//! conn.accept(&Accept::new(), &mut out, now).unwrap();
//! let response = String::from_utf8(std::mem::take(&mut out)).unwrap();
//! assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
//!
//! // 2. A masked text frame in, its text out (unmasked in place, not copied).
//! let mut frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let received = conn.receive(&mut frame, now, &mut out);
//! let Some(Event::Message(message)) = received.event else { panic!("a message") };
//! assert_eq!(message.as_text(), Some("Hello"));
//!
//! // 3. Echo it: the server's frame is unmasked (§5.1), byte for byte as in §5.7.
//! conn.send(&mut out, &message).unwrap();
//! assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//! ```
//!
//! The frame codec on its own round-trips too:
//!
//! ```
//! use rfc6455::frame::{self, FrameHeader, OpCode};
//! use rfc6455::mask::apply_mask;
//!
//! // A client's frame: the header, then the payload masked with the frame's key (§5.3).
//! let header = FrameHeader {
//!     fin: true, rsv: 0, opcode: OpCode::Binary, mask: Some([9, 8, 7, 6]), payload_len: 3,
//! };
//! let mut bytes = Vec::new();
//! header.encode(&mut bytes);
//! let mut payload = [1, 2, 3];
//! apply_mask(&mut payload, [9, 8, 7, 6], 0);
//! bytes.extend_from_slice(&payload);
//! // The server's side: the same header back, and the payload unmasked.
//! let (decoded, header_len) = frame::decode_header(&bytes).unwrap().unwrap();
//! assert_eq!((decoded, header_len), (header, 6));
//! let mut payload = bytes[header_len..].to_vec();
//! apply_mask(&mut payload, [9, 8, 7, 6], 0);
//! assert_eq!(payload, [1, 2, 3]);
//! // Half a header is "need more", not an error.
//! assert_eq!(frame::decode_header(&bytes[..1]), Ok(None));
//! ```
//!
//! `examples/` has the same core driven by a blocking `std` socket (`blocking_std.rs`), a
//! server with a handler of its own (`broadcast_counter.rs`), a blocking client
//! (`blocking_client.rs`), many clients on one mio loop (`mio_clients.rs`), and the client that
//! Autobahn tests (`autobahn_client.rs`).
//!
//! # Cargo features
//!
//! On docs.rs each feature-gated item says which feature it needs. Build times and sizes: the
//! median of three clean release builds of the `rfc6455` binary on a 2-core machine, and the
//! binary stripped (`scripts/feature-costs.sh` in the repository measures them).
//!
#![doc = include_str!("../docs/cargo-features.md")]
#![deny(missing_docs)]
// On docs.rs (`--cfg docsrs`), every item behind a cargo feature says which one it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod chat;
pub mod client;
pub mod close;
pub mod connection;
pub mod deflate;
pub mod echo;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod message;
pub mod policy;
pub mod proxy;
pub mod random;
pub mod server;
pub mod shared;
pub mod state;
pub mod utf8;

pub use close::CloseCode;
pub use connection::{Config, Connection, Event, Received};
pub use error::ProtocolError;
pub use handshake::{Accept, Request};
pub use http::Response;
pub use message::{Message, Payload};
pub use state::State;

/// The README's code blocks, compiled as doctests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
