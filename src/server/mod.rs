//! The event loop: the only part of rfc6455 that touches sockets.
//!
//! One thread, one `mio::Poll`, non-blocking sockets. For each readiness event the loop reads
//! into one large buffer shared by every connection, feeds the bytes to that connection's
//! [`Connection`] state machine, hands each event to the [`Handler`], collects every answer in
//! one output buffer (the "cork") and writes it with one call at the end of the wakeup. What the
//! socket does not take waits in the connection's own outbox, with WRITABLE interest, and is the
//! only per-connection buffer that exists while a connection is idle and caught up.
//!
//! Fairness: a connection is read at most `read_budget` bytes per wakeup; if it has more, it
//! goes to the back of a ready queue and the loop polls without blocking, so one flooding client
//! cannot starve the others. Backpressure: while a connection's outbox holds more than
//! `max_outbox` bytes, it is not read at all, and TCP slows the peer down.
//!
//! Time: every deadline belongs to a connection ([`Connection::poll_timeout`]); the loop keeps
//! them in a heap and uses the nearest as its poll timeout. Nothing sleeps.

mod event_loop;
mod outbox;
mod slab;

pub use event_loop::{Server, ShutdownHandle};
pub use slab::ConnId;

use crate::close::CloseCode;
use crate::connection::{Config, Connection, Opened, SendError};
use crate::message::Message;
use outbox::Outbox;
use slab::Slab;
use std::time::Instant;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Per-connection protocol limits and choices.
    pub connection: Config,
    /// Size of the one read buffer the loop shares between all connections.
    pub read_buffer_size: usize,
    /// Bytes read from one connection per wakeup before others get their turn.
    pub read_budget: usize,
    /// Stop reading from a connection while this many bytes wait to be written to it.
    pub max_outbox: usize,
    /// The most connections held at once; further ones are refused with 503.
    pub max_connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connection: Config::default(),
            read_buffer_size: 256 * 1024,
            read_budget: 1024 * 1024,
            max_outbox: 4 * 1024 * 1024,
            max_connections: 10_000,
        }
    }
}

/// How a connection ended, as told to [`Handler::on_close`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The close code: the peer's (or 1005 for none), ours when we failed the connection, or
    /// 1006 when TCP ended without a close handshake (§7.1.5).
    pub code: CloseCode,
    /// The reason that went with the code.
    pub reason: String,
}

/// The application: called by the event loop for each connection's life events.
///
/// Every call gets a [`Ctx`] to send to this connection or any other.
pub trait Handler {
    /// The opening handshake of connection `ctx.id()` succeeded.
    fn on_open(&mut self, ctx: &mut Ctx<'_>, opened: &Opened) {
        let _ = (ctx, opened);
    }

    /// A complete message arrived on connection `ctx.id()`.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: Message<'_>);

    /// Connection `ctx.id()`, which had been opened, has ended; nothing more can be sent to it.
    fn on_close(&mut self, ctx: &mut Ctx<'_>, closed: &Closed) {
        let _ = (ctx, closed);
    }
}

/// One table entry: a socket and its protocol state.
pub(crate) struct Entry {
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) conn: Connection,
    pub(crate) outbox: Outbox,
    /// The deadline last pushed onto the timer heap for this entry.
    pub(crate) scheduled: Option<Instant>,
    /// The handler was told of the opening and not yet of the end.
    pub(crate) open_notified: bool,
    /// Our write side is shut down (after the Closed state's output was sent).
    pub(crate) write_shut: bool,
    /// Reading stopped because the outbox is over `max_outbox`.
    pub(crate) read_paused: bool,
    /// WRITABLE interest is registered.
    pub(crate) writable_interest: bool,
    /// The entry is in the loop's list of connections to flush after the current call.
    pub(crate) touched: bool,
}

/// What a handler can do during a call: send to its connection or to others.
pub struct Ctx<'s> {
    id: ConnId,
    now: Instant,
    conns: &'s mut Slab<Entry>,
    /// The current connection's output for this wakeup.
    out: &'s mut Vec<u8>,
    /// Other connections given output during this call, to be flushed by the loop.
    touched: &'s mut Vec<ConnId>,
}

impl Ctx<'_> {
    /// The connection this call is about.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The time of the current wakeup.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The number of connections in the table.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The ids of every connection in the table (open or not; sending to one that is not open
    /// fails with [`SendError::NotOpen`]).
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.conns.ids().collect()
    }

    /// Sends a message to this connection.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), SendError> {
        let id = self.id;
        self.with_output(id, |conn, out| conn.send(out, message))
    }

    /// Sends a text message to this connection.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        let id = self.id;
        self.send_text_to(id, text)
    }

    /// Sends a text message to connection `id`.
    pub fn send_text_to(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.with_output(id, |conn, out| conn.send_text(out, text))
    }

    /// Sends a binary message to connection `id`.
    pub fn send_binary_to(&mut self, id: ConnId, data: &[u8]) -> Result<(), SendError> {
        self.with_output(id, |conn, out| conn.send_binary(out, data))
    }

    /// Starts the closing handshake on connection `id` (§7.1.2).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let now = self.now;
        self.with_output(id, |conn, out| conn.close(out, code, reason, now))
    }

    /// Runs `f` with connection `id` and the buffer its output goes to: this wakeup's output
    /// for the current connection, the outbox for any other.
    fn with_output(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Connection, &mut Vec<u8>) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let entry = self.conns.get_mut(id).ok_or(SendError::NotOpen)?;
        if id == self.id {
            return f(&mut entry.conn, self.out);
        }
        f(&mut entry.conn, entry.outbox.tail())?;
        if !entry.touched {
            entry.touched = true;
            self.touched.push(id);
        }
        Ok(())
    }
}
