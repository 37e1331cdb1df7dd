//! A small blocking WebSocket client and server harness for the integration tests, over real
//! loopback sockets.

#![allow(dead_code)]

pub mod chat;
pub mod process;

use rfc6455::echo::Echo;
use rfc6455::frame::{self, FrameHeader, OpCode};
use rfc6455::handshake::accept_key;
use rfc6455::mask::apply_mask;
use rfc6455::server::{Handler, Loops, Options, Running, Server, ServerHandle};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// Every blocking read in the tests gives up after this long, so no test can hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// How many event loops the servers of the chat and echo suites run: `RFC6455_TEST_LOOPS`
/// (CI runs those suites with 1 and with 2), 1 by default.
pub fn test_loops() -> usize {
    std::env::var("RFC6455_TEST_LOOPS").ok().and_then(|n| n.parse().ok()).unwrap_or(1).max(1)
}

/// A server running on its own thread on 127.0.0.1, port 0 (or several loops, each on its
/// own thread, sharing the port).
pub struct TestServer<H: Handler + Send + 'static>
where
    H::State: Send,
{
    pub addr: SocketAddr,
    /// The first loop's handle.
    pub handle: ServerHandle,
    thread: Option<JoinHandle<H>>,
    group: Option<Running<H>>,
}

impl<H: Handler + Send + 'static> TestServer<H>
where
    H::State: Send,
{
    pub fn start(options: Options, handler: H) -> TestServer<H> {
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), options, handler).unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.handle();
        let thread = std::thread::spawn(move || {
            server.run().unwrap();
            server.into_handler()
        });
        TestServer { addr, handle, thread: Some(thread), group: None }
    }

    /// One loop per handler (`attach` gets the first handler and every loop's handle before
    /// they start); a single handler runs as [`TestServer::start`] does.
    pub fn start_group(
        options: Options,
        mut handlers: Vec<H>,
        attach: impl FnOnce(&H, Vec<ServerHandle>),
    ) -> TestServer<H> {
        if handlers.len() == 1 {
            let server = Server::bind("127.0.0.1:0".parse().unwrap(), options, handlers.remove(0));
            let mut server = server.unwrap();
            attach(server.handler(), vec![server.handle()]);
            let (addr, handle) = (server.local_addr().unwrap(), server.handle());
            let thread = std::thread::spawn(move || {
                server.run().unwrap();
                server.into_handler()
            });
            return TestServer { addr, handle, thread: Some(thread), group: None };
        }
        let loops = Loops::bind("127.0.0.1:0".parse().unwrap(), options, handlers).unwrap();
        attach(loops.handler(0).unwrap(), loops.handles());
        let running = loops.spawn().unwrap();
        let (addr, handle) = (running.local_addr(), running.handles()[0].clone());
        TestServer { addr, handle, thread: None, group: Some(running) }
    }

    /// Stops the server and gives its (first loop's) handler back.
    pub fn stop(mut self) -> H {
        if let Some(group) = self.group.take() {
            group.shutdown();
            return group.join().unwrap().remove(0);
        }
        self.handle.shutdown();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl TestServer<Echo> {
    /// An echo server with [`test_loops`] event loops.
    pub fn echo(options: Options) -> TestServer<Echo> {
        let handlers = (0..test_loops()).map(|_| Echo::default()).collect();
        TestServer::start_group(options, handlers, |_, _| {})
    }
}

impl<H: Handler + Send + 'static> Drop for TestServer<H>
where
    H::State: Send,
{
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            group.shutdown();
            let _ = group.join();
        }
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn upgrade_request(host: &SocketAddr) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

pub fn connect_raw(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Sends `request` and reads the whole response until the server closes the connection.
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect_raw(addr);
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8(response).unwrap()
}

/// A frame as received from the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    mask_counter: u32,
}

impl Client {
    /// Connects and completes the opening handshake, checking the accept key.
    pub fn connect(addr: SocketAddr) -> Client {
        let mut client = Client::send_handshake(addr);
        client.finish_handshake();
        client
    }

    /// Connects and sends the request, without reading the response.
    pub fn send_handshake(addr: SocketAddr) -> Client {
        let mut client = Client::unconnected(addr);
        client.stream.write_all(upgrade_request(&addr).as_bytes()).unwrap();
        client
    }

    /// A second handle on the same socket (for reading on another thread).
    pub fn try_clone_client(&self) -> Client {
        Client { stream: self.stream.try_clone().unwrap(), buf: Vec::new(), mask_counter: 7 }
    }

    /// Connects TCP only; the caller sends the request.
    pub fn unconnected(addr: SocketAddr) -> Client {
        Client { stream: connect_raw(addr), buf: Vec::new(), mask_counter: 0 }
    }

    /// Reads a response head, whatever its status; what follows it stays buffered.
    pub fn response_head(&mut self) -> String {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().expect("handshake response");
        };
        String::from_utf8(self.buf.drain(..end).collect()).unwrap()
    }

    /// Reads the 101 response, and returns its head.
    pub fn finish_handshake(&mut self) -> String {
        let head = self.response_head();
        assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {}\r\n", accept_key(KEY.as_bytes())))
        );
        head
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    pub fn frame_bytes(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        self.mask_counter = self.mask_counter.wrapping_mul(2654435761).wrapping_add(12345);
        masked_frame(fin, 0, opcode, payload, self.mask_counter.to_be_bytes())
    }

    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let bytes = self.frame_bytes(fin, opcode, payload);
        self.stream.write_all(&bytes).unwrap();
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, OpCode::Text, text.as_bytes());
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(true, OpCode::Binary, data);
    }

    /// Reads one frame, or fails on EOF or timeout.
    pub fn read_frame(&mut self) -> io::Result<Frame> {
        loop {
            match frame::decode_header(&self.buf) {
                Ok(Some((header, n))) => {
                    let FrameHeader { fin, opcode, payload_len, mask, .. } = header;
                    assert!(mask.is_none(), "server frames are not masked (§5.1)");
                    let total = n + payload_len as usize;
                    while self.buf.len() < total {
                        self.fill()?;
                    }
                    let payload = self.buf[n..total].to_vec();
                    self.buf.drain(..total);
                    return Ok(Frame { fin, opcode, payload });
                }
                Ok(None) => {
                    self.fill()?;
                }
                Err(e) => panic!("server sent a bad frame header: {e}"),
            }
        }
    }

    /// Reads a frame and returns its close code (and reason), failing if it is not a Close.
    pub fn read_close(&mut self) -> (Option<u16>, String) {
        let frame = self.read_frame().expect("a close frame");
        assert_eq!(frame.opcode, OpCode::Close, "{frame:?}");
        Client::close_body(frame)
    }

    /// Skips data frames until a Close, and returns its code and reason.
    pub fn skip_to_close(&mut self) -> (Option<u16>, String) {
        loop {
            let frame = self.read_frame().expect("a close frame");
            if frame.opcode == OpCode::Close {
                return Client::close_body(frame);
            }
        }
    }

    fn close_body(frame: Frame) -> (Option<u16>, String) {
        match frame.payload.as_slice() {
            [] => (None, String::new()),
            [a, b, reason @ ..] => {
                (Some(u16::from_be_bytes([*a, *b])), String::from_utf8(reason.to_vec()).unwrap())
            }
            _ => panic!("one-byte close body from the server"),
        }
    }

    /// Asserts that the server closes TCP: the next read is EOF (no more bytes, no reset).
    pub fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes before EOF: {:x?}", self.buf);
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("expected EOF, got data"),
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }
}

/// A frame as a client sends it (§5.3): the header with the key, then the payload masked.
/// `rsv` is put in place as given, so tests can set reserved bits. The keys here are
/// predictable on purpose; a real client's must not be (§10.3).
pub fn masked_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let header =
        FrameHeader { fin, rsv, opcode, mask: Some(key), payload_len: payload.len() as u64 };
    let mut out = Vec::with_capacity(payload.len() + 14);
    header.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

/// Raises this process's soft limit on open files to at least `want` (within the hard limit):
/// a test that holds many sockets on both ends needs more than the common default of 1024.
pub fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or write the one `rlimit` they are given, which
    // lives for the duration of each call.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            assert!(
                limit.rlim_max >= want,
                "hard limit on open files is {}, need {want}",
                limit.rlim_max
            );
            limit.rlim_cur = want;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

/// Pins a socket's receive buffer to about `bytes` (the kernel doubles it), turning off
/// autotuning: a peer that never reads then fills up quickly instead of absorbing megabytes.
pub fn set_receive_buffer(stream: &TcpStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    let len = std::mem::size_of::<i32>() as libc::socklen_t;
    let value = (&bytes as *const i32).cast();
    // SAFETY: the descriptor is open for the call, and the option value is one i32 whose size
    // is passed along.
    let rc = unsafe {
        libc::setsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, value, len)
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
}
