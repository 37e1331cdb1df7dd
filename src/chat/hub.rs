//! What the chat's event loops share: one order for everything the chat says, the online
//! count, the nicknames, and the counters.
//!
//! Every message, presence notice and rename is *published*: under one lock it gets its id, is
//! encoded once (a [`SharedFrame`], shared by every loop without copying) and is appended to
//! every loop's inbox. Each loop delivers its inbox in order, to its own members. All inboxes
//! receive the same items in the same order, so every member everywhere sees one order, and
//! each sender's messages in the order sent. A loop that publishes delivers its own inbox at
//! once and wakes the others ([`ServerHandle::notify`]); with one loop, that is all there is.
//!
//! Joins and leaves are not published one by one: they are gathered (`presence.rs`) and told
//! as one notice at most once per interval, by whichever loop's timer comes first, and at once
//! before a chat message or a rename, so that a member's join always comes before what it says.
//!
//! An inbox is bounded. A loop whose thread has stalled (its inbox over [`MAX_INBOX`]) makes
//! new chat messages fail with a type-5 error to their sender rather than grow without end;
//! presence still goes through (it is bounded by the connections themselves).

use super::journal::{AppendError, Journal};
use super::presence::Presence;
use super::protocol::{self, ChatMessage};
use super::{ChatStats, unix_millis};
use crate::server::{ServerHandle, SharedFrame};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

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

/// Who was told of a rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Told {
    /// Everyone, the renamed member among them.
    Everyone,
    /// Nobody: the chat is past the size where names are told, so only the member itself is
    /// to be told.
    OnlyTheMember,
}

/// How presence is told: at most one notice per `every`, names while at most `names_up_to`
/// members are online.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PresenceRule {
    pub(crate) every: Duration,
    pub(crate) names_up_to: usize,
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
    /// When the gathered presence is due, in nanoseconds after `epoch` (0: nothing waits), so
    /// that each loop's timer can look without taking the lock.
    presence_due: AtomicU64,
    epoch: Instant,
    /// The member list as last sent (type 6), and when it was made: see [`Hub::member_list`].
    member_list: Mutex<Option<(Instant, SharedFrame)>>,
    /// How long a member list is shared: one presence interval.
    list_every: Duration,
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
    /// Every member's nickname: lowercased, and as the member wrote it (for a guest name, one
    /// string: the same as the member's own copy, [`super::Member::name`]).
    pub(super) names: HashMap<Arc<str>, Arc<str>>,
    /// Joins and leaves not told yet.
    pub(super) presence: Presence,
}

impl Shared {
    /// A member named `old` takes the nickname `to`, unless someone else has it (nicknames
    /// are compared case-insensitively); returns the name for the member to keep.
    pub(super) fn take_name(&mut self, old: &str, to: &str) -> Result<Arc<str>, Refused> {
        let (old_key, new_key) = (old.to_lowercase(), to.to_lowercase());
        if new_key != old_key && self.names.contains_key(new_key.as_str()) {
            return Err(Refused::NameTaken);
        }
        self.names.remove(old_key.as_str());
        let name: Arc<str> = Arc::from(to);
        let key = if new_key == to { name.clone() } else { Arc::from(new_key) };
        self.names.insert(key, name.clone());
        Ok(name)
    }

    /// A member named `name` left: its name is free again, and after many have left, what
    /// the names took is given back.
    pub(super) fn drop_name(&mut self, name: &str) {
        self.names.remove(name.to_lowercase().as_str());
        if self.names.capacity() > 4 * self.names.len() + 64 {
            self.names.shrink_to_fit();
        }
    }

    /// Takes a new member's name: the next free `guest-N`, `prefix` between the two parts
    /// (with Redis, the process's name).
    pub(super) fn guest_name(&mut self, prefix: &str) -> Arc<str> {
        loop {
            let name = format!("guest-{prefix}{}", self.next_guest).to_lowercase();
            self.next_guest += 1;
            // A member may have renamed itself guest-N already.
            if !self.names.contains_key(name.as_str()) {
                let name: Arc<str> = Arc::from(name);
                self.names.insert(name.clone(), name.clone());
                return name;
            }
        }
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
    pub(crate) fn new(
        loops: usize,
        next_message_id: u64,
        journal: Option<Journal>,
        rule: PresenceRule,
    ) -> Hub {
        Hub {
            state: Mutex::new(Shared {
                next_message_id,
                next_guest: 1,
                online: 0,
                names: HashMap::new(),
                presence: Presence::new(rule.every, rule.names_up_to),
            }),
            presence_due: AtomicU64::new(0),
            epoch: Instant::now(),
            member_list: Mutex::new(None),
            list_every: rule.every,
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

    /// When the gathered joins and leaves are due to be told, if any wait.
    pub(crate) fn presence_due(&self) -> Option<Instant> {
        match self.presence_due.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.epoch + Duration::from_nanos(nanos - 1)),
        }
    }

    /// Publishes `state.presence`'s gathered notice if it is due at `now` (or at once, with
    /// `now_anyway`), under the state lock the caller holds; returns whether the other loops
    /// are to be woken.
    pub(super) fn tell_presence(&self, state: &mut Shared, now: Instant, now_anyway: bool) -> bool {
        let notice = state.presence.take(now, now_anyway);
        let due = state.presence.due().map_or(0, |due| {
            let nanos = due.saturating_duration_since(self.epoch).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
        });
        self.presence_due.store(due, Ordering::Relaxed);
        let Some(notice) = notice else { return false };
        let names = notice.names && state.presence.names_told(state.online);
        let changed = notice.delta != 0;
        let ts = unix_millis();
        let Some(parts) =
            protocol::gathered_parts(&notice.joined, &notice.left, names, changed, ts)
        else {
            return false;
        };
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.presence_via(relay, state, parts, notice.delta);
        }
        let (head, tail) = parts;
        let json = format!("{head}{}{tail}", state.online);
        self.publish(state, Item { frame: SharedFrame::text(&json), message: None });
        true
    }

    /// Changes the shared state with `change` (a join or a leave gathered into the presence),
    /// then tells the gathered presence if it is due at `now`, and wakes the other loops if
    /// something was published. What `change` returns is returned.
    pub(super) fn gather<T>(
        &self,
        from: usize,
        now: Instant,
        change: impl FnOnce(&mut Shared) -> T,
    ) -> T {
        let mut state = lock(&self.state);
        let result = change(&mut state);
        let wake = self.tell_presence(&mut state, now, false);
        drop(state);
        if wake {
            self.wake_others(from);
        }
        result
    }

    /// The loops' timer: tells the gathered presence if it is due at `now`.
    pub(crate) fn presence_timer(&self, from: usize, now: Instant) {
        self.gather(from, now, |_| ());
    }

    /// A member joined at `now`: its guest name and the online count. The join is told with
    /// the others of its interval.
    pub(crate) fn join(&self, from: usize, now: Instant) -> (Arc<str>, usize) {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.join_via(relay, from, now);
        }
        if let Some(here) = self.here.get(from) {
            here.fetch_add(1, Ordering::Relaxed);
        }
        self.gather(from, now, |state| {
            let name = state.guest_name("");
            state.online += 1;
            let online = state.online;
            state.presence.join(&name, online, now);
            (name, online)
        })
    }

    /// A member left at `now`; told with the others of its interval.
    pub(crate) fn leave(&self, from: usize, name: &str, now: Instant) {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.leave_via(relay, from, name, now);
        }
        if let Some(here) = self.here.get(from) {
            let _ = here.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        self.gather(from, now, |state| {
            state.drop_name(name);
            state.online = state.online.saturating_sub(1);
            let online = state.online;
            state.presence.leave(name, online, now);
        });
    }

    /// A member takes the nickname `to` (already checked to be valid), if nobody has it. What
    /// was gathered is told first; then the rename, to everyone while names are told.
    pub(crate) fn rename(
        &self,
        from: usize,
        old: &str,
        to: &str,
        now: Instant,
    ) -> Result<(Told, Arc<str>), Refused> {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.rename_via(relay, from, old, to, now);
        }
        let mut state = lock(&self.state);
        let name = state.take_name(old, to)?;
        self.tell_presence(&mut state, now, true);
        let told = if state.presence.names_told(state.online) {
            let notice = protocol::presence("rename", to, Some(old), state.online, unix_millis());
            self.publish(&mut state, Item { frame: SharedFrame::text(&notice), message: None });
            Told::Everyone
        } else {
            Told::OnlyTheMember
        };
        drop(state);
        self.wake_others(from);
        Ok((told, name))
    }

    /// A chat message from `name`: its id is the next in the one order.
    pub(crate) fn say(
        &self,
        from: usize,
        name: &str,
        text: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        #[cfg(feature = "redis")]
        if let Some(relay) = self.relay.get() {
            return self.say_via(relay, from, name, text, now);
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
        self.tell_presence(&mut state, now, true);
        state.next_message_id += 1;
        Counters::add(&self.stats.messages, 1);
        let frame = SharedFrame::text(&message.to_json(false));
        self.publish(&mut state, Item { frame, message: Some(message) });
        drop(state);
        self.wake_others(from);
        Ok(())
    }

    /// The members' names (at most [`protocol::MAX_LISTED`], sorted), and whether that is every
    /// member of the chat (with Redis, it is this process's members).
    pub(crate) fn members(&self) -> (Vec<String>, usize, bool) {
        let state = lock(&self.state);
        let mut keys: Vec<&Arc<str>> = state.names.keys().collect();
        keys.sort_unstable();
        let names: Vec<String> = keys
            .into_iter()
            .take(protocol::MAX_LISTED)
            .filter_map(|key| state.names.get(key).map(|name| name.to_string()))
            .collect();
        let complete = names.len() == state.names.len() && state.names.len() >= state.online;
        (names, state.online, complete)
    }

    /// The member list as sent (type 6), made at most once per presence interval and shared by
    /// everyone who asks meanwhile (so at most that old): asking costs the asker its copy, not
    /// the chat a sort of every name per request.
    pub(crate) fn member_list(&self, now: Instant) -> SharedFrame {
        let mut cached = lock(&self.member_list);
        if let Some((at, frame)) = &*cached
            && now.saturating_duration_since(*at) < self.list_every
        {
            return frame.clone();
        }
        let (names, online, complete) = self.members();
        let frame = SharedFrame::text(&protocol::members(&names, online, complete));
        *cached = Some((now, frame.clone()));
        frame
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

    const RULE: PresenceRule = PresenceRule { every: Duration::from_millis(250), names_up_to: 3 };

    fn texts(items: &VecDeque<Item>) -> Vec<String> {
        items.iter().map(|i| String::from_utf8_lossy(i.frame.payload()).into_owned()).collect()
    }

    #[test]
    fn every_inbox_gets_the_same_items_in_one_order() {
        let hub = Hub::new(3, 1, None, RULE);
        let now = Instant::now();
        let (a, _) = hub.join(0, now);
        let (b, online) = hub.join(2, now);
        assert_eq!((&*a, &*b, online), ("guest-1", "guest-2", 2));
        hub.say(1, &a, "one", now).unwrap();
        hub.say(2, &b, "two", now).unwrap();
        assert_eq!(hub.rename(0, &a, "Alice", now), Ok((Told::Everyone, Arc::from("Alice"))));
        assert_eq!(hub.rename(1, &b, "ALICE", now), Err(Refused::NameTaken));
        hub.leave(2, &b, now);
        hub.presence_timer(2, now + RULE.every);
        let first = texts(&hub.take(0));
        // guest-1's join at once; guest-2's with the first message; the leave on the timer.
        assert_eq!(first.len(), 6, "{first:?}");
        assert_eq!(first, texts(&hub.take(1)));
        assert_eq!(first, texts(&hub.take(2)));
        assert!(hub.take(0).is_empty(), "taken once");
        assert!(first[1].contains(r#""event":"join","name":"guest-2""#), "{}", first[1]);
        assert!(first[2].contains("\"message\":\"one\"") && first[2].contains("\"id\":1"));
        assert!(first[3].contains("\"message\":\"two\"") && first[3].contains("\"id\":2"));
        assert!(first[4].contains(r#""event":"rename""#));
        assert!(first[5].contains(r#""event":"leave","name":"guest-2""#), "{}", first[5]);
        assert_eq!(hub.online(), 1);
        assert_eq!(hub.per_loop(), [1, 0, 0], "the member of loop 0 is still there");
        assert_eq!(hub.stats.snapshot().messages, 2);
        assert_eq!(hub.members(), (vec!["Alice".to_owned()], 1, true));
    }

    #[test]
    fn joins_on_every_loop_are_told_together() {
        let hub = Hub::new(2, 1, None, RULE);
        let start = Instant::now();
        hub.join(0, start);
        assert_eq!(texts(&hub.take(1)).len(), 1, "the first join at once");
        hub.take(0);
        let at = |ms| start + Duration::from_millis(ms);
        hub.join(1, at(10));
        hub.join(0, at(20));
        assert_eq!(hub.presence_due(), Some(at(250)));
        hub.presence_timer(1, at(249));
        assert!(hub.take(0).is_empty(), "not due yet");
        hub.presence_timer(0, at(250));
        assert_eq!(hub.presence_due(), None);
        let told = texts(&hub.take(1));
        assert_eq!(told.len(), 1);
        assert_eq!(texts(&hub.take(0)), told);
        let notice: serde_json::Value = serde_json::from_str(&told[0]).unwrap();
        assert_eq!(notice["event"], "batch");
        assert_eq!(notice["joined"], serde_json::json!(["guest-2", "guest-3"]));
        assert_eq!(notice["online"], 3);
        // Past the room size (3): the count alone, and a rename is told to nobody else.
        hub.join(1, at(600));
        assert_eq!(hub.presence_due(), Some(at(1250)), "a count waits four intervals");
        hub.presence_timer(1, at(1250));
        hub.take(1);
        let count: serde_json::Value = serde_json::from_str(&texts(&hub.take(0))[0]).unwrap();
        assert_eq!((count["event"].as_str(), count["online"].as_u64()), (Some("count"), Some(4)));
        assert_eq!(
            hub.rename(0, "guest-1", "Zed", at(700)),
            Ok((Told::OnlyTheMember, "Zed".into()))
        );
        assert!(hub.take(0).is_empty());
        let (names, online, complete) = hub.members();
        assert_eq!((names.len(), online, complete), (4, 4, true));
        assert_eq!(names[3], "Zed", "sorted by lowercased name");
    }

    #[test]
    fn a_stalled_loop_makes_messages_fail_not_grow() {
        let hub = Hub::new(2, 1, None, RULE);
        let now = Instant::now();
        let (name, _) = hub.join(0, now);
        for i in 0..MAX_INBOX - 1 {
            hub.say(0, &name, &i.to_string(), now).unwrap();
            if i % 1024 == 0 {
                hub.take(0); // loop 0 keeps up, loop 1 does not
            }
        }
        assert_eq!(hub.say(0, &name, "one too many", now), Err(Refused::Busy));
        hub.take(1);
        assert_eq!(hub.say(0, &name, "after it caught up", now), Ok(()));
        // Presence is never refused.
        hub.join(1, now);
    }
}
