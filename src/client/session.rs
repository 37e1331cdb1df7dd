//! A client connection over a non-blocking mio socket, for a program that runs many of them
//! (or a client beside other work) on its own `mio::Poll`. The program registers
//! [`Session::stream`], calls [`Session::ready`] on its events and [`Session::handle_timeout`]
//! at [`Session::poll_timeout`]; the session reads, feeds the sans-I/O [`Connection`], writes,
//! and reports what happened as [`Update`]s.

use super::blocking::{ClientError, Incoming};
use crate::close::CloseCode;
use crate::connection::{Config, Connection, Event, SendError};
use crate::handshake::{ClientRequest, RequestError, Upgraded};
use crate::message::Message;
use crate::server::transport::Transport;
use crate::state::State;
use mio::Interest;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

/// How much is read from the socket at once.
const READ_SIZE: usize = 16 * 1024;

/// Something that happened on a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum Update {
    /// The opening handshake succeeded.
    Open(Upgraded),
    /// A message, or the end of the closing handshake ([`Incoming::Close`]).
    Incoming(Incoming),
    /// The session failed: the handshake was refused, the server broke the protocol (a Close
    /// with the error's code was sent), a deadline passed, or the server vanished. [`Update::Done`]
    /// follows once TCP is closed.
    Failed(ClientError),
    /// The TCP connection is closed: after the closing handshake when the server closed it
    /// (§7.1.1), at the close timeout, or after a failure. Always the last update, once.
    Done,
}

/// One client connection on a non-blocking socket.
#[derive(Debug)]
pub struct Session {
    stream: Transport,
    conn: Connection,
    /// Bytes to write, and how many of them are written.
    out: Vec<u8>,
    written: usize,
    done: bool,
}

impl Session {
    /// Starts a session on `stream`, a connection in progress (`mio::net::TcpStream::connect`):
    /// the opening handshake is queued and written once the socket is writable.
    pub fn start(
        stream: TcpStream,
        request: &ClientRequest,
        config: Arc<Config>,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Session, RequestError> {
        let _ = stream.set_nodelay(true);
        Session::over(Transport::plain(stream), request, config, seed, now)
    }

    /// [`Session::start`] for a `wss://` URI (cargo feature `tls`): TLS to `host` over
    /// `stream`, the server's certificate checked as `tls` says. Fails here only when `host`
    /// is not a name TLS can check (a bad certificate shows later, as [`Update::Failed`]).
    #[cfg(feature = "tls")]
    pub fn start_tls(
        stream: TcpStream,
        host: &str,
        tls: &super::TlsOptions,
        request: &ClientRequest,
        config: Arc<Config>,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Session, ClientError> {
        let _ = stream.set_nodelay(true);
        let tls = super::tls::client_connection(host, tls)?;
        Session::over(Transport::tls_client(stream, tls), request, config, seed, now)
            .map_err(ClientError::Request)
    }

    fn over(
        stream: Transport,
        request: &ClientRequest,
        config: Arc<Config>,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Session, RequestError> {
        let mut out = Vec::new();
        let conn = Connection::client(config, request, seed, now, &mut out)?;
        Ok(Session { stream, conn, out, written: 0, done: false })
    }

    /// The socket, to register with a `mio::Registry` (with [`Session::interest`]).
    pub fn stream(&mut self) -> &mut TcpStream {
        self.stream.tcp_mut()
    }

    /// What to register for: readable always, writable too (edge-triggered, so it may stay).
    pub fn interest(&self) -> Interest {
        Interest::READABLE | Interest::WRITABLE
    }

    /// The state machine (its state, what was agreed).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Whether the session has ended ([`Update::Done`] was reported).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The trace lines recorded since the last call (with `config.trace`).
    pub fn take_trace(&mut self) -> Vec<String> {
        self.conn.take_trace()
    }

    /// Queues a text message and writes what the socket takes.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.conn.send_text(&mut self.out, text)?;
        self.write_some();
        Ok(())
    }

    /// Queues a binary message and writes what the socket takes.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.conn.send_binary(&mut self.out, data)?;
        self.write_some();
        Ok(())
    }

    /// Starts the closing handshake (§7.1.2).
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), SendError> {
        self.conn.close(&mut self.out, code, reason, now)?;
        self.write_some();
        Ok(())
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// When to call [`Session::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done { None } else { self.conn.poll_timeout() }
    }

    /// Handles the passing of time (keepalive Pings, deadlines).
    pub fn handle_timeout(&mut self, now: Instant, updates: &mut impl FnMut(Update)) {
        if self.done {
            return;
        }
        let event = self.conn.handle_timeout(now, &mut self.out);
        self.write_some();
        match event {
            // Past the close timeout in `Closed`, the wait for the server's FIN is over.
            Some(Event::TimedOut(State::Closed)) => self.finish(updates, None),
            Some(Event::TimedOut(state)) => {
                self.finish(updates, Some(ClientError::TimedOut(state)))
            }
            _ => {}
        }
    }

    /// Handles a readiness event: writes what is queued, reads everything the socket has,
    /// and reports each thing that happened, in order.
    pub fn ready(&mut self, now: Instant, updates: &mut impl FnMut(Update)) {
        if self.done {
            return;
        }
        if let Err(error) = self.try_write() {
            return self.finish(updates, Some(error.into()));
        }
        let mut buf = [0u8; READ_SIZE];
        while !self.done {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    // The server closed TCP: the end, clean only after the closing handshake.
                    let closed = self.conn.state() == State::Closed;
                    return self.finish(updates, (!closed).then_some(ClientError::Abnormal));
                }
                Ok(n) => self.feed(&mut buf[..n], now, updates),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.finish(updates, Some(e.into())),
            }
        }
        self.write_some();
    }

    fn feed(&mut self, mut input: &mut [u8], now: Instant, updates: &mut impl FnMut(Update)) {
        while !input.is_empty() && !self.done {
            let r = self.conn.receive(input, now, &mut self.out);
            let consumed = r.consumed;
            let update = match r.event {
                Some(Event::Upgraded(upgraded)) => Some(Update::Open(upgraded)),
                Some(Event::Message(Message::Text(text))) => {
                    Some(Update::Incoming(Incoming::Text(text.to_string())))
                }
                Some(Event::Message(Message::Binary(data))) => {
                    Some(Update::Incoming(Incoming::Binary(data.to_vec())))
                }
                Some(Event::CloseReceived { code, reason }) => {
                    Some(Update::Incoming(Incoming::Close { code, reason }))
                }
                Some(Event::UpgradeFailed(error)) => {
                    Some(Update::Failed(ClientError::Upgrade(error)))
                }
                Some(Event::Failed(error)) => Some(Update::Failed(ClientError::Protocol(error))),
                _ => None,
            };
            input = &mut input[consumed..];
            self.write_some();
            if let Some(update) = update {
                updates(update);
            }
            if consumed == 0 {
                break;
            }
        }
        if self.conn.state() == State::Closed && self.conn.closes_tcp_first() && !self.done {
            // A failed handshake: there is no WebSocket to close, the client closes TCP.
            self.finish(updates, None);
        }
    }

    /// Writes what the socket takes now, ignoring errors (the next read reports them).
    fn write_some(&mut self) {
        let _ = self.try_write();
    }

    fn try_write(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                // Not connected yet, or the socket's buffer is full: wait for WRITABLE.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
                    ) =>
                {
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.written = 0;
        // With TLS, what it encrypted and the socket has not taken yet.
        self.stream.flush_pending()
    }

    /// Closes TCP and reports the end, after the failure that caused it, if any.
    fn finish(&mut self, updates: &mut impl FnMut(Update), failure: Option<ClientError>) {
        self.write_some();
        let _ = self.stream.shutdown_write();
        let _ = self.stream.tcp_mut().shutdown(Shutdown::Both);
        self.done = true;
        self.conn.trace_tcp_closed(None);
        if let Some(error) = failure {
            updates(Update::Failed(error));
        }
        updates(Update::Done);
    }
}
