//! The chat's hub when it is shared through Redis: the stream gives the order, the ids and the
//! online count; the hub hands what the reader reads to every loop.

use super::{Entry, Full, Kind, Outgoing, Relay, online_of};
use crate::chat::hub::{Counters, Hub, Item, Refused, Shared, Told, lock};
use crate::chat::protocol::ChatMessage;
use crate::server::SharedFrame;
use std::sync::Arc;
use std::time::Instant;

impl Hub {
    /// Gives a presence notice to the writer, under the state lock the caller holds. When Redis
    /// is down (the notice is counted when it is back) or its queue is full, the notice is
    /// published here now, so that members of this process always see who came and went; then
    /// it returns true (the other loops are to be woken).
    pub(in crate::chat) fn presence_via(
        &self,
        relay: &Relay,
        state: &mut Shared,
        parts: (String, String),
        delta: i64,
    ) -> bool {
        let (head, tail) = parts;
        let up = relay.is_up();
        let json = format!("{head}{}{tail}", state.online);
        let item = Outgoing { kind: Kind::Presence, head, tail, delta, delivered_as: None };
        let queued = relay.append(item, !up).is_ok();
        if !up || !queued {
            self.publish(state, Item { frame: SharedFrame::text(&json), message: None });
            return true;
        }
        false
    }

    pub(in crate::chat) fn join_via(
        &self,
        relay: &Relay,
        from: usize,
        now: Instant,
    ) -> (Arc<str>, usize) {
        self.gather(from, now, |state| {
            // Guest numbers are per process: the process's name keeps them apart.
            let name = state.guest_name(&format!("{}-", &relay.process()[..4]));
            // The count the stream said last, and this member.
            let online = state.online + 1;
            state.presence.join(&name, online, now);
            (name, online)
        })
    }

    pub(in crate::chat) fn leave_via(&self, _relay: &Relay, from: usize, name: &str, now: Instant) {
        self.gather(from, now, |state| {
            state.drop_name(name);
            let online = state.online.saturating_sub(1);
            state.presence.leave(name, online, now);
        });
    }

    /// Nicknames are unique within one process (a name taken in another is not known here).
    pub(in crate::chat) fn rename_via(
        &self,
        relay: &Relay,
        from: usize,
        old: &str,
        to: &str,
        now: Instant,
    ) -> Result<(Told, Arc<str>), Refused> {
        let mut state = lock(&self.state);
        let name = state.take_name(old, to)?;
        let mut wake = self.tell_presence(&mut state, now, true);
        let told = if state.presence.names_told(state.online) {
            let ts = crate::chat::unix_millis();
            let parts = crate::chat::protocol::presence_parts("rename", to, Some(old), ts);
            wake |= self.presence_via(relay, &mut state, parts, 0);
            Told::Everyone
        } else {
            Told::OnlyTheMember
        };
        drop(state);
        if wake {
            self.wake_others(from);
        }
        Ok((told, name))
    }

    pub(in crate::chat) fn say_via(
        &self,
        relay: &Relay,
        from: usize,
        name: &str,
        text: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        if self.any_inbox_full() {
            return Err(Refused::Busy);
        }
        let ts = crate::chat::unix_millis();
        let (head, tail) = crate::chat::protocol::message_parts(text, name, ts);
        let up = relay.is_up();
        // Redis is down: delivered here now, without an id (the stream gives ids), and
        // appended when it is back.
        let local = (!up).then(|| format!("{}{tail}", head.trim_end_matches(r#","id":"#)));
        let item = Outgoing { kind: Kind::Message, head, tail, delta: 0, delivered_as: None };
        // What was gathered goes first, under the lock, so that it is appended before this.
        let mut state = lock(&self.state);
        let mut wake = self.tell_presence(&mut state, now, true);
        relay.append(item, !up).map_err(|Full| Refused::Busy)?;
        Counters::add(&self.stats.messages, 1);
        if let Some(json) = local {
            self.publish(&mut state, Item { frame: SharedFrame::text(&json), message: None });
            wake = true;
        }
        drop(state);
        if wake {
            self.wake_others(from);
        }
        Ok(())
    }

    /// An entry read from the stream: to every loop, in stream order.
    pub(in crate::chat) fn read_from_relay(&self, entry: &Entry) {
        let mut state = lock(&self.state);
        let message = match entry.kind {
            Kind::Message => ChatMessage::from_json(&entry.json),
            Kind::Presence => {
                if let Some(online) = online_of(&entry.json) {
                    state.online = online;
                }
                None
            }
        };
        if let Some(message) = &message {
            state.next_message_id = state.next_message_id.max(message.id + 1);
        }
        self.publish(&mut state, Item { frame: SharedFrame::text(&entry.json), message });
        drop(state);
        self.wake_others(usize::MAX);
    }

    /// An entry of this process's that its members have seen already (Redis was down): only
    /// its id and count are taken.
    pub(in crate::chat) fn seen_from_relay(&self, entry: &Entry) {
        let mut state = lock(&self.state);
        match entry.kind {
            Kind::Message => {
                if let Some(message) = ChatMessage::from_json(&entry.json) {
                    state.next_message_id = state.next_message_id.max(message.id + 1);
                }
            }
            Kind::Presence => {
                if let Some(online) = online_of(&entry.json) {
                    state.online = online;
                }
            }
        }
    }
}
