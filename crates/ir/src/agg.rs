//! Group-by aggregations: the functions, the partial state each keeps between
//! the chunk-wise map and the combine, and the types of their results.
//!
//! A groupby runs in three steps over record batches: each input chunk is
//! reduced to one row per group holding every aggregation's *state* columns
//! ([`state_fields`]); states of several chunks are merged (a tree, or after a
//! hash shuffle) into the same layout; the last merge *finalizes* the states
//! into the result columns ([`output_field`]). Keeping the state in Arrow
//! columns lets partials spill, travel and be counted like any other frame.

use crate::error::{IrError, IrResult};
use arrow_schema::{DataType, Field};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An aggregation, as pandas names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggFn {
    Sum,
    Mean,
    Min,
    Max,
    /// Non-missing values.
    Count,
    /// Rows, missing values included.
    Size,
    /// Sample standard deviation (ddof 1, as pandas).
    Std,
    /// Sample variance (ddof 1).
    Var,
    /// The first non-missing value, in row order.
    First,
    /// Distinct non-missing values.
    Nunique,
}

impl AggFn {
    pub const ALL: [AggFn; 10] = [
        AggFn::Sum,
        AggFn::Mean,
        AggFn::Min,
        AggFn::Max,
        AggFn::Count,
        AggFn::Size,
        AggFn::Std,
        AggFn::Var,
        AggFn::First,
        AggFn::Nunique,
    ];

    /// The pandas name (`"sum"`, `"nunique"` …).
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Sum => "sum",
            AggFn::Mean => "mean",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Count => "count",
            AggFn::Size => "size",
            AggFn::Std => "std",
            AggFn::Var => "var",
            AggFn::First => "first",
            AggFn::Nunique => "nunique",
        }
    }

    /// By pandas name; an unknown name is an error listing the known ones.
    pub fn parse(name: &str) -> IrResult<AggFn> {
        AggFn::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| {
            let known: Vec<&str> = AggFn::ALL.iter().map(|f| f.name()).collect();
            IrError::Invalid(format!("unknown aggregation {name:?}; the known ones are {known:?}"))
        })
    }
}

impl fmt::Display for AggFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether sums and moments of this type make sense (numbers and bools).
pub fn is_numeric(dt: &DataType) -> bool {
    use DataType::*;
    matches!(
        dt,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float16
            | Float32
            | Float64
            | Decimal32(..)
            | Decimal64(..)
            | Decimal128(..)
            | Decimal256(..)
    )
}

/// Whether the type is summed exactly as 64-bit integers (ints and bools, as
/// pandas keeps them); other numbers are summed as Float64.
pub fn sums_as_int(dt: &DataType) -> bool {
    use DataType::*;
    matches!(dt, Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64)
}

/// Whether min and max order this type: numbers, dates and times, strings.
pub fn is_ordered(dt: &DataType) -> bool {
    use DataType::*;
    is_numeric(dt)
        || matches!(
            dt,
            Date32 | Date64 | Timestamp(..) | Time32(_) | Time64(_) | Duration(_) | Utf8 | LargeUtf8 | Utf8View
        )
}

/// Refuse an aggregation of a column type it does not apply to (the error
/// names the column and its type).
pub fn check(func: AggFn, column: &Field) -> IrResult<()> {
    let dt = column.data_type();
    let ok = match func {
        AggFn::Sum | AggFn::Mean | AggFn::Std | AggFn::Var => is_numeric(dt),
        AggFn::Min | AggFn::Max => is_ordered(dt),
        AggFn::Count | AggFn::Size | AggFn::First | AggFn::Nunique => true,
    };
    if ok {
        Ok(())
    } else {
        Err(IrError::DType(format!(
            "cannot take the {func} of column {:?} of type {}",
            column.name(),
            crate::frame::type_name(dt)
        )))
    }
}

/// The columns `func` of `column` keeps between the map and the combine,
/// named after `prefix` (the aggregation's position, so names never clash).
pub fn state_fields(func: AggFn, column: &Field, prefix: &str) -> Vec<Field> {
    let f = |suffix: &str, dt: DataType| Field::new(format!("{prefix}_{suffix}"), dt, true);
    let dt = column.data_type().clone();
    match func {
        AggFn::Sum if sums_as_int(&dt) => vec![f("sum", DataType::Int64)],
        AggFn::Sum => vec![f("sum", DataType::Float64)],
        AggFn::Mean => vec![f("sum", DataType::Float64), f("count", DataType::Int64)],
        AggFn::Count | AggFn::Size => vec![f("count", DataType::Int64)],
        AggFn::Std | AggFn::Var => {
            vec![f("n", DataType::Int64), f("mean", DataType::Float64), f("m2", DataType::Float64)]
        }
        AggFn::Min | AggFn::Max | AggFn::First => vec![f("value", dt)],
        AggFn::Nunique => vec![f("distinct", DataType::List(std::sync::Arc::new(Field::new("item", dt, true))))],
    }
}

/// The result column of `func` of `column`, named `name`.
pub fn output_field(func: AggFn, column: &Field, name: &str) -> Field {
    let dt = column.data_type();
    let out = match func {
        AggFn::Sum if sums_as_int(dt) => DataType::Int64,
        AggFn::Sum | AggFn::Mean | AggFn::Std | AggFn::Var => DataType::Float64,
        AggFn::Count | AggFn::Size | AggFn::Nunique => DataType::Int64,
        AggFn::Min | AggFn::Max | AggFn::First => dt.clone(),
    };
    Field::new(name, out, true)
}

/// One aggregation of a groupby: `func` of column `column`, named `name` in
/// the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    pub column: String,
    pub func: AggFn,
    pub name: String,
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.func, self.column)?;
        if self.name != format!("{}_{}", self.column, self.func) {
            write!(f, " as {:?}", self.name)?;
        }
        Ok(())
    }
}

/// How many state columns `func` keeps.
pub fn state_width(func: AggFn) -> usize {
    match func {
        AggFn::Mean => 2,
        AggFn::Std | AggFn::Var => 3,
        _ => 1,
    }
}

/// The result column of `func` read off its first state column.
fn output_from_state(func: AggFn, state: &Field, name: &str) -> Field {
    let out = match func {
        AggFn::Sum => state.data_type().clone(),
        AggFn::Mean | AggFn::Std | AggFn::Var => DataType::Float64,
        AggFn::Count | AggFn::Size | AggFn::Nunique => DataType::Int64,
        AggFn::Min | AggFn::Max | AggFn::First => state.data_type().clone(),
    };
    Field::new(name, out, true)
}

/// A groupby's map step over a frame of `schema`: the positions of the key
/// columns and of each aggregation's column, and the schema of the partial
/// states (keys, then the states in order). No keys make one group of all
/// rows (a Series reduction). Unknown columns, repeated keys,
/// result names that clash and aggregations that do not apply are errors.
pub fn partial_schema(
    schema: &arrow_schema::Schema,
    keys: &[String],
    aggs: &[Agg],
) -> IrResult<(Vec<usize>, Vec<(usize, AggFn)>, arrow_schema::Schema)> {
    let key_idx = crate::frame::column_indices(schema, keys)?;
    let mut names: Vec<&str> = Vec::new();
    for n in keys.iter().map(String::as_str).chain(aggs.iter().map(|a| a.name.as_str())) {
        if names.contains(&n) {
            return Err(IrError::Invalid(format!("the groupby result would have two columns named {n:?}")));
        }
        names.push(n);
    }
    let mut fields: Vec<Field> = key_idx.iter().map(|&i| schema.field(i).clone().with_nullable(true)).collect();
    let mut agg_idx = Vec::with_capacity(aggs.len());
    for (i, a) in aggs.iter().enumerate() {
        let c = crate::frame::column_indices(schema, std::slice::from_ref(&a.column))?[0];
        check(a.func, schema.field(c))?;
        fields.extend(state_fields(a.func, schema.field(c), &format!("a{i}")));
        agg_idx.push((c, a.func));
    }
    Ok((key_idx, agg_idx, arrow_schema::Schema::new(fields)))
}

/// The result schema of merging partial states of `schema` (keys first).
pub fn result_schema(schema: &arrow_schema::Schema, nkeys: usize, aggs: &[Agg]) -> IrResult<arrow_schema::Schema> {
    let want = nkeys + aggs.iter().map(|a| state_width(a.func)).sum::<usize>();
    if schema.fields().len() != want {
        return Err(IrError::Invalid(format!(
            "groupby partial states of {} columns for {nkeys} keys and {} aggregations (want {want})",
            schema.fields().len(),
            aggs.len()
        )));
    }
    let mut fields: Vec<Field> = schema.fields().iter().take(nkeys).map(|f| f.as_ref().clone()).collect();
    let mut at = nkeys;
    for a in aggs {
        fields.push(output_from_state(a.func, schema.field(at), &a.name));
        at += state_width(a.func);
    }
    Ok(arrow_schema::Schema::new(fields))
}
