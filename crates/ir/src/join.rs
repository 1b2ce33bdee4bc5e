//! Merges (joins) as pandas does them: which rows are kept (`How`), which
//! key types may meet, and the result's columns.

use crate::error::{IrError, IrResult};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which rows a merge keeps (pandas' `how`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum How {
    /// Rows whose key is on both sides.
    Inner,
    /// Every left row (right columns missing where no right row matches).
    Left,
    /// Every right row.
    Right,
    /// Every row of both.
    Outer,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Inner => "inner",
            How::Left => "left",
            How::Right => "right",
            How::Outer => "outer",
        })
    }
}

/// Which side a result column comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Left,
    Right,
}

/// A result column: column `col` of `side`; a key merged `on` a shared name
/// takes the other side's key (`or`) where this side has no row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JoinCol {
    pub side: Side,
    pub col: usize,
    pub or: Option<usize>,
}

fn is_int(dt: &DataType) -> bool {
    use DataType::*;
    matches!(dt, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32)
}

fn is_str(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The positions of the keys on each side, the result's columns and its
/// schema. Keys must have the same type (any two integer types, or any two
/// string types, also meet when there is one key); a key of the same name on
/// both sides appears once, other names found on both sides get `_x` / `_y`.
pub fn merge_schema(
    left: &Schema,
    right: &Schema,
    left_on: &[String],
    right_on: &[String],
) -> IrResult<(Vec<usize>, Vec<usize>, Vec<JoinCol>, Schema)> {
    if left_on.is_empty() || left_on.len() != right_on.len() {
        return Err(IrError::Invalid(format!(
            "a merge needs as many left keys as right keys, at least one; got {left_on:?} and {right_on:?}"
        )));
    }
    let lk = crate::frame::column_indices(left, left_on)?;
    let rk = crate::frame::column_indices(right, right_on)?;
    for ((l, r), (ln, rn)) in lk.iter().zip(&rk).zip(left_on.iter().zip(right_on)) {
        let (a, b) = (left.field(*l).data_type(), right.field(*r).data_type());
        let one = lk.len() == 1;
        let ok = a == b || (one && is_int(a) && is_int(b)) || (one && is_str(a) && is_str(b));
        if !ok {
            return Err(IrError::DType(format!(
                "cannot merge left key {ln:?} of type {} with right key {rn:?} of type {}",
                crate::frame::type_name(a),
                crate::frame::type_name(b)
            )));
        }
    }
    // keys merged on one shared name: (left position, right position)
    let shared: Vec<(usize, usize)> = lk
        .iter()
        .zip(&rk)
        .filter(|(l, r)| left.field(**l).name() == right.field(**r).name())
        .map(|(l, r)| (*l, *r))
        .collect();
    let in_right = |name: &str| {
        right.fields().iter().enumerate().any(|(j, f)| f.name() == name && !shared.iter().any(|s| s.1 == j))
    };
    let in_left = |name: &str| {
        left.fields().iter().enumerate().any(|(i, f)| f.name() == name && !shared.iter().any(|s| s.0 == i))
    };
    let mut cols = Vec::new();
    let mut fields = Vec::new();
    for (i, f) in left.fields().iter().enumerate() {
        let or = shared.iter().find(|s| s.0 == i).map(|s| s.1);
        let name = if or.is_none() && in_right(f.name()) { format!("{}_x", f.name()) } else { f.name().clone() };
        cols.push(JoinCol { side: Side::Left, col: i, or });
        fields.push(Field::new(name, f.data_type().clone(), true));
    }
    for (j, f) in right.fields().iter().enumerate() {
        if shared.iter().any(|s| s.1 == j) {
            continue;
        }
        let name = if in_left(f.name()) { format!("{}_y", f.name()) } else { f.name().clone() };
        cols.push(JoinCol { side: Side::Right, col: j, or: None });
        fields.push(Field::new(name, f.data_type().clone(), true));
    }
    let mut seen: Vec<&str> = Vec::new();
    for f in &fields {
        if seen.contains(&f.name().as_str()) {
            return Err(IrError::Invalid(format!("the merge result would have two columns named {:?}", f.name())));
        }
        seen.push(f.name());
    }
    Ok((lk, rk, cols, Schema::new(fields)))
}
