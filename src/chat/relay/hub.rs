//! The chat's hub when it is shared through Redis: the stream gives the order, the ids and the
//! online count; the hub hands what the reader reads to every loop.

use super::{Entry, Full, Kind, Outgoing, Relay, online_of};
use crate::chat::hub::{Counters, Hub, Item, Refused, lock};
use crate::chat::protocol::ChatMessage;
use crate::server::SharedFrame;

impl Hub {
    fn presence_via(&self, relay: &Relay, from: usize, parts: (String, String), delta: i64) {
        let (head, tail) = parts;
        let up = relay.is_up();
        let online = lock(&self.state).online;
        let json = format!("{head}{online}{tail}");
        let item = Outgoing { kind: Kind::Presence, head, tail, delta, delivered_as: None };
        let queued = relay.append(item, !up).is_ok();
        // Redis is down (the notice is counted when it is back), or its queue is full: the
        // notice is shown here now, so that members of this process always see who came and
        // went.
        if !up || !queued {
            let mut state = lock(&self.state);
            self.publish(&mut state, Item { frame: SharedFrame::text(&json), message: None });
            drop(state);
            self.wake_others(from);
        }
    }

    pub(in crate::chat) fn join_via(&self, relay: &Relay, from: usize) -> (String, usize) {
        let (name, online) = {
            let mut state = lock(&self.state);
            let name = loop {
                // Guest numbers are per process: the process's name keeps them apart.
                let name = format!("guest-{}-{}", &relay.process()[..4], state.next_guest);
                state.next_guest += 1;
                if state.names.insert(name.to_lowercase()) {
                    break name;
                }
            };
            (name, state.online + 1)
        };
        let parts =
            crate::chat::protocol::presence_parts("join", &name, None, crate::chat::unix_millis());
        self.presence_via(relay, from, parts, 1);
        (name, online)
    }

    pub(in crate::chat) fn leave_via(&self, relay: &Relay, from: usize, name: &str) {
        lock(&self.state).names.remove(&name.to_lowercase());
        let parts =
            crate::chat::protocol::presence_parts("leave", name, None, crate::chat::unix_millis());
        self.presence_via(relay, from, parts, -1);
    }

    /// Nicknames are unique within one process (a name taken in another is not known here).
    pub(in crate::chat) fn rename_via(
        &self,
        relay: &Relay,
        from: usize,
        old: &str,
        to: &str,
    ) -> Result<(), Refused> {
        lock(&self.state).take_name(old, to)?;
        let parts = crate::chat::protocol::presence_parts(
            "rename",
            to,
            Some(old),
            crate::chat::unix_millis(),
        );
        self.presence_via(relay, from, parts, 0);
        Ok(())
    }

    pub(in crate::chat) fn say_via(
        &self,
        relay: &Relay,
        from: usize,
        name: &str,
        text: &str,
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
        relay.append(item, !up).map_err(|Full| Refused::Busy)?;
        Counters::add(&self.stats.messages, 1);
        if let Some(json) = local {
            let mut state = lock(&self.state);
            self.publish(&mut state, Item { frame: SharedFrame::text(&json), message: None });
            drop(state);
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
