//! `f64` fields that may be NaN or infinite (a `full` value, an expression's
//! constant, a literal). JSON has no such numbers, so human-readable formats
//! (a saved graph file) write them as the strings `"NaN"`, `"inf"` and
//! `"-inf"` and read those back; binary formats (bincode: keys, the wire)
//! keep the raw `f64`, so keys do not change.
//!
//! Use as `#[serde(with = "crate::serde_f64")]`.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() && !v.is_finite() {
        s.serialize_str(if v.is_nan() {
            "NaN"
        } else if *v > 0.0 {
            "inf"
        } else {
            "-inf"
        })
    } else {
        s.serialize_f64(*v)
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(F64Visitor)
    } else {
        d.deserialize_f64(F64Visitor)
    }
}

struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, or \"NaN\", \"inf\" or \"-inf\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" | "nan" => Ok(f64::NAN),
            "inf" | "Infinity" => Ok(f64::INFINITY),
            "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct C(#[serde(with = "super")] f64);

    #[test]
    fn non_finite_values_round_trip_through_json_and_bincode() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5, -0.0, 1e300] {
            let json = serde_json::to_string(&C(v)).unwrap();
            let back: C = serde_json::from_str(&json).unwrap();
            assert!(back.0.to_bits() == v.to_bits() || (v.is_nan() && back.0.is_nan()), "{v} via {json}");
            let bin = bincode::serialize(&C(v)).unwrap();
            assert_eq!(bin, bincode::serialize(&v).unwrap(), "bincode keeps the raw f64 (keys unchanged)");
            let back: C = bincode::deserialize(&bin).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits());
        }
        assert_eq!(serde_json::from_str::<C>("3").unwrap().0, 3.0);
        assert!(serde_json::from_str::<C>("\"three\"").unwrap_err().to_string().contains("NaN"));
    }
}
