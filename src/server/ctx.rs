//! The connection table and what a handler's call can reach of it: [`Ctx`]. A `Ctx` only
//! queues (into the current connection's output, or into other connections' outboxes); the
//! event loop does every write after the call returns.

use super::outbox::{Outbox, Pool};
use super::slab::{ConnId, Slab};
use crate::close::CloseCode;
use crate::connection::{Connection, SendError};
use crate::message::Message;
use crate::shared::SharedFrame;
use std::net::IpAddr;
use std::time::Instant;

/// Payloads at least this large are written from where they lie, not copied (`Ctx::send`).
pub(crate) const WRITE_THROUGH: usize = 64 * 1024;

/// One table entry: a socket, its protocol state, and the handler's state for it.
pub(crate) struct Entry<S> {
    pub(crate) stream: super::transport::Transport,
    pub(crate) conn: Connection,
    pub(crate) outbox: Outbox,
    /// The handler's state, from the accepted handshake to `on_close`; lent to each callback
    /// (and so `None` during one).
    pub(crate) state: Option<S>,
    /// The peer's address; behind a trusted proxy, once the request has said it, the client's.
    pub(crate) ip: IpAddr,
    /// Counted against `max_connections` (not so a connection that is only refused).
    pub(crate) counted: bool,
    /// Counted against `max_connections_per_ip` under `ip` (not yet so a connection from a
    /// trusted proxy before its request).
    pub(crate) ip_counted: bool,
    /// The deadline last pushed onto the timer heap for this entry's connection.
    pub(crate) scheduled: Option<Instant>,
    /// Reading paused by the handler, and what was read but not yet processed.
    pub(crate) pause: Option<Box<Pause>>,
    /// The handler was told of the opening and not yet of the end.
    pub(crate) opened: bool,
    /// Our write side is shut down (after the Closed state's output was sent).
    pub(crate) write_shut: bool,
    /// Reading stopped because the outbox is over `read_pause_outbox`.
    pub(crate) read_paused: bool,
    /// WRITABLE interest is registered.
    pub(crate) writable_interest: bool,
    /// The entry is in the table's list of outboxes to flush.
    pub(crate) touched: bool,
    /// The entry is queued for removal: nothing more is read, written or sent.
    pub(crate) doomed: bool,
    /// The poller has reported the peer's end of TCP (or an error): reads go on until one says
    /// so (`Ok(0)` or an error), since that FIN raises no event of its own.
    pub(crate) read_closed: bool,
}

/// The access log's counts (`Options::access_log`), by connection slot, beside the table so
/// that its entries stay small: empty while the log is off.
#[derive(Default)]
pub(crate) struct Book(Vec<Option<Box<(Instant, super::Access)>>>);

impl Book {
    /// Starts the record of connection `id`, accepted at `at`.
    pub(crate) fn open(&mut self, id: ConnId, at: Instant, access: super::Access) {
        let index = id.index as usize;
        if self.0.len() <= index {
            self.0.resize_with(index + 1, || None);
        }
        self.0[index] = Some(Box::new((at, access)));
    }

    /// Whether connection `id` has a record.
    pub(crate) fn has(&self, id: ConnId) -> bool {
        matches!(self.0.get(id.index as usize), Some(Some(_)))
    }

    /// Counts toward connection `id`'s record, if it has one.
    pub(crate) fn note(&mut self, id: ConnId, f: impl FnOnce(&mut super::Access)) {
        if let Some(Some(record)) = self.0.get_mut(id.index as usize) {
            f(&mut record.1);
        }
    }

    /// Connection `id`'s record, at its end, with its duration up to `now`.
    pub(crate) fn take(&mut self, id: ConnId, now: Instant) -> Option<super::Access> {
        let (at, mut access) = *self.0.get_mut(id.index as usize)?.take()?;
        access.duration = now.saturating_duration_since(at);
        Some(access)
    }
}

/// A connection whose reading the handler paused ([`Ctx::pause_reading`]).
pub(crate) struct Pause {
    /// When reading resumes.
    pub(crate) until: Instant,
    /// `until` is on the timer heap.
    pub(crate) scheduled: bool,
    /// Bytes read from the socket before the pause and not yet given to the connection:
    /// `held[from..]`. At most one read's worth (`Options::read_budget`).
    pub(crate) held: Vec<u8>,
    pub(crate) from: usize,
}

/// A removal waiting for the end of the loop's turn.
pub(crate) struct Removal {
    pub(crate) id: ConnId,
    pub(crate) code: CloseCode,
    pub(crate) reason: &'static str,
}

/// The part of the loop that a handler's call can reach: the connections, the buffers their
/// output is queued in, which outboxes to flush, and which connections to remove.
pub(crate) struct Table<S> {
    pub(crate) conns: Slab<Entry<S>>,
    pub(crate) pool: Pool,
    /// Connections given output by others, to be flushed by the loop.
    pub(crate) touched: Vec<ConnId>,
    /// Connections to remove, once per turn of the loop (never from inside a callback).
    pub(crate) removals: Vec<Removal>,
    /// `Options::max_outbox`.
    pub(crate) max_outbox: usize,
    /// The server is shutting down: reading is never paused again.
    pub(crate) shutting_down: bool,
    /// `Options::max_handshake_rate`, as a token bucket.
    pub(crate) admission: Option<super::admission::Admission>,
    /// `Options::trusted_proxies`, and what the per-address cap needs behind them.
    pub(crate) proxies: Proxies,
    /// What the loop counts for `--metrics-listen`.
    pub(crate) tally: super::metrics::Tally,
    /// `Options::access_log`: connections keep their counts, here.
    pub(crate) access_log: bool,
    pub(crate) book: Book,
}

/// What a request from a trusted proxy is checked with.
pub(crate) struct Proxies {
    pub(crate) trusted: Vec<crate::proxy::Cidr>,
    pub(crate) caps: std::sync::Arc<super::caps::Caps>,
    pub(crate) max_per_ip: usize,
}

impl<S> Table<S> {
    /// Queues connection `id` for removal (once), telling the handler `code` and `reason`.
    pub(crate) fn doom(&mut self, id: ConnId, code: CloseCode, reason: &'static str) {
        if let Some(entry) = self.conns.get_mut(id)
            && !std::mem::replace(&mut entry.doomed, true)
        {
            self.removals.push(Removal { id, code, reason });
        }
    }
}

/// How a broadcast went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Connections the frame was queued for.
    pub queued: usize,
    /// Connections that were over their outbox cap and are being closed with 1008 instead.
    pub cut_off: usize,
}

/// What a handler can do during a call: send to its connection or to others, look at other
/// connections' states, pause reading. Everything is queued; the loop writes after the call.
pub struct Ctx<'s, S> {
    pub(crate) current: Option<ConnId>,
    pub(crate) now: Instant,
    pub(crate) table: &'s mut Table<S>,
    /// The current connection's output for this wakeup.
    pub(crate) out: &'s mut Vec<u8>,
    /// The current connection may still be sent to (not so in `on_close`).
    pub(crate) current_open: bool,
    /// The payload of the message being handled (address and length), which [`Ctx::send`]
    /// leaves where it lies when it is large.
    pub(crate) lent: Option<(usize, usize)>,
    /// Where in `out` that payload is to be written, if `send` was asked to send it.
    pub(crate) lent_at: Option<usize>,
}

impl<'s, S> Ctx<'s, S> {
    pub(crate) fn new(
        current: Option<ConnId>,
        now: Instant,
        table: &'s mut Table<S>,
        out: &'s mut Vec<u8>,
    ) -> Ctx<'s, S> {
        Ctx { current, now, table, out, current_open: current.is_some(), lent: None, lent_at: None }
    }

    /// The connection this call is about (`None` for [`super::Handler::on_timeout`] and for
    /// commands from a [`super::ServerHandle`]).
    pub fn id(&self) -> Option<ConnId> {
        self.current
    }

    /// The time of the current wakeup.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Every open connection and its state, except the current one (whose state the callback
    /// was given).
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, &S)> + '_ {
        self.table.conns.iter().filter_map(|(id, entry)| {
            let open = entry.conn.is_open() && !entry.doomed;
            entry.state.as_ref().filter(|_| open).map(|state| (id, state))
        })
    }

    /// The state of connection `id`, unless it is the current one (the callback has it) or
    /// gone.
    pub fn state_of(&mut self, id: ConnId) -> Option<&mut S> {
        self.table.conns.get_mut(id).and_then(|entry| entry.state.as_mut())
    }

    /// Sends a message to the current connection. A large payload that is the message being
    /// handled (an echo) is written by the loop from where it lies, after the call.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), SendError> {
        let sent = self.send_one(message);
        let id = self.current.ok_or(SendError::NotOpen)?;
        self.count(id, sent)
    }

    fn send_one(&mut self, message: &Message<'_>) -> Result<(), SendError> {
        let id = self.current.ok_or(SendError::NotOpen)?;
        let payload = message.payload();
        if payload.len() >= WRITE_THROUGH
            && self.lent == Some((payload.as_ptr() as usize, payload.len()))
            && self.lent_at.is_none()
        {
            let out = &mut *self.out;
            let current_open = self.current_open;
            let entry = self.table.conns.get_mut(id).ok_or(SendError::NotOpen)?;
            if !current_open {
                return Err(SendError::NotOpen);
            }
            if entry.conn.compresses(payload.len()) {
                // A compressed message is not its payload: it is built, then queued.
                return self.with_output(id, |conn, out| conn.send(out, message));
            }
            entry.conn.send_header(out, message)?;
            self.lent_at = Some(out.len());
            return Ok(());
        }
        self.with_output(id, |conn, out| conn.send(out, message))
    }

    /// Sends a text message to the current connection.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        let id = self.current.ok_or(SendError::NotOpen)?;
        self.send_text_to(id, text)
    }

    /// Sends a binary message to the current connection.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        let id = self.current.ok_or(SendError::NotOpen)?;
        self.send_binary_to(id, data)
    }

    /// Sends a text message to connection `id`.
    pub fn send_text_to(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        let sent = self.with_output(id, |conn, out| conn.send_text(out, text));
        self.count(id, sent)
    }

    /// Sends a binary message to connection `id`.
    pub fn send_binary_to(&mut self, id: ConnId, data: &[u8]) -> Result<(), SendError> {
        let sent = self.with_output(id, |conn, out| conn.send_binary(out, data));
        self.count(id, sent)
    }

    /// Queues a frame encoded once for many connections. The bytes are shared, not copied
    /// (except into the current connection's output, which is written at once).
    pub fn send_shared(&mut self, id: ConnId, frame: &SharedFrame) -> Result<(), SendError> {
        let is_current = Some(id) == self.current;
        let Table { conns, pool, touched, max_outbox, .. } = &mut *self.table;
        let entry = conns.get_mut(id).ok_or(SendError::NotOpen)?;
        if is_current && !self.current_open {
            return Err(SendError::NotOpen);
        }
        let out = is_current.then_some(&mut *self.out);
        let sent = queue_shared(entry, id, frame, out, touched, pool, *max_outbox, self.now);
        self.count(id, sent)
    }

    /// Counts a message sent, or a reader cut off for its outbox (`--metrics-listen`).
    fn count(&mut self, id: ConnId, sent: Result<(), SendError>) -> Result<(), SendError> {
        match sent {
            Ok(()) => {
                self.table.tally.messages_out += 1;
                self.table.book.note(id, |a| a.messages_out += 1);
            }
            Err(SendError::Overflow) => self.table.tally.slow_readers_cut_off += 1,
            Err(_) => {}
        }
        sent
    }

    /// Queues a frame encoded once for every open connection (the current one included), in
    /// table order.
    pub fn broadcast(&mut self, frame: &SharedFrame) -> Delivery {
        self.broadcast_skipping(frame, None)
    }

    /// Queues a frame for every open connection but `skip` (a newcomer that gets what came
    /// before it some other way: a history).
    pub fn broadcast_except(&mut self, frame: &SharedFrame, skip: ConnId) -> Delivery {
        self.broadcast_skipping(frame, Some(skip))
    }

    fn broadcast_skipping(&mut self, frame: &SharedFrame, skip: Option<ConnId>) -> Delivery {
        let mut delivery = Delivery::default();
        let Table { conns, pool, touched, max_outbox, book, .. } = &mut *self.table;
        for (id, entry) in conns.iter_mut() {
            let is_current = Some(id) == self.current;
            if (is_current && !self.current_open) || Some(id) == skip {
                continue;
            }
            let out = is_current.then_some(&mut *self.out);
            match queue_shared(entry, id, frame, out, touched, pool, *max_outbox, self.now) {
                Ok(()) => {
                    delivery.queued += 1;
                    book.note(id, |a| a.messages_out += 1);
                }
                Err(SendError::Overflow) => delivery.cut_off += 1,
                Err(_) => {}
            }
        }
        self.table.tally.messages_out += delivery.queued as u64;
        self.table.tally.slow_readers_cut_off += delivery.cut_off as u64;
        delivery
    }

    /// Starts the closing handshake on connection `id` (§7.1.2).
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let now = self.now;
        self.with_output(id, |conn, out| conn.close(out, code, reason, now))
    }

    /// Stops reading from the current connection until `until`: what it has sent stays in
    /// the kernel (TCP slows the sender down), and what the loop had read already waits,
    /// unprocessed, until then. Nothing is dropped. The next message is delivered no earlier
    /// than `until`; a later call replaces an earlier one.
    pub fn pause_reading(&mut self, until: Instant) {
        if self.table.shutting_down {
            return;
        }
        let Some(entry) = self.current.and_then(|id| self.table.conns.get_mut(id)) else { return };
        match &mut entry.pause {
            Some(pause) => {
                pause.until = until;
                pause.scheduled = false;
            }
            None => {
                let held = Vec::new();
                entry.pause = Some(Box::new(Pause { until, scheduled: false, held, from: 0 }));
            }
        }
    }

    /// Runs `f` with connection `id` and the buffer its output goes to: this wakeup's output
    /// for the current connection, a new chunk of its outbox for any other.
    fn with_output(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Connection, &mut Vec<u8>) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let Table { conns, pool, touched, max_outbox, .. } = &mut *self.table;
        let entry = conns.get_mut(id).ok_or(SendError::NotOpen)?;
        if entry.doomed {
            return Err(SendError::NotOpen);
        }
        if Some(id) == self.current {
            if !self.current_open {
                return Err(SendError::NotOpen);
            }
            return f(&mut entry.conn, self.out);
        }
        let mut out = pool.take();
        let sent = f(&mut entry.conn, &mut out);
        entry.outbox.push_owned(out, pool);
        sent?;
        after_queueing(entry, id, touched, pool, *max_outbox, self.now)
    }
}

/// Queues `frame` for `entry`: into `out` for the current connection, into its outbox for any
/// other.
#[allow(clippy::too_many_arguments)]
fn queue_shared<S>(
    entry: &mut Entry<S>,
    id: ConnId,
    frame: &SharedFrame,
    out: Option<&mut Vec<u8>>,
    touched: &mut Vec<ConnId>,
    pool: &mut Pool,
    max_outbox: usize,
    now: Instant,
) -> Result<(), SendError> {
    if entry.doomed {
        return Err(SendError::NotOpen);
    }
    let bytes = entry.conn.frame_for(frame)?;
    if let Some(out) = out {
        out.extend_from_slice(&bytes);
        return Ok(());
    }
    entry.outbox.push_shared(bytes);
    after_queueing(entry, id, touched, pool, max_outbox, now)
}

/// Marks `id` for flushing, and closes it with 1008 if it is over its outbox cap.
fn after_queueing<S>(
    entry: &mut Entry<S>,
    id: ConnId,
    touched: &mut Vec<ConnId>,
    pool: &mut Pool,
    max_outbox: usize,
    now: Instant,
) -> Result<(), SendError> {
    if !entry.touched {
        entry.touched = true;
        touched.push(id);
    }
    if entry.outbox.len() <= max_outbox {
        return Ok(());
    }
    // A reader this far behind is cut off: what is queued is dropped (keeping the frame in
    // progress whole) and a Close frame follows it. The close timeout ends the connection
    // if the peer never reads that either.
    entry.outbox.drop_queued(pool);
    let mut close = pool.take();
    let reason = "outbound queue over limit: reading too slowly";
    let _ = entry.conn.close(&mut close, CloseCode::POLICY_VIOLATION, reason, now);
    entry.outbox.push_owned(close, pool);
    Err(SendError::Overflow)
}
