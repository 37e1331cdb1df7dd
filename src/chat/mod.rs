//! The group chat: the tutorial's Node `ws` server made real, as a thin [`Handler`] over the
//! connection table.
//!
//! Each member's state ([`Member`]: its name and rate limit) lives in the server's table, beside
//! its connection. Every chat message is encoded once as a [`SharedFrame`] and queued for every
//! member without copying; a member that reads too slowly is closed by the event loop at its
//! outbox cap (1008), and everybody else carries on. A member that sends faster than its rate
//! limit is slowed down, not cut off: the server stops reading from it until its tokens refill.
//! The page is served on the same port (`GET /`).

mod member;
pub mod protocol;

pub use member::{Bucket, Cadence, Member, RateLimit};

use crate::close::CloseCode;
use crate::handshake::Request;
use crate::message::Message;
use crate::policy::{Page, Policy};
use crate::server::{CloseStatus, Ctx, Decision, Handler, SharedFrame};
use bytes::Bytes;
use protocol::{ChatMessage, Command};
use std::collections::VecDeque;
use std::net::SocketAddr;
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

/// The chat's answer to requests: its page at `/`, WebSockets at `/` only.
pub fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.pages.push(page());
    policy.websocket_path = Some("/".into());
    policy
}

/// The chat's own settings (the server's limits are in `server::Options`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChatOptions {
    /// How often every client gets the tutorial's heartbeat; `None`: never.
    pub heartbeat: Option<Duration>,
    /// How many recent messages a new client is sent.
    pub history: usize,
    /// How fast one client may send; past it, the server reads from it at that rate.
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

/// What the chat has done, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatStats {
    /// Chat messages accepted and broadcast.
    pub messages: u64,
    /// Frames queued for members (each broadcast counts once per recipient).
    pub deliveries: u64,
    /// Members closed because they read too slowly (outbox over its cap).
    pub slow_readers_closed: u64,
    /// Heartbeats sent (each counts once per round, not per member).
    pub heartbeats: u64,
    /// Times the server stopped reading from a member that sent faster than the rate limit.
    pub throttled: u64,
}

/// The chat handler.
pub struct Chat {
    options: ChatOptions,
    policy: Policy,
    online: usize,
    history: VecDeque<ChatMessage>,
    next_message_id: u64,
    next_guest: u64,
    heartbeat: Option<Cadence>,
    heartbeat_frame: SharedFrame,
    stats: ChatStats,
}

impl Chat {
    /// A chat with no members, answering requests with [`policy`].
    pub fn new(options: ChatOptions) -> Chat {
        Chat::with_policy(options, policy())
    }

    /// A chat whose requests are answered by `policy` (say, [`policy`] with an Origin
    /// allowlist).
    pub fn with_policy(options: ChatOptions, policy: Policy) -> Chat {
        Chat {
            heartbeat: options.heartbeat.map(Cadence::new),
            options,
            policy,
            online: 0,
            history: VecDeque::new(),
            next_message_id: 1,
            next_guest: 1,
            heartbeat_frame: SharedFrame::text(protocol::HEARTBEAT),
            stats: ChatStats::default(),
        }
    }

    /// What the chat has done so far.
    pub fn stats(&self) -> &ChatStats {
        &self.stats
    }

    /// Queues `frame` for every member; members over their cap are counted.
    fn broadcast(&mut self, ctx: &mut Ctx<'_, Member>, frame: &SharedFrame) {
        let delivery = ctx.broadcast(frame);
        self.stats.deliveries += delivery.queued as u64;
        self.stats.slow_readers_closed += delivery.cut_off as u64;
    }

    fn say(&mut self, ctx: &mut Ctx<'_, Member>, member: &Member, text: &str) {
        if text.is_empty() {
            let _ = ctx.send_text(&protocol::error("empty message"));
            return;
        }
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

    fn rename(&mut self, ctx: &mut Ctx<'_, Member>, member: &mut Member, wanted: &str) {
        let name = match protocol::valid_name(wanted) {
            Ok(name) => name,
            Err(reason) => {
                let _ = ctx.send_text(&protocol::error(reason));
                return;
            }
        };
        let lower = name.to_lowercase();
        if ctx.connections().any(|(_, other)| other.name.to_lowercase() == lower) {
            let _ = ctx.send_text(&protocol::error("that nickname is taken"));
            return;
        }
        let old = std::mem::replace(&mut member.name, name.to_owned());
        let notice = protocol::presence("rename", name, Some(&old), self.online, unix_millis());
        self.broadcast(ctx, &SharedFrame::text(&notice));
    }
}

impl Handler for Chat {
    type State = Member;

    fn on_request(&mut self, request: &Request, _peer: SocketAddr) -> Decision<Member> {
        Decision::from_policy(self.policy.decide(request), Member::default)
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_, Member>, member: &mut Member) {
        member.name = format!("guest-{}", self.next_guest);
        self.next_guest += 1;
        self.online += 1;
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat.start(ctx.now());
        }
        let _ = ctx.send_text(&protocol::welcome(&member.name, self.online));
        for message in &self.history {
            let _ = ctx.send_text(&message.to_json(true));
        }
        let notice = protocol::presence("join", &member.name, None, self.online, unix_millis());
        self.broadcast(ctx, &SharedFrame::text(&notice));
    }

    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, Member>,
        member: &mut Member,
        message: &Message<'_>,
    ) {
        let Some(id) = ctx.id() else { return };
        if member.closing {
            return;
        }
        let Some(text) = message.as_text() else {
            member.closing = true;
            let reason = "binary messages are not supported";
            let _ = ctx.close(id, CloseCode::UNSUPPORTED_DATA, reason);
            return;
        };
        // Over its rate, a member is slowed down: nothing it sent is dropped.
        if let Some(limit) = self.options.rate_limit
            && let Some(resume) = member.bucket.spend(&limit, ctx.now())
        {
            self.stats.throttled += 1;
            ctx.pause_reading(resume);
        }
        match protocol::parse(text) {
            Command::Say(text) => self.say(ctx, member, &text),
            Command::Nick(name) => self.rename(ctx, member, &name),
            Command::Invalid(reason) => {
                let _ = ctx.send_text(&protocol::error(reason));
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Member>, member: Member, _status: &CloseStatus) {
        self.online -= 1;
        let notice = protocol::presence("leave", &member.name, None, self.online, unix_millis());
        self.broadcast(ctx, &SharedFrame::text(&notice));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.heartbeat.as_ref().and_then(Cadence::next)
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_, Member>) {
        if self.heartbeat.as_mut().is_some_and(|heartbeat| heartbeat.fire(ctx.now())) {
            let frame = self.heartbeat_frame.clone();
            self.broadcast(ctx, &frame);
            self.stats.heartbeats += 1;
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
