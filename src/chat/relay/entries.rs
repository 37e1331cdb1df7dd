//! Reading the stream's answers: XREAD and XRANGE entries, in RESP2 or RESP3.

use super::Kind;
use redis::Value;

/// One entry read back from the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The stream id, `ID-n`.
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) json: String,
    pub(crate) origin: String,
}

/// The entries of an XREAD or XRANGE answer (RESP2 arrays or RESP3 maps), in order.
pub(crate) fn parse_entries(value: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    match value {
        // XRANGE/XREVRANGE: [[id, [field, value, ...]], ...]
        Value::Array(items) if items.first().is_some_and(|i| entry(i).is_some()) => {
            out.extend(items.iter().filter_map(entry));
        }
        // XREAD: [[stream, [[id, fields], ...]], ...]
        Value::Array(streams) => {
            for stream in streams {
                if let Value::Array(parts) = stream
                    && let Some(Value::Array(items)) = parts.get(1)
                {
                    out.extend(items.iter().filter_map(entry));
                }
            }
        }
        Value::Map(streams) => {
            for (_, items) in streams {
                if let Value::Array(items) = items {
                    out.extend(items.iter().filter_map(entry));
                }
            }
        }
        _ => {}
    }
    out
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn entry(value: &Value) -> Option<Entry> {
    let Value::Array(pair) = value else { return None };
    let id = text(pair.first()?)?;
    let fields: Vec<(String, String)> = match pair.get(1)? {
        Value::Array(flat) => {
            flat.chunks(2).filter_map(|kv| Some((text(&kv[0])?, text(kv.get(1)?)?))).collect()
        }
        Value::Map(map) => map.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
        _ => return None,
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let kind = match field("k")?.as_str() {
        "m" => Kind::Message,
        "p" => Kind::Presence,
        _ => return None,
    };
    Some(Entry { id, kind, json: field("j")?, origin: field("o").unwrap_or_default() })
}

/// The `online` number of a presence notice.
pub(crate) fn online_of(json: &str) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    usize::try_from(value.get("online")?.as_u64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_read_from_both_shapes() {
        let one = Value::Array(vec![
            bulk("5-0"),
            Value::Array(vec![bulk("k"), bulk("m"), bulk("j"), bulk("{}"), bulk("o"), bulk("p:1")]),
        ]);
        let expected = Entry {
            id: "5-0".into(),
            kind: Kind::Message,
            json: "{}".into(),
            origin: "p:1".into(),
        };
        assert_eq!(parse_entries(&Value::Array(vec![one.clone()])), [expected]);
        let read =
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![one.clone()])])]);
        assert_eq!(parse_entries(&read).len(), 1);
        let resp3 = Value::Map(vec![(bulk("s"), Value::Array(vec![one]))]);
        assert_eq!(parse_entries(&resp3).len(), 1);
        assert!(parse_entries(&Value::Nil).is_empty());
        assert_eq!(online_of(r#"{"type":3,"online":7}"#), Some(7));
    }
}
