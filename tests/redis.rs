//! One chat across processes through a real Redis (`rfc6455 chat --redis`): Debian's
//! `redis-server`, started here on a free loopback port with a directory of its own. Without
//! `redis-server` on PATH these tests say that they are skipped (and fail under
//! `RFC6455_REQUIRE_PEERS=1`, as in CI).
#![cfg(feature = "redis")]

mod common;

use common::chat::Member;
use common::process::Process;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of our own.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one, or `None` (said on stderr) when there is no redis-server.
    fn start(test: &str) -> Option<Redis> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("RFC6455_REQUIRE_PEERS").is_none(),
                "RFC6455_REQUIRE_PEERS is set and redis-server is missing"
            );
            eprintln!("SKIPPED {test}: no redis-server on PATH (apt install redis-server)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("rfc6455-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis { child: None, port, dir };
        redis.run();
        Some(redis)
    }

    fn run(&mut self) {
        let child = Command::new("redis-server")
            // Persistent, as a chat's Redis must be: after a restart the stream and the ids
            // are where they were.
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn chat(redis: &Redis) -> Process {
    let url = redis.url();
    Process::start(&["chat", "--heartbeat", "0", "--rate-limit", "0", "--redis", &url], None)
}

#[test]
fn two_processes_one_order_for_six_clients() {
    let Some(redis) = Redis::start("two_processes_one_order_for_six_clients") else { return };
    let (a, b) = (chat(&redis), chat(&redis));
    let mut members: Vec<Member> =
        (0..6).map(|i| Member::join(if i % 2 == 0 { a.addr } else { b.addr })).collect();
    common::chat::everyone_says_at_once(&mut members, 10);
}

#[test]
fn history_after_kill_9_and_resume() {
    let Some(redis) = Redis::start("history_after_kill_9_and_resume") else { return };
    let mut a = chat(&redis);
    let mut alice = Member::join(a.addr);
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        alice.say(text);
        ids.push(alice.next_message()["id"].as_u64().unwrap());
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let a = chat(&redis);
    // The history comes from the stream.
    let (mut bob, _) = Member::join_at(a.addr, "/");
    for (text, id) in ["one", "two", "three"].iter().zip(&ids) {
        let replay = bob.next();
        assert_eq!((replay["message"].as_str(), replay["id"].as_u64()), (Some(*text), Some(*id)));
    }
    // Resuming after the first: the two after it, then live.
    let (mut carol, welcome) = Member::join_at(a.addr, &format!("/?since={}", ids[0]));
    assert_eq!(welcome["complete"], true, "{welcome}");
    for text in ["two", "three"] {
        let replay = carol.next();
        assert_eq!(
            (replay["message"].as_str(), replay["history"].as_bool()),
            (Some(text), Some(true))
        );
    }
    bob.say("four");
    assert_eq!(carol.next_message()["message"], "four");
}

#[test]
fn a_message_sent_while_redis_is_down_reaches_the_other_process() {
    let test = "a_message_sent_while_redis_is_down_reaches_the_other_process";
    let Some(mut redis) = Redis::start(test) else { return };
    let (a, b) = (chat(&redis), chat(&redis));
    let mut alice = Member::join(a.addr);
    let mut bob = Member::join(b.addr);
    alice.say("before");
    assert_eq!(bob.next_message()["message"], "before");
    assert_eq!(alice.next_message()["message"], "before");
    redis.stop();
    // Give the writer time to notice (it checks Redis every second when idle), so that the
    // next message is one sent while Redis is known to be down.
    std::thread::sleep(Duration::from_millis(2500));
    alice.say("during");
    // Local delivery goes on: alice gets it now, without an id (the stream gives ids).
    let during = alice.next_message();
    assert_eq!((during["message"].as_str(), during.get("id")), (Some("during"), None), "{during}");
    redis.run();
    // Appended when Redis is back (the writer retries with backoff up to 5 s): bob gets it,
    // with its id.
    let late = bob.next_message();
    assert_eq!(late["message"], "during");
    assert!(late["id"].as_u64().is_some(), "{late}");
    // Alice does not get it twice.
    bob.say("after");
    assert_eq!(alice.next_message()["message"], "after");
}
