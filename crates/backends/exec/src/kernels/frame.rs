//! Dataframe kernels on Arrow: Series expressions and row filters.

use super::KernelError;
use crate::data::ChunkData;
use arrow::array::{Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, Scalar, StringArray};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use mars_ir::colexpr::{operand_type, ColExpr, Lit, StrFn};
use mars_ir::{BinaryFn, FrameChunkOp};
use std::sync::Arc;

/// The batches of a frame op's inputs (a piece of each, for `GatherPart`
/// and a `SortLocal` of one part).
fn batches<'a>(op: &FrameChunkOp, inputs: &'a [Arc<ChunkData>]) -> Result<Vec<&'a RecordBatch>, KernelError> {
    // a probe's build side is its last input, read as a table; a pipeline
    // hands its inputs to its stages
    let n = match op {
        FrameChunkOp::JoinProbe(_) => inputs.len().saturating_sub(1),
        FrameChunkOp::Pipeline(_) => 0,
        _ => inputs.len(),
    };
    inputs[..n]
        .iter()
        .enumerate()
        .map(|(i, d)| match (&**d, op) {
            (
                ChunkData::Parts(parts),
                FrameChunkOp::GatherPart { part } | FrameChunkOp::SortLocal { part: Some(part), .. },
            ) => parts.get(*part).ok_or_else(|| err(format!("input {i} has {} pieces, not piece {part}", parts.len()))),
            (ChunkData::Frame(b), _) => Ok(b),
            _ => Err(err(format!("{} needs frame inputs; input {i} is not one", op.name()))),
        })
        .collect()
}

/// Run one frame chunk op.
pub fn run(op: &FrameChunkOp, inputs: &[Arc<ChunkData>]) -> Result<ChunkData, KernelError> {
    let ins = batches(op, inputs)?;
    let want = |n: usize| match ins.len() {
        k if k == n => Ok(()),
        k => Err(err(format!("{} takes {n} inputs, got {k}", op.name()))),
    };
    let one = |b: RecordBatch| Ok(ChunkData::Frame(b));
    match op {
        FrameChunkOp::Eval { expr, name } => one(eval(expr, name, &ins)?),
        FrameChunkOp::WithColumn { name, at, replace } => {
            want(2)?;
            one(with_column(ins[0], ins[1], name, *at, *replace)?)
        }
        FrameChunkOp::Filter => {
            want(2)?;
            one(filter(ins[0], ins[1])?)
        }
        FrameChunkOp::Project { columns } => {
            want(1)?;
            one(ins[0].project(columns)?)
        }
        FrameChunkOp::SliceRows { offset, len } => {
            want(1)?;
            one(slice_rows(ins[0], *offset, *len)?)
        }
        FrameChunkOp::GroupPartial { keys, aggs } => {
            want(1)?;
            one(super::groupby::partial(ins[0], keys, aggs)?)
        }
        FrameChunkOp::GroupCombine { nkeys, aggs, finalize } => {
            one(super::groupby::combine(&ins, *nkeys, aggs, finalize.as_deref())?)
        }
        FrameChunkOp::HashPartition { keys, parts } => {
            want(1)?;
            Ok(ChunkData::Parts(super::groupby::hash_partition(ins[0], keys, *parts)?))
        }
        FrameChunkOp::ReadParquet { file, row_groups, rows, columns, filter } => {
            want(0)?;
            one(crate::io::read_parquet(file, row_groups, *rows, columns, filter.as_deref())?)
        }
        FrameChunkOp::ReadCsv(c) => {
            want(0)?;
            one(crate::io::read_csv(c)?)
        }
        FrameChunkOp::JoinBuild { keys } => {
            let batch = concat(&ins)?;
            Ok(ChunkData::Table(Arc::new(super::join::JoinTable::build(batch, keys)?)))
        }
        FrameChunkOp::JoinProbe(p) => match (ins.as_slice(), inputs.last().map(|d| &**d)) {
            ([probe], Some(ChunkData::Table(table))) => one(super::join::probe(probe, table, p)?),
            _ => Err(err("JoinProbe takes a frame and a join table")),
        },
        FrameChunkOp::SortLocal { by, descending, .. } => one(super::sort::sort_pieces(&ins, by, descending)?),
        FrameChunkOp::SortSample { by, per, chunk } => {
            want(1)?;
            one(super::sort::sample(ins[0], by, *per, *chunk)?)
        }
        FrameChunkOp::Distinct => {
            let b = concat(&ins)?;
            let first = super::hash::first_rows(b.columns())?;
            one(arrow::compute::take_record_batch(&b, &arrow::array::UInt32Array::from(first))?)
        }
        FrameChunkOp::TakeRows { rows } => {
            want(1)?;
            let at = rows.iter().map(|&r| u32::try_from(r).ok().filter(|&r| (r as usize) < ins[0].num_rows()));
            let at: Option<Vec<u32>> = at.collect();
            let at = at.ok_or_else(|| err(format!("rows {rows:?} of a chunk of {} rows", ins[0].num_rows())))?;
            one(arrow::compute::take_record_batch(ins[0], &arrow::array::UInt32Array::from(at))?)
        }
        FrameChunkOp::Quantiles { qs, n, name } => one(quantiles(&ins, qs, *n, name)?),
        FrameChunkOp::Describe { columns } => one(describe(&ins, columns)?),
        FrameChunkOp::TopK { by, descending, n } => one(super::sort::top_k(&ins, by, descending, *n)?),
        FrameChunkOp::SortPivots { descending, parts } => one(super::sort::pivots(&ins, descending, *parts)?),
        FrameChunkOp::RangePartition { by, descending, chunk } => {
            want(2)?;
            Ok(ChunkData::Parts(super::sort::range_partition(ins[0], by, descending, *chunk, ins[1])?))
        }
        FrameChunkOp::Pipeline(p) => super::pipeline::run(p, inputs),
        FrameChunkOp::GatherPart { .. } => match ins.first() {
            Some(_) => one(concat(&ins)?),
            None => Err(err("GatherPart needs at least one input")),
        },
    }
}

/// The rows of all `batches` (at least one), in order.
fn concat(batches: &[&RecordBatch]) -> Result<RecordBatch, KernelError> {
    let first = batches.first().ok_or_else(|| err("concatenating no batches"))?;
    if batches.len() == 1 {
        return Ok((*first).clone());
    }
    let owned: Vec<RecordBatch> = batches.iter().map(|b| (*b).clone()).collect();
    Ok(arrow::compute::concat_batches(&first.schema(), &owned)?)
}

/// Rows `offset..offset + len`, copied: a view would keep (and be counted
/// as) the whole batch.
fn slice_rows(batch: &RecordBatch, offset: usize, len: usize) -> Result<RecordBatch, KernelError> {
    if offset.checked_add(len).is_none_or(|end| end > batch.num_rows()) {
        return Err(err(format!(
            "rows {offset}..{} of a batch of {} rows",
            offset.saturating_add(len),
            batch.num_rows()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            let mut copy = arrow::array::MutableArrayData::new(vec![&data], false, len);
            copy.try_extend(0, offset, offset + len)?;
            Ok(arrow::array::make_array(copy.freeze()))
        })
        .collect::<Result<Vec<_>, KernelError>>()?;
    let opts = RecordBatchOptions::new().with_row_count(Some(len));
    Ok(RecordBatch::try_new_with_options(batch.schema(), columns, &opts)?)
}

fn err(e: impl std::fmt::Display) -> KernelError {
    KernelError(e.to_string())
}

/// A value while evaluating: a column of the chunk's length, or a literal.
enum Val {
    Col(ArrayRef),
    Lit(Lit),
}

impl Val {
    fn data_type(&self) -> DataType {
        match self {
            Val::Col(a) => a.data_type().clone(),
            Val::Lit(l) => l.data_type(),
        }
    }
    /// As an Arrow datum of type `to` (a scalar for a literal).
    fn datum(&self, to: &DataType) -> Result<Box<dyn Datum>, KernelError> {
        match self {
            Val::Col(a) => Ok(Box::new(super::cast_column(a, to)?)),
            Val::Lit(l) => {
                let one: ArrayRef = match l {
                    Lit::F64(v) => Arc::new(Float64Array::from(vec![*v])),
                    Lit::I64(v) => Arc::new(Int64Array::from(vec![*v])),
                    Lit::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
                    Lit::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
                    Lit::Date(d) => Arc::new(arrow::array::Date32Array::from(vec![*d])),
                };
                Ok(Box::new(Scalar::new(arrow::compute::cast(&one, to).map_err(err)?)))
            }
        }
    }
}

/// A bool result as pandas has it: a missing operand compares false.
fn no_nulls(b: BooleanArray) -> ArrayRef {
    match b.nulls().filter(|n| n.null_count() > 0) {
        None => Arc::new(BooleanArray::new(b.values().clone(), None)),
        Some(n) => Arc::new(BooleanArray::new(b.values() & n.inner(), None)),
    }
}

/// The type both operands of `f` are brought to: the type rules'
/// ([`operand_type`]), except that strings meet in the column's own string
/// type (a Utf8View column is compared as views, with the literal cast,
/// rather than copied into a Utf8 column).
fn kernel_type(f: BinaryFn, a: &DataType, b: &DataType) -> Result<DataType, KernelError> {
    let t = operand_type(f, a, b).map_err(err)?;
    let string = |d: &DataType| matches!(d, DataType::Utf8View | DataType::LargeUtf8);
    Ok(match t {
        DataType::Utf8 if string(a) => a.clone(),
        DataType::Utf8 if string(b) => b.clone(),
        t => t,
    })
}

/// `col f lit` for a decimal column (of at most 15 digits) and a number,
/// compared on the stored integers: the literal becomes the integer
/// thresholds where the column's Float64 value (`x / 10^scale`, as the
/// type rules compare it) crosses it, so the answer is the Float64
/// comparison's without converting the column. `None` when it does not apply.
fn decimal_cmp(f: BinaryFn, a: &Val, b: &Val, cols: &[ArrayRef]) -> Result<Option<ArrayRef>, KernelError> {
    use BinaryFn::*;
    let (col, lit, f) = match (a, b) {
        (Val::Col(c), Val::Lit(l)) => (c, l, f),
        (Val::Lit(l), Val::Col(c)) => {
            let flipped = match f {
                Lt => Gt,
                Gt => Lt,
                Le => Ge,
                Ge => Le,
                other => other,
            };
            (c, l, flipped)
        }
        _ => return Ok(None),
    };
    let lit = match lit {
        Lit::F64(x) if x.is_finite() => *x,
        Lit::I64(x) if x.unsigned_abs() < 1 << 53 => *x as f64,
        _ => return Ok(None),
    };
    let (p, s) = match col.data_type() {
        DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => (*p, *s),
        _ => return Ok(None),
    };
    if !f.is_comparison() || p > 15 || !(0..=15).contains(&s) {
        return Ok(None);
    }
    let pow = 10_f64.powi(i32::from(s));
    // the value as the type rules see it, for a stored integer (exact in f64 below 10^15)
    let value = |x: i64| x as f64 / pow;
    // the least stored integer whose value passes `ok` (values grow with x)
    let least = |ok: &dyn Fn(f64) -> bool| -> i64 {
        let bound = 10_i64.pow(u32::from(p));
        let guess = (lit * pow).floor().clamp(-(bound as f64) - 2.0, bound as f64 + 2.0) as i64;
        let mut x = guess - 2;
        while !ok(value(x)) && x < guess + 3 {
            x += 1;
        }
        x
    };
    let ge = least(&|v| v >= lit); // x >= ge  <=>  value >= lit
    let gt = least(&|v| v > lit); // x >= gt  <=>  value > lit
    let n = col.len();
    // every comparison is `lo <= x < hi` or its negation
    let (lo, hi, negate) = match f {
        Lt => (i64::MIN, ge, false),
        Ge => (ge, i64::MAX, false),
        Le => (i64::MIN, gt, false),
        Gt => (gt, i64::MAX, false),
        Eq => (ge, gt, false),
        _ => (ge, gt, true),
    };
    // `lo <= x <= last` as one unsigned comparison (no upper bound: last = MAX)
    let last = if hi == i64::MAX { i64::MAX } else { hi.wrapping_sub(1) };
    let empty = hi != i64::MAX && hi <= lo;
    let span = last.wrapping_sub(lo) as u64;
    let test = move |x: i64| ((x.wrapping_sub(lo) as u64 <= span) && !empty) != negate;
    let bits = match col.data_type() {
        DataType::Decimal64(..) => {
            let v =
                col.as_any().downcast_ref::<arrow::array::Decimal64Array>().ok_or_else(|| err("a Decimal64 column"))?;
            if empty {
                mask_of(v.values(), test)
            } else {
                let words = super::simd::RangeMask { v: v.values(), lo, span, negate }.run();
                arrow::buffer::BooleanBuffer::new(arrow::buffer::Buffer::from_vec(words), 0, n)
            }
        }
        _ => {
            let v = col
                .as_any()
                .downcast_ref::<arrow::array::Decimal128Array>()
                .ok_or_else(|| err("a Decimal128 column"))?;
            mask_of(v.values(), |x| test(x as i64))
        }
    };
    debug_assert_eq!(bits.len(), n);
    let raw = BooleanArray::new(bits, None);
    let bad = missing(&Val::Col(col.clone()), cols)?;
    let out = match (bad, f) {
        (None, _) => raw,
        (Some(bad), Ne) => boolean::or(&raw, &bad).map_err(err)?,
        (Some(bad), _) => boolean::and(&raw, &boolean::not(&bad).map_err(err)?).map_err(err)?,
    };
    Ok(Some(Arc::new(out)))
}

/// `test` of each value as a bit mask, built 64 values to a word (a loop
/// the compiler vectorises, unlike a closure called per index).
fn mask_of<T: Copy>(v: &[T], test: impl Fn(T) -> bool) -> arrow::buffer::BooleanBuffer {
    let mut words = Vec::with_capacity(v.len().div_ceil(64));
    let mut whole = v.chunks_exact(64);
    for c in &mut whole {
        // a fixed trip count: unrolled, compared lanes at a time, packed
        let mut m = 0u64;
        for (j, &x) in c.iter().enumerate().take(64) {
            m |= u64::from(test(x)) << j;
        }
        words.push(m);
    }
    let rest = whole.remainder();
    if !rest.is_empty() {
        let mut m = 0u64;
        for (j, &x) in rest.iter().enumerate() {
            m |= u64::from(test(x)) << j;
        }
        words.push(m);
    }
    arrow::buffer::BooleanBuffer::new(arrow::buffer::Buffer::from_vec(words), 0, v.len())
}

/// Rows where `v` is missing or NaN (`None`: no such row).
fn missing(v: &Val, cols: &[ArrayRef]) -> Result<Option<BooleanArray>, KernelError> {
    let n = cols.first().map_or(0, |c| c.len());
    Ok(match v {
        Val::Lit(Lit::F64(x)) if x.is_nan() => Some(BooleanArray::from(vec![true; n])),
        Val::Lit(_) => None,
        Val::Col(a) => {
            let nan = match a.data_type() {
                DataType::Float64 => {
                    let f = a.as_any().downcast_ref::<Float64Array>().ok_or_else(|| err("a Float64 column"))?;
                    let v = f.values();
                    Some(arrow::buffer::BooleanBuffer::collect_bool(v.len(), |i| v[i].is_nan()))
                }
                DataType::Float32 => {
                    let f = a
                        .as_any()
                        .downcast_ref::<arrow::array::Float32Array>()
                        .ok_or_else(|| err("a Float32 column"))?;
                    let v = f.values();
                    Some(arrow::buffer::BooleanBuffer::collect_bool(v.len(), |i| v[i].is_nan()))
                }
                _ => None,
            };
            let null = a.logical_nulls().map(|nb| !nb.inner());
            match (nan, null) {
                (None, None) => None,
                (Some(x), None) | (None, Some(x)) => Some(BooleanArray::new(x, None)),
                (Some(x), Some(y)) => Some(BooleanArray::new(&x | &y, None)),
            }
        }
    })
}

/// A comparison as pandas has it: a missing or NaN operand compares false,
/// except for `!=`, where it is true (`ne_true`).
fn pandas_cmp(
    raw: Result<BooleanArray, arrow::error::ArrowError>,
    a: &Val,
    b: &Val,
    ne_true: bool,
    cols: &[ArrayRef],
) -> Result<ArrayRef, KernelError> {
    let raw = no_nulls(raw.map_err(err)?);
    let raw = raw.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| err("a comparison gives bools"))?;
    let bad = match (missing(a, cols)?, missing(b, cols)?) {
        (None, None) => return Ok(Arc::new(raw.clone())),
        (Some(x), None) | (None, Some(x)) => x,
        (Some(x), Some(y)) => boolean::or(&x, &y).map_err(err)?,
    };
    let out = if ne_true { boolean::or(raw, &bad) } else { boolean::and(raw, &boolean::not(&bad).map_err(err)?) };
    Ok(Arc::new(out.map_err(err)?))
}

fn eval_val(expr: &ColExpr, cols: &[ArrayRef]) -> Result<Val, KernelError> {
    Ok(match expr {
        ColExpr::Input(i) => {
            Val::Col(cols.get(*i).cloned().ok_or_else(|| err(format!("no input #{i} of {}", cols.len())))?)
        }
        ColExpr::Lit(l) => Val::Lit(l.clone()),
        ColExpr::Not(e) => {
            let v = to_column(eval_val(e, cols)?, cols)?;
            let b = v.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| err("logical not of a non-bool Series"))?;
            Val::Col(no_nulls(boolean::not(b).map_err(err)?))
        }
        ColExpr::Binary(f, a, b) => {
            let (a, b) = (eval_val(a, cols)?, eval_val(b, cols)?);
            if let Some(out) = decimal_cmp(*f, &a, &b, cols)? {
                return Ok(Val::Col(out));
            }
            let t = kernel_type(*f, &a.data_type(), &b.data_type())?;
            let (da, db) = (a.datum(&t)?, b.datum(&t)?);
            let (da, db) = (da.as_ref(), db.as_ref());
            let out: ArrayRef = match f {
                BinaryFn::Add => numeric::add_wrapping(da, db).map_err(err)?,
                BinaryFn::Sub => numeric::sub_wrapping(da, db).map_err(err)?,
                BinaryFn::Mul => numeric::mul_wrapping(da, db).map_err(err)?,
                BinaryFn::Div => numeric::div(da, db).map_err(err)?,
                BinaryFn::Gt => pandas_cmp(cmp::gt(da, db), &a, &b, false, cols)?,
                BinaryFn::Lt => pandas_cmp(cmp::lt(da, db), &a, &b, false, cols)?,
                BinaryFn::Ge => pandas_cmp(cmp::gt_eq(da, db), &a, &b, false, cols)?,
                BinaryFn::Le => pandas_cmp(cmp::lt_eq(da, db), &a, &b, false, cols)?,
                BinaryFn::Eq => pandas_cmp(cmp::eq(da, db), &a, &b, false, cols)?,
                BinaryFn::Ne => pandas_cmp(cmp::neq(da, db), &a, &b, true, cols)?,
                BinaryFn::And | BinaryFn::Or => {
                    let (x, y) = (to_column(a, cols)?, to_column(b, cols)?);
                    let x = x.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| err("& of a non-bool Series"))?;
                    let y = y.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| err("| of a non-bool Series"))?;
                    let r = if *f == BinaryFn::And { boolean::and(x, y) } else { boolean::or(x, y) };
                    no_nulls(r.map_err(err)?)
                }
                BinaryFn::Pow => return Err(err("** is not supported on Series")),
            };
            Val::Col(out)
        }
        ColExpr::IsIn(e, values) => {
            let col = Val::Col(to_column(eval_val(e, cols)?, cols)?);
            let t = col.data_type();
            let mut any = BooleanArray::from(vec![false; cols.first().map_or(0, |c| c.len())]);
            // the column in each type its literals need, cast once
            let mut as_type: Vec<(DataType, Box<dyn Datum>)> = Vec::new();
            for lit in values {
                let ty = kernel_type(BinaryFn::Eq, &t, &lit.data_type())?;
                if !as_type.iter().any(|(x, _)| *x == ty) {
                    as_type.push((ty.clone(), col.datum(&ty)?));
                }
                let a = &as_type.iter().find(|(x, _)| *x == ty).ok_or_else(|| err("a cast column"))?.1;
                let b = Val::Lit(lit.clone()).datum(&ty)?;
                any = boolean::or_kleene(&any, &cmp::eq(a.as_ref(), b.as_ref()).map_err(err)?).map_err(err)?;
            }
            Val::Col(no_nulls(any))
        }
        ColExpr::Str(func, e, pattern) => {
            let col = to_column(eval_val(e, cols)?, cols)?;
            let pat = Scalar::new(
                arrow::compute::cast(
                    &(Arc::new(StringArray::from(vec![pattern.as_str()])) as ArrayRef),
                    col.data_type(),
                )
                .map_err(err)?,
            );
            let out = match func {
                StrFn::StartsWith => arrow::compute::kernels::comparison::starts_with(&col, &pat),
                StrFn::Contains => arrow::compute::kernels::comparison::contains(&col, &pat),
            };
            Val::Col(no_nulls(out.map_err(err)?))
        }
        ColExpr::Where(c, a, b) => {
            let cond = to_column(eval_val(c, cols)?, cols)?;
            let cond =
                cond.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| err("where needs a bool condition"))?;
            let cond = if cond.null_count() > 0 {
                BooleanArray::from(cond.iter().map(|v| v.unwrap_or(false)).collect::<Vec<_>>())
            } else {
                cond.clone()
            };
            let (a, b) = (eval_val(a, cols)?, eval_val(b, cols)?);
            let t = expr_type(expr, cols)?;
            let (da, db) = (a.datum(&t)?, b.datum(&t)?);
            let out = arrow::compute::kernels::zip::zip(&cond, da.as_ref(), db.as_ref()).map_err(err)?;
            Val::Col(out)
        }
        ColExpr::Cast(e, to) => {
            let col = to_column(eval_val(e, cols)?, cols)?;
            let opts = arrow::compute::CastOptions { safe: false, ..Default::default() };
            Val::Col(arrow::compute::cast_with_options(&col, to, &opts).map_err(|e| err(format!("astype({to}): {e}")))?)
        }
        ColExpr::FillNull(e, lit) => {
            let col = to_column(eval_val(e, cols)?, cols)?;
            let t = col.data_type().clone();
            let missing = match super::groupby::present_mask(&col) {
                Some(ok) => ok,
                None => return Ok(Val::Col(col)),
            };
            let fill = Val::Lit(lit.clone()).datum(&t)?;
            Val::Col(arrow::compute::kernels::zip::zip(&missing, &col, fill.as_ref()).map_err(err)?)
        }
    })
}

/// The type `expr` evaluates to over these columns.
fn expr_type(expr: &ColExpr, cols: &[ArrayRef]) -> Result<DataType, KernelError> {
    let types: Vec<DataType> = cols.iter().map(|c| c.data_type().clone()).collect();
    expr.data_type(&types).map_err(err)
}

/// A value as a column of the chunk's length (a literal repeated).
fn to_column(v: Val, cols: &[ArrayRef]) -> Result<ArrayRef, KernelError> {
    match v {
        Val::Col(a) => Ok(a),
        Val::Lit(l) => {
            let n = cols.first().map_or(0, |c| c.len());
            let t = l.data_type();
            let d = Val::Lit(l).datum(&t)?;
            let (one, _) = d.get();
            let idx = arrow::array::UInt32Array::from(vec![0u32; n]);
            arrow::compute::take(one, &idx, None).map_err(err)
        }
    }
}

/// Rows per block of the fused float evaluator (a few such blocks fit in L1).
const BLOCK: usize = 1024;

/// A leaf or node of a fused float expression.
enum Fused<'a> {
    F64(&'a [f64]),
    /// A decimal's unscaled integers and the power of ten to divide by.
    Dec(&'a [i64], f64),
    I64(&'a [i64]),
    I32(&'a [i32]),
    Const(f64),
    Bin(BinaryFn, Box<Fused<'a>>, Box<Fused<'a>>),
}

impl<'a> Fused<'a> {
    /// `expr` as a fused tree when it is `+ - * /` whose every node is a
    /// Float64 operation (as the type rules have it) over float, decimal
    /// (at most 15 digits) and integer columns and number literals, with
    /// its type and the columns it reads; else `None`.
    fn plan(expr: &ColExpr, cols: &'a [ArrayRef], used: &mut Vec<usize>) -> Option<(Fused<'a>, DataType)> {
        use arrow::array::AsArray;
        use arrow::datatypes::{Decimal64Type, Float64Type, Int32Type, Int64Type};
        Some(match expr {
            ColExpr::Lit(Lit::F64(v)) => (Fused::Const(*v), DataType::Float64),
            ColExpr::Lit(Lit::I64(v)) => (Fused::Const(*v as f64), DataType::Int64),
            ColExpr::Input(i) => {
                let c = cols.get(*i)?;
                used.push(*i);
                let t = c.data_type().clone();
                let f = match &t {
                    DataType::Float64 => Fused::F64(c.as_primitive::<Float64Type>().values()),
                    DataType::Decimal64(p, s) => {
                        Fused::Dec(c.as_primitive::<Decimal64Type>().values(), super::decimal_divisor(*p, *s)?)
                    }
                    DataType::Int64 => Fused::I64(c.as_primitive::<Int64Type>().values()),
                    DataType::Int32 => Fused::I32(c.as_primitive::<Int32Type>().values()),
                    _ => return None,
                };
                (f, t)
            }
            ColExpr::Binary(f @ (BinaryFn::Add | BinaryFn::Sub | BinaryFn::Mul | BinaryFn::Div), a, b) => {
                let (a, ta) = Fused::plan(a, cols, used)?;
                let (b, tb) = Fused::plan(b, cols, used)?;
                if kernel_type(*f, &ta, &tb).ok()? != DataType::Float64 {
                    return None;
                }
                (Fused::Bin(*f, Box::new(a), Box::new(b)), DataType::Float64)
            }
            _ => return None,
        })
    }

    /// Rows `at..at + out.len()` into `out`; `spare` lends buffers for
    /// right operands, one per level.
    fn block(&self, at: usize, out: &mut [f64], spare: &mut Vec<Vec<f64>>) {
        let n = out.len();
        match self {
            Fused::F64(v) => out.copy_from_slice(&v[at..at + n]),
            Fused::Dec(v, pow) => {
                for (o, &x) in out.iter_mut().zip(&v[at..at + n]) {
                    *o = x as f64 / pow;
                }
            }
            Fused::I64(v) => {
                for (o, &x) in out.iter_mut().zip(&v[at..at + n]) {
                    *o = x as f64;
                }
            }
            Fused::I32(v) => {
                for (o, &x) in out.iter_mut().zip(&v[at..at + n]) {
                    *o = f64::from(x);
                }
            }
            Fused::Const(c) => out.fill(*c),
            Fused::Bin(f, a, b) => {
                a.block(at, out, spare);
                let mut right = spare.pop().unwrap_or_else(|| vec![0.0; BLOCK]);
                b.block(at, &mut right[..n], spare);
                let r = &right[..n];
                match f {
                    BinaryFn::Add => out.iter_mut().zip(r).for_each(|(o, y)| *o += y),
                    BinaryFn::Sub => out.iter_mut().zip(r).for_each(|(o, y)| *o -= y),
                    BinaryFn::Mul => out.iter_mut().zip(r).for_each(|(o, y)| *o *= y),
                    _ => out.iter_mut().zip(r).for_each(|(o, y)| *o /= y),
                }
                spare.push(right);
            }
        }
    }
}

/// A Float64 arithmetic expression over number columns evaluated block by
/// block into one output (the values arrow's kernels give, without an
/// intermediate column per operation); a row is missing where any column
/// it reads is. `None` when `expr` is not such an expression.
fn fused_f64(expr: &ColExpr, cols: &[ArrayRef]) -> Option<ArrayRef> {
    let mut used = Vec::new();
    let (tree, t) = Fused::plan(expr, cols, &mut used)?;
    if t != DataType::Float64 || used.is_empty() {
        return None;
    }
    let n = cols[used[0]].len();
    let mut values = vec![0f64; n];
    let mut spare = Vec::new();
    for (k, out) in values.chunks_mut(BLOCK).enumerate() {
        tree.block(k * BLOCK, out, &mut spare);
    }
    let nulls = used.iter().fold(None, |acc, &i| arrow::buffer::NullBuffer::union(acc.as_ref(), cols[i].nulls()));
    Some(Arc::new(Float64Array::new(values.into(), nulls)))
}

/// `expr` over the single columns of `inputs`, as a one-column batch `name`.
pub fn eval(expr: &ColExpr, name: &str, inputs: &[&RecordBatch]) -> Result<RecordBatch, KernelError> {
    let cols: Vec<ArrayRef> = inputs
        .iter()
        .map(|b| match b.num_columns() {
            1 => Ok(b.column(0).clone()),
            n => Err(err(format!("a Series input has {n} columns"))),
        })
        .collect::<Result<_, _>>()?;
    if let Some(c) = cols.iter().find(|c| c.len() != cols[0].len()) {
        return Err(err(format!("Series chunks of {} and {} rows do not line up", cols[0].len(), c.len())));
    }
    let out = match fused_f64(expr, &cols) {
        Some(out) => out,
        None => to_column(eval_val(expr, &cols)?, &cols)?,
    };
    let schema = Arc::new(Schema::new(vec![Field::new(name, out.data_type().clone(), true)]));
    let opts = RecordBatchOptions::new().with_row_count(Some(out.len()));
    RecordBatch::try_new_with_options(schema, vec![out], &opts).map_err(err)
}

/// The rows of `batch` where `mask`'s one bool column is true.
pub fn filter(batch: &RecordBatch, mask: &RecordBatch) -> Result<RecordBatch, KernelError> {
    let m = match mask.num_columns() {
        1 => mask.column(0).as_any().downcast_ref::<BooleanArray>(),
        _ => None,
    }
    .ok_or_else(|| err("a filter mask must be one bool column"))?;
    if m.len() != batch.num_rows() {
        return Err(err(format!("a mask of {} rows for a chunk of {} rows", m.len(), batch.num_rows())));
    }
    arrow::compute::filter_record_batch(batch, m).map_err(err)
}

/// `batch` with `col`'s one column as column `name`: at position `at`,
/// replacing the column there (`replace`) or added last.
pub fn with_column(
    batch: &RecordBatch,
    col: &RecordBatch,
    name: &str,
    at: usize,
    replace: bool,
) -> Result<RecordBatch, KernelError> {
    if col.num_columns() != 1 || col.num_rows() != batch.num_rows() {
        return Err(err(format!(
            "a Series chunk of {} rows and {} columns for a chunk of {} rows",
            col.num_rows(),
            col.num_columns(),
            batch.num_rows()
        )));
    }
    let new = col.column(0).clone();
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    let field = Field::new(name, new.data_type().clone(), true);
    match (replace, at < columns.len()) {
        (true, true) => {
            fields[at] = field;
            columns[at] = new;
        }
        (false, _) if at == columns.len() => {
            fields.push(field);
            columns.push(new);
        }
        _ => return Err(err(format!("column position {at} for a chunk of {} columns", columns.len()))),
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &opts).map_err(err)
}

/// Where `expr` (a bool expression over `cols`) is true; missing is false.
pub fn eval_mask(expr: &ColExpr, cols: &[ArrayRef]) -> Result<BooleanArray, KernelError> {
    let out = to_column(eval_val(expr, cols)?, cols)?;
    let b = out
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| err(format!("a filter must be a bool expression, not {}", out.data_type())))?;
    Ok(if b.null_count() > 0 { arrow::compute::prep_null_mask_filter(b) } else { b.clone() })
}

/// Per row group, whether some row of it may satisfy `expr`, from each
/// column's bounds: `mins[i]` and `maxs[i]` hold column `i`'s least and
/// greatest value per row group (missing when unknown). Comparisons of a
/// column with a literal, and `&` / `|` of them, can rule a row group out;
/// anything else may match.
pub fn row_groups_may_match(expr: &ColExpr, mins: &[ArrayRef], maxs: &[ArrayRef], n: usize) -> Vec<bool> {
    use BinaryFn::*;
    match expr {
        ColExpr::Binary(f @ (And | Or), a, b) => {
            let (x, y) = (row_groups_may_match(a, mins, maxs, n), row_groups_may_match(b, mins, maxs, n));
            x.iter().zip(&y).map(|(&p, &q)| if *f == And { p && q } else { p || q }).collect()
        }
        ColExpr::Binary(f, a, b) if f.is_comparison() => {
            let (col, lit, f) = match (&**a, &**b) {
                (ColExpr::Input(i), ColExpr::Lit(l)) => (*i, l, *f),
                (ColExpr::Lit(l), ColExpr::Input(i)) => {
                    let flipped = match f {
                        Lt => Gt,
                        Gt => Lt,
                        Le => Ge,
                        Ge => Le,
                        other => *other,
                    };
                    (*i, l, flipped)
                }
                _ => return vec![true; n],
            };
            // `col f lit` can hold for a value in [min, max] only if it holds
            // at the end that favours it
            let tests: &[(BinaryFn, bool)] = match f {
                Lt => &[(Lt, false)],
                Le => &[(Le, false)],
                Gt => &[(Gt, true)],
                Ge => &[(Ge, true)],
                Eq => &[(Le, false), (Ge, true)],
                _ => &[],
            };
            let mut ok = vec![true; n];
            for &(g, on_max) in tests {
                let Some(bound) = (if on_max { maxs.get(col) } else { mins.get(col) }) else { continue };
                if bound.len() != n {
                    continue;
                }
                let e = ColExpr::Binary(g, Box::new(ColExpr::Input(0)), Box::new(ColExpr::Lit(lit.clone())));
                let Ok(holds) =
                    eval_val(&e, std::slice::from_ref(bound)).and_then(|v| to_column(v, std::slice::from_ref(bound)))
                else {
                    continue; // the bounds' type cannot be compared: keep every row group
                };
                let Some(holds) = holds.as_any().downcast_ref::<BooleanArray>() else { continue };
                for (r, o) in ok.iter_mut().enumerate() {
                    if bound.is_valid(r) && holds.is_valid(r) && !holds.value(r) {
                        *o = false;
                    }
                }
            }
            ok
        }
        _ => vec![true; n],
    }
}

/// numpy's linear interpolation between `a` and `b` at `t` in [0, 1]
/// (from the nearer end, so `t = 1` gives `b` exactly).
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Quantiles `qs` of `n` sorted values given the values at their
/// [`mars_ir::quantile_ranks`] (the inputs' rows, in order).
fn quantiles(ins: &[&RecordBatch], qs: &[f64], n: usize, name: &str) -> Result<RecordBatch, KernelError> {
    let ranks = mars_ir::quantile_ranks(qs, n);
    let mut values: Vec<f64> = Vec::with_capacity(ranks.len());
    for b in ins {
        if b.num_columns() != 1 {
            return Err(err(format!("quantiles take one column, got {}", b.num_columns())));
        }
        let col = super::cast_column(b.column(0), &DataType::Float64)?;
        let col =
            col.as_any().downcast_ref::<Float64Array>().ok_or_else(|| err("quantiles of a non-numeric column"))?;
        values.extend(col.iter().map(|v| v.unwrap_or(f64::NAN)));
    }
    if values.len() != ranks.len() {
        return Err(err(format!("quantiles of {n} values need {} ranked values, got {}", ranks.len(), values.len())));
    }
    let at = |r: usize| ranks.binary_search(&r).map(|i| values[i]).unwrap_or(f64::NAN);
    let out: Vec<f64> = qs
        .iter()
        .map(|&q| {
            if n == 0 {
                return f64::NAN;
            }
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = (pos.floor() as usize).min(n - 1);
            let hi = (pos.ceil() as usize).min(n - 1);
            lerp(at(lo), at(hi), pos - lo as f64)
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Float64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(out))]).map_err(err)
}

/// `describe()`'s table: a stats row (count, mean, std, min, max per
/// column) and a quartile column per column.
fn describe(ins: &[&RecordBatch], columns: &[String]) -> Result<RecordBatch, KernelError> {
    let k = columns.len();
    let [stats, quartiles @ ..] = ins else { return Err(err("describe needs a stats row")) };
    if stats.num_rows() != 1 || stats.num_columns() != 5 * k || quartiles.len() != k {
        return Err(err(format!(
            "describe of {k} columns got a stats chunk of {}x{} and {} quartile chunks",
            stats.num_rows(),
            stats.num_columns(),
            quartiles.len()
        )));
    }
    let value = |a: &ArrayRef, i: usize| -> Result<f64, KernelError> {
        let f = super::cast_column(a, &DataType::Float64)?;
        let f = f.as_any().downcast_ref::<Float64Array>().ok_or_else(|| err("describe of a non-numeric column"))?;
        Ok(if f.is_valid(i) { f.value(i) } else { f64::NAN })
    };
    let names = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"];
    let mut fields = vec![Field::new("", DataType::Utf8, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(names.to_vec()))];
    for (c, name) in columns.iter().enumerate() {
        let s = |j: usize| value(stats.column(5 * c + j), 0);
        let q = quartiles[c];
        if q.num_rows() != 3 || q.num_columns() != 1 {
            return Err(err(format!("describe's quartiles of {name:?} are {}x{}", q.num_rows(), q.num_columns())));
        }
        let qv = |i: usize| value(q.column(0), i);
        let v = vec![s(0)?, s(1)?, s(2)?, s(3)?, qv(0)?, qv(1)?, qv(2)?, s(4)?];
        fields.push(Field::new(name, DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from(v)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Decimal64Array};

    /// Comparisons of decimals with numbers on the stored integers give the
    /// Float64 comparison's answers, for literals that are and are not exact
    /// in binary, on and off the stored values, out of range, either side.
    #[test]
    fn decimal_comparisons_match_the_float_comparison() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let stored: Vec<Option<i64>> = (0..3000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (i % 13 != 0).then_some([(x % 2001) as i64 - 1000, 5, 7, 2400, -5, 0][i % 6])
            })
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Decimal64Array::from(stored.clone()).with_precision_and_scale(15, 2).unwrap()),
            Arc::new(
                Decimal128Array::from(stored.iter().map(|v| v.map(i128::from)).collect::<Vec<_>>())
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            Arc::new(Decimal64Array::from(stored.clone()).with_precision_and_scale(10, 0).unwrap()),
            Arc::new(Decimal64Array::from(stored).with_precision_and_scale(9, 3).unwrap()),
        ];
        let lits = [
            Lit::F64(0.07),
            Lit::F64(0.05),
            Lit::I64(24),
            Lit::F64(24.0),
            Lit::F64(-0.005),
            Lit::F64(0.0),
            Lit::F64(1e20),
            Lit::F64(-1e20),
            Lit::F64(7.0),
            Lit::F64(0.1 + 0.2),
            Lit::I64(-5),
        ];
        use BinaryFn::*;
        for col in &columns {
            let batch = RecordBatch::try_from_iter([("d", col.clone())]).unwrap();
            for lit in &lits {
                for f in [Lt, Le, Gt, Ge, Eq, Ne] {
                    for flip in [false, true] {
                        let (c, l) = (Box::new(ColExpr::Input(0)), Box::new(ColExpr::Lit(lit.clone())));
                        let as_f64 = Box::new(ColExpr::Cast(c.clone(), DataType::Float64));
                        let (fast, slow) = if flip {
                            (ColExpr::Binary(f, l.clone(), c), ColExpr::Binary(f, l, as_f64))
                        } else {
                            (ColExpr::Binary(f, c, l.clone()), ColExpr::Binary(f, as_f64, l))
                        };
                        let (got, want) = (eval(&fast, "x", &[&batch]).unwrap(), eval(&slow, "x", &[&batch]).unwrap());
                        assert_eq!(got.column(0).to_data(), want.column(0).to_data(), "{} {fast}", col.data_type());
                    }
                }
            }
        }
    }

    /// The fused float evaluator gives arrow's kernels' values bit for bit
    /// (decimals, ints, literals, division by zero, NaN, nulls, a length that
    /// is not a multiple of the block), and leaves other expressions alone.
    #[test]
    fn fused_float_arithmetic_matches_the_kernels() {
        use arrow::array::AsArray;
        let n = 2 * BLOCK + 37;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let dec: Vec<Option<i64>> = (0..n).map(|i| (i % 11 != 0).then_some((next() % 100_000) as i64 - 500)).collect();
        let f: Vec<Option<f64>> = (0..n)
            .map(|i| match i % 29 {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(0.0),
                _ => Some((next() % 10_000) as f64 / 7.0 - 300.0),
            })
            .collect();
        let ints: Vec<i64> = (0..n).map(|_| (next() % 1000) as i64 - 500).collect();
        let small: Vec<i32> = (0..n).map(|i| (i % 7) as i32).collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Decimal64Array::from(dec).with_precision_and_scale(15, 2).unwrap()),
            Arc::new(Float64Array::from(f)),
            Arc::new(Int64Array::from(ints)),
            Arc::new(arrow::array::Int32Array::from(small)),
        ];
        let col = |i| Box::new(ColExpr::Input(i));
        let lit = |v| Box::new(ColExpr::Lit(Lit::F64(v)));
        let bin = |f, a, b| Box::new(ColExpr::Binary(f, a, b));
        use BinaryFn::*;
        let cases = vec![
            // Q1's price * (1 - discount) * (1 + tax), over decimals
            bin(Mul, bin(Mul, col(0), bin(Sub, lit(1.0), col(0))), bin(Add, lit(1.0), col(0))),
            bin(Div, col(1), col(3)),
            bin(Sub, bin(Mul, col(2), lit(0.5)), bin(Div, col(0), col(1))),
            bin(Add, col(3), bin(Mul, col(1), Box::new(ColExpr::Lit(Lit::I64(3))))),
        ];
        for e in cases {
            let fused = fused_f64(&e, &cols).expect("a fused expression");
            let plain = to_column(eval_val(&e, &cols).unwrap(), &cols).unwrap();
            assert_eq!(fused.nulls(), plain.nulls(), "{e:?}");
            let (a, b) = (
                fused.as_primitive::<arrow::datatypes::Float64Type>(),
                plain.as_primitive::<arrow::datatypes::Float64Type>(),
            );
            for i in 0..n {
                if b.is_valid(i) {
                    assert_eq!(a.value(i).to_bits(), b.value(i).to_bits(), "{e:?} row {i}");
                }
            }
        }
        // an integer result, a comparison, a literal alone: not fused
        assert!(fused_f64(&bin(Add, col(2), col(2)), &cols).is_none());
        assert!(fused_f64(&bin(Gt, col(1), lit(2.0)), &cols).is_none());
        assert!(fused_f64(&lit(2.0), &cols).is_none());
    }
}
