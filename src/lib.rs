//! # rfc6455: a WebSocket server written from the RFC up
//!
//! ```text
//!  application      echo, chat: a [`server::Handler`]
//!  ─────────────────────────────────────────────────────────────
//!  event loop       server: mio, sockets, buffers, timers      ◀─ the only I/O
//!  ─────────────────────────────────────────────────────────────
//!  state machine    connection, state: bytes + time in, events + bytes out
//!  ─────────────────────────────────────────────────────────────
//!  protocol core    handshake §4 · frame §5.2 · mask §5.3 · close §7.4 · utf8 §8.1
//! ```
//!
//! Contents, bottom up (a reading order):
//!
//! 1. [`frame`]: §5.2 Base Framing Protocol, header decode and encode.
//! 2. [`mask`]: §5.3 Client-to-Server Masking.
//! 3. [`utf8`]: §8.1 incremental UTF-8 validation that fails fast.
//! 4. [`close`]: §7.4 status codes and the Close frame body.
//! 5. [`error`]: one [`error::ProtocolError`] per MUST a peer can break, with its close code.
//! 6. [`handshake`]: §4.2 the server's opening handshake.
//! 7. [`state`] and [`connection`]: one connection as a sans-I/O state machine.
//! 8. [`server`]: the mio event loop and the [`server::Handler`] API.
//!
//! Nothing below [`server`] performs I/O or reads the clock: the protocol can be tested, fuzzed
//! and driven by any transport.

#![deny(missing_docs)]

pub mod chat;
pub mod close;
pub mod connection;
pub mod echo;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod message;
pub mod server;
pub mod state;
pub mod utf8;

pub use close::CloseCode;
pub use connection::{Config, Connection, Event, Received};
pub use error::ProtocolError;
pub use message::{Message, Payload};
pub use state::State;

/// The README's code blocks, compiled as doctests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
