//! What the chat's event loops share: one order for everything the chat says, the online
//! count, the nicknames, and the counters.
//!
//! Every message, join, leave and rename is *published*: under one lock it gets its id, is
//! encoded once (a [`SharedFrame`], shared by every loop without copying) and is appended to
//! every loop's inbox. Each loop delivers its inbox in order, to its own members. All inboxes
//! receive the same items in the same order, so every member everywhere sees one order, and
//! each sender's messages in the order sent. A loop that publishes delivers its own inbox at
//! once and wakes the others ([`ServerHandle::notify`]); with one loop, that is all there is.
//!
//! An inbox is bounded. A loop whose thread has stalled (its inbox over [`MAX_INBOX`]) makes
//! new chat messages fail with a type-5 error to their sender rather than grow without end;
//! presence still goes through (it is bounded by the connections themselves).

use super::journal::{AppendError, Journal};
use super::protocol::ChatMessage;
use super::{ChatStats, unix_millis};
use crate::server::{ServerHandle, SharedFrame};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// Items an inbox may hold before chat messages are refused.
pub const MAX_INBOX: usize = 64 * 1024;

/// One thing the chat said, as every loop delivers it.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    /// The frame for every member.
    pub(crate) frame: SharedFrame,
    /// A chat message (type 2), for the loop's history; `None` for presence.
    pub(crate) message: Option<ChatMessage>,
}

/// Why a chat message was not published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A loop is this far behind: try again.
    Busy,
    /// The nickname is someone else's (case-insensitively).
    NameTaken,
    /// The history file cannot take it (a write failed earlier).
    HistoryFailed,
}

/// The chat's shared state.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(super) state: Mutex<Shared>,
    inboxes: Vec<Mutex<VecDeque<Item>>>,
    /// How to wake each loop; unset for a chat run by one `Server` alone.
    handles: OnceLock<Vec<ServerHandle>>,
    /// Members on each loop.
    here: Vec<AtomicUsize>,
    /// The history file, if the chat keeps one.
    journal: Option<Journal>,
    /// The link to Redis, if the chat is shared through it (`relay/`): then the order, the
    /// message ids and the online count come from the stream.
    #[cfg(feature = "redis")]
    pub(super) relay: OnceLock<super::relay::Relay>,
    pub(crate) stats: Counters,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) next_message_id: u64,
    pub(super) next_guest: u64,
    /// Members online: counted here, or (with Redis) the count the stream last said.
    pub(super) online: usize,
    /// Every member's nickname, lowercased.
    pub(super) names: HashSet<String>,
}

impl Shared {
    /// A member named `old` takes the nickname `to`, unless someone else has it (nicknames
    /// are compared case-insensitively).
    pub(super) fn take_name(&mut self, old: &str, to: &str) -> Result<(), Refused> {
        let (old_key, new_key) = (old.to_lowercase(), to.to_lowercase());
        if new_key != old_key && self.names.contains(&new_key) {
            return Err(Refused::NameTaken);
        }
        self.names.remove(&old_key);
        self.names.insert(new_key);
        Ok(())
    }
}

/// [`ChatStats`], counted by every loop.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) slow_readers_closed: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) throttled: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ChatStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ChatStats {
            messages: get(&self.messages),
            deliveries: get(&self.deliveries),
            slow_readers_closed: get(&self.slow_readers_closed),
            heartbeats: get(&self.heartbeats),
            throttled: get(&self.throttled),
        }
    }
}

/// Takes a lock; a panic on another loop while it held the lock does not stop this one (the
/// data under these locks stays consistent at every step).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// Whether any inbox is over its bound (a loop stalled).
    pub(super) fn any_inbox_full(&self) -> bool {
        self.inboxes.iter().any(|inbox| lock(inbox).len() >= MAX_INBOX)
    }

    /// A hub for `loops` event loops, its message ids going on from `next_message_id`, with
    /// the history file `journal` if any.
    pub(crate) fn new(loops: usize, next_message_id: u64, journal: Option<Journal>) -> Hub {
        Hub {
            state: Mutex::new(Shared {
                next_message_id,
                next_guest: 1,
                online: 0,
                names: HashSet::new(),
            }),
            inboxes: (0..loops.max(1)).map(|_| Mutex::new(VecDeque::new())).collect(),
            here: (0..loops.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            journal,
            #[cfg(feature = "redis")]
            relay: OnceLock::new(),
            handles: OnceLock::new(),
            stats: Counters::default(),
        }
    }

    /// The online count a Redis stream said last (at start).
    #[cfg(feature = "redis")]
    pub(crate) fn set_online(&self, online: usize) {
        lock(&self.state).online = online;
    }

    /// Shares the chat through Redis from now on.
    #[cfg(feature = "redis")]
    pub(crate) fn set_relay(&self, relay: super::relay::Relay) {
        let _ = self.relay.set(relay);
    }

    /// How to wake every loop, in loop order. Set once; later calls are ignored.
    pub(crate) fn attach(&self, handles: Vec<ServerHandle>) {
        let _ = self.handles.set(handles);
    }

    /// The items waiting for loop `index`, oldest first.
    pub(crate) fn take(&self, index: usize) -> VecDeque<Item> {
        self.inboxes.get(index).map(|inbox| std::mem::take(&mut *lock(inbox))).unwrap_or_default()
    }

    /// Appends an item to every inbox (under the state lock, so in one order everywhere), then
    /// wakes every loop but `from`, which delivers its own inbox itself.
    pub(super) fn publish(&self, _state: &mut Shared, item: Item) {
        for inbox in &self.inboxes {
            lock(inbox).push_back(item.clone());
        }
    }

    /// Wakes every loop but `from` (`usize::MAX`: every loop).
    pub(super) fn wake_others(&self, from: usize) {
        if let Some(handles) = self.handles.get() {
            for (i, handle) in handles.iter().enumerate() {
                if i != from {
                    handle.notify();
                }
            }
        }
    }

    /// A member joined: its guest name and the online count, with the join published.
    pub(crate) fn join(&self, from: usize) -> (String, usize) {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.join_via(relay, from);
        }
        let mut state = lock(&self.state);
        let name = loop {
            let name = format!("guest-{}", state.next_guest);
            state.next_guest += 1;
            // A member may have renamed itself guest-N already.
            if state.names.insert(name.to_lowercase()) {
                break name;
            }
        };
        state.online += 1;
        if let Some(here) = self.here.get(from) {
            here.fetch_add(1, Ordering::Relaxed);
        }
        let notice = super::protocol::presence("join", &name, None, state.online, unix_millis());
        let online = state.online;
        self.publish(&mut state, Item { frame: SharedFrame::text(&notice), message: None });
        drop(state);
        self.wake_others(from);
        (name, online)
    }

    /// A member left.
    pub(crate) fn leave(&self, from: usize, name: &str) {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.leave_via(relay, from, name);
        }
        let mut state = lock(&self.state);
        state.names.remove(&name.to_lowercase());
        state.online = state.online.saturating_sub(1);
        if let Some(here) = self.here.get(from) {
            let _ = here.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        let notice = super::protocol::presence("leave", name, None, state.online, unix_millis());
        self.publish(&mut state, Item { frame: SharedFrame::text(&notice), message: None });
        drop(state);
        self.wake_others(from);
    }

    /// A member takes the nickname `to` (already checked to be valid), if nobody has it.
    pub(crate) fn rename(&self, from: usize, old: &str, to: &str) -> Result<(), Refused> {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.rename_via(relay, from, old, to);
        }
        let mut state = lock(&self.state);
        state.take_name(old, to)?;
        let notice =
            super::protocol::presence("rename", to, Some(old), state.online, unix_millis());
        self.publish(&mut state, Item { frame: SharedFrame::text(&notice), message: None });
        drop(state);
        self.wake_others(from);
        Ok(())
    }

    /// A chat message from `name`: its id is the next in the one order.
    pub(crate) fn say(&self, from: usize, name: &str, text: &str) -> Result<(), Refused> {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.say_via(relay, from, name, text);
        }
        let mut state = lock(&self.state);
        if self.any_inbox_full() {
            return Err(Refused::Busy);
        }
        let message = ChatMessage {
            text: text.to_owned(),
            name: name.to_owned(),
            ts: unix_millis(),
            id: state.next_message_id,
        };
        // Into the history file first: a message the file refuses is not sent at all.
        if let Some(journal) = &self.journal {
            journal.append(&message).map_err(|e| match e {
                AppendError::Full => Refused::Busy,
                AppendError::Failed => Refused::HistoryFailed,
            })?;
        }
        state.next_message_id += 1;
        Counters::add(&self.stats.messages, 1);
        let frame = SharedFrame::text(&message.to_json(false));
        self.publish(&mut state, Item { frame, message: Some(message) });
        drop(state);
        self.wake_others(from);
        Ok(())
    }

    /// Members online, in every loop.
    pub(crate) fn online(&self) -> usize {
        lock(&self.state).online
    }

    /// The id the next message will get: every id below it was given out.
    pub(crate) fn next_message_id(&self) -> u64 {
        lock(&self.state).next_message_id
    }

    /// Members on each loop, in loop order.
    pub(crate) fn per_loop(&self) -> Vec<usize> {
        self.here.iter().map(|n| n.load(Ordering::Relaxed)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: &VecDeque<Item>) -> Vec<String> {
        items.iter().map(|i| String::from_utf8_lossy(i.frame.payload()).into_owned()).collect()
    }

    #[test]
    fn every_inbox_gets_the_same_items_in_one_order() {
        let hub = Hub::new(3, 1, None);
        let (a, _) = hub.join(0);
        let (b, online) = hub.join(2);
        assert_eq!((a.as_str(), b.as_str(), online), ("guest-1", "guest-2", 2));
        hub.say(1, &a, "one").unwrap();
        hub.say(2, &b, "two").unwrap();
        hub.rename(0, &a, "Alice").unwrap();
        assert_eq!(hub.rename(1, &b, "ALICE"), Err(Refused::NameTaken));
        hub.leave(2, &b);
        let first = texts(&hub.take(0));
        assert_eq!(first.len(), 6);
        assert_eq!(first, texts(&hub.take(1)));
        assert_eq!(first, texts(&hub.take(2)));
        assert!(hub.take(0).is_empty(), "taken once");
        assert!(first[2].contains("\"message\":\"one\"") && first[2].contains("\"id\":1"));
        assert!(first[3].contains("\"message\":\"two\"") && first[3].contains("\"id\":2"));
        assert_eq!(hub.online(), 1);
        assert_eq!(hub.per_loop(), [1, 0, 0], "the member of loop 0 is still there");
        assert_eq!(hub.stats.snapshot().messages, 2);
    }

    #[test]
    fn a_stalled_loop_makes_messages_fail_not_grow() {
        let hub = Hub::new(2, 1, None);
        let (name, _) = hub.join(0);
        for i in 0..MAX_INBOX - 1 {
            hub.say(0, &name, &i.to_string()).unwrap();
            if i % 1024 == 0 {
                hub.take(0); // loop 0 keeps up, loop 1 does not
            }
        }
        assert_eq!(hub.say(0, &name, "one too many"), Err(Refused::Busy));
        hub.take(1);
        assert_eq!(hub.say(0, &name, "after it caught up"), Ok(()));
        // Presence is never refused.
        hub.join(1);
    }
}
