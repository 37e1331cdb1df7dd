//! The group chat: the tutorial's Node `ws` server made real, as a thin [`Handler`] over the
//! connection table, on one event loop or several (`hub.rs`: one order for all).
//!
//! Each member's state ([`Member`]: its name and rate limit) lives in the server's table, beside
//! its connection. Every chat message is encoded once as a [`SharedFrame`] and queued for every
//! member without copying; a member that reads too slowly is closed by the event loop at its
//! outbox cap (1008), and everybody else carries on. A member that sends faster than its rate
//! limit is slowed down, not cut off: the server stops reading from it until its tokens refill.
//! The page is served on the same port (`GET /`).

mod hub;
mod journal;
mod member;
mod presence;
pub mod protocol;
#[cfg(feature = "redis")]
mod relay;

pub use member::{Bucket, Cadence, Member, RateLimit};

use crate::close::CloseCode;
use crate::handshake::Request;
use crate::message::Message;
use crate::policy::{Page, Policy};
use crate::server::{CloseStatus, ConnId, Ctx, Decision, Handler, ServerHandle, SharedFrame};
use bytes::Bytes;
use hub::{Counters, Hub, PresenceRule, Told};
use protocol::{ChatMessage, Command};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
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
    /// How many recent messages are kept for clients that resume (`?since=ID`): a client
    /// away for fewer messages than this misses none.
    pub kept: usize,
    /// How fast one client may send; past it, the server reads from it at that rate.
    pub rate_limit: Option<RateLimit>,
    /// Joins and leaves are gathered and told at most this often, as one notice.
    pub presence_interval: Duration,
    /// Up to this many members online, joins, leaves and renames are told by name; above it,
    /// only the online count (a client asks for the member list with `{"cmd":"who"}`).
    pub presence_names: usize,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            heartbeat: Some(Duration::from_secs(5)),
            history: 50,
            kept: 1000,
            rate_limit: Some(RateLimit { per_second: 20.0, burst: 40.0 }),
            presence_interval: Duration::from_millis(250),
            presence_names: 200,
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
    /// Heartbeats sent (each counts once per round and loop, not per member).
    pub heartbeats: u64,
    /// Times the server stopped reading from a member that sent faster than the rate limit.
    pub throttled: u64,
}

/// The chat's numbers, readable from any thread while it runs ([`Chat::watch`]).
#[derive(Clone, Debug)]
pub struct ChatWatch {
    hub: Arc<Hub>,
}

impl ChatWatch {
    /// Members online now, in every loop.
    pub fn online(&self) -> usize {
        self.hub.online()
    }

    /// Members on each event loop, in loop order (how the kernel spread the connections).
    pub fn per_loop(&self) -> Vec<usize> {
        self.hub.per_loop()
    }

    /// What the chat has done so far.
    pub fn stats(&self) -> ChatStats {
        self.hub.stats.snapshot()
    }
}

/// The chat handler: one per event loop. Members of every loop of one chat see one order (see
/// `hub.rs`); [`Chat::new`] is a chat run by one loop, [`Chat::group`] one run by several.
pub struct Chat {
    options: ChatOptions,
    policy: Policy,
    hub: Arc<Hub>,
    /// This loop's number in the group.
    index: usize,
    /// The recent chat messages this loop has delivered: the same on every loop, since every
    /// loop delivers the same items in the same order. A new member gets them, then whatever
    /// comes next, with no gap and no repeat. Each is encoded once, as history, and shared by
    /// every member it is replayed to.
    history: VecDeque<Kept>,
    heartbeat: Option<Cadence>,
    heartbeat_frame: SharedFrame,
}

/// A message kept for replay: its id, and its frame (marked as history).
struct Kept {
    id: u64,
    frame: SharedFrame,
}

impl Kept {
    fn new(message: &ChatMessage) -> Kept {
        Kept { id: message.id, frame: SharedFrame::text(&message.to_json(true)) }
    }

    /// From the frame every member got: the same JSON with `"history":true` before its last
    /// brace (a copy, not a second encoding of the text).
    fn from_live(message: &ChatMessage, live: &SharedFrame) -> Kept {
        let payload =
            std::str::from_utf8(live.payload()).ok().and_then(|json| json.strip_suffix('}'));
        match payload {
            Some(head) => Kept {
                id: message.id,
                frame: SharedFrame::text(&format!("{head},\"history\":true}}")),
            },
            None => Kept::new(message),
        }
    }
}

impl Chat {
    /// A chat with no members, answering requests with [`policy`].
    pub fn new(options: ChatOptions) -> Chat {
        Chat::with_policy(options, policy())
    }

    /// A chat whose requests are answered by `policy` (say, [`policy`] with an Origin
    /// allowlist).
    pub fn with_policy(options: ChatOptions, policy: Policy) -> Chat {
        let mut group = Chat::group(1, options, policy);
        group.remove(0)
    }

    /// One chat served by `loops` event loops: a handler for each, in loop order. Run them with
    /// [`crate::server::Loops`], and [`Chat::attach`] the loops' handles before they start, so
    /// that each loop can wake the others.
    pub fn group(loops: usize, options: ChatOptions, policy: Policy) -> Vec<Chat> {
        let hub = Hub::new(loops, 1, None, rule(&options));
        Chat::build(loops, options, policy, Arc::new(hub), VecDeque::new())
    }

    /// [`Chat::group`] with its history in a file (`--history-file`): every message is
    /// appended to it (see `journal.rs` for when it is on disk), and at start its last
    /// messages are the history and ids go on from the last one. A file that is not a chat
    /// history (but for a torn last line, which is dropped) is an error.
    pub fn open(
        loops: usize,
        options: ChatOptions,
        policy: Policy,
        history_file: &std::path::Path,
    ) -> std::io::Result<Vec<Chat>> {
        let loaded = journal::open(history_file, options.history.max(options.kept))?;
        let hub = Hub::new(loops, loaded.next_id, Some(loaded.journal), rule(&options));
        Ok(Chat::build(loops, options, policy, Arc::new(hub), loaded.recent))
    }

    /// [`Chat::group`] shared through Redis at `url` (`--redis`, cargo feature `redis`): any
    /// number of processes on any number of machines form one chat (see `relay/`). Redis
    /// must be reachable now: the history comes from its stream.
    #[cfg(feature = "redis")]
    pub fn connect_redis(
        loops: usize,
        options: ChatOptions,
        policy: Policy,
        url: &str,
    ) -> Result<Vec<Chat>, String> {
        let start = relay::connect(url, options.history.max(options.kept))?;
        let recent = start.recent.clone();
        let hub = Arc::new(Hub::new(loops, start.next_id, None, rule(&options)));
        hub.set_online(start.online);
        let seed = crate::random::os_seed().map_err(|e| format!("getrandom: {e}"))?;
        let process: String = seed[..8].iter().map(|b| format!("{b:02x}")).collect();
        let link = start.run(Arc::downgrade(&hub), process);
        hub.set_relay(link);
        Ok(Chat::build(loops, options, policy, hub, recent))
    }

    fn build(
        loops: usize,
        options: ChatOptions,
        policy: Policy,
        hub: Arc<Hub>,
        recent: VecDeque<ChatMessage>,
    ) -> Vec<Chat> {
        (0..loops.max(1))
            .map(|index| Chat {
                heartbeat: options.heartbeat.map(Cadence::new),
                options: options.clone(),
                policy: policy.clone(),
                hub: hub.clone(),
                index,
                history: recent.iter().map(Kept::new).collect(),
                heartbeat_frame: SharedFrame::text(protocol::HEARTBEAT),
            })
            .collect()
    }

    /// Gives the group the handle of every loop, in loop order (from
    /// [`crate::server::Loops::handles`], or the one `Server`'s handle). Any handler of the
    /// group may do it, once. Needed with several loops, and with Redis even for one (its
    /// reader thread wakes the loop).
    pub fn attach(&self, handles: Vec<ServerHandle>) {
        self.hub.attach(handles);
    }

    /// Members online now, in every loop of the chat.
    pub fn online(&self) -> usize {
        self.hub.online()
    }

    /// What the chat (every loop of it) has done so far.
    pub fn stats(&self) -> ChatStats {
        self.hub.stats.snapshot()
    }

    /// A view of the chat for other threads (a test, a metrics endpoint), while its loops run.
    pub fn watch(&self) -> ChatWatch {
        ChatWatch { hub: self.hub.clone() }
    }

    /// Queues `frame` for every member of this loop; members over their cap are counted.
    fn broadcast(&self, ctx: &mut Ctx<'_, Member>, frame: &SharedFrame) {
        let delivery = ctx.broadcast(frame);
        Counters::add(&self.hub.stats.deliveries, delivery.queued as u64);
        Counters::add(&self.hub.stats.slow_readers_closed, delivery.cut_off as u64);
    }

    /// Delivers what the chat said since last time, in the chat's one order, to this loop's
    /// members (but `skip`), and keeps the messages as history.
    fn deliver_skipping(&mut self, ctx: &mut Ctx<'_, Member>, skip: Option<ConnId>) {
        let keep = self.options.history.max(self.options.kept);
        for item in self.hub.take(self.index) {
            let delivery = match skip {
                Some(id) => ctx.broadcast_except(&item.frame, id),
                None => ctx.broadcast(&item.frame),
            };
            Counters::add(&self.hub.stats.deliveries, delivery.queued as u64);
            Counters::add(&self.hub.stats.slow_readers_closed, delivery.cut_off as u64);
            if let Some(message) = item.message
                && keep > 0
            {
                if self.history.len() == keep {
                    self.history.pop_front();
                }
                self.history.push_back(Kept::from_live(&message, &item.frame));
            }
        }
    }

    fn deliver(&mut self, ctx: &mut Ctx<'_, Member>) {
        self.deliver_skipping(ctx, None);
    }

    /// The history a new member gets: the last `history` messages; or, resuming after
    /// `since`, every kept message after it, and whether that is all it missed.
    fn catch_up(&self, since: Option<u64>) -> (Vec<&SharedFrame>, Option<bool>) {
        let Some(since) = since else {
            let skip = self.history.len().saturating_sub(self.options.history);
            return (self.history.iter().skip(skip).map(|kept| &kept.frame).collect(), None);
        };
        let next_id = self.hub.next_message_id();
        let given_out = since < next_id;
        // An id this chat never gave out (a restart without a history file began again from 1):
        // everything kept, which may not be all.
        let after: Vec<&SharedFrame> = self
            .history
            .iter()
            .filter(|kept| !given_out || kept.id > since)
            .map(|kept| &kept.frame)
            .collect();
        // Complete when `since` is an id this chat gave out and nothing after it was dropped:
        // the history holds everything from `since + 1` on (what came after the history is
        // still on its way to this loop, and follows it). An empty history dropped nothing,
        // unless nothing is kept at all.
        let kept_all = match self.history.front() {
            Some(oldest) => oldest.id <= since.saturating_add(1),
            None => {
                self.options.history.max(self.options.kept) > 0
                    || since.saturating_add(1) >= next_id
            }
        };
        (after, Some(given_out && kept_all))
    }

    fn say(&mut self, ctx: &mut Ctx<'_, Member>, member: &Member, text: &str) {
        if text.is_empty() {
            let _ = ctx.send_text(&protocol::error("empty message"));
            return;
        }
        match self.hub.say(self.index, &member.name, text, ctx.now()) {
            Ok(()) => self.deliver(ctx),
            Err(_) => {
                let _ = ctx.send_text(&protocol::error("the server is busy: message not sent"));
            }
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
        let old = std::mem::take(&mut member.name);
        match self.hub.rename(self.index, &old, name, ctx.now()) {
            Ok((told, name)) => {
                member.name = name.clone();
                // What was told before the rename first, then the rename.
                self.deliver(ctx);
                if told == Told::OnlyTheMember {
                    let online = self.hub.online();
                    let notice =
                        protocol::presence("rename", &name, Some(&old), online, unix_millis());
                    let _ = ctx.send_text(&notice);
                }
            }
            Err(_) => {
                member.name = old;
                let _ = ctx.send_text(&protocol::error("that nickname is taken"));
            }
        }
    }
}

impl Handler for Chat {
    type State = Member;

    fn on_request(&mut self, request: &Request, _peer: SocketAddr) -> Decision<Member> {
        // `?since=ID`: the id of the last message the client saw, to resume after it.
        let since = match request.query_param("since").map(str::parse::<u64>) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return Decision::reject(400, "since must be the id of a message"),
        };
        Decision::from_policy(self.policy.decide(request), || Member { since, ..Member::default() })
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_, Member>, member: &mut Member) {
        // What was said before this member came reaches the others, and this loop's history;
        // the member gets it from the history below, once.
        if let Some(id) = ctx.id() {
            self.deliver_skipping(ctx, Some(id));
        }
        let (name, online) = self.hub.join(self.index, ctx.now());
        member.name = name;
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat.start(ctx.now());
        }
        let (history, complete) = self.catch_up(member.since);
        let welcome = match (member.since, complete) {
            (Some(since), Some(complete)) => {
                protocol::welcome_resumed(&member.name, online, since, complete)
            }
            _ => protocol::welcome(&member.name, online),
        };
        let _ = ctx.send_text(&welcome);
        if let Some(id) = ctx.id() {
            for frame in history {
                let _ = ctx.send_shared(id, frame);
            }
        }
        // Then the join, and whatever came after the history above.
        self.deliver(ctx);
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
            Counters::add(&self.hub.stats.throttled, 1);
            ctx.pause_reading(resume);
        }
        match protocol::parse(text) {
            Command::Say(text) => self.say(ctx, member, &text),
            Command::Nick(name) => self.rename(ctx, member, &name),
            Command::Who => {
                let list = self.hub.member_list(ctx.now());
                let _ = ctx.send_shared(id, &list);
            }
            Command::Invalid(reason) => {
                let _ = ctx.send_text(&protocol::error(reason));
            }
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_, Member>, member: Member, _status: &CloseStatus) {
        self.hub.leave(self.index, &member.name, ctx.now());
        self.deliver(ctx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let heartbeat = self.heartbeat.as_ref().and_then(Cadence::next);
        match (heartbeat, self.hub.presence_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_, Member>) {
        if self.hub.presence_due().is_some_and(|due| due <= ctx.now()) {
            self.hub.presence_timer(self.index, ctx.now());
            self.deliver(ctx);
        }
        if self.heartbeat.as_mut().is_some_and(|heartbeat| heartbeat.fire(ctx.now())) {
            let frame = self.heartbeat_frame.clone();
            self.broadcast(ctx, &frame);
            Counters::add(&self.hub.stats.heartbeats, 1);
        }
    }

    fn on_notify(&mut self, ctx: &mut Ctx<'_, Member>) {
        self.deliver(ctx);
    }
}

fn rule(options: &ChatOptions) -> PresenceRule {
    PresenceRule { every: options.presence_interval, names_up_to: options.presence_names }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
