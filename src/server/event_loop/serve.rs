//! Serving a ready connection: write what waits, read what came into the shared buffer, feed
//! it to the connection's state machine, hand the events to the handler, write the answers
//! once, and bring the registration and timers in line with the new state.

use super::Server;
use crate::close::CloseCode;
use crate::connection::{Connection, Event};
use crate::server::outbox::write_two;
use crate::server::{Closed, ConnId, Ctx, Entry, Handler, Table};
use crate::state::State;
use mio::{Interest, Registry, Token};
use std::cmp::Reverse;
use std::io::{self, Read};
use std::net::Shutdown;
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
        if writable
            && !entry.outbox.is_empty()
            && entry.outbox.write_to(&mut entry.stream, &mut self.table.pool).is_err()
        {
            self.remove(id, now, CloseCode::ABNORMAL, "write failed");
            return;
        }
        if entry.outbox.is_empty() {
            // The peer has caught up: answer the latest Ping it sent while it was not reading.
            entry.conn.set_output_backlogged(false);
            let mut cork = std::mem::take(&mut self.cork);
            entry.conn.write_owed_pong(&mut cork);
            let failed = self.write_cork(id, &mut cork).is_err();
            cork.clear();
            self.cork = cork;
            if failed {
                self.remove(id, now, CloseCode::ABNORMAL, "write failed");
                return;
            }
        }
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        if readable || entry.read_paused {
            self.read(id, now);
        }
        if self.table.conns.get_mut(id).is_some() {
            self.settle(id);
        }
    }

    /// Reads and processes input until the socket has none, the budget is spent, or the
    /// connection's output must drain first.
    pub(super) fn read(&mut self, id: ConnId, now: Instant) {
        let mut cork = std::mem::take(&mut self.cork);
        let mut budget = self.options.read_budget;
        let mut ended = None;
        // `read_buf[start..end]`: an incomplete frame the last read ended with, completed by the
        // next read, which lands right behind it. Frames up to half the buffer are decoded in
        // place; the tail moves to the front only when less than half the buffer is left.
        let (mut start, mut end) = (0, 0);
        let half = self.read_buf.len() / 2;
        while let Some(entry) = self.table.conns.get_mut(id) {
            if entry.outbox.len() + cork.len() > self.options.read_pause_outbox {
                entry.read_paused = true;
                break;
            }
            entry.read_paused = false;
            entry.conn.set_output_backlogged(!entry.outbox.is_empty());
            if self.read_buf.len() - end < half {
                self.read_buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            let n = match entry.stream.read(&mut self.read_buf[end..]) {
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
            end += n;
            let input = &mut self.read_buf[start..end];
            let tail = process(&mut self.table, &mut self.handler, input, half, id, now, &mut cork);
            start += tail;
            if start == end {
                (start, end) = (0, 0);
            }
            budget = budget.saturating_sub(n);
            if budget == 0 || cork.len() >= MAX_CORK {
                // Let the others have a turn (or write this output) before reading more.
                self.ready.push_back(id);
                break;
            }
        }
        if start < end {
            // The buffer is shared: what is left of a frame moves into the connection.
            let input = &mut self.read_buf[start..end];
            process(&mut self.table, &mut self.handler, input, 0, id, now, &mut cork);
        }
        let write_failed = self.write_cork(id, &mut cork).is_err();
        cork.clear();
        self.cork = cork;
        if let Some(reason) = ended {
            let closing =
                self.table.conns.get_mut(id).is_some_and(|e| e.conn.state() == State::Closed);
            let code = if closing { CloseCode::NORMAL } else { CloseCode::ABNORMAL };
            self.remove(id, now, code, reason);
        } else if write_failed {
            self.remove(id, now, CloseCode::ABNORMAL, "write failed");
        }
    }

    /// Writes this wakeup's output for `id`, after anything already waiting in its outbox.
    pub(super) fn write_cork(&mut self, id: ConnId, cork: &mut Vec<u8>) -> io::Result<()> {
        let Some(entry) = self.table.conns.get_mut(id) else { return Ok(()) };
        if cork.is_empty() {
            return Ok(());
        }
        if !entry.outbox.is_empty() {
            entry.outbox.keep_unwritten(cork, 0, &mut self.table.pool);
            return entry.outbox.write_to(&mut entry.stream, &mut self.table.pool);
        }
        let written = write_two(&mut entry.stream, cork, &[])?;
        if written < cork.len() {
            entry.outbox.keep_unwritten(cork, written, &mut self.table.pool);
        }
        Ok(())
    }

    /// Writes the outboxes that handlers filled for other connections: once per poll round,
    /// so that a recipient of several broadcasts in one round gets them in one `writev`.
    pub(super) fn flush_touched(&mut self, now: Instant) {
        while let Some(id) = self.table.touched.pop() {
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
            entry.touched = false;
            if entry.outbox.write_to(&mut entry.stream, &mut self.table.pool).is_err() {
                self.remove(id, now, CloseCode::ABNORMAL, "write failed");
            } else {
                self.settle(id);
            }
        }
    }

    /// Brings the registration, the timer and the TCP teardown of `id` in line with its state.
    pub(super) fn settle(&mut self, id: ConnId) {
        let registry = self.poll.registry();
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        if self.options.connection.trace {
            print_trace(id, &mut entry.conn);
        }
        if entry.conn.state() == State::Closed && entry.outbox.is_empty() && !entry.write_shut {
            // §7.1.1: the server closes the TCP connection first. Our FIN goes after the last
            // byte; input is still read (and ignored) until the peer's FIN, so that closing
            // with unread input does not reset the connection and destroy the Close frame.
            entry.write_shut = true;
            let _ = entry.stream.shutdown(Shutdown::Write);
            if self.options.connection.trace {
                eprintln!("[conn {id}] §7.1.1 the server closes TCP first: FIN sent");
            }
        }
        let want_writable = !entry.outbox.is_empty();
        if want_writable != entry.writable_interest {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if reregister(registry, entry, id, interest).is_ok() {
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
    }
}

/// Feeds one read's bytes to connection `id` and dispatches its events. Returns where an
/// incomplete frame of at most `max_tail` bytes starts (the input's length if there is none).
fn process<H: Handler>(
    table: &mut Table,
    handler: &mut H,
    input: &mut [u8],
    max_tail: usize,
    id: ConnId,
    now: Instant,
    cork: &mut Vec<u8>,
) -> usize {
    let mut pos = 0;
    let mut tail = input.len();
    if let Some(entry) = table.conns.get_mut(id) {
        // A buffer from the pool, in case a message arrives in pieces.
        if let Some(spare) = entry.conn.lend_buffer(table.pool.take()) {
            table.pool.give(spare);
        }
    }
    while pos < input.len() {
        let Some(entry) = table.conns.get_mut(id) else { return input.len() };
        let received = entry.conn.receive_keeping_tail(&mut input[pos..], max_tail, now, cork);
        pos += received.consumed;
        let Some(event) = received.event else {
            if pos < input.len() {
                // An incomplete frame: the caller keeps it for the next read.
                tail = pos;
                break;
            }
            continue;
        };
        match event {
            Event::Opened(opened) => {
                entry.open_notified = true;
                let mut ctx = Ctx { current: Some(id), now, table: &mut *table, out: &mut *cork };
                handler.on_open(&mut ctx, &opened);
            }
            Event::Message(message) => {
                let mut ctx = Ctx { current: Some(id), now, table: &mut *table, out: &mut *cork };
                handler.on_message(&mut ctx, &message);
                if let Some(buffer) = message.into_buffer() {
                    table.pool.give(buffer);
                }
            }
            Event::Closed { code, reason } => {
                let code = code.unwrap_or(CloseCode::NO_STATUS);
                notify_close(table, handler, id, now, cork, code, &reason);
            }
            Event::Failed(error) => {
                let (code, reason) = (error.close_code(), error.reason());
                notify_close(table, handler, id, now, cork, code, reason);
            }
            Event::Rejected(_) | Event::Served(_) | Event::TimedOut(_) => {}
        }
    }
    if let Some(buffer) = table.conns.get_mut(id).and_then(|e| e.conn.reclaim_buffer()) {
        table.pool.give(buffer);
    }
    tail
}

/// Calls [`Handler::on_close`] once for a connection that was opened.
pub(super) fn notify_close<H: Handler>(
    table: &mut Table,
    handler: &mut H,
    id: ConnId,
    now: Instant,
    out: &mut Vec<u8>,
    code: CloseCode,
    reason: &str,
) {
    let Some(entry) = table.conns.get_mut(id) else { return };
    if !std::mem::take(&mut entry.open_notified) {
        return;
    }
    let closed = Closed { code, reason: reason.to_owned() };
    let mut ctx = Ctx { current: Some(id), now, table, out };
    handler.on_close(&mut ctx, &closed);
}

/// `--trace`: the connection's lines, to standard error, each marked with its id.
pub(super) fn print_trace(id: ConnId, conn: &mut Connection) {
    for line in conn.take_trace() {
        eprintln!("[conn {id}] {line}");
    }
}

fn reregister(
    registry: &Registry,
    entry: &mut Entry,
    id: ConnId,
    interest: Interest,
) -> io::Result<()> {
    registry.reregister(&mut entry.stream, Token(id.to_token()), interest)
}
