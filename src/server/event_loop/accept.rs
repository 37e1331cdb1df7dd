//! Accepting connections: the caps (global and per address) with their 503, and the pause
//! when the process runs out of descriptors.

use super::Server;
use crate::close::CloseCode;
use crate::http::Response;
use crate::server::Handler;
use crate::server::ctx::Entry;
use crate::server::outbox::Outbox;
use crate::server::transport::Transport;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long to stop accepting after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections over a cap are kept this many at most, just long enough to send them 503;
/// past that they are dropped unanswered.
const REFUSAL_RESERVE: usize = 64;

impl<H: Handler> Server<H> {
    pub(super) fn accept(&mut self, now: Instant) {
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
            self.hand_out(stream, peer.ip(), now);
        }
    }

    /// Admits a connection here, or (the acceptor of several loops) hands it to the loop that
    /// holds the fewest: counts that loop publishes once per turn, plus the connections handed
    /// to it since. A loop whose queue is full or that has stopped is skipped.
    fn hand_out(&mut self, mut stream: TcpStream, ip: IpAddr, now: Instant) {
        let mut order: Vec<(usize, Option<usize>)> = Vec::with_capacity(self.peers.len() + 1);
        order.push((self.table.conns.len(), None));
        order.extend(self.peers.iter().enumerate().map(|(i, peer)| (peer.load(), Some(i))));
        order.sort_unstable();
        for (_, target) in order {
            let Some(i) = target else { break };
            match self.peers[i].adopt(stream, ip) {
                Ok(()) => return,
                Err(back) => stream = back,
            }
        }
        self.admit(stream, ip, now);
    }

    /// Puts an accepted connection in the table, or refuses it with 503 when the server or
    /// its peer address is at its cap.
    pub(super) fn admit(&mut self, stream: TcpStream, ip: IpAddr, now: Instant) {
        self.table.tally.accepted += 1;
        let (max, max_per_ip) = (self.options.max_connections, self.options.max_connections_per_ip);
        // From a trusted proxy, the client's address comes with the request (`proxy.rs`): only
        // the total is counted now.
        let behind_proxy = self.table.proxies.trusted.iter().any(|net| net.contains(ip));
        let counted_ip = (!behind_proxy).then_some(ip);
        let refusal = self.caps.admit(counted_ip, max, max_per_ip).err();
        if refusal.is_some() && self.refusing >= REFUSAL_RESERVE {
            // Too many refusals in flight already: drop this one unanswered.
            return;
        }
        let _ = stream.set_nodelay(true);
        let stream = match self.transport(stream) {
            Ok(stream) => stream,
            // Not even a TLS session could be made for it (rustls refused its config).
            Err(_) => {
                if refusal.is_none() {
                    self.caps.release(counted_ip);
                }
                return;
            }
        };
        let mut conn = self.new_connection(now);
        let mut response = Vec::new();
        if let Some(reason) = refusal {
            // §4.2.2: "If the server does not wish to accept this connection, it MUST return an
            // appropriate HTTP error code"; Retry-After says when to come back (RFC 9110 §10.2.3).
            let busy = Response::text(503, reason).with_header("Retry-After", "1");
            self.table.tally.refused(503);
            let _ = conn.respond(&busy, &mut response, now);
        }
        let Some(id) = self.table.conns.insert_with(|_| Entry {
            stream,
            conn,
            outbox: Outbox::default(),
            state: None,
            ip,
            counted: refusal.is_none(),
            ip_counted: refusal.is_none() && counted_ip.is_some(),
            scheduled: None,
            pause: None,
            opened: false,
            write_shut: false,
            read_paused: false,
            writable_interest: false,
            touched: false,
            doomed: false,
            read_closed: false,
        }) else {
            if refusal.is_none() {
                self.caps.release(counted_ip);
            }
            return;
        };
        if refusal.is_some() {
            self.refusing += 1;
        }
        if self.table.access_log {
            let access = crate::server::Access {
                peer: Some(ip),
                status: refusal.map(|_| 503),
                ..Default::default()
            };
            self.table.book.open(id, now, access);
        }
        let registry = self.poll.registry();
        let Some(entry) = self.table.conns.get_mut(id) else { return };
        if entry.stream.register(registry, Token(id.to_token()), Interest::READABLE).is_err() {
            self.table.doom(id, CloseCode::ABNORMAL, "register failed");
            return;
        }
        if self.write_cork(id, &mut response).is_err() {
            self.table.doom(id, CloseCode::ABNORMAL, "write failed");
            return;
        }
        self.settle(id);
    }

    /// The socket as the server speaks on it: plain, or TLS with `Options::tls`.
    fn transport(&self, stream: TcpStream) -> std::io::Result<Transport> {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.options.tls {
            return Transport::tls(stream, config.clone());
        }
        Ok(Transport::plain(stream))
    }
}

/// EMFILE (per process) and ENFILE (system-wide): out of file descriptors.
fn is_fd_exhaustion(errno: i32) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    errno == EMFILE || errno == ENFILE
}
