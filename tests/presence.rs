//! Join and leave storms over real loopback sockets: presence costs each member one notice per
//! interval, not one per join (src/chat/presence.rs).

mod common;

use common::TestServer;
use common::chat::Member;
use rfc6455::chat::{Chat, ChatOptions};
use rfc6455::server::Options;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MEMBERS: usize = 2000;
const JOINERS: usize = 8;
const INTERVAL: Duration = Duration::from_millis(250);

fn start(chat: ChatOptions) -> TestServer<Chat> {
    let chats = Chat::group(common::test_loops(), chat, rfc6455::chat::policy());
    TestServer::start_group(Options::default(), chats, |chat, handles| chat.attach(handles))
}

fn storm_options() -> ChatOptions {
    let mut chat = ChatOptions::default();
    (chat.heartbeat, chat.rate_limit, chat.history) = (None, None, 0);
    chat.presence_interval = INTERVAL;
    chat
}

/// Reads `member`'s messages until a presence notice says `online` members are online;
/// returns how many presence notices it read on the way (that one included).
fn notices_until(member: &mut Member, online: usize) -> usize {
    let mut notices = 0;
    loop {
        let message = member.next();
        if message["type"] != 3 {
            continue;
        }
        notices += 1;
        let event = message["event"].as_str().unwrap_or_default().to_owned();
        assert!(["join", "leave", "batch", "count"].contains(&event.as_str()), "{message}");
        if message["online"] == online {
            return notices;
        }
    }
}

/// The most notices an interval-gathered presence can have sent in `elapsed` (one per
/// interval, one at once after a quiet spell, one at the end).
fn bound(elapsed: Duration) -> usize {
    (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 2
}

#[test]
fn a_join_storm_and_a_mass_leave_cost_each_member_a_notice_per_interval() {
    common::raise_fd_limit(2 * MEMBERS as u64 + 512);
    let server = start(storm_options());
    let addr = server.addr;
    let started = Instant::now();
    // JOINERS threads join at once, each its share of the members.
    let threads: Vec<_> = (0..JOINERS)
        .map(|_| {
            std::thread::spawn(move || {
                (0..MEMBERS / JOINERS).map(|_| Member::join(addr)).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut members: Vec<Member> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(members.len(), MEMBERS);
    // Every member sees the count reach everyone, through at most one notice per interval:
    // told one by one, the first to join would have read MEMBERS - 1 joins.
    let mut most = 0;
    for member in &mut members {
        most = most.max(notices_until(member, MEMBERS));
    }
    let elapsed = started.elapsed();
    assert!(most <= bound(elapsed), "{most} notices in {elapsed:?}: more than one per interval");
    // The member list, on request: everyone, by name.
    members[0].client.send_text(&json!({"cmd": "who"}).to_string());
    let list = loop {
        let message = members[0].next();
        if message["type"] == 6 {
            break message;
        }
    };
    assert_eq!((list["online"].as_u64(), list["complete"].as_bool()), (Some(2000), Some(true)));
    assert_eq!(list["members"].as_array().map(Vec::len), Some(MEMBERS));
    // Half of them drop at once (TCP closed without a Close, as in a network blip).
    let leaving = members.split_off(MEMBERS / 2);
    let left_at = Instant::now();
    drop(leaving);
    let mut most = 0;
    for member in &mut members {
        most = most.max(notices_until(member, MEMBERS / 2));
    }
    let elapsed = left_at.elapsed();
    assert!(most <= bound(elapsed), "{most} notices in {elapsed:?} for the leaves");
}

#[test]
fn names_are_told_in_a_small_chat_and_only_the_count_in_a_big_one() {
    let mut options = storm_options();
    options.presence_names = 3;
    let server = start(options);
    let mut a = Member::join(server.addr);
    assert_eq!(
        untimed(a.next_of(3)),
        json!({"type": 3, "event": "join", "name": "guest-1", "online": 1})
    );
    // Two joins within one interval: one batch.
    let _b = Member::join(server.addr);
    let _c = Member::join(server.addr);
    let batch = untimed(a.next_of(3));
    assert_eq!(
        batch,
        json!({"type": 3, "event": "batch", "joined": ["guest-2", "guest-3"], "left": [], "online": 3})
    );
    // A rename is told to everyone while names are.
    a.client.send_text(&json!({"cmd": "nick", "name": "alice"}).to_string());
    assert_eq!(a.next_of(3)["event"], "rename");
    // Past three online: the count only; a rename is told to the member alone.
    let mut d = Member::join(server.addr);
    assert_eq!(untimed(a.next_of(3)), json!({"type": 3, "event": "count", "online": 4}));
    assert_eq!(untimed(d.next_of(3)), json!({"type": 3, "event": "count", "online": 4}));
    d.client.send_text(&json!({"cmd": "nick", "name": "dora"}).to_string());
    let told = untimed(d.next_of(3));
    assert_eq!(
        told,
        json!({"type": 3, "event": "rename", "name": "dora", "from": "guest-4", "online": 4})
    );
    d.client.send_text(&json!({"cmd": "who"}).to_string());
    let list = d.next_of(6);
    assert_eq!(list["members"], json!(["alice", "dora", "guest-2", "guest-3"]));
    // alice was told nothing of dora's rename: the next thing it reads is this message.
    d.say("after the rename");
    let next = a.next();
    assert_eq!(
        (next["type"].as_u64(), next["message"].as_str()),
        (Some(2), Some("after the rename"))
    );
}

fn untimed(mut notice: Value) -> Value {
    if let Some(object) = notice.as_object_mut() {
        object.remove("ts");
    }
    notice
}
