//! One chat across processes and machines, through a Redis stream (`--redis URL`, cargo
//! feature `redis`).
//!
//! ```text
//!  process A loops ─┐ say/join/leave          ┌─▶ reader thread A ─▶ every loop of A
//!                   ├─▶ writer thread ─EVAL─▶ Redis stream ─XREAD─┤
//!  process B loops ─┘   (each process)        └─▶ reader thread B ─▶ every loop of B
//! ```
//!
//! Everything the chat says is appended to one stream by a script that runs atomically in
//! Redis: a chat message gets the next id from a counter and its entry the stream id `ID-0`, so
//! stream order and message ids agree; a presence notice gets the online count summed over
//! every process (a hash, one field per process) and the stream id `ID-n` after the last
//! message. Every process reads the stream from its last id, in order, and hands each entry to
//! its loops as the one-process chat hands what it publishes: so every member of every process
//! sees one order. A reader that loses Redis reconnects and reads on from its last id.
//!
//! The loops never wait for Redis: they give the writer thread what to append over a bounded
//! channel, and the reader thread wakes them ([`crate::server::ServerHandle::notify`]).
//!
//! While Redis is down, local delivery goes on: a message is delivered to this process's
//! members at once, without an id, and queued (bounded: past it, its sender gets a type 5
//! error) to be appended when Redis is back, with backoff between attempts. When it comes back
//! from the stream, this process does not deliver it again. Each process keeps a key that
//! expires 10 s after its last refresh; a process that died (`kill -9`) stops refreshing it,
//! and the next reap takes its members out of the online count.

mod entries;
mod hub;
mod io;

pub(crate) use entries::{Entry, online_of, parse_entries};
use io::{Reader, Writer};

use super::hub::{Hub, lock};
use super::protocol::ChatMessage;
use redis::Value;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Items that may wait for Redis; past it, messages are refused to their senders.
pub const QUEUE: usize = 16 * 1024;
/// How long a process counts as alive after its last refresh.
const ALIVE_SECS: u64 = 10;
const REFRESH: Duration = Duration::from_secs(3);
const REAP: Duration = Duration::from_secs(5);
/// How often an idle writer checks that Redis is there.
const CHECK: Duration = Duration::from_secs(1);
/// Longest wait between two attempts to reach Redis.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BLOCK_MS: u64 = 1000;

/// What the writer appends: a chat message (its id comes from Redis) or a presence notice
/// (its online count comes from Redis), as the JSON before and after that number.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) kind: Kind,
    pub(crate) head: String,
    pub(crate) tail: String,
    /// Change to this process's member count.
    pub(crate) delta: i64,
    /// This process's number for it: set when it was delivered here already (Redis was down).
    pub(crate) delivered_as: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Presence,
}

/// Why an item was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// This process's link to Redis: a writer thread and a reader thread.
#[derive(Debug)]
pub(crate) struct Relay {
    to_writer: SyncSender<Outgoing>,
    /// The writer's last attempt reached Redis.
    connected: Arc<AtomicBool>,
    /// This process, in the stream's origins and the online hash.
    process: String,
    next_local: AtomicU64,
    /// Messages delivered here while Redis was down, not yet seen back from the stream.
    delivered_here: Arc<Mutex<HashSet<u64>>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The keys of one chat in Redis.
#[derive(Clone, Debug)]
struct Keys {
    stream: String,
    counter: String,
    online: String,
    alive_prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}:stream"),
            counter: format!("{prefix}:ids"),
            online: format!("{prefix}:online"),
            alive_prefix: format!("{prefix}:alive:"),
        }
    }
}

/// What was in the stream at start.
pub(crate) struct Start {
    pub(crate) recent: VecDeque<ChatMessage>,
    pub(crate) next_id: u64,
    pub(crate) online: usize,
    last_stream_id: String,
    client: redis::Client,
    keys: Keys,
    keep: usize,
}

/// Connects to Redis at `url` (failing if it cannot be reached: a chat that should share its
/// history must not start without it) and reads the last `keep` messages of the stream.
pub(crate) fn connect(url: &str, keep: usize) -> Result<Start, String> {
    let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
    let keys = Keys::new("rfc6455:chat");
    let count = (keep.max(1) * 4).to_string();
    let value: Value = redis::cmd("XREVRANGE")
        .arg(&keys.stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(&count)
        .query(&mut con)
        .map_err(|e| format!("reading the chat's stream: {e}"))?;
    let mut entries = parse_entries(&value);
    entries.reverse();
    let mut recent = VecDeque::new();
    let mut next_id = 1;
    let mut online = 0;
    for entry in &entries {
        match entry.kind {
            Kind::Message => {
                if let Some(message) = ChatMessage::from_json(&entry.json) {
                    next_id = next_id.max(message.id + 1);
                    if recent.len() == keep {
                        recent.pop_front();
                    }
                    if keep > 0 {
                        recent.push_back(message);
                    }
                }
            }
            Kind::Presence => online = online_of(&entry.json).unwrap_or(online),
        }
    }
    let last_stream_id = entries.last().map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
    Ok(Start { recent, next_id, online, last_stream_id, client, keys, keep })
}

impl Start {
    /// Starts the writer and the reader; the reader hands what it reads to `hub` (weakly: the
    /// threads end with the hub).
    pub(crate) fn run(self, hub: Weak<Hub>, process: String) -> Relay {
        let (to_writer, from_loops) = sync_channel(QUEUE);
        let connected = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let delivered_here = Arc::new(Mutex::new(HashSet::new()));
        let maxlen = (self.keep.max(1) * 4).to_string();
        let writer = Writer {
            client: self.client.clone(),
            keys: self.keys.clone(),
            process: process.clone(),
            maxlen: maxlen.clone(),
            connected: connected.clone(),
            stop: stop.clone(),
        };
        let reader = Reader {
            client: self.client,
            keys: self.keys,
            last: self.last_stream_id,
            process: process.clone(),
            delivered_here: delivered_here.clone(),
            stop: stop.clone(),
        };
        let mut threads = Vec::new();
        if let Ok(t) = std::thread::Builder::new()
            .name("rfc6455-redis-writer".into())
            .spawn(move || writer.run(from_loops))
        {
            threads.push(t);
        }
        if let Ok(t) = std::thread::Builder::new()
            .name("rfc6455-redis-reader".into())
            .spawn(move || reader.run(hub))
        {
            threads.push(t);
        }
        Relay {
            to_writer,
            connected,
            process,
            next_local: AtomicU64::new(1),
            delivered_here,
            stop,
            threads: Mutex::new(threads),
        }
    }
}

impl Relay {
    /// Whether the writer reached Redis the last time it tried.
    pub(crate) fn is_up(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// This process's name in Redis.
    pub(crate) fn process(&self) -> &str {
        &self.process
    }

    /// Queues an item for Redis. `deliver_here`: it is being delivered to this process's
    /// members now (Redis is down), so that it is not delivered again when it comes back.
    pub(crate) fn append(&self, mut item: Outgoing, deliver_here: bool) -> Result<(), Full> {
        if deliver_here {
            let n = self.next_local.fetch_add(1, Ordering::Relaxed);
            item.delivered_as = Some(n);
            lock(&self.delivered_here).insert(n);
        }
        let local = item.delivered_as;
        self.to_writer.try_send(item).map_err(|e| {
            if let (TrySendError::Full(_) | TrySendError::Disconnected(_), Some(n)) = (&e, local) {
                lock(&self.delivered_here).remove(&n);
            }
            Full
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The reader wakes within BLOCK_MS; the writer within its receive timeout.
        for thread in std::mem::take(&mut *lock(&self.threads)) {
            let _ = thread.join();
        }
    }
}
