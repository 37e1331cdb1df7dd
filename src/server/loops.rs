//! Several event loops serving one address: one [`Server`] per thread, each with its own
//! connections and its own handler. New connections are spread over the loops in one of two
//! ways ([`Balance`]): every loop has a listener of its own (`SO_REUSEPORT`: the kernel picks
//! one by a hash of the connection's addresses), or the first loop alone accepts and hands
//! each connection to the loop that holds the fewest. A connection stays on its loop for its
//! whole life, so each loop is the single-threaded server it always was; what the handlers
//! share (a chat's order and presence) they share through their own structures and
//! [`ServerHandle::notify`].

use super::{Handler, Options, Server, ServerHandle};
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

/// How new connections are spread over the loops (docs/scaling.md has the measurements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balance {
    /// One listener per loop with `SO_REUSEPORT`; the kernel chooses by a hash of the
    /// addresses and ports, blind to how many connections each loop holds.
    ReusePort,
    /// The first loop accepts every connection and hands it to the loop with the fewest
    /// connections at that moment, so loops even out again after connections close.
    #[default]
    Acceptor,
}

/// Bound servers, not running yet: get their [`ServerHandle`]s to the handlers first if they
/// need each other's, then [`Loops::spawn`].
pub struct Loops<H: Handler> {
    servers: Vec<Server<H>>,
    addr: SocketAddr,
}

impl<H: Handler> Loops<H> {
    /// One server per handler, all on `addr` (port 0: one port is picked for all), spread as
    /// [`Balance::default`] says.
    pub fn bind(addr: SocketAddr, options: Options, handlers: Vec<H>) -> io::Result<Loops<H>> {
        Loops::bind_balanced(addr, options, handlers, Balance::default())
    }

    /// One server per handler, all on `addr`, with new connections spread by `balance`.
    pub fn bind_balanced(
        addr: SocketAddr,
        mut options: Options,
        handlers: Vec<H>,
        balance: Balance,
    ) -> io::Result<Loops<H>> {
        if handlers.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no event loop to run"));
        }
        options.reuse_port = balance == Balance::ReusePort;
        // One count of connections for every loop (an Arc, so each clone shares it).
        options.caps = Some(Default::default());
        let mut servers = Vec::with_capacity(handlers.len());
        let mut at = addr;
        for handler in handlers {
            let server = match (balance, servers.is_empty()) {
                (Balance::Acceptor, false) => {
                    Server::without_listener(at, options.clone(), handler)?
                }
                _ => Server::bind(at, options.clone(), handler)?,
            };
            at = server.local_addr()?;
            servers.push(server);
        }
        if balance == Balance::Acceptor {
            let peers = servers[1..].iter().map(Server::handle).collect();
            servers[0].hand_out_to(peers);
        }
        Ok(Loops { servers, addr: at })
    }

    /// The address every loop listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// One handle per loop, in order.
    pub fn handles(&self) -> Vec<ServerHandle> {
        self.servers.iter().map(Server::handle).collect()
    }

    /// Every loop's figures, in order (`--metrics-listen`).
    pub fn metrics(&self) -> Vec<std::sync::Arc<super::LoopMetrics>> {
        self.servers.iter().map(Server::metrics).collect()
    }

    /// Loop `i`'s handler.
    pub fn handler(&self, i: usize) -> Option<&H> {
        self.servers.get(i).map(Server::handler)
    }

    /// Starts every loop on a thread of its own.
    pub fn spawn(self) -> io::Result<Running<H>>
    where
        H: Send + 'static,
        H::State: Send,
    {
        let handles = self.handles();
        let mut threads = Vec::with_capacity(self.servers.len());
        for (i, mut server) in self.servers.into_iter().enumerate() {
            let thread = std::thread::Builder::new()
                .name(format!("rfc6455-loop-{i}"))
                .spawn(move || server.run().map(|()| server.into_handler()))?;
            threads.push(thread);
        }
        Ok(Running { addr: self.addr, handles, threads })
    }
}

/// Running loops.
pub struct Running<H> {
    addr: SocketAddr,
    handles: Vec<ServerHandle>,
    threads: Vec<JoinHandle<io::Result<H>>>,
}

impl<H> Running<H> {
    /// The address every loop listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// One handle per loop, in order.
    pub fn handles(&self) -> &[ServerHandle] {
        &self.handles
    }

    /// Asks every loop to stop (see [`ServerHandle::shutdown`]).
    pub fn shutdown(&self) {
        for handle in &self.handles {
            handle.shutdown();
        }
    }

    /// Waits for every loop to return, and gives the handlers back in order. A loop that
    /// failed, or whose thread panicked, makes this an error (after waiting for the others).
    pub fn join(self) -> io::Result<Vec<H>> {
        let mut handlers = Vec::with_capacity(self.threads.len());
        let mut failure = None;
        for thread in self.threads {
            match thread.join() {
                Ok(Ok(handler)) => handlers.push(handler),
                Ok(Err(error)) => failure = Some(error),
                Err(_) => failure = Some(io::Error::other("an event loop panicked")),
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(handlers),
        }
    }
}
