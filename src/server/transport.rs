//! A connection's socket: plain TCP, or (cargo feature `tls`) TLS over TCP, with the same
//! non-blocking `Read` and `Write`, so that the loop's reads, writes and outboxes are the same
//! code either way. The client's [`crate::client::Session`] uses it too, as TLS's client side.
//!
//! rustls is sans-I/O like our protocol core: it takes ciphertext in and gives plaintext out,
//! and the other way round, and never touches the socket. The loop drives both layers: a read
//! here moves ciphertext from the socket into rustls and plaintext out of it (answering the
//! TLS handshake on the way); a write puts plaintext into rustls and moves what it encrypted to
//! the socket. Ciphertext the socket did not take waits in rustls (at most [`TLS_BUFFER`] of
//! plaintext is taken in beyond it), and the loop keeps WRITABLE interest while it does
//! ([`Transport::wants_write`]).

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};

/// Plaintext rustls takes in before the socket has taken what it encrypted.
#[cfg(feature = "tls")]
pub(crate) const TLS_BUFFER: usize = 256 * 1024;

/// A connection's socket.
#[derive(Debug)]
pub(crate) struct Transport {
    tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::Connection>>,
    /// TLS's last read from the socket got less than it asked for.
    #[cfg(feature = "tls")]
    short_read: bool,
}

impl Transport {
    /// Plain TCP.
    pub(crate) fn plain(tcp: TcpStream) -> Transport {
        Transport {
            tcp,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            short_read: false,
        }
    }

    /// TLS over `tcp`, as a server with `config`.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(
        tcp: TcpStream,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> io::Result<Transport> {
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Transport::over(tcp, rustls::Connection::Server(tls)))
    }

    /// TLS's client side over `tcp`.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_client(tcp: TcpStream, tls: rustls::ClientConnection) -> Transport {
        Transport::over(tcp, rustls::Connection::Client(tls))
    }

    #[cfg(feature = "tls")]
    fn over(tcp: TcpStream, mut tls: rustls::Connection) -> Transport {
        tls.set_buffer_limit(Some(TLS_BUFFER));
        Transport { tcp, tls: Some(Box::new(tls)), short_read: false }
    }

    /// The TCP socket underneath (to register it, or to end it).
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    /// Ends our side: with TLS, its close_notify first (RFC 8446 §6.1), then TCP's FIN.
    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = flush_tls(tls, &mut self.tcp);
        }
        self.tcp.shutdown(Shutdown::Write)
    }

    /// Encrypted output waits for the socket (keep WRITABLE interest, and do not end TCP yet).
    pub(crate) fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.wants_write();
        }
        false
    }

    /// Writes what waits encrypted; `Ok` also when the socket would block.
    pub(crate) fn flush_pending(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return match flush_tls(tls, &mut self.tcp) {
                Err(e) if waiting(&e) => Ok(()),
                other => other,
            };
        }
        Ok(())
    }

    /// Whether the socket had nothing more to read when it was last read, given that the last
    /// `read` asked for `asked` bytes and got `got`: the read from the socket got less than it
    /// asked for, so its receive queue was empty then, and TLS holds no plaintext or whole
    /// record. With an edge-triggered poller every arrival after that read is a new event, so
    /// the loop can wait for one instead of spending a read on `WouldBlock` (one system call
    /// in three in a small echo) — unless the poller has already reported the peer's FIN,
    /// which raises no event of its own (the loop's `Entry::read_closed`).
    pub(crate) fn drained(&self, asked: usize, got: usize) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.short_read && tls.wants_read();
        }
        got < asked
    }

    pub(crate) fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.register(&mut self.tcp, token, interest)
    }

    pub(crate) fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.reregister(&mut self.tcp, token, interest)
    }

    pub(crate) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.tcp)
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return read_tls(tls, &mut self.tcp, &mut self.short_read, buf);
        }
        self.tcp.read(buf)
    }
}

/// The socket as TLS reads it, noting whether a read got less than it asked for.
#[cfg(feature = "tls")]
struct Socket<'a> {
    tcp: &'a mut TcpStream,
    short: &'a mut bool,
}

#[cfg(feature = "tls")]
impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        *self.short = n < buf.len();
        Ok(n)
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return write_tls(tls, &mut self.tcp, &[IoSlice::new(buf)]);
        }
        self.tcp.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return write_tls(tls, &mut self.tcp, bufs);
        }
        self.tcp.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plaintext from `tls`, reading ciphertext from `tcp` as needed; `Ok(0)` at the end (the
/// peer's close_notify, or TCP's end), `WouldBlock` when the socket has nothing more now.
#[cfg(feature = "tls")]
fn read_tls(
    tls: &mut rustls::Connection,
    tcp: &mut TcpStream,
    short_read: &mut bool,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // TCP ended without close_notify: the end, for us (a truncation attack matters to
            // a reader of a length-less body, not to WebSocket frames, which are checked).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let server = matches!(tls, rustls::Connection::Server(_));
        if server && tls.is_handshaking() && plain_http(tcp) {
            // Someone spoke HTTP to the TLS port: tell them, in HTTP (RFC 9110 §15.5.1).
            let refusal = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                           Content-Length: 46\r\nConnection: close\r\n\r\n\
                           This port speaks TLS: use https:// or wss://\n";
            let _ = tcp.write(refusal.as_bytes());
            return Err(io::Error::new(io::ErrorKind::InvalidData, "plain HTTP on the TLS port"));
        }
        if tls.read_tls(&mut Socket { tcp, short: short_read })? == 0 {
            return Ok(0);
        }
        if let Err(error) = tls.process_new_packets() {
            // rustls has queued the alert that says why: send it, then give up.
            let _ = flush_tls(tls, tcp);
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        // The handshake's own answers (ServerHello and the rest).
        match flush_tls(tls, tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
    }
}

/// Whether the first bytes waiting on `tcp` look like an HTTP request, not a TLS record (a
/// handshake record starts with 0x16; a request with a method's capital letter).
#[cfg(feature = "tls")]
fn plain_http(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first), Ok(1) if first[0].is_ascii_uppercase())
}

/// Takes plaintext into `tls` (as much as its buffer allows) and writes what is encrypted:
/// one buffer or several, all into `tls` at once, then one flush. rustls cuts records from the
/// buffers as if they were one, so a batch of frames (the broadcasts of a poll round, say) is
/// one TLS record, sealed once and opened once by the peer, and one `writev`: not a record for
/// each frame. What waits encrypted goes first: if its buffer were full and the socket had
/// room, taking nothing would look like a full socket, and no WRITABLE event would ever come
/// to say otherwise (a stall until some other event, seen as Autobahn's 16 MiB cases taking
/// 20 s). So `WouldBlock` only when the socket is full.
#[cfg(feature = "tls")]
fn write_tls(
    tls: &mut rustls::Connection,
    tcp: &mut TcpStream,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    if bufs.iter().all(|b| b.is_empty()) {
        return Ok(0);
    }
    flush_or_wait(tls, tcp)?;
    let taken = tls.writer().write_vectored(bufs)?;
    flush_or_wait(tls, tcp)?;
    if taken == 0 {
        // Its buffer is full after a flush that stopped: the socket is full.
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(taken)
}

/// [`flush_tls`], where a socket that cannot take more now is not an error.
#[cfg(feature = "tls")]
fn flush_or_wait(tls: &mut rustls::Connection, tcp: &mut TcpStream) -> io::Result<()> {
    match flush_tls(tls, tcp) {
        Err(e) if waiting(&e) => Ok(()),
        other => other,
    }
}

/// The socket cannot take more now: full, or a connect still under way.
#[cfg(feature = "tls")]
fn waiting(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected)
}

/// Writes `tls`'s ciphertext until it has none or the socket would block.
#[cfg(feature = "tls")]
fn flush_tls(tls: &mut rustls::Connection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(tcp)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The TLS configuration of `--tls-cert PEM --tls-key PEM`: the certificate chain (the server's
/// first) and its private key, ALPN `http/1.1` (RFC 7301; WebSocket's opening handshake is
/// HTTP/1.1, RFC 6455 §4.1), TLS 1.2 and 1.3 with rustls's `ring` provider. A file that is not
/// what it should be is an error that names it.
#[cfg(feature = "tls")]
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

#[cfg(test)]
mod drained_tests {
    use super::*;

    /// A read that gets less than it asked for has emptied the socket: the loop may wait for
    /// the next event instead of reading again. A full read has not.
    #[test]
    fn a_short_read_drains_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let mut ours = Transport::plain(TcpStream::from_std(accepted));
        peer.write_all(b"0123456789").unwrap();
        let read = |ours: &mut Transport, buf: &mut [u8]| loop {
            match ours.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                other => return other.unwrap(),
            }
        };
        assert_eq!(read(&mut ours, &mut [0u8; 4]), 4);
        assert!(!ours.drained(4, 4), "a full buffer: there may be more");
        assert_eq!(read(&mut ours, &mut [0u8; 64]), 6);
        assert!(ours.drained(64, 6));
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;
    use crate::client::TlsOptions;
    use std::path::Path;

    fn data(file: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls").join(file)
    }

    /// The TLS records on the wire in `bytes`: (content type, length) of each.
    fn records(mut bytes: &[u8]) -> Vec<(u8, usize)> {
        let mut found = Vec::new();
        while let [kind, _, _, high, low, rest @ ..] = bytes {
            let len = usize::from(*high) << 8 | usize::from(*low);
            found.push((*kind, len));
            bytes = rest.get(len..).unwrap_or_default();
        }
        found
    }

    /// Frames written together (a poll round's broadcasts to one connection) go out as one
    /// TLS record, not one each: each record costs a seal here and an open at the peer.
    #[test]
    fn a_batch_of_frames_is_one_record() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut raw = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        raw.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let config = tls_config(&data("server.pem"), &data("server.key")).unwrap();
        // No session tickets: the only records after the handshake are the batch's.
        let mut config = (*config).clone();
        config.send_tls13_tickets = 0;
        let frames: [&[u8]; 3] = [b"\x81\x05first", b"\x81\x06second", b"\x81\x05third"];
        // The server's side, on a blocking socket: handshake, one read, one batch.
        let server = std::thread::spawn(move || {
            let tcp = TcpStream::from_std(accepted);
            let mut server = Transport::tls(tcp, std::sync::Arc::new(config)).unwrap();
            let mut go = [0u8; 2];
            assert_eq!(server.read(&mut go).unwrap(), 2);
            let slices = frames.map(IoSlice::new);
            let all: usize = frames.iter().map(|f| f.len()).sum();
            assert_eq!(server.write_vectored(&slices).unwrap(), all);
        });
        let options = TlsOptions { ca_file: Some(data("ca.pem")), insecure: false };
        let mut client = crate::client::tls::client_connection("localhost", &options).unwrap();
        while client.is_handshaking() {
            client.complete_io(&mut raw).unwrap();
        }
        client.writer().write_all(b"go").unwrap();
        client.complete_io(&mut raw).unwrap();
        server.join().unwrap();
        let mut wire = Vec::new();
        raw.read_to_end(&mut wire).unwrap();
        let application: Vec<_> = records(&wire).into_iter().filter(|r| r.0 == 23).collect();
        assert_eq!(application.len(), 1, "records on the wire: {application:?}");
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        let mut plain = Vec::new();
        let _ = client.reader().read_to_end(&mut plain);
        assert_eq!(plain, frames.concat());
    }
}
