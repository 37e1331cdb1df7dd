//! The mio loop itself: accept, read, dispatch, write, timers.

use super::{Closed, Ctx, Entry, Handler, Options, Outbox, Slab};
use crate::close::CloseCode;
use crate::connection::{Config, Connection, Event};
use crate::server::ConnId;
use crate::state::State;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
/// How long to stop accepting after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections over a cap are kept this many at most, just long enough to send them 503;
/// past that they are dropped unanswered.
const REFUSAL_RESERVE: usize = 64;

/// Stops a running [`Server`] from another thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Asks the loop to stop: it stops accepting, sends every open connection a Close frame
    /// with 1001 (going away), and returns from [`Server::run`] once they are closed or
    /// `Options::shutdown_timeout` has passed.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // A failed wake only delays the stop to the next wakeup.
        let _ = self.waker.wake();
    }
}

/// A WebSocket server: a listener, a connection table and a [`Handler`], run by one thread.
pub struct Server<H> {
    poll: Poll,
    /// `None` once shutting down: the port is closed to new connections.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    options: Options,
    config: Arc<Config>,
    handler: H,
    conns: Slab<Entry>,
    /// The read buffer shared by every connection.
    read_buf: Vec<u8>,
    /// The output of the connection being served, written once per wakeup.
    cork: Vec<u8>,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections with input left after their read budget, served again without blocking.
    ready: VecDeque<ConnId>,
    /// Connections that a handler sent to during the current call.
    touched: Vec<ConnId>,
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    accept_paused_until: Option<Instant>,
    /// Open connections per peer address, for `Options::max_connections_per_ip`.
    per_ip: HashMap<IpAddr, usize>,
    /// Entries that are only there to send a 503 and close.
    refusing: usize,
    /// Set when shutdown began: the time by which `run` returns.
    shutdown_deadline: Option<Instant>,
}

impl<H: Handler> Server<H> {
    /// Binds a listening socket; [`Server::run`] starts serving.
    pub fn bind(addr: SocketAddr, options: Options, handler: H) -> io::Result<Server<H>> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            config: Arc::new(options.connection.clone()),
            read_buf: vec![0; options.read_buffer_size.max(1)],
            options,
            handler,
            conns: Slab::new(),
            cork: Vec::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            touched: Vec::new(),
            shutdown: Arc::new(AtomicBool::new(false)),
            waker,
            accept_paused_until: None,
            per_ip: HashMap::new(),
            refusing: 0,
            shutdown_deadline: None,
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// A handle that stops [`Server::run`] from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { flag: self.shutdown.clone(), waker: self.waker.clone() }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Gives the handler back (after [`Server::run`] has returned), closing every socket.
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// Serves until a [`ShutdownHandle::shutdown`] has been carried out, or polling fails.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if self.shutdown.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
                self.begin_shutdown(now);
            }
            if self.shutdown_deadline.is_some_and(|at| now >= at || self.conns.len() == 0) {
                return Ok(());
            }
            let timeout = self.poll_timeout(now);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    token => {
                        let id = ConnId::from_token(token.0);
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.serve(id, now, readable, event.is_writable());
                    }
                }
            }
            for _ in 0..self.ready.len() {
                if let Some(id) = self.ready.pop_front() {
                    self.serve(id, now, true, false);
                }
            }
            self.fire_timers(now);
            self.fire_handler_timer(now);
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.accept(now);
            }
        }
    }

    /// Stops accepting and starts the closing handshake (1001) on every connection.
    fn begin_shutdown(&mut self, now: Instant) {
        self.shutdown_deadline = Some(now + self.options.shutdown_timeout);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let ids: Vec<ConnId> = self.conns.iter().map(|(id, _)| id).collect();
        let mut cork = std::mem::take(&mut self.cork);
        for id in ids {
            let Some(entry) = self.conns.get_mut(id) else { continue };
            match entry.conn.state() {
                // §7.4.1 1001: "an endpoint is "going away", such as a server going down".
                State::Open => {
                    let reason = "server shutting down";
                    let _ = entry.conn.close(&mut cork, CloseCode::GOING_AWAY, reason, now);
                }
                State::Connecting => {
                    self.remove(id, now, CloseCode::GOING_AWAY, "server shutting down");
                    continue;
                }
                State::CloseSent | State::Closed => {}
            }
            if self.write_cork(id, &mut cork).is_err() {
                self.remove(id, now, CloseCode::ABNORMAL, "write failed");
            } else {
                self.settle(id);
            }
            cork.clear();
        }
        self.cork = cork;
    }

    /// How long `poll` may block: not at all with work queued, else until the next deadline.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let next =
            [timer, self.accept_paused_until, self.handler.poll_timeout(), self.shutdown_deadline]
                .into_iter()
                .flatten()
                .min();
        // Round up so a deadline is not polled for one millisecond early again and again.
        next.map(|at| at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else { return };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error().is_some_and(is_fd_exhaustion) => {
                    // No descriptor for a new socket: the pending connection stays in the
                    // backlog. Try again shortly instead of spinning on a listener that stays
                    // readable.
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and the like concern one pending connection only.
                Err(_) => continue,
            };
            self.admit(stream, peer.ip(), now);
        }
    }

    /// Puts an accepted connection in the table, or refuses it with 503 when the server or
    /// its peer address is at its cap.
    fn admit(&mut self, stream: TcpStream, ip: IpAddr, now: Instant) {
        let active = self.conns.len() - self.refusing;
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if active >= self.options.max_connections {
            Some("server at connection limit")
        } else if from_ip >= self.options.max_connections_per_ip {
            Some("too many connections from this address")
        } else {
            None
        };
        if refusal.is_some() && self.refusing >= REFUSAL_RESERVE {
            // Too many refusals in flight already: drop this one unanswered.
            return;
        }
        let _ = stream.set_nodelay(true);
        let mut conn = Connection::new(self.config.clone(), now);
        let mut response = Vec::new();
        if let Some(reason) = refusal {
            conn.refuse(&mut response, 503, "Retry-After: 1\r\n", reason, now);
        }
        let Some(id) = self.conns.insert_with(|_| Entry {
            stream,
            conn,
            outbox: Outbox::default(),
            peer: refusal.is_none().then_some(ip),
            scheduled: None,
            open_notified: false,
            write_shut: false,
            read_paused: false,
            writable_interest: false,
            touched: false,
        }) else {
            return;
        };
        match refusal {
            Some(_) => self.refusing += 1,
            None => *self.per_ip.entry(ip).or_insert(0) += 1,
        }
        let registry = self.poll.registry();
        let Some(entry) = self.conns.get_mut(id) else { return };
        if registry.register(&mut entry.stream, Token(id.to_token()), Interest::READABLE).is_err() {
            self.remove(id, now, CloseCode::ABNORMAL, "register failed");
            return;
        }
        if self.write_cork(id, &mut response).is_err() {
            self.remove(id, now, CloseCode::ABNORMAL, "write failed");
            return;
        }
        self.settle(id);
    }

    /// Handles readiness of connection `id`: writes what waits, reads what came, and settles.
    fn serve(&mut self, id: ConnId, now: Instant, readable: bool, writable: bool) {
        let Some(entry) = self.conns.get_mut(id) else {
            // A stale event for a connection that is gone (its slot may hold a new one).
            return;
        };
        if writable && !entry.outbox.is_empty() && entry.outbox.write_to(&mut entry.stream).is_err()
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
        let Some(entry) = self.conns.get_mut(id) else { return };
        if readable || entry.read_paused {
            self.read(id, now);
        }
        if self.conns.get_mut(id).is_some() {
            self.settle(id);
        }
    }

    /// Reads and processes input until the socket has none, the budget is spent, or the
    /// connection's output must drain first.
    fn read(&mut self, id: ConnId, now: Instant) {
        let mut cork = std::mem::take(&mut self.cork);
        let mut budget = self.options.read_budget;
        let mut ended = None;
        while let Some(entry) = self.conns.get_mut(id) {
            if entry.outbox.len() + cork.len() > self.options.read_pause_outbox {
                entry.read_paused = true;
                break;
            }
            entry.read_paused = false;
            entry.conn.set_output_backlogged(!entry.outbox.is_empty());
            let n = match entry.stream.read(&mut self.read_buf) {
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
            process(
                self.options.max_outbox,
                &mut self.conns,
                &mut self.handler,
                &mut self.touched,
                &mut self.read_buf[..n],
                id,
                now,
                &mut cork,
            );
            self.flush_touched(now);
            budget = budget.saturating_sub(n);
            if budget == 0 || cork.len() >= self.read_buf.len() {
                // Let the others have a turn (or write this output) before reading more.
                self.ready.push_back(id);
                break;
            }
        }
        let write_failed = self.write_cork(id, &mut cork).is_err();
        cork.clear();
        self.cork = cork;
        if let Some(reason) = ended {
            let closing = self.conns.get_mut(id).is_some_and(|e| e.conn.state() == State::Closed);
            let code = if closing { CloseCode::NORMAL } else { CloseCode::ABNORMAL };
            self.remove(id, now, code, reason);
        } else if write_failed {
            self.remove(id, now, CloseCode::ABNORMAL, "write failed");
        }
    }

    /// Writes this wakeup's output for `id`, after anything already waiting in its outbox.
    fn write_cork(&mut self, id: ConnId, cork: &mut Vec<u8>) -> io::Result<()> {
        let Some(entry) = self.conns.get_mut(id) else { return Ok(()) };
        if cork.is_empty() {
            return Ok(());
        }
        if !entry.outbox.is_empty() {
            entry.outbox.keep_unwritten(cork, 0);
            return entry.outbox.write_to(&mut entry.stream);
        }
        let written = write_some(&mut entry.stream, cork)?;
        if written < cork.len() {
            entry.outbox.keep_unwritten(cork, written);
        }
        Ok(())
    }

    /// Writes the outboxes that handlers filled during the last call.
    fn flush_touched(&mut self, now: Instant) {
        while let Some(id) = self.touched.pop() {
            let Some(entry) = self.conns.get_mut(id) else { continue };
            entry.touched = false;
            if entry.outbox.write_to(&mut entry.stream).is_err() {
                self.remove(id, now, CloseCode::ABNORMAL, "write failed");
            } else {
                self.settle(id);
            }
        }
    }

    /// Brings the registration, the timer and the TCP teardown of `id` in line with its state.
    fn settle(&mut self, id: ConnId) {
        let registry = self.poll.registry();
        let Some(entry) = self.conns.get_mut(id) else { return };
        if entry.conn.state() == State::Closed && entry.outbox.is_empty() && !entry.write_shut {
            // §7.1.1: the server closes the TCP connection first. Our FIN goes after the last
            // byte; input is still read (and ignored) until the peer's FIN, so that closing
            // with unread input does not reset the connection and destroy the Close frame.
            entry.write_shut = true;
            let _ = entry.stream.shutdown(Shutdown::Write);
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

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.conns.get_mut(id) else { continue };
            if entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            // A keepalive Ping, or the Close frame of a Pong timeout, is written at once.
            let mut cork = std::mem::take(&mut self.cork);
            let event = entry.conn.handle_timeout(now, &mut cork);
            let write_failed = self.write_cork(id, &mut cork).is_err();
            cork.clear();
            self.cork = cork;
            match event {
                Some(Event::TimedOut(state)) => {
                    let (code, reason) = match state {
                        State::Closed => (CloseCode::NORMAL, "closed"),
                        State::Open => (CloseCode::INTERNAL_ERROR, "ping timeout"),
                        State::Connecting | State::CloseSent => (CloseCode::ABNORMAL, "timed out"),
                    };
                    self.remove(id, now, code, reason);
                }
                _ if write_failed => self.remove(id, now, CloseCode::ABNORMAL, "write failed"),
                _ => self.settle(id),
            }
        }
    }

    /// Calls [`Handler::on_timeout`] when the handler's own timer is due.
    fn fire_handler_timer(&mut self, now: Instant) {
        if self.handler.poll_timeout().is_none_or(|at| at > now) {
            return;
        }
        let mut cork = std::mem::take(&mut self.cork);
        let mut ctx = Ctx {
            current: None,
            now,
            max_outbox: self.options.max_outbox,
            conns: &mut self.conns,
            out: &mut cork,
            touched: &mut self.touched,
        };
        self.handler.on_timeout(&mut ctx);
        cork.clear();
        self.cork = cork;
        self.flush_touched(now);
    }

    /// Drops connection `id`, telling the handler if it had been opened.
    fn remove(&mut self, id: ConnId, now: Instant, code: CloseCode, reason: &str) {
        let mut scratch = Vec::new();
        notify_close(
            self.options.max_outbox,
            &mut self.conns,
            &mut self.handler,
            &mut self.touched,
            id,
            now,
            &mut scratch,
            code,
            reason,
        );
        if let Some(mut entry) = self.conns.remove(id) {
            let _ = self.poll.registry().deregister(&mut entry.stream);
            match entry.peer {
                Some(ip) => {
                    if let Some(count) = self.per_ip.get_mut(&ip) {
                        *count -= 1;
                        if *count == 0 {
                            self.per_ip.remove(&ip);
                        }
                    }
                }
                None => self.refusing -= 1,
            }
        }
        self.flush_touched(now);
    }
}

/// Feeds one read's bytes to connection `id` and dispatches its events.
#[allow(clippy::too_many_arguments)]
fn process<H: Handler>(
    max_outbox: usize,
    conns: &mut Slab<Entry>,
    handler: &mut H,
    touched: &mut Vec<ConnId>,
    input: &mut [u8],
    id: ConnId,
    now: Instant,
    cork: &mut Vec<u8>,
) {
    let mut pos = 0;
    while pos < input.len() {
        let Some(entry) = conns.get_mut(id) else { return };
        let received = entry.conn.receive(&mut input[pos..], now, cork);
        pos += received.consumed;
        let Some(event) = received.event else {
            if received.consumed == 0 {
                return;
            }
            continue;
        };
        match event {
            Event::Opened(opened) => {
                entry.open_notified = true;
                let mut ctx = Ctx { current: Some(id), now, max_outbox, conns, out: cork, touched };
                handler.on_open(&mut ctx, &opened);
            }
            Event::Message(message) => {
                let mut ctx = Ctx { current: Some(id), now, max_outbox, conns, out: cork, touched };
                handler.on_message(&mut ctx, message);
            }
            Event::Closed { code, reason } => {
                let code = code.unwrap_or(CloseCode::NO_STATUS);
                notify_close(max_outbox, conns, handler, touched, id, now, cork, code, &reason);
            }
            Event::Failed(error) => {
                notify_close(
                    max_outbox,
                    conns,
                    handler,
                    touched,
                    id,
                    now,
                    cork,
                    error.close_code(),
                    error.reason(),
                );
            }
            Event::Rejected(_) | Event::Served(_) | Event::TimedOut(_) => {}
        }
    }
}

/// Calls [`Handler::on_close`] once for a connection that was opened.
#[allow(clippy::too_many_arguments)]
fn notify_close<H: Handler>(
    max_outbox: usize,
    conns: &mut Slab<Entry>,
    handler: &mut H,
    touched: &mut Vec<ConnId>,
    id: ConnId,
    now: Instant,
    out: &mut Vec<u8>,
    code: CloseCode,
    reason: &str,
) {
    let Some(entry) = conns.get_mut(id) else { return };
    if !std::mem::take(&mut entry.open_notified) {
        return;
    }
    let closed = Closed { code, reason: reason.to_owned() };
    let mut ctx = Ctx { current: Some(id), now, max_outbox, conns, out, touched };
    handler.on_close(&mut ctx, &closed);
}

fn reregister(
    registry: &Registry,
    entry: &mut Entry,
    id: ConnId,
    interest: Interest,
) -> io::Result<()> {
    registry.reregister(&mut entry.stream, Token(id.to_token()), interest)
}

/// Writes what the socket takes without blocking; returns how much that was.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// EMFILE (per process) and ENFILE (system-wide): out of file descriptors.
fn is_fd_exhaustion(errno: i32) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    errno == EMFILE || errno == ENFILE
}
