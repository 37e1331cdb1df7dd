//! The two threads of a process's link to Redis: the writer, which appends what the loops
//! give it (pipelined, retried with backoff), refreshes this process's liveness and reaps dead
//! processes; and the reader, which reads the stream from its last id and hands each entry to
//! the hub.

use super::entries::parse_entries;
use super::{ALIVE_SECS, BACKOFF_MAX, BLOCK_MS, CHECK, Keys, Kind, Outgoing, REAP, REFRESH};
use crate::chat::hub::{Hub, lock};
use redis::Value;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Appends one entry: KEYS = stream, message counter, online hash; ARGV = kind (`m` or `p`),
/// head, tail, stream length to keep, origin, process, online delta.
const APPEND: &str = r#"
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
local json
if ARGV[1] == 'm' then
  m = m + 1
  redis.call('SET', KEYS[2], m)
  json = ARGV[2] .. m .. ARGV[3]
else
  local delta = tonumber(ARGV[7])
  if delta ~= 0 then redis.call('HINCRBY', KEYS[3], ARGV[6], delta) end
  local online = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[3])) do online = online + math.max(0, tonumber(v)) end
  json = ARGV[2] .. online .. ARGV[3]
end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], m .. '-*', 'k', ARGV[1], 'j', json, 'o', ARGV[5])
"#;

/// Takes the processes that stopped refreshing their key out of the online count, and says
/// the new count: KEYS = stream, message counter, online hash; ARGV = alive-key prefix, head,
/// tail, stream length to keep.
const REAP_DEAD: &str = r#"
local gone = false
for _, p in ipairs(redis.call('HKEYS', KEYS[3])) do
  if redis.call('EXISTS', ARGV[1] .. p) == 0 then
    redis.call('HDEL', KEYS[3], p)
    gone = true
  end
end
if not gone then return 0 end
local online = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do online = online + math.max(0, tonumber(v)) end
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], m .. '-*', 'k', 'p', 'j', ARGV[2] .. online .. ARGV[3], 'o', '')
return 1
"#;

pub(super) struct Writer {
    pub(super) client: redis::Client,
    pub(super) keys: Keys,
    pub(super) process: String,
    pub(super) maxlen: String,
    pub(super) connected: Arc<AtomicBool>,
    pub(super) stop: Arc<AtomicBool>,
}

impl Writer {
    pub(super) fn run(self, items: Receiver<Outgoing>) {
        let mut con: Option<redis::Connection> = None;
        let mut pending: VecDeque<Outgoing> = VecDeque::new();
        let mut backoff = Duration::from_millis(100);
        let (mut refreshed, mut reaped) = (Instant::now() - REFRESH, Instant::now());
        let mut checked = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            if pending.is_empty() {
                match items.recv_timeout(Duration::from_millis(200)) {
                    Ok(item) => pending.push_back(item),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while pending.len() < 256
                && let Ok(item) = items.try_recv()
            {
                pending.push_back(item);
            }
            if con.is_none() {
                match self.client.get_connection_with_timeout(Duration::from_secs(1)) {
                    Ok(c) => {
                        con = Some(c);
                        backoff = Duration::from_millis(100);
                    }
                    Err(_) => {
                        self.connected.store(false, Ordering::Release);
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let Some(c) = con.as_mut() else { continue };
            let idle = pending.is_empty();
            let mut result = self.append_all(c, &mut pending);
            if result.is_ok() && idle && checked.elapsed() >= CHECK {
                // Nothing to append: make sure Redis is there, so that a message sent while it
                // is down is known to be (and delivered here at once).
                result = redis::cmd("PING").query::<()>(c);
                checked = Instant::now();
            }
            if result.is_ok() && refreshed.elapsed() >= REFRESH {
                result = redis::cmd("SET")
                    .arg(format!("{}{}", self.keys.alive_prefix, self.process))
                    .arg(1)
                    .arg("EX")
                    .arg(ALIVE_SECS)
                    .query::<()>(c);
                refreshed = Instant::now();
            }
            if result.is_ok() && reaped.elapsed() >= REAP {
                let (head, tail) = crate::chat::protocol::count_parts(crate::chat::unix_millis());
                result = redis::cmd("EVAL")
                    .arg(REAP_DEAD)
                    .arg(3)
                    .arg(&self.keys.stream)
                    .arg(&self.keys.counter)
                    .arg(&self.keys.online)
                    .arg(&self.keys.alive_prefix)
                    .arg(head)
                    .arg(tail)
                    .arg(&self.maxlen)
                    .query::<()>(c);
                reaped = Instant::now();
            }
            match result {
                Ok(()) => self.connected.store(true, Ordering::Release),
                Err(_) => {
                    self.connected.store(false, Ordering::Release);
                    con = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Appends what is pending, in order, in one pipeline; on failure nothing is lost (what
    /// Redis took is known only as a whole, so a failed pipeline is sent again whole: an
    /// append may then be repeated once, see docs/scaling.md).
    fn append_all(
        &self,
        con: &mut redis::Connection,
        pending: &mut VecDeque<Outgoing>,
    ) -> redis::RedisResult<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for item in pending.iter() {
            let origin = match item.delivered_as {
                Some(n) => format!("{}:{n}", self.process),
                None => String::new(),
            };
            pipe.cmd("EVAL")
                .arg(APPEND)
                .arg(3)
                .arg(&self.keys.stream)
                .arg(&self.keys.counter)
                .arg(&self.keys.online)
                .arg(if item.kind == Kind::Message { "m" } else { "p" })
                .arg(&item.head)
                .arg(&item.tail)
                .arg(&self.maxlen)
                .arg(origin)
                .arg(&self.process)
                .arg(item.delta)
                .ignore();
        }
        pipe.query::<()>(con)?;
        pending.clear();
        Ok(())
    }
}

pub(super) struct Reader {
    pub(super) client: redis::Client,
    pub(super) keys: Keys,
    pub(super) last: String,
    pub(super) process: String,
    pub(super) delivered_here: Arc<Mutex<HashSet<u64>>>,
    pub(super) stop: Arc<AtomicBool>,
}

impl Reader {
    pub(super) fn run(mut self, hub: Weak<Hub>) {
        let mut con: Option<redis::Connection> = None;
        let mut backoff = Duration::from_millis(100);
        while !self.stop.load(Ordering::Acquire) {
            if con.is_none() {
                match self.client.get_connection_with_timeout(Duration::from_secs(1)) {
                    Ok(c) => {
                        let _ = c.set_read_timeout(Some(Duration::from_millis(BLOCK_MS * 3)));
                        con = Some(c);
                        backoff = Duration::from_millis(100);
                    }
                    Err(_) => {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let Some(c) = con.as_mut() else { continue };
            let read: redis::RedisResult<Value> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1024)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&self.keys.stream)
                .arg(&self.last)
                .query(c);
            let value = match read {
                Ok(value) => value,
                Err(_) => {
                    con = None;
                    continue;
                }
            };
            let entries = parse_entries(&value);
            let Some(hub) = hub.upgrade() else { return };
            for entry in entries {
                self.last = entry.id.clone();
                if let Some(n) = self.ours(&entry.origin)
                    && lock(&self.delivered_here).remove(&n)
                {
                    // Delivered here while Redis was down; the others get it now.
                    hub.seen_from_relay(&entry);
                    continue;
                }
                hub.read_from_relay(&entry);
            }
        }
    }

    /// This process's number in an origin `process:n`, if the entry came from here.
    fn ours(&self, origin: &str) -> Option<u64> {
        let (process, n) = origin.split_once(':')?;
        (process == self.process).then(|| n.parse().ok())?
    }
}
