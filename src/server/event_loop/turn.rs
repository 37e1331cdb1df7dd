//! One connection's bytes through its state machine, and its events to the handler: the
//! handshake hook, the open, each message, the close. Output goes into the cork; the only
//! write here is the one that sends a large echoed payload from where it lies, after the
//! handler's call has returned.

use crate::close::CloseCode;
use crate::connection::{Connection, Event};
use crate::handshake::Request;
use crate::http::Response;
use crate::message::Message;
use crate::server::admission::Admission;
use crate::server::ctx::{Ctx, Proxies, Table};
use crate::server::outbox;
use crate::server::{CloseStatus, ConnId, Decision, Handler, Log, Record};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// What the loop lends to one connection's events.
pub(super) struct Turn<'a, H: Handler> {
    pub(super) table: &'a mut Table<H::State>,
    pub(super) handler: &'a mut H,
    pub(super) log: Option<&'a dyn Log>,
    pub(super) now: Instant,
}

/// How far [`Turn::process`] got through its input.
pub(super) struct Processed {
    /// Where an incomplete frame of at most `max_partial` bytes starts, left for the caller to
    /// present again (the input's length if there is none).
    pub(super) partial_at: usize,
    /// Where the handler paused reading: the bytes from here on were not processed.
    pub(super) paused_at: Option<usize>,
}

impl<H: Handler> Turn<'_, H> {
    /// Feeds one read's bytes to connection `id` and dispatches its events, until the input is
    /// used up, an incomplete frame of at most `max_partial` bytes is left, or the handler
    /// pauses reading.
    pub(super) fn process(
        &mut self,
        input: &mut [u8],
        max_partial: usize,
        id: ConnId,
        cork: &mut Vec<u8>,
    ) -> Processed {
        let mut done = Processed { partial_at: input.len(), paused_at: None };
        if let Some(entry) = self.table.conns.get_mut(id) {
            // A buffer from the pool, in case a message arrives in pieces.
            if let Some(spare) = entry.conn.provide_reassembly_buffer(self.table.pool.take()) {
                self.table.pool.give(spare);
            }
        }
        let mut pos = 0;
        while pos < input.len() {
            let Some(entry) = self.table.conns.get_mut(id) else { break };
            if entry.doomed {
                break;
            }
            if entry.pause.is_some() {
                done.paused_at = Some(pos);
                break;
            }
            let received =
                entry.conn.receive_leaving_partial(&mut input[pos..], max_partial, self.now, cork);
            pos += received.consumed;
            let Some(event) = received.event else {
                if pos < input.len() {
                    done.partial_at = pos;
                    break;
                }
                continue;
            };
            self.dispatch(id, event, cork);
        }
        let entry = self.table.conns.get_mut(id);
        if let Some(buffer) = entry.and_then(|e| e.conn.take_reassembly_buffer()) {
            self.table.pool.give(buffer);
        }
        done
    }

    fn dispatch(&mut self, id: ConnId, event: Event<'_>, cork: &mut Vec<u8>) {
        match event {
            Event::Request => self.answer_request(id, cork),
            Event::Message(message) => {
                self.table.tally.messages_in += 1;
                self.table.book.note(id, |a| a.messages_in += 1);
                self.deliver(id, &message, cork);
                if let Some(buffer) = message.into_buffer() {
                    self.table.pool.give(buffer);
                }
            }
            Event::CloseReceived { code, reason } => {
                self.notify_close(id, code.unwrap_or(CloseCode::NO_STATUS), &reason);
            }
            Event::Failed(error) => self.notify_close(id, error.close_code(), error.reason()),
            Event::Rejected(error) => {
                self.table.tally.refused(error.status());
                self.table.book.note(id, |a| a.status = Some(error.status()));
            }
            // A refusal is written; the connection closes once it is sent.
            _ => {}
        }
    }

    /// The handshake hook: the handler decides, the connection checks the decision against the
    /// RFC and writes it.
    fn answer_request(&mut self, id: ConnId, cork: &mut Vec<u8>) {
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        let Some(request) = entry.conn.request() else { return };
        let peer = entry.stream.peer_addr().unwrap_or(SocketAddr::new(entry.ip, 0));
        // Not counted under an address yet: from a trusted proxy, before its request.
        let behind_proxy = !entry.ip_counted && entry.counted;
        let (proxies, admission) = (&self.table.proxies, &mut self.table.admission);
        let gated = gate(peer, behind_proxy, request, proxies, admission, self.now);
        let (peer, refusal) = (gated.peer, gated.refusal);
        if let Some(client) = gated.counted_as {
            (entry.ip, entry.ip_counted) = (client, true);
        }
        let decision = match refusal {
            Some(response) => Decision::Respond(response),
            None => self.handler.on_request(request, peer),
        };
        let status = match &decision {
            Decision::Accept { .. } => 101,
            Decision::Respond(response) => response.status,
        };
        let refused_status = (status >= 400).then_some(status);
        let target = self.table.book.has(id).then(|| request.target().to_owned());
        let (answered, state) = match decision {
            Decision::Accept { answer, state } => {
                (entry.conn.accept(&answer, cork, self.now), Some(state))
            }
            Decision::Respond(response) => (entry.conn.respond(&response, cork, self.now), None),
        };
        if let Some(status) = refused_status {
            self.table.tally.refused(status);
        }
        let ip = entry.ip;
        self.table
            .book
            .note(id, |a| (a.peer, a.target, a.status) = (Some(ip), target, Some(status)));
        if let Err(error) = answered {
            if let Some(status) = error.status() {
                self.table.tally.refused(status);
                self.table.book.note(id, |a| a.status = Some(status));
            }
            if let Some(log) = self.log {
                log.record(&Record::AnswerRefused { conn: id, error });
            }
            return;
        }
        let Some(mut state) = state else { return };
        entry.opened = true;
        let mut ctx = Ctx::new(Some(id), self.now, self.table, cork);
        self.handler.on_open(&mut ctx, &mut state);
        self.give_back(id, state);
    }

    /// Hands a message to the handler, with the connection's state.
    fn deliver(&mut self, id: ConnId, message: &Message<'_>, cork: &mut Vec<u8>) {
        let Some(mut state) = self.table.conns.get_mut(id).and_then(|e| e.state.take()) else {
            return;
        };
        let payload = message.payload();
        let mut ctx = Ctx::new(Some(id), self.now, self.table, cork);
        ctx.lent = Some((payload.as_ptr() as usize, payload.len()));
        self.handler.on_message(&mut ctx, &mut state, message);
        let lent_at = ctx.lent_at;
        self.give_back(id, state);
        if let Some(at) = lent_at {
            self.write_lent(id, cork, at, payload);
        }
    }

    fn give_back(&mut self, id: ConnId, state: H::State) {
        if let Some(entry) = self.table.conns.get_mut(id) {
            entry.state = Some(state);
        }
    }

    /// Writes the cork with a large payload at `at` (the handler echoed the message it was
    /// lent): from where the payload lies, with one `writev`; only what the socket does not
    /// take is copied into the outbox.
    fn write_lent(&mut self, id: ConnId, cork: &mut Vec<u8>, at: usize, payload: &[u8]) {
        let Table { conns, pool, tally, book, .. } = &mut *self.table;
        let Some(entry) = conns.get_mut(id) else { return };
        let (before, after) = cork.split_at(at);
        let parts = [before, payload, after];
        let written = if entry.outbox.is_empty() {
            outbox::write_slices(&mut entry.stream, &parts)
        } else {
            Ok(0)
        };
        match written {
            Ok(written) => {
                tally.bytes_out += written as u64;
                book.note(id, |a| a.bytes_out += written as u64);
                entry.outbox.keep_unwritten_slices(&parts, written, pool);
            }
            Err(_) => self.table.doom(id, CloseCode::ABNORMAL, "write failed"),
        }
        cork.clear();
    }

    /// Calls [`Handler::on_close`] once for a connection that was opened, giving its state
    /// back.
    pub(super) fn notify_close(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        if !std::mem::take(&mut entry.opened) {
            return;
        }
        self.table.tally.closed(code.0);
        self.table.book.note(id, |a| a.close_code = Some(code.0));
        let Some(state) = entry.state.take() else { return };
        let status = CloseStatus { code, reason: reason.to_owned() };
        let mut nowhere = Vec::new();
        let mut ctx = Ctx::new(Some(id), self.now, self.table, &mut nowhere);
        ctx.current_open = false;
        self.handler.on_close(&mut ctx, state, &status);
    }

    /// `--trace`: the connection's lines, to the log.
    pub(super) fn forward_trace(&self, id: ConnId, conn: &mut Connection) {
        let lines = conn.take_trace();
        if let Some(log) = self.log {
            for line in &lines {
                log.record(&Record::Trace { conn: id, line });
            }
        }
    }
}

/// What [`gate`] found.
struct Gated {
    /// The address the handler is told.
    peer: SocketAddr,
    /// The refusal, if the request goes no further.
    refusal: Option<Response>,
    /// The client's address it is now counted under (behind a trusted proxy).
    counted_as: Option<IpAddr>,
}

/// What a request meets before the handler sees it: from a trusted proxy (`behind_proxy`),
/// the client's address from its headers (`proxy.rs`), counted against the per-address cap
/// now (the handler is told that address, with port 0: the headers' ports are the proxy's
/// business); then the handshake rate (`admission.rs`).
fn gate(
    peer: SocketAddr,
    behind_proxy: bool,
    request: &Request,
    proxies: &Proxies,
    admission: &mut Option<Admission>,
    now: Instant,
) -> Gated {
    let mut gated = Gated { peer, refusal: None, counted_as: None };
    if behind_proxy {
        let client = crate::proxy::client_address(&proxies.trusted, peer.ip(), request);
        gated.peer = SocketAddr::new(client, 0);
        if let Err(reason) = proxies.caps.count_address(client, proxies.max_per_ip) {
            // §4.2.2: "If the server does not wish to accept this connection, it MUST return
            // an appropriate HTTP error code".
            gated.refusal = Some(Response::text(503, reason).with_header("Retry-After", "1"));
            return gated;
        }
        gated.counted_as = Some(client);
    }
    if let Some(admission) = admission
        && request.is_websocket()
        && let Err(wait) = admission.admit(now)
    {
        let busy = Response::text(503, "too many handshakes at once: come back later");
        gated.refusal = Some(busy.with_header("Retry-After", wait.to_string()));
    }
    gated
}
