//! `wss://` for the blocking client (cargo feature `tls`): rustls over the blocking socket.
//!
//! The server's certificate is checked against the Mozilla roots that `webpki-roots` carries,
//! or against a CA file of the caller's ([`TlsOptions::ca_file`]), for the URI's host (RFC
//! 6455 §4.1: "the client MUST perform a TLS handshake ... and the client MUST use the Server
//! Name Indication extension"; rustls sends SNI for a host name). Only
//! [`TlsOptions::insecure`] skips the check, and only when asked.

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

/// How a `wss://` connection checks the server.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Trust this PEM file's certificates instead of the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (`--insecure`): no protection against anyone in the middle.
    pub insecure: bool,
}

/// TLS over `tcp` to `host`, checked as `options` say.
pub(crate) fn connect(
    tcp: TcpStream,
    host: &str,
    options: &TlsOptions,
) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    Ok(rustls::StreamOwned::new(client_connection(host, options)?, tcp))
}

/// TLS's client side for `host`, checked as `options` say.
pub(crate) fn client_connection(
    host: &str,
    options: &TlsOptions,
) -> io::Result<rustls::ClientConnection> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let mut config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots(options)?).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // A bracketed IPv6 literal is a name without its brackets.
    let name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let name = rustls::pki_types::ServerName::try_from(name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)
}

fn roots(options: &TlsOptions) -> io::Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
        }
    }
    Ok(roots)
}

/// `--insecure`: every certificate is accepted (the handshake's signatures are still checked,
/// so the connection is encrypted, only not to anyone in particular).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
