//! A chat member for the chat suites (tests/chat.rs, tests/redis.rs): JSON in, JSON out,
//! answering Pings.

use super::{Client, upgrade_request};
use rfc6455::frame::OpCode;
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;

pub struct Member {
    pub client: Client,
    /// Pings answered so far.
    pub pings: usize,
}

impl Member {
    /// Joins at `/` and reads the welcome.
    pub fn join(addr: SocketAddr) -> Member {
        Member::join_at(addr, "/").0
    }

    /// Joins at `target` (a path with a query) and reads the welcome.
    pub fn join_at(addr: SocketAddr, target: &str) -> (Member, Value) {
        let mut client = Client::unconnected(addr);
        let request = upgrade_request(&addr).replacen("GET / ", &format!("GET {target} "), 1);
        client.stream.write_all(request.as_bytes()).unwrap();
        client.finish_handshake();
        let mut member = Member { client, pings: 0 };
        let welcome = member.next();
        assert_eq!(welcome["type"], 4, "{welcome}");
        (member, welcome)
    }

    /// Another member on the same socket (for reading on another thread).
    pub fn try_clone(&self) -> Member {
        Member { client: self.client.try_clone_client(), pings: 0 }
    }

    pub fn say(&mut self, text: &str) {
        self.client.send_text(&json!({"cmd": "say", "message": text}).to_string());
    }

    /// The next JSON message (Pings are answered and counted on the way).
    pub fn next(&mut self) -> Value {
        loop {
            let frame = self.client.read_frame().expect("a frame from the chat");
            match frame.opcode {
                OpCode::Ping => {
                    self.pings += 1;
                    self.client.send_frame(true, OpCode::Pong, &frame.payload);
                }
                OpCode::Text => return serde_json::from_slice(&frame.payload).unwrap(),
                other => panic!("unexpected {other:?} {:?}", frame.payload),
            }
        }
    }

    /// The next message of `kind` (skipping the others).
    pub fn next_of(&mut self, kind: u64) -> Value {
        loop {
            let message = self.next();
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// The next chat message that is not history.
    pub fn next_message(&mut self) -> Value {
        loop {
            let value = self.next();
            if value["type"] == 2 && value["history"] != true {
                return value;
            }
        }
    }
}

/// Every member says `rounds` messages at once, each from its own thread; then checks that
/// every member got them all, each sender's in the order sent, with increasing ids, and that
/// all members saw one order.
pub fn everyone_says_at_once(members: &mut [Member], rounds: usize) {
    let senders = members.len();
    let threads: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let mut sender = member.try_clone();
            std::thread::spawn(move || {
                for round in 0..rounds {
                    sender.say(&format!("{i}:{round}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut orders = Vec::new();
    for member in members.iter_mut() {
        let mut next_round = vec![0; senders];
        let mut seen = Vec::new();
        for _ in 0..senders * rounds {
            let message = member.next_message();
            let text = message["message"].as_str().unwrap().to_owned();
            let (sender, round) = text.split_once(':').unwrap();
            let sender: usize = sender.parse().unwrap();
            assert_eq!(round.parse::<usize>().unwrap(), next_round[sender], "order from {sender}");
            next_round[sender] += 1;
            seen.push((message["id"].as_u64().expect("an id"), text));
        }
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "ids in increasing order");
        orders.push(seen);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "every member saw one order");
}
