//! Element-wise expressions over Series (dataframe columns aligned by row
//! chunks), with pandas' type rules on Arrow types.

use crate::error::{IrError, IrResult};
use crate::expr::BinaryFn;
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A literal operand of a column expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Lit {
    F64(#[serde(with = "crate::serde_f64")] f64),
    I64(i64),
    Str(String),
    Bool(bool),
    /// A date: days since 1970-01-01 (Arrow's Date32).
    Date(i32),
}

impl Lit {
    /// The Arrow type of the literal.
    pub fn data_type(&self) -> DataType {
        match self {
            Lit::F64(_) => DataType::Float64,
            Lit::I64(_) => DataType::Int64,
            Lit::Str(_) => DataType::Utf8,
            Lit::Bool(_) => DataType::Boolean,
            Lit::Date(_) => DataType::Date32,
        }
    }
}

/// An element-wise expression over the input Series (`Input(i)`) and literals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ColExpr {
    Input(usize),
    Lit(Lit),
    Binary(BinaryFn, Box<ColExpr>, Box<ColExpr>),
    Not(Box<ColExpr>),
    /// Whether the value is one of these (`s.isin([...])`); missing is false.
    IsIn(Box<ColExpr>, Vec<Lit>),
    /// A string test: `s.str.startswith(p)` / `s.str.contains(p)` (a plain
    /// substring, not a pattern); missing is false.
    Str(StrFn, Box<ColExpr>, String),
    /// `cond ? a : b` per row (a missing condition is false).
    Where(Box<ColExpr>, Box<ColExpr>, Box<ColExpr>),
    /// The values as this type (`astype`); a value that does not fit is an error.
    Cast(Box<ColExpr>, DataType),
    /// Missing values (and float NaN, as pandas) replaced by a literal.
    FillNull(Box<ColExpr>, Lit),
}

/// The string tests of [`ColExpr::Str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StrFn {
    StartsWith,
    Contains,
}

/// What a column type is for the type rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Int,
    Float,
    Str,
    Bool,
    Date,
    Other,
}

fn class(dt: &DataType) -> Class {
    use DataType::*;
    match dt {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Class::Int,
        Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => Class::Float,
        Utf8 | LargeUtf8 | Utf8View => Class::Str,
        Boolean => Class::Bool,
        Date32 | Date64 => Class::Date,
        _ => Class::Other,
    }
}

/// The type both operands of `f` are brought to before the kernel runs, or
/// an error naming the types. Arithmetic: integers stay Int64 (division gives
/// Float64), anything with a float or a decimal is Float64 (pandas: a decimal
/// times a float is a float); comparisons: numbers as numbers, strings as
/// strings, bools as bools.
pub fn operand_type(f: BinaryFn, a: &DataType, b: &DataType) -> IrResult<DataType> {
    let (ca, cb) = (class(a), class(b));
    let numeric = |c: Class| matches!(c, Class::Int | Class::Float);
    let bad = || IrError::DType(format!("operator {} is not defined for {a} and {b}", f.symbol()));
    if f.is_logical() {
        return match (ca, cb) {
            (Class::Bool, Class::Bool) => Ok(DataType::Boolean),
            _ => Err(bad()),
        };
    }
    if f.is_comparison() {
        return match (ca, cb) {
            (Class::Int, Class::Int) => Ok(DataType::Int64),
            (x, y) if numeric(x) && numeric(y) => Ok(DataType::Float64),
            (Class::Str, Class::Str) => Ok(DataType::Utf8),
            (Class::Bool, Class::Bool) => Ok(DataType::Boolean),
            (Class::Date, Class::Date) => Ok(DataType::Date32),
            _ => Err(bad()),
        };
    }
    match (f, ca, cb) {
        (BinaryFn::Pow, ..) => Err(bad()),
        (BinaryFn::Div, x, y) if numeric(x) && numeric(y) => Ok(DataType::Float64),
        (_, Class::Int, Class::Int) => Ok(DataType::Int64),
        (_, x, y) if numeric(x) && numeric(y) => Ok(DataType::Float64),
        _ => Err(bad()),
    }
}

impl ColExpr {
    /// This expression with each `Input(i)` replaced by `f(i)` (an
    /// expression of the same value); `None` when `f` gives up on one.
    pub fn substitute(&self, f: &mut dyn FnMut(usize) -> Option<ColExpr>) -> Option<ColExpr> {
        let mut go = |e: &ColExpr| e.substitute(f).map(Box::new);
        Some(match self {
            ColExpr::Input(i) => return f(*i),
            ColExpr::Lit(l) => ColExpr::Lit(l.clone()),
            ColExpr::Not(e) => ColExpr::Not(go(e)?),
            ColExpr::Binary(op, a, b) => {
                let a = go(a)?;
                ColExpr::Binary(*op, a, go(b)?)
            }
            ColExpr::IsIn(e, v) => ColExpr::IsIn(go(e)?, v.clone()),
            ColExpr::Str(func, e, p) => ColExpr::Str(*func, go(e)?, p.clone()),
            ColExpr::Where(c, a, b) => {
                let (c, a) = (go(c)?, go(a)?);
                ColExpr::Where(c, a, go(b)?)
            }
            ColExpr::Cast(e, to) => ColExpr::Cast(go(e)?, to.clone()),
            ColExpr::FillNull(e, v) => ColExpr::FillNull(go(e)?, v.clone()),
        })
    }

    /// The result type given the inputs' types; errors name the bad types.
    pub fn data_type(&self, inputs: &[DataType]) -> IrResult<DataType> {
        match self {
            ColExpr::Input(i) => inputs
                .get(*i)
                .cloned()
                .ok_or_else(|| IrError::Graph(format!("expression refers to input #{i} of {}", inputs.len()))),
            ColExpr::Lit(l) => Ok(l.data_type()),
            ColExpr::Not(e) => match e.data_type(inputs)? {
                DataType::Boolean => Ok(DataType::Boolean),
                other => Err(IrError::DType(format!("logical not needs a bool Series, got {other}"))),
            },
            ColExpr::Binary(f, a, b) => {
                let t = operand_type(*f, &a.data_type(inputs)?, &b.data_type(inputs)?)?;
                Ok(if f.is_comparison() || f.is_logical() { DataType::Boolean } else { t })
            }
            ColExpr::IsIn(e, values) => {
                let t = e.data_type(inputs)?;
                for v in values {
                    operand_type(BinaryFn::Eq, &t, &v.data_type())?;
                }
                Ok(DataType::Boolean)
            }
            ColExpr::Str(func, e, _) => match e.data_type(inputs)? {
                t if class(&t) == Class::Str => Ok(DataType::Boolean),
                other => Err(IrError::DType(format!("{} needs a string Series, got {other}", func.name()))),
            },
            ColExpr::Where(c, a, b) => {
                let ct = c.data_type(inputs)?;
                if ct != DataType::Boolean {
                    return Err(IrError::DType(format!("where needs a bool condition, got {ct}")));
                }
                let (ta, tb) = (a.data_type(inputs)?, b.data_type(inputs)?);
                if ta == tb {
                    return Ok(ta);
                }
                match (class(&ta), class(&tb)) {
                    (x, y) if x == y && x != Class::Other => operand_type(BinaryFn::Eq, &ta, &tb),
                    (Class::Int | Class::Float, Class::Int | Class::Float) => Ok(DataType::Float64),
                    _ => Err(IrError::DType(format!("where cannot choose between {ta} and {tb}"))),
                }
            }
            ColExpr::Cast(e, to) => {
                let from = e.data_type(inputs)?;
                if !arrow::compute::can_cast_types(&from, to) || !crate::frame::supported_type(to) {
                    return Err(IrError::DType(format!("cannot cast {from} to {to}")));
                }
                Ok(to.clone())
            }
            ColExpr::FillNull(e, v) => {
                let t = e.data_type(inputs)?;
                let ok = t == v.data_type()
                    || matches!((class(&t), class(&v.data_type())), (Class::Float, Class::Int | Class::Float));
                if !ok {
                    return Err(IrError::DType(format!("cannot fill missing {t} values with {v}")));
                }
                Ok(t)
            }
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::F64(v) => write!(f, "{v:?}"),
            Lit::I64(v) => write!(f, "{v}"),
            Lit::Str(s) => write!(f, "{s:?}"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Date(d) => write!(f, "date({d})"),
        }
    }
}

impl fmt::Display for ColExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColExpr::Input(i) => write!(f, "#{i}"),
            ColExpr::Lit(l) => write!(f, "{l}"),
            ColExpr::Not(e) => write!(f, "!{e}"),
            ColExpr::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            ColExpr::IsIn(e, values) => {
                let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                write!(f, "{e}.isin([{}])", v.join(", "))
            }
            ColExpr::Str(func, e, p) => write!(f, "{e}.{}({p:?})", func.name()),
            ColExpr::Where(c, a, b) => write!(f, "where({c}, {a}, {b})"),
            ColExpr::Cast(e, to) => write!(f, "{e}.astype({to})"),
            ColExpr::FillNull(e, v) => write!(f, "{e}.fillna({v})"),
        }
    }
}

impl StrFn {
    /// The pandas name.
    pub fn name(self) -> &'static str {
        match self {
            StrFn::StartsWith => "str.startswith",
            StrFn::Contains => "str.contains",
        }
    }
}
