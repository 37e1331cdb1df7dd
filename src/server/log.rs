//! Where the server reports what it does. The library never prints: the embedder sets a
//! [`Log`] in `Options::log` (the `rfc6455` command's prints to standard error).

use super::ConnId;
use crate::handshake::AnswerError;

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
}

/// A sink for [`Record`]s. Called on the event loop's thread: keep it quick.
pub trait Log: Send + Sync {
    /// Reports one record.
    fn record(&self, record: &Record<'_>);
}
