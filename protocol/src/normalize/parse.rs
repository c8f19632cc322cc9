//! Parsing an event payload into a `serde_json::Value` with sonic-rs, refusing nesting deeper
//! than a limit while parsing (the same value as `serde_json::Value`'s own deserialization
//! builds, one member at a time).
//!
//! The limit is what keeps every later step, each recursing once per level, within its stack;
//! checked during the parse, it costs a counter per array and object rather than a pass over
//! the payload's bytes before it.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a payload did not parse.
pub(super) enum ParseError {
    /// It nests deeper than the limit.
    TooDeep,
    /// It is not JSON (sonic-rs's reason; serde_json names the position better).
    Json,
}

thread_local! {
    /// The limit of the parse running on this thread (serde's `Deserialize` takes no argument).
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    /// Set when the parse on this thread stopped at the depth limit.
    static TOO_DEEP: Cell<bool> = const { Cell::new(false) };
}

/// Parses JSON text whose arrays and objects nest at most `limit` levels (the outermost is
/// level 1).
pub(super) fn from_slice(payload: &[u8], limit: usize) -> Result<Value, ParseError> {
    TOO_DEEP.with(|deep| deep.set(false));
    LIMIT.with(|l| l.set(limit));
    match sonic_rs::from_slice::<Parsed>(payload) {
        Ok(Parsed(value)) => Ok(value),
        Err(_) if TOO_DEEP.with(Cell::get) => Err(ParseError::TooDeep),
        Err(_) => Err(ParseError::Json),
    }
}

struct Parsed(Value);

impl<'de> de::Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let levels = LIMIT.with(Cell::get);
        Within { levels }.deserialize(deserializer).map(Parsed)
    }
}

/// A value that may nest `levels` more levels of arrays and objects.
#[derive(Clone, Copy)]
struct Within {
    levels: usize,
}

impl Within {
    /// The levels left inside an array or object, or the error that stops the parse.
    fn inside<E: de::Error>(self) -> Result<Self, E> {
        match self.levels.checked_sub(1) {
            Some(levels) => Ok(Self { levels }),
            None => {
                TOO_DEEP.with(|deep| deep.set(true));
                Err(E::custom("nested too deeply"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Within {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Within {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<V: SeqAccess<'de>>(self, mut seq: V) -> Result<Value, V::Error> {
        let inside = self.inside()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(inside)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<V: MapAccess<'de>>(self, mut map: V) -> Result<Value, V::Error> {
        let inside = self.inside()?;
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // a key sent twice keeps its last value, as serde_json keeps it
            members.insert(key, map.next_value_seed(inside)?);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_value_serde_json_parses() {
        for text in [
            r#"{"b": 1, "a": [true, null, -2, 3.5, 1e400, "x\u00e9"], "c": {"z": {}, "y": []}}"#,
            r#"{"k": 1, "j": 2, "k": 3}"#,
            r#"[{"a": 18446744073709551615}, -9223372036854775808, 0.1]"#,
            r#""text""#,
            "{}",
            "{\"a\": 1",
            "[1] 2",
        ] {
            let ours = from_slice(text.as_bytes(), 64).ok();
            let theirs: Option<Value> = serde_json::from_str(text).ok();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn stops_past_the_limit_and_says_so() {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        assert!(from_slice(nested(3).as_bytes(), 3).is_ok());
        assert!(matches!(
            from_slice(nested(4).as_bytes(), 3),
            Err(ParseError::TooDeep)
        ));
        // far deeper than any parser's own limit: refused without recursing that deep
        assert!(matches!(
            from_slice(nested(100_000).as_bytes(), 64),
            Err(ParseError::TooDeep)
        ));
        assert!(matches!(
            from_slice(b"{\"a\": [1,", 64),
            Err(ParseError::Json)
        ));
        // the next parse on the thread starts afresh
        assert!(from_slice(nested(2).as_bytes(), 64).is_ok());
    }
}
