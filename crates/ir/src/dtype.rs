//! Element and column types, with one mapping to and from Arrow.

use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum DType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    /// Dataframe-only: UTF-8 strings.
    Utf8,
    /// Dataframe-only: days since the epoch (Arrow Date32).
    Date32,
    /// Dataframe-only: microseconds since the epoch (Arrow Timestamp(us)).
    TimestampUs,
}

impl DType {
    pub fn itemsize(self) -> usize {
        use DType::*;
        match self {
            Bool | Int8 | UInt8 => 1,
            Int16 | UInt16 => 2,
            Int32 | UInt32 | Float32 | Date32 => 4,
            Int64 | UInt64 | Float64 | TimestampUs => 8,
            Utf8 => 16,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::Float32 | DType::Float64)
    }
    pub fn is_int(self) -> bool {
        use DType::*;
        matches!(self, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64)
    }
    pub fn is_unsigned(self) -> bool {
        use DType::*;
        matches!(self, UInt8 | UInt16 | UInt32 | UInt64)
    }
    pub fn is_numeric(self) -> bool {
        self.is_float() || self.is_int() || self == DType::Bool
    }
    /// The numpy name (`float64`, `int32`, `bool` …).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            Bool => "bool",
            Int8 => "int8",
            Int16 => "int16",
            Int32 => "int32",
            Int64 => "int64",
            UInt8 => "uint8",
            UInt16 => "uint16",
            UInt32 => "uint32",
            UInt64 => "uint64",
            Float32 => "float32",
            Float64 => "float64",
            Utf8 => "utf8",
            Date32 => "date32",
            TimestampUs => "timestamp[us]",
        }
    }

    /// numpy's result type of a binary arithmetic op between two arrays.
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        if a.is_float() || b.is_float() {
            let other = if a.is_float() { b } else { a };
            if a == Float64 || b == Float64 {
                return Float64;
            }
            // f32 with an integer wider than 16 bits becomes f64, as in numpy
            return if other.itemsize() >= 4 && other.is_int() { Float64 } else { Float32 };
        }
        if a == Bool {
            return b;
        }
        if b == Bool {
            return a;
        }
        let (ua, ub) = (a.is_unsigned(), b.is_unsigned());
        let size = a.itemsize().max(b.itemsize());
        match (ua, ub) {
            (true, true) => [UInt8, UInt16, UInt32, UInt64][size.trailing_zeros() as usize],
            (false, false) => [Int8, Int16, Int32, Int64][size.trailing_zeros() as usize],
            _ => {
                let (s, u) = if ua { (b, a) } else { (a, b) };
                if s.itemsize() > u.itemsize() {
                    s
                } else if u.itemsize() >= 8 {
                    Float64
                } else {
                    [Int8, Int16, Int32, Int64][(u.itemsize() * 2).trailing_zeros() as usize]
                }
            }
        }
    }

    /// Result type of an op between an array and a Python-style float scalar (NEP 50):
    /// float arrays keep their precision, everything else becomes float64.
    pub fn with_float_scalar(self) -> DType {
        if self.is_float() {
            self
        } else {
            DType::Float64
        }
    }

    pub fn to_arrow(self) -> DataType {
        use DType::*;
        match self {
            Bool => DataType::Boolean,
            Int8 => DataType::Int8,
            Int16 => DataType::Int16,
            Int32 => DataType::Int32,
            Int64 => DataType::Int64,
            UInt8 => DataType::UInt8,
            UInt16 => DataType::UInt16,
            UInt32 => DataType::UInt32,
            UInt64 => DataType::UInt64,
            Float32 => DataType::Float32,
            Float64 => DataType::Float64,
            Utf8 => DataType::Utf8,
            Date32 => DataType::Date32,
            TimestampUs => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        }
    }

    pub fn from_arrow(dt: &DataType) -> Option<DType> {
        use DType::*;
        Some(match dt {
            DataType::Boolean => Bool,
            DataType::Int8 => Int8,
            DataType::Int16 => Int16,
            DataType::Int32 => Int32,
            DataType::Int64 => Int64,
            DataType::UInt8 => UInt8,
            DataType::UInt16 => UInt16,
            DataType::UInt32 => UInt32,
            DataType::UInt64 => UInt64,
            DataType::Float32 => Float32,
            DataType::Float64 => Float64,
            DataType::Utf8 | DataType::LargeUtf8 => Utf8,
            DataType::Date32 => Date32,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => TimestampUs,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::DType::*;
    use super::*;

    #[test]
    fn promotion_follows_numpy() {
        assert_eq!(DType::promote(Int32, Float32), Float64);
        assert_eq!(DType::promote(Int8, Float32), Float32);
        assert_eq!(DType::promote(Int64, Int32), Int64);
        assert_eq!(DType::promote(UInt8, Int8), Int16);
        assert_eq!(DType::promote(UInt64, Int64), Float64);
        assert_eq!(DType::promote(Bool, Int32), Int32);
        assert_eq!(Int32.with_float_scalar(), Float64);
        assert_eq!(Float32.with_float_scalar(), Float32);
        for d in [Bool, Int8, UInt16, Float32, Float64, Utf8, Date32] {
            assert_eq!(DType::from_arrow(&d.to_arrow()), Some(d));
        }
    }
}
