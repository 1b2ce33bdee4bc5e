//! Group-by kernels: per-chunk partial aggregates, their merge and
//! finalization, and the hash shuffle that sends each group's partials to one
//! reducer.
//!
//! Accumulators are one `Vec` per aggregation indexed by group id (from
//! [`hash::group_rows`]); the state layout of each aggregation is
//! [`mars_ir::agg::state_fields`]. As pandas, a float NaN is a missing value.

use super::hash::{self, Groups, NO_GROUP};
use super::KernelError;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, PrimitiveArray, UInt32Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use hashbrown::hash_table::{Entry, HashTable};
use mars_ir::agg::{self, AggFn};
use std::hash::BuildHasher;
use std::sync::Arc;

fn err(msg: impl Into<String>) -> KernelError {
    KernelError(msg.into())
}

/// Rows of `col` that hold a value: not null, and not NaN for floats.
fn present(col: &ArrayRef) -> Option<NullBuffer> {
    let nulls = col.logical_nulls();
    let nan = |bits: Vec<bool>| Some(NullBuffer::from(bits));
    let nans = match col.data_type() {
        DataType::Float64 => {
            let a = col.as_primitive::<Float64Type>();
            a.values().iter().any(|v| v.is_nan()).then(|| a.values().iter().map(|v| !v.is_nan()).collect())
        }
        DataType::Float32 => {
            let a = col.as_primitive::<arrow::datatypes::Float32Type>();
            a.values().iter().any(|v| v.is_nan()).then(|| a.values().iter().map(|v| !v.is_nan()).collect())
        }
        _ => None,
    };
    match nans {
        Some(bits) => NullBuffer::union(nulls.as_ref(), nan(bits).as_ref()),
        None => nulls,
    }
}

/// Rows of `col` holding a value (not null, not NaN) as a bool column;
/// `None` when every row does.
pub fn present_mask(col: &ArrayRef) -> Option<arrow::array::BooleanArray> {
    present(col).map(|ok| arrow::array::BooleanArray::new(ok.into_inner(), None))
}

/// Whether row `i` is counted: it has a group and a value.
#[inline]
fn counted(g: &Groups, ok: Option<&NullBuffer>, i: usize) -> bool {
    g.ids[i] != NO_GROUP && ok.is_none_or(|v| v.is_valid(i))
}

/// `f(group, row)` for every counted row.
#[inline]
fn each(g: &Groups, ok: Option<&NullBuffer>, mut f: impl FnMut(usize, usize)) {
    if !g.has_none && ok.is_none() {
        for (i, &id) in g.ids.iter().enumerate() {
            f(id as usize, i);
        }
    } else {
        for (i, &id) in g.ids.iter().enumerate() {
            if counted(g, ok, i) {
                f(id as usize, i);
            }
        }
    }
}

/// Groups up to this many fold into four interleaved accumulators each.
const FEW_GROUPS: usize = 4096;

/// Per group, `add` folded over the values of its rows (`v` has a value per
/// row; only rows with a group count). When groups are few, successive rows
/// mostly update the same accumulator, and each update would wait for the
/// last one's store: rows then go round-robin to four accumulators per group
/// (beside each other in memory), merged at the end, so four chains run at
/// once. A float sum's order then differs from the rows' order.
fn fold_groups<T: Copy, A: Copy + Default>(
    g: &Groups,
    v: &[T],
    add: impl Fn(A, T) -> A,
    merge: impl Fn(A, A) -> A,
) -> Vec<A> {
    let n = g.len();
    if g.has_none || n > FEW_GROUPS || v.len() != g.ids.len() {
        let mut acc = vec![A::default(); n];
        each(g, None, |id, i| acc[id] = add(acc[id], v[i]));
        return acc;
    }
    let mut acc = vec![A::default(); 4 * n];
    let (ids, vals) = (g.ids.chunks_exact(4), v.chunks_exact(4));
    let (id_tail, v_tail) = (ids.remainder(), vals.remainder());
    for (i4, v4) in ids.zip(vals) {
        for lane in 0..4 {
            let at = i4[lane] as usize * 4 + lane;
            acc[at] = add(acc[at], v4[lane]);
        }
    }
    for (&id, &x) in id_tail.iter().zip(v_tail) {
        let at = id as usize * 4;
        acc[at] = add(acc[at], x);
    }
    acc.chunks_exact(4).map(|c| merge(merge(c[0], c[1]), merge(c[2], c[3]))).collect()
}

/// Rows per group (rows without a group not counted).
fn group_sizes(g: &Groups) -> Vec<i64> {
    fold_groups(g, &g.ids, |n: i64, _| n + 1, |a, b| a + b)
}

/// Whether every row is in the one group (a whole-column reduction).
fn single(g: &Groups) -> bool {
    g.len() == 1 && !g.has_none
}

fn sum_i64(g: &Groups, col: &ArrayRef) -> Result<Vec<i64>, KernelError> {
    let ints = arrow::compute::cast(col, &DataType::Int64)?;
    let v = ints.as_primitive::<Int64Type>().values();
    let ok = col.logical_nulls();
    if ok.is_none() {
        return Ok(fold_groups(g, v, i64::wrapping_add, i64::wrapping_add));
    }
    let mut acc = vec![0i64; g.len()];
    each(g, ok.as_ref(), |id, i| acc[id] = acc[id].wrapping_add(v[i]));
    Ok(acc)
}

fn as_f64(col: &ArrayRef) -> Result<ArrayRef, KernelError> {
    super::cast_column(col, &DataType::Float64)
}

/// Sums and counts of the present values (not null, not NaN), as floats.
/// Decimals are summed exactly as their integers and divided once at the
/// end; floats in one pass that skips NaNs as it goes.
/// A count of `None` is the group's size (every row counted).
fn sum_count_f64(g: &Groups, col: &ArrayRef) -> Result<(Vec<f64>, Option<Vec<i64>>), KernelError> {
    match col.data_type() {
        DataType::Decimal64(_, scale) => {
            let d = col.as_primitive::<arrow::datatypes::Decimal64Type>();
            return Ok(sum_count_decimal(g, d.values(), d.logical_nulls().as_ref(), *scale));
        }
        DataType::Decimal128(_, scale) => {
            let d = col.as_primitive::<arrow::datatypes::Decimal128Type>();
            return Ok(sum_count_decimal(g, d.values(), d.logical_nulls().as_ref(), *scale));
        }
        _ => {}
    }
    let floats = as_f64(col)?;
    let v = floats.as_primitive::<Float64Type>().values();
    let nulls = floats.logical_nulls();
    if single(g) && nulls.is_none() {
        // one group, no nulls: independent lanes the compiler vectorizes
        let (mut lanes, mut counts) = ([0f64; 8], [0i64; 8]);
        let chunks = v.chunks_exact(8);
        let (mut tail, mut tail_n) = (0.0, 0);
        for &x in chunks.remainder() {
            if !x.is_nan() {
                tail += x;
                tail_n += 1;
            }
        }
        for c in chunks {
            for ((l, n), &x) in lanes.iter_mut().zip(counts.iter_mut()).zip(c) {
                let ok = !x.is_nan();
                *l += if ok { x } else { 0.0 };
                *n += i64::from(ok);
            }
        }
        return Ok((vec![lanes.iter().sum::<f64>() + tail], Some(vec![counts.iter().sum::<i64>() + tail_n])));
    }
    if nulls.is_none() && !v.iter().fold(false, |nan, x| nan | x.is_nan()) {
        // every row counts: the counts are the groups' sizes
        return Ok((fold_groups(g, v, |a, x| a + x, |a, b| a + b), None));
    }
    let (mut sum, mut count) = (vec![0f64; g.len()], vec![0i64; g.len()]);
    each(g, nulls.as_ref(), |id, i| {
        let x = v[i];
        let ok = !x.is_nan();
        sum[id] += if ok { x } else { 0.0 };
        count[id] += i64::from(ok);
    });
    Ok((sum, Some(count)))
}

/// [`sum_count_f64`] of decimals: the stored integers summed exactly (in
/// i128), then scaled once.
fn sum_count_decimal<T: Copy + Into<i128>>(
    g: &Groups,
    v: &[T],
    nulls: Option<&NullBuffer>,
    scale: i8,
) -> (Vec<f64>, Option<Vec<i64>>) {
    let (sum, count) = if nulls.is_none() {
        (fold_groups(g, v, |a: i128, x| a.wrapping_add(x.into()), i128::wrapping_add), None)
    } else {
        let (mut sum, mut count) = (vec![0i128; g.len()], vec![0i64; g.len()]);
        each(g, nulls, |id, i| {
            sum[id] = sum[id].wrapping_add(v[i].into());
            count[id] += 1;
        });
        (sum, Some(count))
    };
    let unit = 10f64.powi(i32::from(scale));
    (sum.into_iter().map(|s| s as f64 / unit).collect(), count)
}

fn count_present(g: &Groups, col: &ArrayRef) -> Vec<i64> {
    let ok = present(col);
    let mut count = vec![0i64; g.len()];
    each(g, ok.as_ref(), |id, _| count[id] += 1);
    count
}

/// (n, mean, M2) of the present values per group, in two passes (the second
/// sums squared deviations from the group's mean, which keeps precision).
fn moments(g: &Groups, col: &ArrayRef) -> Result<(Vec<i64>, Vec<f64>, Vec<f64>), KernelError> {
    let (sum, n) = sum_count_f64(g, col)?;
    let n = n.unwrap_or_else(|| group_sizes(g));
    let mean: Vec<f64> = sum.iter().zip(&n).map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 }).collect();
    let floats = as_f64(col)?;
    let v = floats.as_primitive::<Float64Type>().values();
    let ok = present(&floats);
    let mut m2 = vec![0f64; g.len()];
    each(g, ok.as_ref(), |id, i| {
        let d = v[i] - mean[id];
        m2[id] += d * d;
    });
    Ok((n, mean, m2))
}

/// Per group, the row holding the best present value: the first one for
/// `First`, else the smallest (`Min`) or largest (`Max`), the first of ties.
fn best_rows(g: &Groups, col: &ArrayRef, func: AggFn) -> Result<Vec<Option<u32>>, KernelError> {
    let ok = present(col);
    let mut best: Vec<Option<u32>> = vec![None; g.len()];
    if func == AggFn::First {
        each(g, ok.as_ref(), |id, i| {
            if best[id].is_none() {
                best[id] = Some(i as u32);
            }
        });
        return Ok(best);
    }
    let want = if func == AggFn::Min { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater };
    fn scan<T: PartialOrd>(
        g: &Groups,
        ok: Option<&NullBuffer>,
        best: &mut [Option<u32>],
        want: std::cmp::Ordering,
        value: impl Fn(usize) -> T,
    ) {
        each(g, ok, |id, i| match best[id] {
            None => best[id] = Some(i as u32),
            Some(b) => {
                if value(i).partial_cmp(&value(b as usize)) == Some(want) {
                    best[id] = Some(i as u32);
                }
            }
        });
    }
    fn prim<T: ArrowPrimitiveType>(
        g: &Groups,
        ok: Option<&NullBuffer>,
        best: &mut [Option<u32>],
        want: std::cmp::Ordering,
        col: &ArrayRef,
    ) {
        let v = col.as_primitive::<T>().values();
        scan(g, ok, best, want, |i| v[i]);
    }
    use arrow::datatypes::*;
    let ok = ok.as_ref();
    macro_rules! prims {
        ($($t:ty),*) => {
            match col.data_type() {
                $(dt if dt == &<$t>::DATA_TYPE => prim::<$t>(g, ok, &mut best, want, col),)*
                DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_) | DataType::Duration(_) => {
                    let ints = arrow::compute::cast(col, &DataType::Int64)?;
                    prim::<Int64Type>(g, ok, &mut best, want, &ints)
                }
                DataType::Decimal32(..) => {
                    let v = col.as_primitive::<Decimal32Type>().values();
                    scan(g, ok, &mut best, want, |i| v[i])
                }
                DataType::Decimal64(..) => {
                    let v = col.as_primitive::<Decimal64Type>().values();
                    scan(g, ok, &mut best, want, |i| v[i])
                }
                DataType::Decimal128(..) => {
                    let v = col.as_primitive::<Decimal128Type>().values();
                    scan(g, ok, &mut best, want, |i| v[i])
                }
                DataType::Decimal256(..) => {
                    let v = col.as_primitive::<Decimal256Type>().values();
                    scan(g, ok, &mut best, want, |i| v[i])
                }
                DataType::Boolean => {
                    let v = col.as_boolean();
                    scan(g, ok, &mut best, want, |i| v.value(i))
                }
                DataType::Utf8 => {
                    let v = col.as_string::<i32>();
                    scan(g, ok, &mut best, want, |i| v.value(i))
                }
                DataType::LargeUtf8 => {
                    let v = col.as_string::<i64>();
                    scan(g, ok, &mut best, want, |i| v.value(i))
                }
                DataType::Utf8View => {
                    let v = col.as_string_view();
                    scan(g, ok, &mut best, want, |i| v.value(i))
                }
                other => return Err(err(format!("cannot order values of type {other} for {func}"))),
            }
        };
    }
    prims!(
        Int8Type,
        Int16Type,
        Int32Type,
        Int64Type,
        UInt8Type,
        UInt16Type,
        UInt32Type,
        UInt64Type,
        Float32Type,
        Float64Type,
        Date32Type,
        Date64Type
    );
    Ok(best)
}

fn take_rows(col: &ArrayRef, rows: Vec<Option<u32>>) -> Result<ArrayRef, KernelError> {
    Ok(arrow::compute::take(col, &UInt32Array::from(rows), None)?)
}

/// The distinct present values of `values` per group (`ids` per value), as a
/// list per group, in order of first appearance.
fn distinct(ids: &[u32], ngroups: usize, values: &ArrayRef) -> Result<ArrayRef, KernelError> {
    let ok = present(values);
    let conv = arrow::row::RowConverter::new(vec![arrow::row::SortField::new(values.data_type().clone())])?;
    let rows = conv.convert_columns(std::slice::from_ref(values))?;
    let h = foldhash::fast::FixedState::with_seed(0x006e_756e_6971_7565);
    let mut table: HashTable<(u64, u32)> = HashTable::new();
    let mut kept: Vec<u32> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if id == NO_GROUP || ok.as_ref().is_some_and(|v| v.is_null(i)) {
            continue;
        }
        let bytes = rows.row(i).data();
        let hash = h.hash_one((id, bytes));
        let eq = |e: &(u64, u32)| e.0 == hash && ids[e.1 as usize] == id && rows.row(e.1 as usize).data() == bytes;
        if let Entry::Vacant(e) = table.entry(hash, eq, |e| e.0) {
            e.insert((hash, i as u32));
            kept.push(i as u32);
        }
    }
    // stable by group: a counting sort of the kept rows
    let mut counts = vec![0usize; ngroups + 1];
    for &r in &kept {
        counts[ids[r as usize] as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let offsets: Vec<i32> =
        counts.iter().map(|&c| i32::try_from(c)).collect::<Result<_, _>>().map_err(|_| err("too many values"))?;
    let mut order = vec![0u32; kept.len()];
    let mut at = counts.clone();
    for &r in &kept {
        let g = ids[r as usize] as usize;
        order[at[g]] = r;
        at[g] += 1;
    }
    let items = arrow::compute::take(values, &UInt32Array::from(order), None)?;
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), items, None)?))
}

/// The state columns of one aggregation of `col` over the groups.
/// Float sums and counts per group of the columns at these positions,
/// computed once for all the aggregations of one partial that need them (a
/// sum and a mean of one column are one pass).
#[derive(Default)]
struct SumCounts {
    /// Per column: its sums and counts (`None`: the groups' sizes).
    of: Vec<(usize, Arc<Float64Array>, Option<Arc<Int64Array>>)>,
    /// The groups' sizes, the counts of every column without missing values.
    sizes: Option<Arc<Int64Array>>,
}

impl SumCounts {
    fn sizes(&mut self, g: &Groups) -> Arc<Int64Array> {
        self.sizes.get_or_insert_with(|| Arc::new(Int64Array::from(group_sizes(g)))).clone()
    }
    fn index(&mut self, g: &Groups, at: usize, col: &ArrayRef) -> Result<usize, KernelError> {
        if let Some(i) = self.of.iter().position(|(c, ..)| *c == at) {
            return Ok(i);
        }
        let (sum, count) = sum_count_f64(g, col)?;
        self.of.push((at, Arc::new(Float64Array::from(sum)), count.map(|c| Arc::new(Int64Array::from(c)))));
        Ok(self.of.len() - 1)
    }
    fn sum(&mut self, g: &Groups, at: usize, col: &ArrayRef) -> Result<ArrayRef, KernelError> {
        let i = self.index(g, at, col)?;
        Ok(self.of[i].1.clone())
    }
    fn sum_count(&mut self, g: &Groups, at: usize, col: &ArrayRef) -> Result<(ArrayRef, ArrayRef), KernelError> {
        let i = self.index(g, at, col)?;
        let count = match self.of[i].2.clone() {
            Some(c) => c,
            None => self.sizes(g),
        };
        Ok((self.of[i].1.clone(), count))
    }
}

fn partial_state(
    g: &Groups,
    func: AggFn,
    at: usize,
    col: &ArrayRef,
    shared: &mut SumCounts,
) -> Result<Vec<ArrayRef>, KernelError> {
    Ok(match func {
        AggFn::Sum if agg::sums_as_int(col.data_type()) => vec![Arc::new(Int64Array::from(sum_i64(g, col)?))],
        AggFn::Sum => vec![shared.sum(g, at, col)?],
        AggFn::Mean => {
            let (sum, count) = shared.sum_count(g, at, col)?;
            vec![sum, count]
        }
        AggFn::Count => vec![Arc::new(Int64Array::from(count_present(g, &col.clone())))],
        AggFn::Size => vec![shared.sizes(g)],
        AggFn::Std | AggFn::Var => {
            let (n, mean, m2) = moments(g, col)?;
            vec![Arc::new(Int64Array::from(n)), Arc::new(Float64Array::from(mean)), Arc::new(Float64Array::from(m2))]
        }
        AggFn::Min | AggFn::Max | AggFn::First => vec![take_rows(col, best_rows(g, col, func)?)?],
        AggFn::Nunique => vec![distinct(&g.ids, g.len(), col)?],
    })
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch, KernelError> {
    let opts = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &opts)?)
}

fn key_columns(b: &RecordBatch, keys: &[usize], g: &Groups) -> Result<Vec<ArrayRef>, KernelError> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let first = UInt32Array::from(g.first.clone());
    keys.iter().map(|&k| Ok(arrow::compute::take(b.column(k), &first, None)?)).collect()
}

fn column(b: &RecordBatch, i: usize) -> Result<&ArrayRef, KernelError> {
    if i < b.num_columns() {
        Ok(b.column(i))
    } else {
        Err(err(format!("column #{i} of a batch of {} columns", b.num_columns())))
    }
}

/// One row per group of `b`'s rows: the key columns, then each aggregation's
/// state (named `a{i}_…`, as [`agg::state_fields`]).
pub fn partial(b: &RecordBatch, keys: &[usize], aggs: &[(usize, AggFn)]) -> Result<RecordBatch, KernelError> {
    let key_cols: Vec<ArrayRef> = keys.iter().map(|&k| column(b, k).cloned()).collect::<Result<_, _>>()?;
    let g = hash::group_rows(&key_cols, b.num_rows())?;
    let schema = b.schema();
    let mut fields: Vec<Field> = keys.iter().map(|&k| schema.field(k).clone().with_nullable(true)).collect();
    let mut columns = key_columns(b, keys, &g)?;
    let mut shared = SumCounts::default();
    for (i, &(c, func)) in aggs.iter().enumerate() {
        let col = column(b, c)?;
        fields.extend(agg::state_fields(func, schema.field(c), &format!("a{i}")));
        columns.extend(partial_state(&g, func, c, col, &mut shared)?);
    }
    batch(fields, columns, g.len())
}

fn ints(b: &RecordBatch, i: usize) -> Result<&[i64], KernelError> {
    column(b, i)?
        .as_primitive_opt::<Int64Type>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| err(format!("state column #{i} is not int64")))
}

fn floats(b: &RecordBatch, i: usize) -> Result<&[f64], KernelError> {
    column(b, i)?
        .as_primitive_opt::<Float64Type>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| err(format!("state column #{i} is not float64")))
}

/// Sums of a state column per group.
fn merge_sum<T: Copy + Default>(g: &Groups, v: &[T], add: impl Fn(T, T) -> T) -> Vec<T> {
    let mut acc = vec![T::default(); g.len()];
    each(g, None, |id, i| acc[id] = add(acc[id], v[i]));
    acc
}

/// One aggregation's states of the rows of `b` (columns from `at`) merged per group.
fn merge_state(g: &Groups, func: AggFn, b: &RecordBatch, at: usize) -> Result<Vec<ArrayRef>, KernelError> {
    Ok(match func {
        AggFn::Sum => match column(b, at)?.data_type() {
            DataType::Int64 => vec![Arc::new(Int64Array::from(merge_sum(g, ints(b, at)?, i64::wrapping_add)))],
            _ => vec![Arc::new(Float64Array::from(merge_sum(g, floats(b, at)?, |a, b| a + b)))],
        },
        AggFn::Mean => vec![
            Arc::new(Float64Array::from(merge_sum(g, floats(b, at)?, |a, b| a + b))),
            Arc::new(Int64Array::from(merge_sum(g, ints(b, at + 1)?, i64::wrapping_add))),
        ],
        AggFn::Count | AggFn::Size => vec![Arc::new(Int64Array::from(merge_sum(g, ints(b, at)?, i64::wrapping_add)))],
        AggFn::Std | AggFn::Var => {
            // Chan et al.: merging (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b)
            let (n_in, mean_in, m2_in) = (ints(b, at)?, floats(b, at + 1)?, floats(b, at + 2)?);
            let (mut n, mut mean, mut m2) = (vec![0i64; g.len()], vec![0f64; g.len()], vec![0f64; g.len()]);
            each(g, None, |id, i| {
                let nb = n_in[i];
                if nb == 0 {
                    return;
                }
                let na = n[id];
                let total = (na + nb) as f64;
                let delta = mean_in[i] - mean[id];
                mean[id] += delta * nb as f64 / total;
                m2[id] += m2_in[i] + delta * delta * (na as f64) * (nb as f64) / total;
                n[id] = na + nb;
            });
            vec![Arc::new(Int64Array::from(n)), Arc::new(Float64Array::from(mean)), Arc::new(Float64Array::from(m2))]
        }
        AggFn::Min | AggFn::Max | AggFn::First => {
            let col = column(b, at)?;
            vec![take_rows(col, best_rows(g, col, func)?)?]
        }
        AggFn::Nunique => {
            let list = column(b, at)?.as_list_opt::<i32>().ok_or_else(|| err("nunique state is not a list"))?;
            // each listed value belongs to its row's group
            let offsets = list.value_offsets();
            let mut ids = vec![NO_GROUP; list.values().len()];
            for (r, w) in offsets.windows(2).enumerate() {
                for id in &mut ids[w[0] as usize..w[1] as usize] {
                    *id = g.ids[r];
                }
            }
            vec![distinct(&ids, g.len(), list.values())?]
        }
    })
}

/// The result column of one aggregation from its merged state columns.
fn finalize(func: AggFn, state: &[ArrayRef]) -> Result<ArrayRef, KernelError> {
    let f64s = |i: usize| {
        state[i].as_primitive_opt::<Float64Type>().map(|a| a.values().clone()).ok_or_else(|| err("float64 state"))
    };
    let i64s = |i: usize| {
        state[i].as_primitive_opt::<Int64Type>().map(|a| a.values().clone()).ok_or_else(|| err("int64 state"))
    };
    Ok(match func {
        AggFn::Sum | AggFn::Count | AggFn::Size | AggFn::Min | AggFn::Max | AggFn::First => state[0].clone(),
        AggFn::Mean => {
            let (sum, count) = (f64s(0)?, i64s(1)?);
            Arc::new(
                sum.iter().zip(count.iter()).map(|(&s, &c)| (c > 0).then(|| s / c as f64)).collect::<Float64Array>(),
            )
        }
        AggFn::Var | AggFn::Std => {
            let (n, m2) = (i64s(0)?, f64s(2)?);
            let var = n.iter().zip(m2.iter()).map(|(&n, &m2)| (n > 1).then(|| m2 / (n - 1) as f64));
            let out: Float64Array =
                if func == AggFn::Std { var.map(|v| v.map(f64::sqrt)).collect() } else { var.collect() };
            Arc::new(out)
        }
        AggFn::Nunique => {
            let list = state[0].as_list_opt::<i32>().ok_or_else(|| err("nunique state is not a list"))?;
            let lens: PrimitiveArray<Int64Type> =
                list.value_offsets().windows(2).map(|w| i64::from(w[1] - w[0])).collect::<Vec<_>>().into();
            Arc::new(lens)
        }
    })
}

/// Partial states (keys in the first `nkeys` columns) of all `inputs` merged
/// per group; with `names`, finalized into the result columns so named and
/// sorted by key.
pub fn combine(
    inputs: &[&RecordBatch],
    nkeys: usize,
    aggs: &[AggFn],
    names: Option<&[String]>,
) -> Result<RecordBatch, KernelError> {
    let Some(first) = inputs.first() else {
        return Err(err("a groupby merge needs at least one input"));
    };
    let schema = first.schema();
    let owned: Vec<RecordBatch> = inputs.iter().map(|b| (*b).clone()).collect();
    let b = arrow::compute::concat_batches(&schema, &owned)?;
    let key_idx: Vec<usize> = (0..nkeys).collect();
    let key_cols: Vec<ArrayRef> = key_idx.iter().map(|&k| column(&b, k).cloned()).collect::<Result<_, _>>()?;
    let g = hash::group_rows(&key_cols, b.num_rows())?;
    let mut fields: Vec<Field> = schema.fields().iter().take(nkeys).map(|f| f.as_ref().clone()).collect();
    let mut columns = key_columns(&b, &key_idx, &g)?;
    let mut at = nkeys;
    for (i, &func) in aggs.iter().enumerate() {
        let width = agg::state_width(func);
        let state = merge_state(&g, func, &b, at)?;
        match names {
            Some(names) => {
                let out = finalize(func, &state)?;
                let name = names.get(i).ok_or_else(|| err(format!("no name for aggregation #{i}")))?;
                fields.push(Field::new(name, out.data_type().clone(), true));
                columns.push(out);
            }
            None => {
                fields.extend(schema.fields()[at..at + width].iter().map(|f| f.as_ref().clone()));
                columns.extend(state);
            }
        }
        at += width;
    }
    let out = batch(fields, columns, g.len())?;
    if names.is_none() || nkeys == 0 {
        return Ok(out);
    }
    sort_by_leading(&out, nkeys)
}

/// `b` sorted by its first `nkeys` columns, ascending.
fn sort_by_leading(b: &RecordBatch, nkeys: usize) -> Result<RecordBatch, KernelError> {
    if b.num_rows() < 2 {
        return Ok(b.clone());
    }
    let sort: Vec<arrow::compute::SortColumn> =
        (0..nkeys).map(|k| arrow::compute::SortColumn { values: b.column(k).clone(), options: None }).collect();
    let idx = arrow::compute::lexsort_to_indices(&sort, None)?;
    Ok(arrow::compute::take_record_batch(b, &idx)?)
}

/// The rows of `b` in `parts` pieces by a hash of the key columns `keys`,
/// each piece keeping the rows' order.
pub fn hash_partition(b: &RecordBatch, keys: &[usize], parts: usize) -> Result<Vec<RecordBatch>, KernelError> {
    if parts == 0 {
        return Err(err("a hash partition into 0 pieces"));
    }
    let key_cols: Vec<ArrayRef> = keys.iter().map(|&k| column(b, k).cloned()).collect::<Result<_, _>>()?;
    let hashes = hash::hash_rows(&key_cols)?;
    let part: Vec<u32> = hashes.iter().map(|&h| ((h as u128 * parts as u128) >> 64) as u32).collect();
    super::sort::split_by(b, &part, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per group, the plain row-by-row sum and count.
    fn plain(g: &Groups, v: &[i64]) -> (Vec<i64>, Vec<i64>) {
        let (mut sum, mut n) = (vec![0; g.len()], vec![0; g.len()]);
        for (&id, &x) in g.ids.iter().zip(v) {
            if id != NO_GROUP {
                sum[id as usize] += x;
                n[id as usize] += 1;
            }
        }
        (sum, n)
    }

    #[test]
    fn interleaved_folds_agree_with_a_plain_pass() {
        // lengths around the four lanes, few and many groups, rows without one
        for rows in [0usize, 1, 3, 4, 5, 7, 8, 9, 31, 1000] {
            for groups in [1usize, 2, 5, FEW_GROUPS + 1] {
                for with_none in [false, true] {
                    let mut ids: Vec<u32> = (0..rows).map(|i| ((i * 7 + i / 3) % groups) as u32).collect();
                    if with_none && rows > 2 {
                        ids[rows / 2] = NO_GROUP;
                    }
                    let len = ids.iter().filter(|&&i| i != NO_GROUP).map(|&i| i + 1).max().unwrap_or(0) as usize;
                    let mut first = vec![0u32; len];
                    for (r, &id) in ids.iter().enumerate().rev() {
                        if id != NO_GROUP {
                            first[id as usize] = r as u32;
                        }
                    }
                    let g = Groups { has_none: ids.contains(&NO_GROUP), ids, first };
                    let v: Vec<i64> = (0..rows as i64).map(|i| i * i - 40).collect();
                    let (sum, n) = plain(&g, &v);
                    let what = format!("{rows} rows, {groups} groups, none: {with_none}");
                    assert_eq!(fold_groups(&g, &v, i64::wrapping_add, i64::wrapping_add), sum, "{what}");
                    assert_eq!(group_sizes(&g), n, "{what}");
                }
            }
        }
    }
}
