//! The event loop: the only part of rfc6455 that touches sockets.
//!
//! One thread, one `mio::Poll`, non-blocking sockets. For each readiness event the loop reads
//! into one large buffer shared by every connection, feeds the bytes to that connection's
//! [`Connection`](crate::Connection) state machine, hands each event to the [`Handler`], collects every answer in
//! one output buffer (the "cork") and writes it with one call at the end of the wakeup. What the
//! socket does not take waits in the connection's own outbox, with WRITABLE interest, and is the
//! only per-connection buffer that exists while a connection is idle and caught up.
//!
//! The handler decides; the loop carries out. [`Handler::on_request`] answers every request
//! before any `101`; every callback gets the connection's own state (`Handler::State`, kept in
//! the connection table) and a [`Ctx`] that queues output; the loop does the writing, and
//! removes connections once per turn, never from inside a callback. Other threads reach the
//! running loop through a [`ServerHandle`] (a bounded queue and a `mio::Waker`).
//!
//! Fairness: a connection is read at most `read_budget` bytes per wakeup; if it has more, it
//! goes to the back of a ready queue and the loop polls without blocking, so one flooding client
//! cannot starve the others. Backpressure: while a connection's outbox holds more than
//! `read_pause_outbox` bytes, it is not read, and TCP slows the peer down. Output that other
//! connections send it (a broadcast) is capped at `max_outbox`: a reader that falls that far
//! behind is closed with 1008, and nobody else waits for it. A handler may also stop reading
//! from a connection for a while ([`Ctx::pause_reading`]): a rate limit that slows a sender
//! down instead of dropping what it sent.
//!
//! Time: every deadline belongs to a connection ([`Connection::poll_timeout`](crate::Connection::poll_timeout)) or to the handler
//! ([`Handler::poll_timeout`]); the loop keeps the connections' in a heap and uses the nearest
//! as its poll timeout. Nothing sleeps.

mod admission;
mod caps;
mod ctx;
mod event_loop;
mod handle;
mod log;
mod loops;
mod metrics;
mod outbox;
mod slab;
pub(crate) mod transport;

pub use crate::shared::SharedFrame;
pub use ctx::{Ctx, Delivery};
pub use event_loop::Server;
pub use handle::{HandleError, ServerHandle};
pub use log::{Access, Log, Record};
pub use loops::{Balance, Loops, Running};
pub use metrics::{LoopMetrics, render as render_metrics, serve_metrics};
pub use slab::ConnId;
#[cfg(feature = "tls")]
pub use transport::tls_config;

use crate::close::CloseCode;
use crate::connection::Config;
use crate::handshake::{Accept, Request};
use crate::http::Response;
use crate::message::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the server runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// Per-connection protocol limits and choices.
    pub connection: Config,
    /// Size of the one read buffer the loop shares between all connections.
    pub read_buffer_size: usize,
    /// Bytes read from one connection per wakeup before others get their turn. It also bounds
    /// what a connection whose reading was paused ([`Ctx::pause_reading`]) holds unprocessed.
    pub read_budget: usize,
    /// Stop reading from a connection while this many bytes wait to be written to it.
    pub read_pause_outbox: usize,
    /// The most bytes that other connections may queue for one connection; past it, the
    /// connection is closed with 1008 (a slow reader must not hold memory or slow others).
    pub max_outbox: usize,
    /// The most connections held at once (by all the [`Loops`] of a server together);
    /// further ones are refused with 503.
    pub max_connections: usize,
    /// The most connections held at once from one peer address (all loops together); further
    /// ones get 503.
    pub max_connections_per_ip: usize,
    /// After a shutdown is asked for, how long open connections get to finish their closing
    /// handshake before `Server::run` returns anyway.
    pub shutdown_timeout: Duration,
    /// How many commands from [`ServerHandle`]s may wait for the loop; a send past it fails with
    /// [`HandleError::QueueFull`].
    pub command_queue: usize,
    /// Where the server reports what it does (`--trace` lines, refused answers); `None`:
    /// nowhere. The library never prints.
    pub log: Option<Arc<dyn Log>>,
    /// The most opening handshakes each event loop completes per second (bursts of a second's
    /// worth);
    /// past it, a WebSocket request gets `503` with a `Retry-After` that spreads the refused
    /// clients over the following seconds (see `admission.rs`). `None`: no limit.
    pub max_handshake_rate: Option<f64>,
    /// Report every connection's end to `log` ([`Record::Access`]: address, request target,
    /// status, close code, duration, messages and bytes each way), `--access-log`. It costs a
    /// small allocation per connection while on.
    pub access_log: bool,
    /// TLS (cargo feature `tls`): every connection speaks TLS with this configuration (wss://
    /// and https://), `--tls-cert` and `--tls-key`. The TLS handshake counts toward
    /// `connection.handshake_timeout`.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` header says who the client is
    /// (`--trust-proxy`): for their connections, the per-address cap counts that address, and
    /// the handler is given it (see `proxy.rs`). From any other address the headers are
    /// ignored. Empty: trust nobody's.
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
    /// Bind with `SO_REUSEPORT`, so that several servers (several event loops, see [`Loops`])
    /// listen on one address and the kernel spreads new connections over them.
    pub reuse_port: bool,
    /// The connection caps' counts, when several servers share them ([`Loops`] sets it).
    pub(crate) caps: Option<Arc<caps::Caps>>,
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
            command_queue: 4096,
            log: None,
            max_handshake_rate: None,
            trusted_proxies: Vec::new(),
            access_log: false,
            #[cfg(feature = "tls")]
            tls: None,
            reuse_port: false,
            caps: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("connection", &self.connection)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("read_budget", &self.read_budget)
            .field("read_pause_outbox", &self.read_pause_outbox)
            .field("max_outbox", &self.max_outbox)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("command_queue", &self.command_queue)
            .field("log", &self.log.as_ref().map(|_| "set"))
            .field("max_handshake_rate", &self.max_handshake_rate)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("access_log", &self.access_log)
            .field("reuse_port", &self.reuse_port)
            .finish()
    }
}

/// How a connection ended, as told to [`Handler::on_close`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseStatus {
    /// The close code: the peer's (or 1005 for none), ours when we failed the connection, or
    /// 1006 when TCP ended without a close handshake (§7.1.5).
    ///
    /// When we failed the connection and the peer never sent its Close, §7.1.5 defines the
    /// connection's close code as 1006; we report the code we sent (1002, 1007, 1009, 1011)
    /// instead, because it says why the connection ended and 1006 would not (docs/rfc-map.md
    /// lists this under "Deviations to review").
    pub code: CloseCode,
    /// The reason that went with the code.
    pub reason: String,
}

/// The handler's answer to a request (see [`Handler::on_request`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Decision<S> {
    /// Open a WebSocket: the core checks the request against §4.2.1 and the answer against
    /// §4.2.2, sends the `101`, and keeps `state` for the connection.
    Accept {
        /// What goes into the `101` (subprotocol, extra header fields).
        answer: Accept,
        /// The connection's state, handed to every later callback.
        state: S,
    },
    /// Answer with a plain HTTP response (a page, a 401, a redirect) and close.
    Respond(Response),
}

impl<S> Decision<S> {
    /// Accepts with an empty answer.
    pub fn accept(state: S) -> Decision<S> {
        Decision::Accept { answer: Accept::new(), state }
    }

    /// Refuses with `status` (4xx or 5xx) and a one-line reason as a `text/plain` body.
    pub fn reject(status: u16, reason: &str) -> Decision<S> {
        Decision::Respond(Response::text(status, reason))
    }

    /// What a [`crate::policy::Policy`] decided, with `state` for a connection it accepts.
    pub fn from_policy(decided: Result<Accept, Response>, state: impl FnOnce() -> S) -> Self {
        match decided {
            Ok(answer) => Decision::Accept { answer, state: state() },
            Err(response) => Decision::Respond(response),
        }
    }
}

/// The application: asked about every request, then called for each connection's life events,
/// and when its own timer is due.
///
/// Every connection callback gets the connection's own state (created by
/// [`Handler::on_request`], dropped after [`Handler::on_close`]) and a [`Ctx`] to send to the
/// connection it is about or to any other. The `Ctx` only queues: the loop writes after the
/// call returns.
pub trait Handler {
    /// What the server keeps for each open connection, beside its protocol state (a user name,
    /// a room, a rate limit...). `()` for none.
    type State: Default;

    /// A request arrived (before any `101`): a valid opening handshake, or a plain HTTP request
    /// (`request.is_websocket()` is false) that may be answered with a page. `peer` is the
    /// client's address.
    ///
    /// The default accepts every opening handshake with a default state and no subprotocol
    /// (plain HTTP requests then get the handshake's `400`).
    fn on_request(&mut self, request: &Request, peer: SocketAddr) -> Decision<Self::State> {
        let _ = (request, peer);
        Decision::accept(Self::State::default())
    }

    /// The `101` was sent: connection `ctx.id()` is open.
    fn on_open(&mut self, ctx: &mut Ctx<'_, Self::State>, state: &mut Self::State) {
        let _ = (ctx, state);
    }

    /// A complete message arrived on connection `ctx.id()`. It is lent, not given: its bytes
    /// lie in the loop's read buffer, or in a buffer the loop reuses once the call returns.
    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, Self::State>,
        state: &mut Self::State,
        message: &Message<'_>,
    );

    /// Connection `ctx.id()`, which had been opened, has ended; nothing more can be sent to it.
    /// Its state is given back.
    fn on_close(
        &mut self,
        ctx: &mut Ctx<'_, Self::State>,
        state: Self::State,
        status: &CloseStatus,
    ) {
        let _ = (ctx, state, status);
    }

    /// When [`Handler::on_timeout`] is next due, if ever. Asked after every call.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The handler's own timer is due (`ctx.id()` is `None`).
    fn on_timeout(&mut self, ctx: &mut Ctx<'_, Self::State>) {
        let _ = ctx;
    }

    /// [`ServerHandle::notify`] was called since the last call (`ctx.id()` is `None`): another
    /// thread left work for this handler, in something the two share. Several loops of one
    /// application ([`Loops`]) reach each other this way.
    fn on_notify(&mut self, ctx: &mut Ctx<'_, Self::State>) {
        let _ = ctx;
    }
}

#[cfg(test)]
mod tests {
    /// Idle connections cost what their table entry costs (every buffer is given back when
    /// idle): keep it small. The whole budget is 512 bytes per connection (docs/benchmarks.md).
    #[test]
    fn a_table_entry_stays_small() {
        use std::mem::size_of;
        assert!(size_of::<crate::connection::Connection>() <= 112);
        // mio's TcpStream carries a selector id in debug builds: count the transport as it is
        // in a release build (`cargo test --release` shows the same totals), a 4-byte
        // descriptor, and with the feature tls a pointer to the session and TLS's one flag.
        let transport = std::mem::size_of::<super::transport::Transport>();
        let release_transport = if cfg!(feature = "tls") { 16 } else { 4 };
        let entry = size_of::<super::ctx::Entry<()>>() - transport + release_transport;
        // With the cargo feature tls, every entry has room for a pointer to its TLS session.
        let budget = if cfg!(feature = "tls") { 256 + 8 } else { 256 };
        assert!(entry <= budget, "{entry} bytes");
    }
}
