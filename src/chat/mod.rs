//! The group chat: the tutorial's Node `ws` server made real, as a thin [`Handler`] over the
//! connection table.
//!
//! Every chat message is encoded once as a [`SharedFrame`] and queued for every member without
//! copying; a member that reads too slowly is closed by the event loop at its outbox cap
//! (1008), and everybody else carries on. The page is served on the same port (`GET /`).

pub mod protocol;

use crate::close::CloseCode;
use crate::connection::{Opened, SendError};
use crate::http::Page;
use crate::message::Message;
use crate::server::{Closed, ConnId, Ctx, Handler, SharedFrame};
use bytes::Bytes;
use protocol::{ChatMessage, Command};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The chat page, embedded in the binary.
pub const PAGE_HTML: &[u8] = include_bytes!("page.html");

/// The page as served at `/`.
pub fn page() -> Page {
    Page {
        path: "/".into(),
        content_type: "text/html; charset=utf-8".into(),
        body: Bytes::from_static(PAGE_HTML),
    }
}

/// The chat's own settings (the server's limits are in `server::Options`).
#[derive(Clone, Debug)]
pub struct ChatOptions {
    /// How often every client gets the tutorial's heartbeat; `None`: never.
    pub heartbeat: Option<Duration>,
    /// How many recent messages a new client is sent.
    pub history: usize,
    /// How fast one client may send; past it, the client is closed with 1008.
    pub rate_limit: Option<RateLimit>,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            heartbeat: Some(Duration::from_secs(5)),
            history: 50,
            rate_limit: Some(RateLimit { per_second: 20.0, burst: 40.0 }),
        }
    }
}

/// A token bucket: `burst` messages at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Messages that may be sent at once after a quiet spell.
    pub burst: f64,
}

/// What the chat has done, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Chat messages accepted and broadcast.
    pub messages: u64,
    /// Frames queued for members (each broadcast counts once per recipient).
    pub deliveries: u64,
    /// Members closed because they read too slowly (outbox over its cap).
    pub slow_readers_closed: u64,
    /// Heartbeats sent (each counts once per round, not per member).
    pub heartbeats: u64,
    /// Members closed for sending faster than the rate limit.
    pub rate_limited: u64,
}

struct Member {
    name: String,
    /// We closed this member (too fast, or binary): what it still sends is ignored.
    closing: bool,
    /// Messages the member may still send now (token bucket).
    tokens: f64,
    /// When `tokens` was last topped up.
    refilled: Instant,
}

impl Member {
    /// Takes one token; false when the bucket is empty.
    fn allow(&mut self, limit: &RateLimit, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(limit.burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// The chat handler.
pub struct Chat {
    options: ChatOptions,
    members: HashMap<ConnId, Member>,
    history: VecDeque<ChatMessage>,
    next_message_id: u64,
    next_guest: u64,
    next_heartbeat: Option<Instant>,
    heartbeat: SharedFrame,
    stats: ChatStats,
}

impl Chat {
    /// A chat with no members.
    pub fn new(options: ChatOptions) -> Chat {
        Chat {
            options,
            members: HashMap::new(),
            history: VecDeque::new(),
            next_message_id: 1,
            next_guest: 1,
            next_heartbeat: None,
            heartbeat: SharedFrame::text(protocol::HEARTBEAT),
            stats: ChatStats::default(),
        }
    }

    /// What the chat has done so far.
    pub fn stats(&self) -> &ChatStats {
        &self.stats
    }

    /// Queues `frame` for every member, in member order; members over their cap are counted.
    fn broadcast(&mut self, ctx: &mut Ctx<'_>, frame: &SharedFrame) {
        for &id in self.members.keys() {
            match ctx.send_shared(id, frame) {
                Ok(()) => self.stats.deliveries += 1,
                Err(SendError::Overflow) => self.stats.slow_readers_closed += 1,
                // Closing already: its leave notice follows when it is gone.
                Err(_) => {}
            }
        }
    }

    fn say(&mut self, ctx: &mut Ctx<'_>, id: ConnId, text: &str) {
        if text.is_empty() {
            let _ = ctx.send_text(&protocol::error("empty message"));
            return;
        }
        let Some(member) = self.members.get(&id) else { return };
        let message = ChatMessage {
            text: text.to_owned(),
            name: member.name.clone(),
            ts: unix_millis(),
            id: self.next_message_id,
        };
        self.next_message_id += 1;
        self.stats.messages += 1;
        self.broadcast(ctx, &SharedFrame::text(&message.to_json(false)));
        if self.options.history > 0 {
            if self.history.len() == self.options.history {
                self.history.pop_front();
            }
            self.history.push_back(message);
        }
    }

    fn rename(&mut self, ctx: &mut Ctx<'_>, id: ConnId, wanted: &str) {
        let name = match protocol::valid_name(wanted) {
            Ok(name) => name,
            Err(reason) => {
                let _ = ctx.send_text(&protocol::error(reason));
                return;
            }
        };
        let taken = self
            .members
            .iter()
            .any(|(other, m)| *other != id && m.name.to_lowercase() == name.to_lowercase());
        if taken {
            let _ = ctx.send_text(&protocol::error("that nickname is taken"));
            return;
        }
        let Some(member) = self.members.get_mut(&id) else { return };
        let old = std::mem::replace(&mut member.name, name.to_owned());
        let notice =
            protocol::presence("rename", name, Some(&old), self.members.len(), unix_millis());
        self.broadcast(ctx, &SharedFrame::text(&notice));
    }
}

impl Handler for Chat {
    fn on_open(&mut self, ctx: &mut Ctx<'_>, _opened: &Opened) {
        let Some(id) = ctx.id() else { return };
        let name = format!("guest-{}", self.next_guest);
        self.next_guest += 1;
        let tokens = self.options.rate_limit.map_or(0.0, |limit| limit.burst);
        self.members
            .insert(id, Member { name: name.clone(), closing: false, tokens, refilled: ctx.now() });
        if self.next_heartbeat.is_none() {
            self.next_heartbeat = self.options.heartbeat.map(|every| ctx.now() + every);
        }
        let _ = ctx.send_text(&protocol::welcome(&name, self.members.len()));
        for message in &self.history {
            let _ = ctx.send_text(&message.to_json(true));
        }
        let notice = protocol::presence("join", &name, None, self.members.len(), unix_millis());
        self.broadcast(ctx, &SharedFrame::text(&notice));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message<'_>) {
        let Some(id) = ctx.id() else { return };
        let Some(member) = self.members.get_mut(&id) else { return };
        if member.closing {
            return;
        }
        let Some(text) = message.as_text() else {
            member.closing = true;
            let reason = "binary messages are not supported";
            let _ = ctx.close(id, CloseCode::UNSUPPORTED_DATA, reason);
            return;
        };
        if let Some(limit) = self.options.rate_limit
            && !member.allow(&limit, ctx.now())
        {
            member.closing = true;
            self.stats.rate_limited += 1;
            let _ = ctx.close(id, CloseCode::POLICY_VIOLATION, "sending too fast");
            return;
        }
        match protocol::parse(text) {
            Command::Say(text) => self.say(ctx, id, &text),
            Command::Nick(name) => self.rename(ctx, id, &name),
            Command::Invalid(reason) => {
                let _ = ctx.send_text(&protocol::error(reason));
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _closed: &Closed) {
        let Some(id) = ctx.id() else { return };
        let Some(member) = self.members.remove(&id) else { return };
        let notice =
            protocol::presence("leave", &member.name, None, self.members.len(), unix_millis());
        self.broadcast(ctx, &SharedFrame::text(&notice));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_heartbeat
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let (Some(due), Some(every)) = (self.next_heartbeat, self.options.heartbeat) else {
            self.next_heartbeat = None;
            return;
        };
        let frame = self.heartbeat.clone();
        self.broadcast(ctx, &frame);
        self.stats.heartbeats += 1;
        // Keep the cadence; after a stall, start again from now rather than send a burst.
        let next = due + every;
        self.next_heartbeat = Some(if next > ctx.now() { next } else { ctx.now() + every });
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
