//! The group chat over real loopback sockets.

mod common;

use common::chat::Member;
use common::process::Process;
use common::{Client, TestServer, http_exchange, upgrade_request};
use rfc6455::chat::{Chat, ChatOptions};
use rfc6455::frame::OpCode;
use rfc6455::server::Options;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn chat_options() -> Options {
    let mut options = Options::default();
    options.connection.max_message_size = 64 * 1024;
    options.connection.max_frame_size = 64 * 1024;
    options
}

/// A chat with `common::test_loops()` event loops (`RFC6455_TEST_LOOPS`).
fn start(options: Options, chat: ChatOptions) -> TestServer<Chat> {
    let chats = Chat::group(common::test_loops(), chat, rfc6455::chat::policy());
    TestServer::start_group(options, chats, |chat, handles| chat.attach(handles))
}

/// The chat's options with the heartbeat every `heartbeat`, `history` messages kept, and no
/// rate limit.
fn chat(heartbeat: Option<Duration>, history: usize) -> ChatOptions {
    let mut options = ChatOptions::default();
    (options.heartbeat, options.history, options.rate_limit) = (heartbeat, history, None);
    options
}

fn quiet() -> ChatOptions {
    chat(None, 50)
}

#[test]
fn serves_the_page_and_refuses_other_paths_and_methods() {
    let server = start(chat_options(), quiet());
    let response = http_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(response.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(response.ends_with(std::str::from_utf8(rfc6455::chat::PAGE_HTML).unwrap()));
    let head = http_exchange(server.addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
    let missing = http_exchange(server.addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"));
    let post =
        http_exchange(server.addr, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    let upgrade_elsewhere = upgrade_request(&server.addr).replacen("GET / ", "GET /other ", 1);
    let refused = http_exchange(server.addr, upgrade_elsewhere.as_bytes());
    assert!(refused.starts_with("HTTP/1.1 404 Not Found\r\n"));
}

#[test]
fn the_tutorial_protocol_plain_text_is_broadcast_as_type_2() {
    let server = start(chat_options(), quiet());
    let mut a = Member::join(server.addr);
    let mut b = Member::join(server.addr);
    // The tutorial page sends raw text.
    a.client.send_text("你好");
    for member in [&mut a, &mut b] {
        let message = member.next_of(2);
        assert_eq!(message["message"], "你好");
        assert_eq!(message["name"], "guest-1");
        assert!(message["ts"].as_u64().unwrap() > 0);
    }
}

#[test]
fn every_client_receives_every_message_in_each_senders_order() {
    let server = start(chat_options(), quiet());
    let mut members: Vec<Member> = (0..6).map(|_| Member::join(server.addr)).collect();
    for round in 0..20 {
        for (i, member) in members.iter_mut().enumerate() {
            member.say(&format!("{i}:{round}"));
        }
    }
    for member in &mut members {
        let mut next_round = [0; 6];
        for _ in 0..6 * 20 {
            let message = member.next_of(2);
            let text = message["message"].as_str().unwrap();
            let (sender, round) = text.split_once(':').unwrap();
            let sender: usize = sender.parse().unwrap();
            assert_eq!(round.parse::<usize>().unwrap(), next_round[sender], "order from {sender}");
            next_round[sender] += 1;
        }
        assert_eq!(next_round, [20; 6]);
    }
}

/// Two event loops, one chat: members on both loops (the kernel spreads connections by a hash
/// of their addresses; the test joins until both loops have some) see every message in one
/// and the same order, each sender's in the order sent, and one online count.
#[test]
fn one_order_across_two_event_loops() {
    let chats = Chat::group(2, quiet(), rfc6455::chat::policy());
    let watch = chats[0].watch();
    let server =
        TestServer::start_group(chat_options(), chats, |chat, handles| chat.attach(handles));
    let mut members: Vec<Member> = Vec::new();
    while members.len() < 6 || watch.per_loop().contains(&0) {
        assert!(members.len() < 64, "64 connections and one loop has none: {:?}", watch.per_loop());
        members.push(Member::join(server.addr));
    }
    let senders = members.len();
    assert_eq!(watch.online(), senders);
    // Every member sends at once, from its own thread.
    let rounds = 20;
    common::chat::everyone_says_at_once(&mut members, rounds);
    let stats = server.stop().stats();
    assert_eq!(stats.messages, (senders * rounds) as u64);
}

#[test]
fn join_leave_rename_and_online_count() {
    let server = start(chat_options(), quiet());
    let mut a = Member::join(server.addr);
    assert_eq!(untimed(a.next_of(3)), a_notice("join", "guest-1", 1));
    let mut b = Member::join(server.addr);
    assert_eq!(untimed(a.next_of(3)), a_notice("join", "guest-2", 2));
    b.client.send_text(r#"{"cmd":"nick","name":"bob"}"#);
    let rename = a.next_of(3);
    assert_eq!(
        (rename["event"].as_str(), rename["from"].as_str()),
        (Some("rename"), Some("guest-2"))
    );
    assert_eq!(rename["name"], "bob");
    // A taken or invalid name is refused to the asker only.
    a.client.send_text(r#"{"cmd":"nick","name":"BOB"}"#);
    assert_eq!(a.next_of(5)["error"], "that nickname is taken");
    a.client.send_text(r#"{"cmd":"nick","name":""}"#);
    assert_eq!(a.next_of(5)["error"], "a nickname cannot be empty");
    b.client.send_frame(true, OpCode::Close, b"\x03\xe8");
    assert_eq!(b.client.skip_to_close().0, Some(1000));
    assert_eq!(untimed(a.next_of(3)), a_notice("leave", "bob", 1));
}

/// A presence notice without its timestamp, to compare.
fn a_notice(event: &str, name: &str, online: u64) -> Value {
    json!({"type": 3, "event": event, "name": name, "online": online})
}

/// Drops the timestamp of a notice.
fn untimed(mut notice: Value) -> Value {
    if let Value::Object(fields) = &mut notice {
        fields.remove("ts");
    }
    notice
}

#[test]
fn a_new_client_gets_recent_history() {
    let server = start(chat_options(), chat(None, 2));
    let mut a = Member::join(server.addr);
    for text in ["one", "two", "three"] {
        a.say(text);
        a.next_of(2);
    }
    let mut client = Client::connect(server.addr);
    let mut read =
        || -> Value { serde_json::from_slice(&client.read_frame().unwrap().payload).unwrap() };
    assert_eq!(read()["type"], 4);
    for text in ["two", "three"] {
        let replay = read();
        assert_eq!(
            (replay["message"].as_str(), replay["history"].as_bool()),
            (Some(text), Some(true))
        );
    }
    assert_eq!(read()["type"], 3);
}

/// `?since=ID`: a client that was away gets exactly what it missed, marked as history, then
/// carries on; one asking for more than is kept is told so.
#[test]
fn a_client_resumes_after_the_last_message_it_saw() {
    let mut options = chat(None, 2);
    options.kept = 5;
    let server = start(chat_options(), options);
    let mut a = Member::join(server.addr);
    let mut b = Member::join(server.addr);
    let mut last_seen = 0;
    for text in ["one", "two", "three"] {
        a.say(text);
        last_seen = a.next_of(2)["id"].as_u64().unwrap();
        b.next_of(2);
    }
    a.client.send_frame(true, OpCode::Close, b"\x03\xe8");
    assert_eq!(a.client.skip_to_close().0, Some(1000));
    for text in ["four", "five"] {
        b.say(text);
        b.next_of(2);
    }
    let (mut a, welcome) = Member::join_at(server.addr, &format!("/?since={last_seen}"));
    assert_eq!(
        (welcome["since"].as_u64(), welcome["complete"].as_bool()),
        (Some(last_seen), Some(true))
    );
    for text in ["four", "five"] {
        let replay = a.next();
        assert_eq!(
            (replay["message"].as_str(), replay["history"].as_bool()),
            (Some(text), Some(true))
        );
    }
    assert_eq!(a.next()["event"], "join", "then live again, no repeat");
    b.say("six");
    assert_eq!(a.next_of(2)["message"], "six");
    // Five kept (ids 2-6): resuming after 0 misses message 1, and is told so.
    let (mut c, welcome) = Member::join_at(server.addr, "/?since=0");
    assert_eq!(welcome["complete"], false, "message 1 is no longer kept: {welcome}");
    assert_eq!(c.next()["message"], "two");
    // An id this server never gave out: everything kept, and not complete.
    let (mut d, welcome) = Member::join_at(server.addr, "/?since=999");
    assert_eq!(welcome["complete"], false);
    assert_eq!(d.next()["message"], "two", "everything kept, from the oldest");
    let response = http_exchange(
        server.addr,
        upgrade_request(&server.addr).replacen("GET / ", "GET /?since=x ", 1).as_bytes(),
    );
    assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
    assert!(response.ends_with("since must be the id of a message\n"), "{response}");
}

/// `--history-file`: a chat killed with SIGKILL and started again serves the history from the
/// file, and ids go on.
#[test]
fn the_history_file_survives_a_kill() {
    let dir = std::env::temp_dir().join(format!("rfc6455-chat-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let _ = std::fs::remove_file(&path);
    let args =
        ["chat", "--heartbeat", "0", "--rate-limit", "0", "--history-file", path.to_str().unwrap()];
    let mut first = Process::start(&args, None);
    let mut a = Member::join(first.addr);
    let mut ids = Vec::new();
    for text in ["before", "the", "kill"] {
        a.say(text);
        ids.push(a.next_of(2)["id"].as_u64().unwrap());
    }
    // On disk within 100 ms of being accepted (group commit); wait for it before the kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&path).unwrap().lines().count() < 3 {
        assert!(Instant::now() < deadline, "the file never got the messages");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = Process::start(&args, None);
    let (mut b, _) = Member::join_at(second.addr, "/");
    for (text, id) in ["before", "the", "kill"].iter().zip(&ids) {
        let replay = b.next();
        assert_eq!((replay["message"].as_str(), replay["id"].as_u64()), (Some(*text), Some(*id)));
    }
    b.say("after");
    assert_eq!(b.next_of(2)["id"].as_u64(), Some(ids[2] + 1), "ids go on");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tutorial's heartbeat reaches a member again and again, exactly as the tutorial wrote
/// it, and never faster than its cadence. The cadence itself (kept after a late tick, no burst
/// after a stall) is checked on the sans-I/O timer: `chat::member::tests::the_heartbeat_keeps_its_cadence`.
#[test]
fn heartbeat_cadence() {
    let every = Duration::from_millis(100);
    let server = start(chat_options(), chat(Some(every), 0));
    // The first tick is one period after the first member joined, so the fifth one cannot
    // arrive sooner than five periods after we started connecting (a lower bound only: a slow
    // machine may be late, never early).
    let started = Instant::now();
    let mut a = Member::join(server.addr);
    let mut heartbeats = 0;
    while heartbeats < 5 {
        let message = a.next();
        if message["type"] == 1 {
            assert_eq!(message, json!({"type": 1, "message": "心跳检测"}));
            heartbeats += 1;
        }
    }
    assert!(started.elapsed() >= every * 5, "5 heartbeats in {:?}", started.elapsed());
    assert!(server.stop().stats().heartbeats >= 5);
}

#[test]
fn binary_messages_are_refused_with_1003() {
    let server = start(chat_options(), quiet());
    let mut a = Member::join(server.addr);
    a.client.send_binary(b"\x00\x01");
    a.next_of(3);
    assert_eq!(a.client.read_close().0, Some(1003));
}

#[test]
fn answered_pings_keep_a_member_and_a_dead_peer_is_closed_with_1011() {
    let mut options = chat_options();
    options.connection.ping_interval = Some(Duration::from_millis(50));
    options.connection.pong_timeout = Duration::from_millis(300);
    let server = start(options, quiet());
    let mut alive = Member::join(server.addr);
    // The dead peer completes the handshake and then never reads or answers.
    let mut dead = Client::connect(server.addr);
    // The live member answers at least five Pings, and sees the dead one leave.
    let started = Instant::now();
    let mut dead_left = false;
    while alive.pings < 5 || !dead_left {
        assert!(started.elapsed() < common::IO_TIMEOUT, "pings {} left {dead_left}", alive.pings);
        let message = alive.next();
        dead_left |= message["event"] == "leave" && message["name"] == "guest-2";
    }
    // What the dead peer would have read: its welcome, notices, a Ping, then Close 1011.
    let code = loop {
        let frame = dead.read_frame().unwrap();
        if frame.opcode == OpCode::Close {
            break u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
        }
    };
    assert_eq!(code, 1011);
    dead.expect_eof();
    alive.say("still here");
    assert_eq!(alive.next_of(2)["message"], "still here");
}

/// The number at the start of a type-2 message's text, read without a JSON parser (the 50
/// readers below must keep up with the server in a debug build).
fn message_number(payload: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = text.strip_prefix(r#"{"type":2,"message":""#)?;
    rest.split(' ').next()?.parse().ok()
}

/// A client that never reads is cut off at its outbox cap while 50 others receive every one of
/// 10,000 numbered messages, in order.
///
/// The sender stays at most `WINDOW` messages ahead of the slowest well-behaved reader, as a
/// real sender is paced by a chat that keeps up; the reader that never reads falls behind
/// without bound and must be cut off, without a single message lost by the others.
#[test]
fn a_slow_reader_is_cut_off_and_nobody_else_loses_a_message() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const RECEIVERS: usize = 50;
    const MESSAGES: usize = 10_000;
    const WINDOW: usize = 200;
    common::raise_fd_limit(1024);
    let mut options = chat_options();
    options.max_outbox = 256 * 1024;
    // The slow reader cannot read its Close either: the server gives up on it after this.
    options.connection.close_timeout = Duration::from_secs(1);
    let server = start(options, chat(None, 0));
    let slow = Client::connect(server.addr);
    // A small fixed receive buffer: the kernel absorbs little before our cap is reached.
    common::set_receive_buffer(&slow.stream, 4096);
    let receivers: Vec<Member> = (0..RECEIVERS).map(|_| Member::join(server.addr)).collect();
    let mut sender = Member::join(server.addr);
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..RECEIVERS).map(|_| AtomicUsize::new(0)).collect());
    let padding = "x".repeat(400);
    let started = Instant::now();
    let threads: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, mut member)| {
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut expected = 0;
                while expected < MESSAGES {
                    let frame = member.client.read_frame().expect("a frame");
                    if let Some(number) = message_number(&frame.payload) {
                        assert_eq!(number, expected, "a gap or reordering at reader {i}");
                        expected += 1;
                        progress[i].store(expected, Ordering::Release);
                    }
                }
            })
        })
        .collect();
    // The sender reads its own copies, then waits to see the slow reader (guest-1) leave.
    let mut echo = sender.try_clone();
    let echo_thread = std::thread::spawn(move || {
        let mut expected = 0;
        let mut slow_left = false;
        while expected < MESSAGES || !slow_left {
            let frame = echo.client.read_frame().expect("a frame");
            if let Some(number) = message_number(&frame.payload) {
                assert_eq!(number, expected);
                expected += 1;
            } else {
                let notice: Value = serde_json::from_slice(&frame.payload).unwrap();
                slow_left |= notice["event"] == "leave" && notice["name"] == "guest-1";
            }
        }
    });
    for n in 0..MESSAGES {
        let waiting_since = Instant::now();
        while progress.iter().map(|p| p.load(Ordering::Acquire)).min().unwrap_or(0) + WINDOW <= n {
            assert!(waiting_since.elapsed() < common::IO_TIMEOUT, "readers stopped at {n}");
            std::thread::yield_now();
        }
        sender.say(&format!("{n} {padding}"));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    echo_thread.join().unwrap();
    // The 50 receivers' copies (the sender's own are read on the side).
    let deliveries = RECEIVERS * MESSAGES;
    eprintln!(
        "slow-reader test: {deliveries} deliveries to {RECEIVERS} readers in {elapsed:.2?}: {:.0} messages/s delivered",
        deliveries as f64 / elapsed.as_secs_f64()
    );
    drop(slow);
    let stats = server.stop().stats().clone();
    assert_eq!(stats.slow_readers_closed, 1);
    assert_eq!(stats.messages, MESSAGES as u64);
}

/// The reader that falls behind gets what was written to it before the cut (what the turn that
/// took it past its cap had queued is dropped whole), then Close 1008, with no frame torn in
/// half.
#[test]
fn a_slow_reader_gets_a_whole_prefix_then_1008() {
    const MESSAGES: usize = 200;
    let mut options = chat_options();
    options.max_outbox = 256 * 1024;
    let server = start(options, chat(None, 0));
    let mut slow = Member::join(server.addr);
    let mut sender = Member::join(server.addr);
    // The first message alone, and its copy read back: it has been written to the slow reader
    // too (what a turn queued is written at its end), so the prefix is not empty. What one turn
    // queues past the cap is dropped whole.
    let padding = "y".repeat(60 * 1024);
    sender.say(&format!("0 {padding}"));
    assert!(sender.next_message()["message"].as_str().unwrap().starts_with("0 "));
    let mut echo = sender.try_clone();
    let echo_thread = std::thread::spawn(move || {
        let mut expected = 1;
        while expected < MESSAGES {
            if message_number(&echo.client.read_frame().expect("a frame").payload).is_some() {
                expected += 1;
            }
        }
    });
    // 199 more of 60 KiB: 12 MB, more than the kernel's buffers and the 256 KiB cap.
    for n in 1..MESSAGES {
        sender.say(&format!("{n} {padding}"));
    }
    echo_thread.join().unwrap();
    let mut expected = 0;
    let code = loop {
        let frame = slow.client.read_frame().expect("a frame");
        match frame.opcode {
            OpCode::Close => break u16::from_be_bytes([frame.payload[0], frame.payload[1]]),
            _ => {
                if let Some(number) = message_number(&frame.payload) {
                    assert_eq!(number, expected);
                    expected += 1;
                }
            }
        }
    };
    assert_eq!(code, 1008);
    assert!(0 < expected && expected < MESSAGES, "got {expected} messages before the cut");
    assert_eq!(server.stop().stats().slow_readers_closed, 1);
}

/// With permessage-deflate, a broadcast is compressed once: every member that agreed to it gets
/// the same compressed frame (RSV1), the others the plain one, and both read the same message.
#[cfg(feature = "deflate")]
#[test]
fn a_broadcast_is_compressed_for_members_that_agreed() {
    use std::io::{Read, Write};
    let server = start(chat_options(), quiet());
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    let join = |extensions: &str| {
        let request = common::upgrade_request(&server.addr)
            .replace("\r\n\r\n", &format!("\r\n{extensions}\r\n"));
        let mut client = Client::unconnected(server.addr);
        client.stream.write_all(request.as_bytes()).unwrap();
        let head = client.finish_handshake();
        assert_eq!(head.contains("permessage-deflate"), !extensions.is_empty(), "{head}");
        client
    };
    let mut deflating = [join(offer), join(offer)];
    let mut plain = join("");
    let long = "a chat message long enough to compress, ".repeat(10);
    plain.send_text(&json!({"cmd": "say", "message": long}).to_string());
    // The raw frames: compressed (first byte 0xc1: FIN, RSV1, text) for the two that agreed,
    // byte for byte the same; plain (0x81) for the other, whose payload is the JSON itself.
    let raw = |client: &mut Client| loop {
        let mut header = [0u8; 2];
        client.stream.read_exact(&mut header).unwrap();
        let len = match header[1] {
            126 => {
                let mut ext = [0u8; 2];
                client.stream.read_exact(&mut ext).unwrap();
                usize::from(u16::from_be_bytes(ext))
            }
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        client.stream.read_exact(&mut payload).unwrap();
        // Skip the welcome and presence notices (short, uncompressed) until the long message.
        if len > 100 || header[0] & 0x40 != 0 {
            return (header[0], payload);
        }
    };
    let (first, second) = (raw(&mut deflating[0]), raw(&mut deflating[1]));
    assert_eq!(first.0, 0xc1);
    assert_eq!(first, second, "one compression for both");
    let mut inflater = zlib_rs::Inflate::new(false, 15);
    let mut json = vec![0u8; 4096];
    let input = [&first.1[..], &[0, 0, 0xff, 0xff]].concat();
    inflater.decompress(&input, &mut json, zlib_rs::InflateFlush::SyncFlush).unwrap();
    json.truncate(inflater.total_out() as usize);
    let message: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(message["message"], long.as_str());
    let (op, payload) = raw(&mut plain);
    assert_eq!(op, 0x81);
    let message: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(message["message"], long.as_str());
    assert!(
        first.1.len() < payload.len() / 3,
        "{} compressed, {} plain",
        first.1.len(),
        payload.len()
    );
}
