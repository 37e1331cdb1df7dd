//! Serving a ready connection: write what waits, read what came into the shared buffer, hand
//! it to the connection's events (`turn.rs`), write the answers once, and bring the
//! registration and timers in line with the new state.

use super::Server;
use crate::close::CloseCode;
use crate::server::outbox::write_slices;
use crate::server::{ConnId, Handler, Record};
use crate::state::State;
use mio::{Interest, Token};
use std::cmp::Reverse;
use std::io::{self, Read};
use std::time::Instant;

/// Output collected in one wakeup before the connection yields to the others and it is written.
const MAX_CORK: usize = 1 << 20;

impl<H: Handler> Server<H> {
    /// Handles readiness of connection `id`: writes what waits, reads what came, and settles.
    pub(super) fn serve(&mut self, id: ConnId, now: Instant, readable: bool, writable: bool) {
        let Some(entry) = self.table.conns.get_mut(id) else {
            // A stale event for a connection that is gone (its slot may hold a new one).
            return;
        };
        if entry.doomed {
            return;
        }
        if writable && !entry.outbox.is_empty() {
            match entry.outbox.write_to(&mut entry.stream, &mut self.table.pool) {
                Ok(n) => {
                    self.table.tally.bytes_out += n as u64;
                    self.table.book.note(id, |a| a.bytes_out += n as u64);
                }
                Err(_) => {
                    self.table.doom(id, CloseCode::ABNORMAL, "write failed");
                    return;
                }
            }
        }
        if entry.outbox.is_empty() {
            // The peer has caught up: answer the latest Ping it sent while it was not reading.
            self.with_cork(id, |server, cork| {
                if let Some(entry) = server.table.conns.get_mut(id) {
                    entry.conn.pong_latest_only(false, cork);
                }
            });
        }
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        if (readable || entry.read_paused) && entry.pause.is_none() && !entry.doomed {
            self.read(id, now);
        }
        self.settle(id);
    }

    /// Reads and processes input until the socket has none, the budget is spent, the
    /// connection's output must drain first, or the handler pauses reading.
    pub(super) fn read(&mut self, id: ConnId, now: Instant) {
        let ended = self.with_cork(id, |server, cork| server.read_into(id, now, cork));
        if let Some(reason) = ended {
            let closing =
                self.table.conns.get_mut(id).is_some_and(|e| e.conn.state() == State::Closed);
            let code = if closing { CloseCode::NORMAL } else { CloseCode::ABNORMAL };
            self.table.doom(id, code, reason);
        }
    }

    /// The read loop; returns why the input ended, if it did.
    fn read_into(&mut self, id: ConnId, now: Instant, cork: &mut Vec<u8>) -> Option<&'static str> {
        let mut budget = self.options.read_budget.max(1);
        let mut ended = None;
        // `read_buf[start..end]`: an incomplete frame the last read ended with, completed by the
        // next read, which lands right behind it. Frames up to half the buffer are decoded in
        // place; the tail moves to the front only when less than half the buffer is left.
        let (mut start, mut end) = (0, 0);
        let half = self.read_buf.len() / 2;
        loop {
            let entry = self.table.conns.get_mut(id)?;
            if entry.doomed || entry.pause.is_some() {
                break;
            }
            if entry.outbox.len() + cork.len() > self.options.read_pause_outbox {
                entry.read_paused = true;
                break;
            }
            entry.read_paused = false;
            entry.conn.pong_latest_only(!entry.outbox.is_empty(), cork);
            if self.read_buf.len() - end < half {
                self.read_buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            // At most the budget, so that what a paused connection holds stays within it.
            let room = (self.read_buf.len() - end).min(budget);
            let n = match entry.stream.read(&mut self.read_buf[end..end + room]) {
                Ok(0) => {
                    ended = Some("peer closed TCP");
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    ended = Some("read failed");
                    break;
                }
            };
            self.table.book.note(id, |a| a.bytes_in += n as u64);
            end += n;
            self.table.tally.bytes_in += n as u64;
            let mut turn = super::Turn {
                table: &mut self.table,
                handler: &mut self.handler,
                log: self.options.log.as_deref(),
                now,
            };
            let done = turn.process(&mut self.read_buf[start..end], half, id, cork);
            if let Some(at) = done.paused_at {
                self.hold(id, start + at, end);
                return None;
            }
            start += done.partial_at;
            if start == end {
                (start, end) = (0, 0);
            }
            budget = budget.saturating_sub(n);
            if budget == 0 || cork.len() >= MAX_CORK {
                // Let the others have a turn (or write this output) before reading more.
                self.ready.push_back(id);
                break;
            }
            let drained =
                |e: &mut crate::server::ctx::Entry<_>| e.stream.drained(room, n) && !e.read_closed;
            if self.table.conns.get_mut(id).is_some_and(drained) {
                // The socket had no more when it was read; the next arrival is a new event.
                break;
            }
        }
        if start < end {
            // The buffer is shared: what is left of a frame moves into the connection.
            let mut turn = super::Turn {
                table: &mut self.table,
                handler: &mut self.handler,
                log: self.options.log.as_deref(),
                now,
            };
            let done = turn.process(&mut self.read_buf[start..end], 0, id, cork);
            if let Some(at) = done.paused_at {
                self.hold(id, start + at, end);
            }
        }
        ended
    }

    /// Keeps `read_buf[from..to]`, read but not processed, for a connection whose reading the
    /// handler paused.
    fn hold(&mut self, id: ConnId, from: usize, to: usize) {
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        let Some(pause) = &mut entry.pause else { return };
        let mut held = self.table.pool.take();
        held.extend_from_slice(&self.read_buf[from..to]);
        (pause.held, pause.from) = (held, 0);
    }

    /// Reading was paused and its time has come: first the input held since, then the socket.
    pub(super) fn resume(&mut self, id: ConnId, now: Instant) {
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        let Some(pause) = entry.pause.take() else { return };
        let (mut held, from) = (pause.held, pause.from);
        let paused_again = self.with_cork(id, |server, cork| {
            let done = server.turn(now).process(&mut held[from..], 0, id, cork);
            done.paused_at
        });
        let entry = self.table.conns.get_mut(id);
        match (paused_again, entry.and_then(|e| e.pause.as_mut())) {
            (Some(at), Some(pause)) => (pause.held, pause.from) = (held, from + at),
            _ => {
                self.table.pool.give(held);
                // Edge-triggered readiness: what arrived meanwhile raises no new event.
                self.read(id, now);
            }
        }
        self.settle(id);
    }

    /// Writes this wakeup's output for `id`, after anything already waiting in its outbox.
    pub(super) fn write_cork(&mut self, id: ConnId, cork: &mut Vec<u8>) -> io::Result<()> {
        let Some(entry) = self.table.conns.get_mut(id) else { return Ok(()) };
        if cork.is_empty() || entry.doomed {
            return Ok(());
        }
        if !entry.outbox.is_empty() {
            entry.outbox.keep_unwritten(cork, 0, &mut self.table.pool);
            let written = entry.outbox.write_to(&mut entry.stream, &mut self.table.pool)?;
            self.table.tally.bytes_out += written as u64;
            self.table.book.note(id, |a| a.bytes_out += written as u64);
            return Ok(());
        }
        let written = write_slices(&mut entry.stream, &[cork])?;
        self.table.tally.bytes_out += written as u64;
        self.table.book.note(id, |a| a.bytes_out += written as u64);
        entry.outbox.keep_unwritten(cork, written, &mut self.table.pool);
        Ok(())
    }

    /// Writes the outboxes that handlers filled for other connections: once per poll round,
    /// so that a recipient of several broadcasts in one round gets them in one `writev`.
    pub(super) fn flush_touched(&mut self, _now: Instant) {
        while let Some(id) = self.table.touched.pop() {
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
            entry.touched = false;
            if entry.doomed {
                continue;
            }
            match entry.outbox.write_to(&mut entry.stream, &mut self.table.pool) {
                Ok(n) => {
                    self.table.tally.bytes_out += n as u64;
                    self.table.book.note(id, |a| a.bytes_out += n as u64);
                    self.settle(id);
                }
                Err(_) => self.table.doom(id, CloseCode::ABNORMAL, "write failed"),
            }
        }
    }

    /// Brings the registration, the timers and the TCP teardown of `id` in line with its state.
    pub(super) fn settle(&mut self, id: ConnId) {
        let registry = self.poll.registry();
        let log = self.options.log.as_deref();
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        if entry.doomed {
            return;
        }
        let trace = |line: &str| {
            if let Some(log) = log {
                log.record(&Record::Trace { conn: id, line });
            }
        };
        if self.config.trace {
            for line in entry.conn.take_trace() {
                trace(&line);
            }
        }
        let _ = entry.stream.flush_pending();
        let drained = entry.outbox.is_empty() && !entry.stream.wants_write();
        if entry.conn.state() == State::Closed && drained && !entry.write_shut {
            // §7.1.1: the server closes the TCP connection first. Our FIN goes after the last
            // byte; input is still read (and ignored) until the peer's FIN, so that closing
            // with unread input does not reset the connection and destroy the Close frame.
            entry.write_shut = true;
            let _ = entry.stream.shutdown_write();
            if self.config.trace {
                trace("§7.1.1 the server closes TCP first: FIN sent");
            }
        }
        let want_writable = !entry.outbox.is_empty() || entry.stream.wants_write();
        if want_writable != entry.writable_interest {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if entry.stream.reregister(registry, Token(id.to_token()), interest).is_ok() {
                entry.writable_interest = want_writable;
            }
        }
        if entry.read_paused && entry.outbox.len() <= self.options.read_pause_outbox / 2 {
            // Reading stopped for backpressure; with edge-triggered readiness no new event may
            // come, so queue the connection to be read again.
            self.ready.push_back(id);
        }
        if let Some(at) = entry.conn.poll_timeout()
            && entry.scheduled != Some(at)
        {
            entry.scheduled = Some(at);
            self.timers.push(Reverse((at, id)));
        }
        if let Some(pause) = &mut entry.pause
            && !pause.scheduled
        {
            pause.scheduled = true;
            self.timers.push(Reverse((pause.until, id)));
        }
    }
}
