//! A load-generator connection's socket: plain TCP, or TLS over it (`wss://`), non-blocking
//! either way. rustls does no I/O: a read moves ciphertext from the socket into it and
//! plaintext out; a write puts plaintext in and moves ciphertext out, and what the socket did
//! not take waits in rustls for the next write (or WRITABLE event).

use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::sync::Arc;

pub struct Sock {
    tcp: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Sock {
    pub fn plain(tcp: TcpStream) -> Sock {
        Sock { tcp, tls: None }
    }

    pub fn tls(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        ip: std::net::IpAddr,
    ) -> io::Result<Sock> {
        let name = rustls::pki_types::ServerName::IpAddress(ip.into());
        let tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Sock { tcp, tls: Some(Box::new(tls)) })
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else { return self.tcp.read(buf) };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut self.tcp)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            match flush(tls, &mut self.tcp) {
                Err(e) if !waiting(&e) => return Err(e),
                _ => {}
            }
        }
    }

    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else { return (&self.tcp).write(buf) };
        // What waits encrypted first: else a full buffer with room in the socket would look
        // like a full socket, and no WRITABLE event would come.
        match flush(tls, &mut self.tcp) {
            Err(e) if !waiting(&e) => return Err(e),
            _ => {}
        }
        let taken = tls.writer().write(buf)?;
        match flush(tls, &mut self.tcp) {
            Err(e) if !waiting(&e) => return Err(e),
            _ => {}
        }
        if taken == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Writes ciphertext rustls holds (after a WRITABLE event).
    pub fn flush_pending(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else { return Ok(()) };
        match flush(tls, &mut self.tcp) {
            Err(e) if !waiting(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

fn waiting(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected)
}

fn flush(tls: &mut rustls::ClientConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(tcp)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// A client configuration that trusts the CA certificates in `ca_file` (PEM), offering
/// ALPN http/1.1, with rustls's ring provider.
pub fn client_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("{ca_file}: {e}"))? {
        roots
            .add(cert.map_err(|e| format!("{ca_file}: {e}"))?)
            .map_err(|e| format!("{ca_file}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
