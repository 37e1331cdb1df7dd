//! The client's drivers: the sans-I/O client ([`Connection::client`]) over real sockets.
//!
//! - [`Client`]: one connection over a blocking `std::net::TcpStream` (connect, send, receive,
//!   close), for tools, tests and scripts; `wss://` too, with the cargo feature `tls`. `examples/blocking_client.rs` and
//!   `examples/autobahn_client.rs` use it.
//! - [`Session`]: one connection over a non-blocking mio socket, for many connections on one
//!   thread (`examples/mio_clients.rs`) or a client beside other work (`rfc6455 client` on
//!   the command line, which also reads standard input).
//! - [`Url`]: `ws://` and `wss://` URIs (RFC 6455 §3).
//!
//! [`Connection::client`]: crate::Connection::client

mod blocking;
mod session;
#[cfg(feature = "tls")]
pub(crate) mod tls;
mod url;

pub use blocking::{Client, ClientError, ClientOptions, Incoming};
pub use session::{Session, Update};
#[cfg(feature = "tls")]
pub use tls::TlsOptions;
pub use url::{Url, UrlError};
