//! The chat's wire protocol: JSON in text frames. See docs/chat-protocol.md.
//!
//! The tutorial's two messages are kept byte for byte: a chat message is
//! `{"type":2,"message":...}` and the heartbeat is `{"type":1,"message":"心跳检测"}`. Everything
//! else is additive: extra fields on type 2, and new types the tutorial page only logs.

use serde_json::Value;

/// The tutorial's heartbeat, sent to every client on the app-level timer.
pub const HEARTBEAT: &str = r#"{"type":1,"message":"心跳检测"}"#;
/// The tutorial's message type for a heartbeat.
pub const TYPE_HEARTBEAT: u64 = 1;
/// The tutorial's message type for a chat message.
pub const TYPE_MESSAGE: u64 = 2;
/// A presence notice: join, leave, rename, with the online count.
pub const TYPE_PRESENCE: u64 = 3;
/// The welcome a new client gets first: its name and the online count.
pub const TYPE_WELCOME: u64 = 4;
/// An error about the client's own request.
pub const TYPE_ERROR: u64 = 5;
/// The member list, in answer to `{"cmd":"who"}`.
pub const TYPE_MEMBERS: u64 = 6;
/// The most names a member list holds (a chat holds at most `--max-connections` members).
pub const MAX_LISTED: usize = 10_000;
/// Longest nickname, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A chat message to everyone.
    Say(String),
    /// A new nickname.
    Nick(String),
    /// The member list (`{"cmd":"who"}`).
    Who,
    /// A JSON command the server does not understand, with the reason.
    Invalid(&'static str),
}

/// Reads a text frame from a client. A JSON object whose `cmd` is one of ours is a command;
/// anything else is a chat message as it is (what the tutorial's page sends).
pub fn parse(text: &str) -> Command {
    if !text.trim_start().starts_with('{') {
        return Command::Say(text.to_owned());
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return Command::Say(text.to_owned());
    };
    let Some(cmd) = object.get("cmd").and_then(Value::as_str) else {
        return Command::Say(text.to_owned());
    };
    let field = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    match cmd {
        "say" => field("message")
            .map_or(Command::Invalid("say needs a string \"message\""), Command::Say),
        "nick" => {
            field("name").map_or(Command::Invalid("nick needs a string \"name\""), Command::Nick)
        }
        "who" => Command::Who,
        // Not one of ours: text like any other, as the tutorial's server would treat it.
        _ => Command::Say(text.to_owned()),
    }
}

/// Checks a nickname: trimmed, 1 to 32 characters, no control characters.
pub fn valid_name(name: &str) -> Result<&str, &'static str> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        Err("a nickname cannot be empty")
    } else if chars > MAX_NAME_CHARS {
        Err("a nickname has at most 32 characters")
    } else if name.chars().any(char::is_control) {
        Err("a nickname cannot contain control characters")
    } else {
        Ok(name)
    }
}

/// A chat message as broadcast and kept for history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// The text, as the sender wrote it.
    pub text: String,
    /// The sender's nickname when it was sent.
    pub name: String,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// Sequence number, increasing by one per message.
    pub id: u64,
}

impl ChatMessage {
    /// `{"type":2,"message":...}` first, as the tutorial wrote it, then the extra fields;
    /// `"history":true` on a replay to a new client.
    pub fn to_json(&self, history: bool) -> String {
        let mut json = format!(
            r#"{{"type":{TYPE_MESSAGE},"message":{},"name":{},"ts":{},"id":{}"#,
            quote(&self.text),
            quote(&self.name),
            self.ts,
            self.id
        );
        if history {
            json.push_str(r#","history":true"#);
        }
        json.push('}');
        json
    }
}

impl ChatMessage {
    /// Reads back what [`ChatMessage::to_json`] wrote (a line of the history file).
    pub fn from_json(line: &str) -> Option<ChatMessage> {
        let value: Value = serde_json::from_str(line).ok()?;
        (value.get("type")?.as_u64()? == TYPE_MESSAGE).then_some(())?;
        Some(ChatMessage {
            text: value.get("message")?.as_str()?.to_owned(),
            name: value.get("name")?.as_str()?.to_owned(),
            ts: value.get("ts")?.as_u64()?,
            id: value.get("id")?.as_u64()?,
        })
    }
}

/// A presence notice: `event` is `join`, `leave` or `rename` (with the old name in `from`).
pub fn presence(event: &str, name: &str, from: Option<&str>, online: usize, ts: u64) -> String {
    let from = from.map(|from| format!(r#","from":{}"#, quote(from))).unwrap_or_default();
    format!(
        r#"{{"type":{TYPE_PRESENCE},"event":{},"name":{}{from},"online":{online},"ts":{ts}}}"#,
        quote(event),
        quote(name)
    )
}

/// Gathered joins and leaves (`presence.rs`) as one notice, in two parts around its online
/// count: the `join` or `leave` notice when there is one name, a `batch` of names when there
/// are several, a `count` when names are not told (`names` false); `None` when there is
/// nothing to tell.
pub fn gathered_parts(
    joined: &[String],
    left: &[String],
    names: bool,
    count_changed: bool,
    ts: u64,
) -> Option<(String, String)> {
    match (names, joined, left) {
        (true, [name], []) => Some(presence_parts("join", name, None, ts)),
        (true, [], [name]) => Some(presence_parts("leave", name, None, ts)),
        (true, [], []) | (false, _, _) => count_changed.then(|| count_parts(ts)),
        (true, _, _) => {
            let list = |names: &[String]| Value::from(names).to_string();
            Some((
                format!(
                    r#"{{"type":{TYPE_PRESENCE},"event":"batch","joined":{},"left":{},"online":"#,
                    list(joined),
                    list(left)
                ),
                format!(r#","ts":{ts}}}"#),
            ))
        }
    }
}

/// The member list: `names` (at most [`MAX_LISTED`]), and `complete` false when the list does
/// not hold every member (more than [`MAX_LISTED`], or members of other processes).
pub fn members(names: &[String], online: usize, complete: bool) -> String {
    format!(
        r#"{{"type":{TYPE_MEMBERS},"members":{},"online":{online},"complete":{complete}}}"#,
        Value::from(names)
    )
}

/// A chat message's JSON in two parts, around its id (for an id that is given out elsewhere:
/// by Redis, `relay/`).
pub fn message_parts(text: &str, name: &str, ts: u64) -> (String, String) {
    let json = ChatMessage { text: text.into(), name: name.into(), ts, id: 0 }.to_json(false);
    let head = json.strip_suffix("0}").unwrap_or(&json).to_owned();
    (head, "}".to_owned())
}

/// A presence notice's JSON in two parts, around its online count.
pub fn presence_parts(event: &str, name: &str, from: Option<&str>, ts: u64) -> (String, String) {
    let json = presence(event, name, from, 0, ts);
    let at = json.rfind(r#","online":0,"#).map_or(json.len(), |i| i + r#","online":"#.len());
    (json[..at].to_owned(), json[at + 1..].to_owned())
}

/// The online count alone (`"event":"count"`), when members went away without a leave (their
/// process died), in two parts around the count.
pub fn count_parts(ts: u64) -> (String, String) {
    (format!(r#"{{"type":{TYPE_PRESENCE},"event":"count","online":"#), format!(r#","ts":{ts}}}"#))
}

/// The welcome: the client's assigned name and the online count.
pub fn welcome(name: &str, online: usize) -> String {
    format!(r#"{{"type":{TYPE_WELCOME},"name":{},"online":{online}}}"#, quote(name))
}

/// The welcome of a client that asked to resume after message `since` (`?since=ID`):
/// `complete` is false when messages after `since` are no longer kept (or `since` is not an
/// id this server gave out), and the client may have missed some.
pub fn welcome_resumed(name: &str, online: usize, since: u64, complete: bool) -> String {
    format!(
        r#"{{"type":{TYPE_WELCOME},"name":{},"online":{online},"since":{since},"complete":{complete}}}"#,
        quote(name)
    )
}

/// An error about the client's own request.
pub fn error(reason: &str) -> String {
    format!(r#"{{"type":{TYPE_ERROR},"error":{}}}"#, quote(reason))
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_text_and_non_commands_are_messages() {
        assert_eq!(parse("hello"), Command::Say("hello".into()));
        assert_eq!(parse("{not json"), Command::Say("{not json".into()));
        assert_eq!(parse(r#"{"a":1}"#), Command::Say(r#"{"a":1}"#.into()));
        assert_eq!(parse("[1,2]"), Command::Say("[1,2]".into()));
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse(r#"{"cmd":"say","message":"{\"cmd\":\"nick\"}"}"#),
            Command::Say(r#"{"cmd":"nick"}"#.into())
        );
        assert_eq!(parse(r#" {"cmd":"nick","name":"alice"}"#), Command::Nick("alice".into()));
        assert!(matches!(parse(r#"{"cmd":"nick"}"#), Command::Invalid(_)));
        assert_eq!(parse(r#"{"cmd":"fly"}"#), Command::Say(r#"{"cmd":"fly"}"#.into()));
        assert_eq!(parse(r#"{"cmd":"who"}"#), Command::Who);
    }

    #[test]
    fn names() {
        assert_eq!(valid_name("  bob "), Ok("bob"));
        assert!(valid_name("   ").is_err());
        assert!(valid_name(&"x".repeat(33)).is_err());
        assert_eq!(valid_name(&"字".repeat(32)), Ok("字".repeat(32).as_str()));
        assert!(valid_name("a\u{7}b").is_err());
    }

    #[test]
    fn the_tutorial_shapes_are_kept() {
        let heartbeat: Value = serde_json::from_str(HEARTBEAT).unwrap();
        assert_eq!(heartbeat, json!({"type": 1, "message": "心跳检测"}));
        let m = ChatMessage { text: "hi \"<b>\"".into(), name: "alice".into(), ts: 5, id: 1 };
        assert_eq!(
            m.to_json(false),
            r#"{"type":2,"message":"hi \"<b>\"","name":"alice","ts":5,"id":1}"#
        );
        let h: Value = serde_json::from_str(&m.to_json(true)).unwrap();
        assert_eq!(
            h,
            json!({"type": 2, "message": "hi \"<b>\"", "name": "alice", "ts": 5, "id": 1, "history": true})
        );
        assert_eq!(ChatMessage::from_json(&m.to_json(false)), Some(m.clone()));
        assert_eq!(ChatMessage::from_json(&m.to_json(true)), Some(m.clone()));
        assert_eq!(ChatMessage::from_json(r#"{"type":3,"name":"a"}"#), None);
        assert_eq!(ChatMessage::from_json(r#"{"type":2,"message":"x"}"#), None);
        let (head, tail) = message_parts("hi \"<b>\"", "alice", 5);
        assert_eq!(format!("{head}1{tail}"), m.to_json(false));
        let (head, tail) = presence_parts("rename", "b", Some("a"), 9);
        assert_eq!(format!("{head}3{tail}"), presence("rename", "b", Some("a"), 3, 9));
        let (head, tail) = count_parts(9);
        let c: Value = serde_json::from_str(&format!("{head}4{tail}")).unwrap();
        assert_eq!(c, json!({"type": 3, "event": "count", "online": 4, "ts": 9}));
        let r: Value = serde_json::from_str(&welcome_resumed("a", 2, 7, false)).unwrap();
        assert_eq!(r, json!({"type": 4, "name": "a", "online": 2, "since": 7, "complete": false}));
        let w: Value = serde_json::from_str(&welcome("a\u{1}", 2)).unwrap();
        assert_eq!(w, json!({"type": 4, "name": "a\u{1}", "online": 2}));
        let list = ["a".to_owned(), "b\"".to_owned()];
        let m: Value = serde_json::from_str(&members(&list, 3, false)).unwrap();
        assert_eq!(m, json!({"type": 6, "members": ["a", "b\""], "online": 3, "complete": false}));
        let e: Value = serde_json::from_str(&error("no")).unwrap();
        assert_eq!(e, json!({"type": 5, "error": "no"}));
        let p: Value = serde_json::from_str(&presence("rename", "b", Some("a"), 3, 9)).unwrap();
        assert_eq!(
            p,
            json!({"type": 3, "event": "rename", "name": "b", "from": "a", "online": 3, "ts": 9})
        );
    }

    #[test]
    fn gathered_notices() {
        let one = ["a".to_owned()];
        let two = ["a".to_owned(), "b".to_owned()];
        let json = |parts: Option<(String, String)>| -> Value {
            let (head, tail) = parts.unwrap();
            serde_json::from_str(&format!("{head}7{tail}")).unwrap()
        };
        let j = json(gathered_parts(&one, &[], true, true, 9));
        assert_eq!(j, json!({"type": 3, "event": "join", "name": "a", "online": 7, "ts": 9}));
        let l = json(gathered_parts(&[], &one, true, true, 9));
        assert_eq!(l, json!({"type": 3, "event": "leave", "name": "a", "online": 7, "ts": 9}));
        let b = json(gathered_parts(&two, &one, true, true, 9));
        assert_eq!(
            b,
            json!({"type": 3, "event": "batch", "joined": ["a", "b"], "left": ["a"], "online": 7, "ts": 9})
        );
        let c = json(gathered_parts(&two, &[], false, true, 9));
        assert_eq!(c, json!({"type": 3, "event": "count", "online": 7, "ts": 9}));
        assert!(gathered_parts(&[], &[], true, false, 9).is_none());
        assert!(gathered_parts(&two, &[], false, false, 9).is_none());
    }
}
