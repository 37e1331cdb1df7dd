//! Where the server reports what it does. The library never prints: the embedder sets a
//! [`Log`] in `Options::log` (the `rfc6455` command's prints to standard error).

use super::ConnId;
use crate::handshake::AnswerError;
use std::net::IpAddr;
use std::time::Duration;

/// Something worth reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record<'a> {
    /// One `--trace` line of connection `conn` (when `Config::trace` is on): a handshake, a
    /// frame header, a change of state, with its RFC section.
    Trace {
        /// The connection.
        conn: ConnId,
        /// The line.
        line: &'a str,
    },
    /// The handler's answer to a request could not be sent as it was; the status in `error`
    /// was sent instead (a 500 for a broken answer, the §4.2.1 error for a request that is not
    /// an opening handshake).
    AnswerRefused {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: AnswerError,
    },
    /// A connection ended (`Options::access_log`): one line of the access log.
    Access {
        /// The connection.
        conn: ConnId,
        /// What it did.
        access: &'a Access,
    },
}

/// One connection's life, for the access log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Access {
    /// The client's address (behind a trusted proxy, the one its header gave).
    pub peer: Option<IpAddr>,
    /// The request target (path and query); `None` when no request arrived.
    pub target: Option<String>,
    /// The HTTP status answered: 101 for a WebSocket, or the refusal's.
    pub status: Option<u16>,
    /// The close code the handler was told, for a connection that was open.
    pub close_code: Option<u16>,
    /// From accept to the end.
    pub duration: Duration,
    /// WebSocket messages received.
    pub messages_in: u64,
    /// WebSocket messages queued for it.
    pub messages_out: u64,
    /// Bytes read from its socket.
    pub bytes_in: u64,
    /// Bytes written to its socket.
    pub bytes_out: u64,
}

/// A sink for [`Record`]s. Called on the event loop's thread: keep it quick.
pub trait Log: Send + Sync {
    /// Reports one record.
    fn record(&self, record: &Record<'_>);
}
