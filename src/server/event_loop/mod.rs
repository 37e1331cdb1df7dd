//! The mio loop itself: one turn is poll, serve the ready connections (`serve.rs`: read,
//! process, write), carry out commands from other threads, fire timers, then flush the outboxes
//! that handlers filled and remove the connections that ended. Accepting is in `accept.rs`;
//! handing a connection's events to the handler is in `turn.rs`.

mod accept;
mod listen;
mod serve;
mod turn;

use super::caps::Caps;
use super::ctx::{Ctx, Proxies, Table};
use super::handle::{Command, Mailbox};
use super::outbox::Pool;
use super::slab::Slab;
use super::{Handler, Options, Record, ServerHandle};
use crate::close::CloseCode;
use crate::connection::{Config, Connection, Event};
use crate::server::ConnId;
use crate::state::State;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use turn::Turn;

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

/// A WebSocket server: a listener, a connection table and a [`Handler`], run by one thread.
pub struct Server<H: Handler> {
    poll: Poll,
    /// `None` once shutting down (the port is closed to new connections), and for a loop that
    /// is handed its connections by another.
    listener: Option<TcpListener>,
    /// The other loops this one hands accepted connections to (`Balance::Acceptor`).
    peers: Vec<ServerHandle>,
    local_addr: SocketAddr,
    options: Options,
    config: Arc<Config>,
    handler: H,
    /// The connections and what handlers reach through [`Ctx`].
    table: Table<H::State>,
    /// The read buffer shared by every connection.
    read_buf: Vec<u8>,
    /// The output of the connection being served, written once per wakeup.
    cork: Vec<u8>,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections with input left after their read budget, served again without blocking.
    ready: VecDeque<ConnId>,
    /// Commands from [`ServerHandle`]s.
    mailbox: Mailbox,
    accept_paused_until: Option<Instant>,
    /// The connection caps, shared by every loop of one server ([`super::Loops`]).
    caps: Arc<Caps>,
    /// What this loop has done, published once per turn for `--metrics-listen`.
    metrics: Arc<super::LoopMetrics>,
    /// Entries that are only there to send a 503 and close.
    refusing: usize,
    /// Set when shutdown began: the time by which `run` returns.
    shutdown_deadline: Option<Instant>,
}

impl<H: Handler> Server<H> {
    /// Binds a listening socket; [`Server::run`] starts serving.
    pub fn bind(addr: SocketAddr, options: Options, handler: H) -> io::Result<Server<H>> {
        let listener = match options.reuse_port {
            true => listen::bind_reusing_port(addr)?,
            false => TcpListener::bind(addr)?,
        };
        let local_addr = listener.local_addr()?;
        Server::new(Some(listener), local_addr, options, handler)
    }

    /// A server that accepts nothing itself: another loop of the same [`super::Loops`] hands
    /// it the connections it accepted (`Balance::Acceptor`). `local_addr` is that loop's.
    pub(crate) fn without_listener(
        local_addr: SocketAddr,
        options: Options,
        handler: H,
    ) -> io::Result<Server<H>> {
        Server::new(None, local_addr, options, handler)
    }

    fn new(
        mut listener: Option<TcpListener>,
        local_addr: SocketAddr,
        options: Options,
        handler: H,
    ) -> io::Result<Server<H>> {
        let poll = Poll::new()?;
        if let Some(listener) = &mut listener {
            poll.registry().register(listener, LISTENER, Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let caps = options.caps.clone().unwrap_or_default();
        Ok(Server {
            poll,
            listener,
            peers: Vec::new(),
            local_addr,
            config: Arc::new(options.connection.clone()),
            read_buf: vec![0; options.read_buffer_size.max(1)],
            table: Table {
                conns: Slab::new(),
                pool: Pool::default(),
                touched: Vec::new(),
                removals: Vec::new(),
                max_outbox: options.max_outbox,
                shutting_down: false,
                admission: options.max_handshake_rate.map(super::admission::Admission::new),
                tally: Default::default(),
                access_log: options.access_log,
                book: Default::default(),
                proxies: Proxies {
                    trusted: options.trusted_proxies.clone(),
                    caps: caps.clone(),
                    max_per_ip: options.max_connections_per_ip,
                },
            },
            mailbox: Mailbox::new(waker, options.command_queue),
            options,
            handler,
            cork: Vec::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            accept_paused_until: None,
            caps,
            metrics: Arc::default(),
            refusing: 0,
            shutdown_deadline: None,
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// A handle that reaches the running server from any thread: send, broadcast, close, stop.
    pub fn handle(&self) -> ServerHandle {
        self.mailbox.handle.clone()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Makes this loop the acceptor of a [`super::Loops`]: each connection it accepts goes to
    /// the loop, this one or one of `peers`, that holds the fewest connections.
    pub(crate) fn hand_out_to(&mut self, peers: Vec<ServerHandle>) {
        self.peers = peers;
    }

    /// This loop's figures (`--metrics-listen`), readable from any thread while it runs.
    pub fn metrics(&self) -> Arc<super::LoopMetrics> {
        self.metrics.clone()
    }

    /// Gives the handler back (after [`Server::run`] has returned), closing every socket.
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// Serves until a [`ServerHandle::shutdown`] has been carried out, or polling fails.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if self.mailbox.shutdown_asked() && self.shutdown_deadline.is_none() {
                self.begin_shutdown(now);
                self.reap(now);
            }
            if self.shutdown_deadline.is_some_and(|at| now >= at || self.table.conns.len() == 0) {
                self.log_the_rest(now);
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
                        if (event.is_read_closed() || event.is_error())
                            && let Some(entry) = self.table.conns.get_mut(id)
                        {
                            entry.read_closed = true;
                        }
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
            self.run_commands(now);
            self.fire_timers(now);
            self.fire_handler_timer(now);
            self.reap(now);
            self.mailbox.publish_load(self.table.conns.len());
            let outbox = self.table.tally.outbox_due(now).then(|| {
                self.table.conns.iter().map(|(_, entry)| entry.outbox.len()).sum::<usize>()
            });
            self.metrics.publish(&self.table.tally, self.table.conns.len(), outbox);
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.accept(now);
            }
        }
    }

    /// Stops accepting and starts the closing handshake (1001) on every connection.
    fn begin_shutdown(&mut self, now: Instant) {
        self.shutdown_deadline = Some(now + self.options.shutdown_timeout);
        self.table.shutting_down = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let ids: Vec<ConnId> = self.table.conns.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
            // Input held for a paused connection is read now: the peer's Close is behind it.
            if let Some(pause) = &mut entry.pause {
                (pause.until, pause.scheduled) = (now, false);
            }
            match entry.conn.state() {
                // §7.4.1 1001: "an endpoint is "going away", such as a server going down".
                State::Open => self.with_cork(id, |server, cork| {
                    if let Some(entry) = server.table.conns.get_mut(id) {
                        let reason = "server shutting down";
                        let _ = entry.conn.close(cork, CloseCode::GOING_AWAY, reason, now);
                    }
                }),
                State::Connecting => {
                    self.table.doom(id, CloseCode::GOING_AWAY, "server shutting down");
                }
                State::CloseSent | State::Closed => {}
            }
            self.settle(id);
        }
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

    /// Runs `f` with the loop's output buffer, then writes what `f` put in it for `id` (after
    /// anything already waiting in its outbox) and takes the buffer back, empty.
    fn with_cork<R>(&mut self, id: ConnId, f: impl FnOnce(&mut Self, &mut Vec<u8>) -> R) -> R {
        let mut cork = std::mem::take(&mut self.cork);
        let result = f(self, &mut cork);
        if self.write_cork(id, &mut cork).is_err() {
            self.table.doom(id, CloseCode::ABNORMAL, "write failed");
        }
        cork.clear();
        self.cork = cork;
        result
    }

    /// The handler, the table and the log, for one connection's events.
    fn turn(&mut self, now: Instant) -> Turn<'_, H> {
        Turn {
            table: &mut self.table,
            handler: &mut self.handler,
            log: self.options.log.as_deref(),
            now,
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
            if entry.doomed {
                continue;
            }
            if entry.pause.as_ref().is_some_and(|pause| pause.scheduled && pause.until == at) {
                self.resume(id, now);
            }
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
            if entry.doomed || entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            if entry.pause.is_some() && entry.conn.state() == State::Open {
                // The peer's Pong may wait behind input that we hold unread: its deadlines wait
                // until we read again (settle schedules them anew on resuming).
                continue;
            }
            // A keepalive Ping, or the Close frame of a Pong timeout, is written at once.
            let event = self.with_cork(id, |server, cork| {
                server.table.conns.get_mut(id).and_then(|e| e.conn.handle_timeout(now, cork))
            });
            match event {
                Some(Event::TimedOut(state)) => {
                    let (code, reason) = match state {
                        State::Closed => (CloseCode::NORMAL, "closed"),
                        State::Open => (CloseCode::INTERNAL_ERROR, "ping timeout"),
                        State::Connecting | State::CloseSent => (CloseCode::ABNORMAL, "timed out"),
                    };
                    self.table.doom(id, code, reason);
                }
                _ => self.settle(id),
            }
        }
    }

    /// Calls [`Handler::on_timeout`] when the handler's own timer is due.
    fn fire_handler_timer(&mut self, now: Instant) {
        if self.handler.poll_timeout().is_none_or(|at| at > now) {
            return;
        }
        let mut nowhere = Vec::new();
        let mut ctx = Ctx::new(None, now, &mut self.table, &mut nowhere);
        self.handler.on_timeout(&mut ctx);
    }

    /// Carries out what other threads asked for through [`ServerHandle`]s.
    fn run_commands(&mut self, now: Instant) {
        let mut nowhere = Vec::new();
        for command in self.mailbox.take() {
            let mut ctx = Ctx::new(None, now, &mut self.table, &mut nowhere);
            // A connection that is gone or closing is skipped, as for the handler's own sends.
            let _ = match command {
                Command::Send { to, frame } => ctx.send_shared(to, &frame),
                Command::Broadcast(frame) => {
                    ctx.broadcast(&frame);
                    Ok(())
                }
                Command::Close { to, code, reason } => ctx.close(to, code, &reason),
            };
        }
        let adopted: Vec<_> = self.mailbox.take_adoptions().collect();
        for (stream, ip) in adopted {
            // A loop that is stopping takes no new connection: dropping it closes the socket.
            if self.shutdown_deadline.is_none() {
                self.admit(stream, ip, now);
            }
        }
        if self.mailbox.take_notified() {
            let mut ctx = Ctx::new(None, now, &mut self.table, &mut nowhere);
            self.handler.on_notify(&mut ctx);
        }
    }

    /// Flushes the outboxes that handlers filled, and removes the connections that ended,
    /// telling the handler of each: once per turn, and never from inside a callback. A
    /// handler's farewell broadcast can end more connections (a write fails); they are
    /// removed in the same pass, by the same loop.
    fn reap(&mut self, now: Instant) {
        loop {
            self.flush_touched(now);
            if self.table.removals.is_empty() {
                return;
            }
            for removal in std::mem::take(&mut self.table.removals) {
                self.turn(now).notify_close(removal.id, removal.code, removal.reason);
                let Some(mut entry) = self.table.conns.remove(removal.id) else { continue };
                if self.config.trace {
                    entry.conn.trace_tcp_closed(Some((removal.code, removal.reason)));
                    let turn = Turn {
                        table: &mut self.table,
                        handler: &mut self.handler,
                        log: self.options.log.as_deref(),
                        now,
                    };
                    turn.forward_trace(removal.id, &mut entry.conn);
                }
                let _ = entry.stream.deregister(self.poll.registry());
                if let Some(access) = self.table.book.take(removal.id, now) {
                    self.log(&Record::Access { conn: removal.id, access: &access });
                }
                if let Some(pause) = entry.pause.take() {
                    self.table.pool.give(pause.held);
                }
                if entry.counted {
                    self.caps.release(entry.ip_counted.then_some(entry.ip));
                } else {
                    self.refusing -= 1;
                }
            }
            if self.table.conns.shrink() {
                give_back_freed_memory();
            }
        }
    }

    /// The access log's lines of the connections still held when the server stops.
    fn log_the_rest(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.table.conns.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(access) = self.table.book.take(id, now) {
                self.log(&Record::Access { conn: id, access: &access });
            }
        }
    }

    fn log(&self, record: &Record<'_>) {
        if let Some(log) = &self.options.log {
            log.record(record);
        }
    }

    /// A new connection's state machine.
    fn new_connection(&self, now: Instant) -> Connection {
        Connection::new(self.config.clone(), now)
    }
}

/// Asks the allocator to return freed memory to the system (glibc keeps what was freed for
/// reuse; after a storm of connections has left, that would hold the server's largest size).
/// Called only when the connection table has shrunk by half or more, so rarely.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it takes no
    // pointer and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
