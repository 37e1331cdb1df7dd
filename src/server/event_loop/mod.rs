//! The mio loop itself: polling, timers and shutdown here; accepting connections in
//! `accept.rs`; reading, dispatching and writing in `io.rs`.

mod accept;
mod serve;

use super::{Ctx, Handler, Options, Pool, Slab, Table};
use crate::close::CloseCode;
use crate::connection::{Config, Event};
use crate::server::ConnId;
use crate::state::State;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use serve::notify_close;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

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
    /// The connections and what handlers reach through [`Ctx`].
    table: Table,
    /// The read buffer shared by every connection.
    read_buf: Vec<u8>,
    /// The output of the connection being served, written once per wakeup.
    cork: Vec<u8>,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections with input left after their read budget, served again without blocking.
    ready: VecDeque<ConnId>,
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
            table: Table {
                conns: Slab::new(),
                pool: Pool::default(),
                touched: Vec::new(),
                max_outbox: options.max_outbox,
            },
            options,
            handler,
            cork: Vec::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
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
            if self.shutdown_deadline.is_some_and(|at| now >= at || self.table.conns.len() == 0) {
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
            self.flush_touched(now);
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
        let ids: Vec<ConnId> = self.table.conns.iter().map(|(id, _)| id).collect();
        let mut cork = std::mem::take(&mut self.cork);
        for id in ids {
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
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

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.table.conns.get_mut(id) else { continue };
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
        let mut ctx = Ctx { current: None, now, table: &mut self.table, out: &mut cork };
        self.handler.on_timeout(&mut ctx);
        cork.clear();
        self.cork = cork;
        self.flush_touched(now);
    }

    /// Drops connection `id`, telling the handler if it had been opened.
    fn remove(&mut self, id: ConnId, now: Instant, code: CloseCode, reason: &str) {
        let mut scratch = Vec::new();
        notify_close(&mut self.table, &mut self.handler, id, now, &mut scratch, code, reason);
        if let Some(mut entry) = self.table.conns.remove(id) {
            if self.options.connection.trace {
                serve::print_trace(id, &mut entry.conn);
                eprintln!("[conn {id}] TCP closed ({} {reason})", code.0);
            }
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
