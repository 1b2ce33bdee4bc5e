//! Random distributions, shared by the random creation op and the random
//! leaves fusion puts into expressions (so neither module imports the other).

use serde::{Deserialize, Serialize};

/// Random distributions; every element is a pure function of (seed, flat index).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// Uniform on [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
    /// Integers uniform on [low, high).
    RandInt { low: i64, high: i64 },
}
