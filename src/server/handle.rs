//! Reaching a running server from other threads (a worker, a timer thread, a message-bus
//! subscriber): commands go through a bounded queue, and a `mio::Waker` wakes the loop to carry
//! them out. A full queue is an error for the caller, never more memory.

use super::{ConnId, SharedFrame};
use crate::close::CloseCode;
use mio::Waker;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// What another thread asked the loop to do.
#[derive(Debug)]
pub(crate) enum Command {
    Send { to: ConnId, frame: SharedFrame },
    Broadcast(SharedFrame),
    Close { to: ConnId, code: CloseCode, reason: String },
}

/// A connection another loop accepted, for this loop to serve.
pub(crate) type Adoption = (mio::net::TcpStream, std::net::IpAddr);

/// A command could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandleError {
    /// The loop has `Options::command_queue` commands waiting already; try again later.
    QueueFull,
    /// The server is gone.
    Stopped,
    /// §7.4.1: a close code an endpoint may not send.
    InvalidCloseCode,
    /// §5.5: a close reason over 123 bytes.
    ReasonTooLong,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleError::QueueFull => "the server's command queue is full",
            HandleError::Stopped => "the server has stopped",
            HandleError::InvalidCloseCode => "close code that may not be sent",
            HandleError::ReasonTooLong => "close reason over 123 bytes",
        })
    }
}

impl std::error::Error for HandleError {}

/// A handle on a running [`Server`](super::Server), for any thread: `Send + Clone`.
///
/// Sends are asynchronous: `Ok` means the command is queued. The loop carries it out on its
/// next turn; a connection that has gone by then (or is closing) is skipped, as the handler's
/// own `Ctx` would skip it, and its end has been or will be reported by `Handler::on_close`.
#[derive(Clone)]
pub struct ServerHandle {
    commands: SyncSender<Command>,
    waker: Arc<Waker>,
    /// Set by a sender that woke the loop, cleared by the loop before it drains the queue:
    /// a burst of sends costs one wakeup, not one each.
    wake_pending: Arc<AtomicBool>,
    /// Set by [`ServerHandle::notify`], cleared by the loop when it calls
    /// `Handler::on_notify`.
    notified: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    /// The connections the loop holds, as of its last turn, plus those handed to it since.
    load: Arc<AtomicUsize>,
    /// Connections handed to the loop by an acceptor (a queue of their own: they are not the
    /// embedder's commands, and are never dropped for them).
    adoptions: SyncSender<Adoption>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Queues a text message for connection `to` (encoded here, on the caller's thread).
    pub fn send_text(&self, to: ConnId, text: &str) -> Result<(), HandleError> {
        self.send_shared(to, SharedFrame::text(text))
    }

    /// Queues a binary message for connection `to`.
    pub fn send_binary(&self, to: ConnId, data: &[u8]) -> Result<(), HandleError> {
        self.send_shared(to, SharedFrame::binary(data))
    }

    /// Queues an encoded frame for connection `to`.
    pub fn send_shared(&self, to: ConnId, frame: SharedFrame) -> Result<(), HandleError> {
        self.push(Command::Send { to, frame })
    }

    /// Queues an encoded frame for every open connection.
    pub fn broadcast(&self, frame: SharedFrame) -> Result<(), HandleError> {
        self.push(Command::Broadcast(frame))
    }

    /// Starts the closing handshake on connection `to` (§7.1.2).
    pub fn close(&self, to: ConnId, code: CloseCode, reason: &str) -> Result<(), HandleError> {
        if !code.is_valid_on_wire() {
            return Err(HandleError::InvalidCloseCode);
        }
        if reason.len() > 123 {
            return Err(HandleError::ReasonTooLong);
        }
        self.push(Command::Close { to, code, reason: reason.to_owned() })
    }

    /// Asks the loop to call [`Handler::on_notify`](super::Handler::on_notify) on its next
    /// turn: another thread left the handler work (in a queue the two share, say). Several
    /// notifies before the loop gets to it make one call. Never refused, never blocks.
    pub fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // A failed wake only delays the call to the next wakeup.
            let _ = self.waker.wake();
        }
    }

    /// Asks the loop to stop: it stops accepting, sends every open connection a Close frame
    /// with 1001 (going away), and returns from `Server::run` once they are closed or
    /// `Options::shutdown_timeout` has passed. Never refused, even with a full queue.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // A failed wake only delays the stop to the next wakeup.
        let _ = self.waker.wake();
    }

    /// Hands the loop a connection to serve; gives it back if the loop cannot take it.
    pub(crate) fn adopt(
        &self,
        stream: mio::net::TcpStream,
        ip: std::net::IpAddr,
    ) -> Result<(), mio::net::TcpStream> {
        if let Err(TrySendError::Full((stream, _)) | TrySendError::Disconnected((stream, _))) =
            self.adoptions.try_send((stream, ip))
        {
            return Err(stream);
        }
        self.load.fetch_add(1, Ordering::Relaxed);
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// The loop's connections as last published, plus those handed to it since.
    pub(crate) fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    fn push(&self, command: Command) -> Result<(), HandleError> {
        self.commands.try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => HandleError::QueueFull,
            TrySendError::Disconnected(_) => HandleError::Stopped,
        })?;
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

/// The loop's end of the queue.
pub(crate) struct Mailbox {
    commands: Receiver<Command>,
    capacity: usize,
    adoptions: Receiver<Adoption>,
    pub(crate) handle: ServerHandle,
}

impl Mailbox {
    pub(crate) fn new(waker: Arc<Waker>, capacity: usize) -> Mailbox {
        let (tx, rx) = sync_channel(capacity.max(1));
        // As many as a kernel backlog holds: an acceptor that finds this full tries another
        // loop, or keeps the connection itself.
        let (adopt_tx, adoptions) = sync_channel(1024);
        let handle = ServerHandle {
            commands: tx,
            adoptions: adopt_tx,
            waker,
            wake_pending: Arc::new(AtomicBool::new(false)),
            notified: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(AtomicBool::new(false)),
            load: Arc::new(AtomicUsize::new(0)),
        };
        Mailbox { commands: rx, capacity: capacity.max(1), adoptions, handle }
    }

    /// Whether a shutdown was asked for.
    pub(crate) fn shutdown_asked(&self) -> bool {
        self.handle.shutdown.load(Ordering::SeqCst)
    }

    /// The loop's connection count, for an acceptor choosing where to hand the next one.
    pub(crate) fn publish_load(&self, connections: usize) {
        self.handle.load.store(connections, Ordering::Relaxed);
    }

    /// Whether [`ServerHandle::notify`] was called since the last time this was asked.
    pub(crate) fn take_notified(&self) -> bool {
        self.handle.notified.swap(false, Ordering::AcqRel)
    }

    /// The connections handed over since the last call.
    pub(crate) fn take_adoptions(&self) -> impl Iterator<Item = Adoption> + '_ {
        self.adoptions.try_iter()
    }

    /// The commands waiting now, at most one queue's worth (so that senders that never stop
    /// cannot keep the loop from its other work).
    pub(crate) fn take(&self) -> impl Iterator<Item = Command> + '_ {
        // Cleared before draining: a command queued after this point wakes the loop again.
        self.handle.wake_pending.store(false, Ordering::Release);
        self.commands.try_iter().take(self.capacity)
    }
}
