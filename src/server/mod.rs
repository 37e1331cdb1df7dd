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
//! `read_pause_outbox` bytes, it is not read, and TCP slows the peer down. Output that other
//! connections send it (a broadcast) is capped at `max_outbox`: a reader that falls that far
//! behind is closed with 1008, and nobody else waits for it.
//!
//! Time: every deadline belongs to a connection ([`Connection::poll_timeout`]) or to the handler
//! ([`Handler::poll_timeout`]); the loop keeps the connections' in a heap and uses the nearest
//! as its poll timeout. Nothing sleeps.

mod event_loop;
mod outbox;
mod slab;

pub use event_loop::{Server, ShutdownHandle};
pub use slab::ConnId;

use crate::close::CloseCode;
use crate::connection::{Config, Connection, Opened, SendError};
use crate::frame::{self, OpCode};
use crate::message::Message;
use bytes::Bytes;
use outbox::{Outbox, Pool};
use slab::Slab;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Payloads at least this large are written from where they lie, not copied (`Ctx::send`).
const WRITE_THROUGH: usize = 64 * 1024;

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
    pub read_pause_outbox: usize,
    /// The most bytes that other connections may queue for one connection; past it, the
    /// connection is closed with 1008 (a slow reader must not hold memory or slow others).
    pub max_outbox: usize,
    /// The most connections held at once; further ones are refused with 503.
    pub max_connections: usize,
    /// The most connections held at once from one peer address; further ones get 503.
    pub max_connections_per_ip: usize,
    /// After a shutdown is asked for, how long open connections get to finish their closing
    /// handshake before `Server::run` returns anyway.
    pub shutdown_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connection: Config::default(),
            // Large, so that big frames are decoded where they land: only the pages that reads
            // reach are ever touched.
            read_buffer_size: 4 << 20,
            read_budget: 1024 * 1024,
            read_pause_outbox: 4 * 1024 * 1024,
            max_outbox: 16 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 10_000,
            shutdown_timeout: Duration::from_secs(3),
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

/// The application: called by the event loop for each connection's life events, and when its
/// own timer is due.
///
/// Every call gets a [`Ctx`] to send to the connection it is about or to any other.
pub trait Handler {
    /// The opening handshake of connection `ctx.id()` succeeded.
    fn on_open(&mut self, ctx: &mut Ctx<'_>, opened: &Opened) {
        let _ = (ctx, opened);
    }

    /// A complete message arrived on connection `ctx.id()`. It is lent, not given: its bytes
    /// lie in the loop's read buffer, or in a buffer the loop reuses once the call returns.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message<'_>);

    /// Connection `ctx.id()`, which had been opened, has ended; nothing more can be sent to it.
    fn on_close(&mut self, ctx: &mut Ctx<'_>, closed: &Closed) {
        let _ = (ctx, closed);
    }

    /// When [`Handler::on_timeout`] is next due, if ever. Asked after every call.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The handler's own timer is due (`ctx.id()` is `None`).
    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// A frame encoded once, to be queued for many connections without copying (a broadcast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFrame(Bytes);

impl SharedFrame {
    /// A text message in one frame.
    pub fn text(text: &str) -> SharedFrame {
        SharedFrame::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    pub fn binary(data: &[u8]) -> SharedFrame {
        SharedFrame::encode(OpCode::Binary, data)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> SharedFrame {
        let mut out = Vec::new();
        frame::write_frame(&mut out, opcode, payload);
        SharedFrame(Bytes::from(out))
    }

    /// The encoded frame.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

/// One table entry: a socket and its protocol state.
pub(crate) struct Entry {
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) conn: Connection,
    pub(crate) outbox: Outbox,
    /// The peer's address, counted against `max_connections_per_ip`; `None` for a connection
    /// that is only being refused.
    pub(crate) peer: Option<IpAddr>,
    /// The deadline last pushed onto the timer heap for this entry.
    pub(crate) scheduled: Option<Instant>,
    /// The handler was told of the opening and not yet of the end.
    pub(crate) open_notified: bool,
    /// Our write side is shut down (after the Closed state's output was sent).
    pub(crate) write_shut: bool,
    /// Reading stopped because the outbox is over `read_pause_outbox`.
    pub(crate) read_paused: bool,
    /// WRITABLE interest is registered.
    pub(crate) writable_interest: bool,
    /// The entry is in the loop's list of connections to flush after the current call.
    pub(crate) touched: bool,
}

/// The part of the loop that a handler's call can reach: the connections, the buffers their
/// output is queued in, and which of them to flush after the call.
pub(crate) struct Table {
    pub(crate) conns: Slab<Entry>,
    pub(crate) pool: Pool,
    /// Connections given output during the current call, to be flushed by the loop.
    pub(crate) touched: Vec<ConnId>,
    /// `Options::max_outbox`.
    pub(crate) max_outbox: usize,
}

/// What a handler can do during a call: send to its connection or to others.
pub struct Ctx<'s> {
    current: Option<ConnId>,
    now: Instant,
    table: &'s mut Table,
    /// The current connection's output for this wakeup.
    out: &'s mut Vec<u8>,
}

impl Ctx<'_> {
    /// The connection this call is about (`None` for [`Handler::on_timeout`]).
    pub fn id(&self) -> Option<ConnId> {
        self.current
    }

    /// The time of the current wakeup.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The ids of every open connection.
    pub fn open_connections(&self) -> Vec<ConnId> {
        self.table.conns.iter().filter(|(_, e)| e.conn.is_open()).map(|(id, _)| id).collect()
    }

    /// Sends a message to the current connection.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), SendError> {
        let id = self.current.ok_or(SendError::NotOpen)?;
        if message.payload().len() >= WRITE_THROUGH {
            return self.send_large(id, message);
        }
        self.with_output(id, |conn, out| conn.send(out, message))
    }

    /// A large payload is not copied behind its header: this wakeup's output and the frame
    /// go to the socket at once with one `writev`, from where the payload lies, and only what
    /// the socket does not take is copied into the outbox.
    fn send_large(&mut self, id: ConnId, message: &Message<'_>) -> Result<(), SendError> {
        let table = &mut *self.table;
        let entry = table.conns.get_mut(id).ok_or(SendError::NotOpen)?;
        entry.conn.send_header(self.out, message)?;
        let (cork, payload) = (&mut *self.out, message.payload());
        let written = if entry.outbox.is_empty() {
            // An error here resurfaces at the loop's next write, which removes the connection.
            outbox::write_two(&mut entry.stream, cork, payload).unwrap_or(0)
        } else {
            0
        };
        let rest = &payload[written.saturating_sub(cork.len())..];
        entry.outbox.keep_unwritten(cork, written.min(cork.len()), &mut table.pool);
        if !rest.is_empty() {
            let mut copy = table.pool.take();
            copy.extend_from_slice(rest);
            // The loop registers WRITABLE for it when this wakeup settles.
            entry.outbox.push_owned(copy, &mut table.pool);
        }
        Ok(())
    }

    /// Sends a text message to the current connection.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        let id = self.current.ok_or(SendError::NotOpen)?;
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

    /// Queues a frame encoded once for many connections. The bytes are shared, not copied
    /// (except into the current connection's output, which is written at once).
    pub fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> Result<(), SendError> {
        let entry = self.table.conns.get_mut(id).ok_or(SendError::NotOpen)?;
        entry.conn.can_send()?;
        entry.conn.trace_shared_frame(frame.bytes());
        if Some(id) == self.current {
            self.out.extend_from_slice(frame.bytes());
            return Ok(());
        }
        entry.outbox.push_shared(frame.bytes().clone());
        self.after_queueing(id)
    }

    /// Starts the closing handshake on connection `id` (§7.1.2).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let now = self.now;
        self.with_output(id, |conn, out| conn.close(out, code, reason, now))
    }

    /// Runs `f` with connection `id` and the buffer its output goes to: this wakeup's output
    /// for the current connection, a new chunk of its outbox for any other.
    fn with_output(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Connection, &mut Vec<u8>) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let table = &mut *self.table;
        let entry = table.conns.get_mut(id).ok_or(SendError::NotOpen)?;
        if Some(id) == self.current {
            return f(&mut entry.conn, self.out);
        }
        let mut out = table.pool.take();
        let sent = f(&mut entry.conn, &mut out);
        entry.outbox.push_owned(out, &mut table.pool);
        sent?;
        self.after_queueing(id)
    }

    /// Marks `id` for flushing, and closes it with 1008 if it is over its outbox cap.
    fn after_queueing(&mut self, id: ConnId) -> Result<(), SendError> {
        let table = &mut *self.table;
        let Some(entry) = table.conns.get_mut(id) else { return Err(SendError::NotOpen) };
        if !entry.touched {
            entry.touched = true;
            table.touched.push(id);
        }
        if entry.outbox.len() <= table.max_outbox {
            return Ok(());
        }
        // A reader this far behind is cut off: what is queued is dropped (keeping the frame in
        // progress whole) and a Close frame follows it. The close timeout ends the connection
        // if the peer never reads that either.
        entry.outbox.drop_queued(&mut table.pool);
        let mut close = table.pool.take();
        let reason = "outbound queue over limit: reading too slowly";
        let _ = entry.conn.close(&mut close, CloseCode::POLICY_VIOLATION, reason, self.now);
        entry.outbox.push_owned(close, &mut table.pool);
        Err(SendError::Overflow)
    }
}
#[cfg(test)]
mod tests {
    /// Idle connections cost what their table entry costs (every buffer is given back when
    /// idle): keep it small. The whole budget is 512 bytes per connection (docs/benchmarks.md).
    #[test]
    fn a_table_entry_stays_small() {
        assert!(std::mem::size_of::<crate::connection::Connection>() <= 112);
        assert!(std::mem::size_of::<super::Entry>() <= 256);
    }
}
