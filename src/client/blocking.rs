//! A blocking client over `std::net::TcpStream`: one connection, one thread, the same
//! sans-I/O [`Connection`] inside. Reads block until a message arrives or the connection's
//! next deadline passes; every write is written through before the call returns.

use super::url::{Url, UrlError};
use crate::close::CloseCode;
use crate::connection::{Config, Connection, Event, SendError};
use crate::error::ProtocolError;
use crate::handshake::{ClientRequest, RequestError, UpgradeError, Upgraded};
use crate::message::Message;
use crate::state::State;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much is read from the socket at once.
const READ_SIZE: usize = 64 * 1024;

/// What a client asks for and the limits it keeps.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Limits, timeouts and permessage-deflate (offered with [`DeflateConfig::for_client`]
    /// by default).
    ///
    /// [`DeflateConfig::for_client`]: crate::deflate::DeflateConfig::for_client
    pub config: Config,
    /// The |Origin| to send, if any.
    pub origin: Option<String>,
    /// Subprotocols to offer, in order of preference.
    pub subprotocols: Vec<String>,
    /// More header fields for the opening handshake.
    pub headers: Vec<(String, String)>,
    /// How long to wait for the TCP connection to open.
    pub connect_timeout: Duration,
    /// How `wss://` checks the server (cargo feature `tls`).
    #[cfg(feature = "tls")]
    pub tls: super::tls::TlsOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        #[allow(unused_mut)]
        let mut config = Config::default();
        #[cfg(feature = "deflate")]
        {
            config.deflate = Some(crate::deflate::DeflateConfig::for_client());
        }
        ClientOptions {
            config,
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: super::tls::TlsOptions::default(),
        }
    }
}

impl ClientOptions {
    /// The opening handshake these options ask for, at `url`.
    pub fn request(&self, url: &Url) -> ClientRequest {
        let mut request = ClientRequest::new(url.host_header(), url.resource.clone());
        request.origin = self.origin.clone();
        request.subprotocols = self.subprotocols.clone();
        request.headers = self.headers.clone();
        request
    }
}

/// What the server sent, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The closing handshake is complete (§7.1.5: the server's Close frame, answered if we had
    /// not closed first) and the server closed TCP, or the close timeout passed.
    Close {
        /// The server's code; `None` for an empty close body.
        code: Option<CloseCode>,
        /// The server's reason.
        reason: String,
    },
}

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URI is not a WebSocket URI.
    Url(UrlError),
    /// `wss://` in a build without the cargo feature `tls`.
    TlsUnsupported,
    /// The request cannot be sent as it is.
    Request(RequestError),
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// The opening handshake failed: refused (with the status and headers) or invalid (§4.1).
    Upgrade(UpgradeError),
    /// The server broke the protocol; the connection was failed with the error's close code.
    Protocol(ProtocolError),
    /// A deadline passed in this state (handshake, Pong, closing handshake).
    TimedOut(State),
    /// The server closed TCP without a closing handshake (§7.1.5: code 1006, abnormal).
    Abnormal,
    /// The connection is closed: nothing more can be sent or received.
    Closed,
    /// The core refused to send (a control frame too long, an invalid close code).
    Send(SendError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(e) => write!(f, "{e}"),
            ClientError::TlsUnsupported => f.write_str("wss:// needs TLS, which this build lacks"),
            ClientError::Request(e) => write!(f, "{e}"),
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Upgrade(e) => write!(f, "{e}"),
            ClientError::Protocol(e) => write!(f, "the server broke the protocol: {e}"),
            ClientError::TimedOut(state) => write!(f, "timed out in state {state:?}"),
            ClientError::Abnormal => {
                f.write_str("the server closed the connection without a closing handshake (1006)")
            }
            ClientError::Closed => f.write_str("the connection is closed"),
            ClientError::Send(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(error: io::Error) -> Self {
        ClientError::Io(error)
    }
}

/// One client connection over a blocking socket.
///
/// ```no_run
/// use rfc6455::client::{Client, Incoming};
///
/// let mut client = Client::connect("ws://127.0.0.1:9001/")?;
/// client.send_text("hello")?;
/// if let Incoming::Text(text) = client.recv()? {
///     println!("{text}");
/// }
/// client.close(rfc6455::CloseCode::NORMAL, "done")?;
/// while !matches!(client.recv()?, Incoming::Close { .. }) {}
/// # Ok::<(), rfc6455::client::ClientError>(())
/// ```
pub struct Client {
    stream: Stream,
    conn: Connection,
    /// Bytes read and not yet given to the connection: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    upgraded: Upgraded,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("state", &self.conn.state()).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to a `ws://` URI with the default options.
    pub fn connect(url: &str) -> Result<Client, ClientError> {
        let url = Url::parse(url).map_err(ClientError::Url)?;
        Client::connect_with(&url, ClientOptions::default())
    }

    /// Connects to `url` and completes the opening handshake.
    pub fn connect_with(url: &Url, options: ClientOptions) -> Result<Client, ClientError> {
        #[cfg(not(feature = "tls"))]
        if url.secure {
            return Err(ClientError::TlsUnsupported);
        }
        let request = options.request(url);
        let tcp = open_tcp(url, options.connect_timeout)?;
        tcp.set_nodelay(true)?;
        #[cfg(feature = "tls")]
        let stream = if url.secure {
            Stream::Tls(Box::new(super::tls::connect(tcp, &url.host, &options.tls)?))
        } else {
            Stream::Plain(tcp)
        };
        #[cfg(not(feature = "tls"))]
        let stream = Stream::Plain(tcp);
        Client::start(stream, &request, Arc::new(options.config))
    }

    /// Runs the opening handshake on an open TCP connection.
    pub fn handshake(
        stream: TcpStream,
        request: &ClientRequest,
        config: Arc<Config>,
    ) -> Result<Client, ClientError> {
        stream.set_nodelay(true)?;
        Client::start(Stream::Plain(stream), request, config)
    }

    fn start(
        stream: Stream,
        request: &ClientRequest,
        config: Arc<Config>,
    ) -> Result<Client, ClientError> {
        let seed = crate::random::os_seed()?;
        let mut out = Vec::new();
        let conn = Connection::client(config, request, seed, Instant::now(), &mut out)
            .map_err(ClientError::Request)?;
        let mut client = Client {
            stream,
            conn,
            buf: vec![0; READ_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            out,
            upgraded: Upgraded { subprotocol: None, extensions: None, headers: Vec::new() },
        };
        client.flush()?;
        loop {
            if client.start == client.end && !client.read_more()? {
                return Err(ClientError::Abnormal);
            }
            let r = client.conn.receive(
                &mut client.buf[client.start..client.end],
                Instant::now(),
                &mut client.out,
            );
            client.start += r.consumed;
            match r.event {
                Some(Event::Upgraded(upgraded)) => {
                    client.upgraded = upgraded;
                    return Ok(client);
                }
                Some(Event::UpgradeFailed(error)) => return Err(ClientError::Upgrade(error)),
                Some(Event::TimedOut(state)) => return Err(ClientError::TimedOut(state)),
                _ => {}
            }
        }
    }

    /// What the server's 101 said: the subprotocol, the extensions, every header.
    pub fn upgraded(&self) -> &Upgraded {
        &self.upgraded
    }

    /// The connection's state machine (its state, what permessage-deflate agreed to).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The trace lines recorded since the last call (with `config.trace`).
    pub fn take_trace(&mut self) -> Vec<String> {
        self.conn.take_trace()
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.conn.send_text(&mut self.out, text).map_err(send_error)?;
        self.flush()
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.conn.send_binary(&mut self.out, data).map_err(send_error)?;
        self.flush()
    }

    /// Sends a Ping (up to 125 bytes); its Pong is taken by the connection.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn.ping(&mut self.out, payload).map_err(send_error)?;
        self.flush()
    }

    /// Starts the closing handshake (§7.1.2). Keep calling [`Client::recv`]: messages the
    /// server sent before its Close still arrive, then [`Incoming::Close`].
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        self.conn.close(&mut self.out, code, reason, Instant::now()).map_err(send_error)?;
        self.flush()
    }

    /// Blocks until the next message, or the end of the closing handshake.
    pub fn recv(&mut self) -> Result<Incoming, ClientError> {
        loop {
            if self.start == self.end {
                if self.conn.state() == State::Closed {
                    return Err(ClientError::Closed);
                }
                if !self.read_more()? {
                    return Err(ClientError::Abnormal);
                }
                continue;
            }
            let r = self.conn.receive(
                &mut self.buf[self.start..self.end],
                Instant::now(),
                &mut self.out,
            );
            self.start += r.consumed;
            let outcome = match r.event {
                Some(Event::Message(Message::Text(text))) => {
                    Some(Ok(Incoming::Text(text.to_string())))
                }
                Some(Event::Message(Message::Binary(data))) => {
                    Some(Ok(Incoming::Binary(data.to_vec())))
                }
                Some(Event::CloseReceived { code, reason }) => {
                    Some(Ok(Incoming::Close { code, reason }))
                }
                Some(Event::Failed(error)) => Some(Err(ClientError::Protocol(error))),
                Some(Event::TimedOut(state)) => Some(Err(ClientError::TimedOut(state))),
                _ => None,
            };
            self.flush()?;
            if let Some(outcome) = outcome {
                if self.conn.state() == State::Closed {
                    self.linger();
                }
                return outcome;
            }
        }
    }

    /// Writes out what the connection produced.
    fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            let result = self.stream.write_all(&self.out);
            self.out.clear();
            result?;
        }
        Ok(())
    }

    /// Reads more into the empty buffer, handling deadlines while it waits. `false`: the
    /// server closed TCP.
    fn read_more(&mut self) -> Result<bool, ClientError> {
        self.start = 0;
        self.end = 0;
        loop {
            let now = Instant::now();
            if let Some(deadline) = self.conn.poll_timeout() {
                if deadline <= now {
                    let event = self.conn.handle_timeout(now, &mut self.out);
                    self.flush()?;
                    if let Some(Event::TimedOut(state)) = event {
                        return Err(ClientError::TimedOut(state));
                    }
                    continue;
                }
                self.stream
                    .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
            } else {
                self.stream.set_read_timeout(None)?;
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// §7.1.1: once closed, "the client SHOULD wait for the server to close the connection";
    /// if it has not by the close timeout, the client closes. Whatever arrives meanwhile is
    /// not interpreted.
    fn linger(&mut self) {
        if !self.conn.closes_tcp_first() {
            // Until EOF, the close timeout, or an error.
            while let Ok(true) = self.read_more() {}
        }
        self.start = 0;
        self.end = 0;
        self.stream.shutdown();
    }
}

/// The client's socket: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    fn shutdown(&mut self) {
        #[cfg(feature = "tls")]
        if let Stream::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => match tls.read(buf) {
                // The server ended TCP without close_notify: the end, as over plain TCP.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

fn send_error(error: SendError) -> ClientError {
    match error {
        SendError::NotOpen => ClientError::Closed,
        other => ClientError::Send(other),
    }
}

/// Opens TCP to the first of the host's addresses that answers.
fn open_tcp(url: &Url, timeout: Duration) -> Result<TcpStream, ClientError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{}: no address", url.host));
    for address in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(ClientError::Io(last))
}
