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

/// The batches of a frame op's inputs (a piece of each, for `GatherPart`).
fn batches<'a>(op: &FrameChunkOp, inputs: &'a [Arc<ChunkData>]) -> Result<Vec<&'a RecordBatch>, KernelError> {
    // a probe's build side is its last input, read as a table
    let n = if matches!(op, FrameChunkOp::JoinProbe(_)) { inputs.len().saturating_sub(1) } else { inputs.len() };
    inputs[..n]
        .iter()
        .enumerate()
        .map(|(i, d)| match (&**d, op) {
            (ChunkData::Parts(parts), FrameChunkOp::GatherPart { part }) => {
                parts.get(*part).ok_or_else(|| err(format!("input {i} has {} pieces, not piece {part}", parts.len())))
            }
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
        FrameChunkOp::ReadParquet { file, row_groups, columns, filter } => {
            want(0)?;
            one(crate::io::read_parquet(file, row_groups, columns, filter.as_deref())?)
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
        FrameChunkOp::SortLocal { by, descending } => one(super::sort::sort(&concat(&ins)?, by, descending)?),
        FrameChunkOp::SortSample { by, per, chunk } => {
            want(1)?;
            one(super::sort::sample(ins[0], by, *per, *chunk)?)
        }
        FrameChunkOp::Distinct => {
            let b = concat(&ins)?;
            let first = super::hash::first_rows(b.columns())?;
            one(arrow::compute::take_record_batch(&b, &arrow::array::UInt32Array::from(first))?)
        }
        FrameChunkOp::TopK { by, descending, n } => one(super::sort::top_k(&ins, by, descending, *n)?),
        FrameChunkOp::SortPivots { descending, parts } => one(super::sort::pivots(&ins, descending, *parts)?),
        FrameChunkOp::RangePartition { by, descending, chunk } => {
            want(2)?;
            Ok(ChunkData::Parts(super::sort::range_partition(ins[0], by, descending, *chunk, ins[1])?))
        }
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
    if b.null_count() == 0 {
        return Arc::new(b);
    }
    Arc::new(b.iter().map(|v| Some(v.unwrap_or(false))).collect::<BooleanArray>())
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
            let t = operand_type(*f, &a.data_type(), &b.data_type()).map_err(err)?;
            let (da, db) = (a.datum(&t)?, b.datum(&t)?);
            let (da, db) = (da.as_ref(), db.as_ref());
            let out: ArrayRef = match f {
                BinaryFn::Add => numeric::add_wrapping(da, db).map_err(err)?,
                BinaryFn::Sub => numeric::sub_wrapping(da, db).map_err(err)?,
                BinaryFn::Mul => numeric::mul_wrapping(da, db).map_err(err)?,
                BinaryFn::Div => numeric::div(da, db).map_err(err)?,
                BinaryFn::Gt => no_nulls(cmp::gt(da, db).map_err(err)?),
                BinaryFn::Lt => no_nulls(cmp::lt(da, db).map_err(err)?),
                BinaryFn::Ge => no_nulls(cmp::gt_eq(da, db).map_err(err)?),
                BinaryFn::Le => no_nulls(cmp::lt_eq(da, db).map_err(err)?),
                BinaryFn::Eq => no_nulls(cmp::eq(da, db).map_err(err)?),
                BinaryFn::Ne => no_nulls(cmp::neq(da, db).map_err(err)?),
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
            for lit in values {
                let ty = operand_type(BinaryFn::Eq, &t, &lit.data_type()).map_err(err)?;
                let (a, b) = (col.datum(&ty)?, Val::Lit(lit.clone()).datum(&ty)?);
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
    let out = to_column(eval_val(expr, &cols)?, &cols)?;
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
