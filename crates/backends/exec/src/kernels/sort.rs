//! Sorting frames: stable local sorts, and the pieces of a parallel sort by
//! regular sampling (sample each chunk, choose pivots, split each chunk by
//! them, sort each range).
//!
//! One numeric key (ints, floats, dates, times) sorts as order-preserving
//! `u64`s with an LSD radix sort; any other key (several columns, strings,
//! decimals) as arrow-row bytes. Missing values (and NaN, as pandas) go last
//! whatever the direction. Rows are totally ordered by (key, chunk, row),
//! so ties are split between ranges without breaking stability.

use super::groupby::present_mask;
use super::KernelError;
use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, Rows, SortField};
use std::cmp::Ordering;
use std::sync::Arc;

fn err(msg: impl Into<String>) -> KernelError {
    KernelError(msg.into())
}

/// The sort keys of a batch's rows.
enum Keys {
    /// Order-preserving integers (descending already flipped); `None` rows are missing.
    U64(Vec<u64>, Option<arrow::buffer::NullBuffer>),
    Rows(Rows),
}

impl Keys {
    fn present(&self, i: usize) -> bool {
        match self {
            Keys::U64(_, nulls) => nulls.as_ref().is_none_or(|n| n.is_valid(i)),
            Keys::Rows(_) => true,
        }
    }
    /// Row `i` of `self` against row `j` of `other` (encoded alike).
    fn cmp(&self, i: usize, other: &Keys, j: usize) -> Ordering {
        match (self, other) {
            (Keys::U64(a, _), Keys::U64(b, _)) => match (self.present(i), other.present(j)) {
                (true, true) => a[i].cmp(&b[j]),
                (false, false) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
            },
            (Keys::Rows(a), Keys::Rows(b)) => a.row(i).cmp(&b.row(j)),
            _ => Ordering::Equal,
        }
    }
}

/// Which numeric key types sort as `u64`, as a function of the value.
fn numeric_u64(col: &ArrayRef) -> Option<Vec<u64>> {
    use arrow::datatypes::*;
    let flip_int = |v: i64| (v as u64) ^ (1 << 63);
    let flip_f64 = |v: f64| {
        let b = v.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | (1 << 63)
        }
    };
    Some(match col.data_type() {
        DataType::Float64 => col.as_primitive::<Float64Type>().values().iter().map(|&v| flip_f64(v)).collect(),
        DataType::Float32 => col.as_primitive::<Float32Type>().values().iter().map(|&v| flip_f64(v.into())).collect(),
        DataType::Int64 | DataType::Date64 | DataType::Timestamp(..) | DataType::Time64(_) | DataType::Duration(_) => {
            let ints = arrow::compute::cast(col, &DataType::Int64).ok()?;
            ints.as_primitive::<Int64Type>().values().iter().map(|&v| flip_int(v)).collect()
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Date32 | DataType::Time32(_) => {
            let ints = arrow::compute::cast(col, &DataType::Int64).ok()?;
            ints.as_primitive::<Int64Type>().values().iter().map(|&v| flip_int(v)).collect()
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let ints = arrow::compute::cast(col, &DataType::UInt64).ok()?;
            ints.as_primitive::<UInt64Type>().values().to_vec()
        }
        _ => return None,
    })
}

/// Encode the key columns `cols` (with their directions) of one batch.
fn encode(cols: &[ArrayRef], descending: &[bool]) -> Result<Keys, KernelError> {
    // NaN is missing, as pandas: it goes last like a null
    let cols: Vec<ArrayRef> = cols
        .iter()
        .map(|c| match present_mask(c) {
            Some(ok) if c.data_type().is_floating() => Ok(arrow::compute::nullif(c, &arrow::compute::not(&ok)?)?),
            _ => Ok(c.clone()),
        })
        .collect::<Result<_, KernelError>>()?;
    if let ([col], [desc]) = (cols.as_slice(), descending) {
        if let Some(mut v) = numeric_u64(col) {
            if *desc {
                v.iter_mut().for_each(|k| *k = !*k);
            }
            return Ok(Keys::U64(v, col.logical_nulls()));
        }
    }
    let fields = cols
        .iter()
        .zip(descending)
        .map(|(c, &d)| {
            SortField::new_with_options(
                c.data_type().clone(),
                arrow::compute::SortOptions { descending: d, nulls_first: false },
            )
        })
        .collect();
    Ok(Keys::Rows(RowConverter::new(fields)?.convert_columns(&cols)?))
}

/// Sort `idx` by `keys[idx]`, ties in index order: a bucket sort on the
/// keys' actual range (one counting pass, one scatter; uniform keys land a
/// few to a bucket, each then sorted in cache by (key, index)).
fn radix_sort(keys: &[u64], idx: &mut Vec<u32>) {
    let n = idx.len();
    if n < 2048 {
        idx.sort_unstable_by_key(|&i| (keys[i as usize], i));
        return;
    }
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for &i in idx.iter() {
        let k = keys[i as usize];
        lo = lo.min(k);
        hi = hi.max(k);
    }
    if lo == hi {
        return; // all equal: already in index order
    }
    // about 8 keys a bucket: the top `bits` bits of (k - lo)
    let span_bits = 64 - (hi - lo).leading_zeros();
    let bucket_bits = (usize::BITS - (n / 8).leading_zeros()).clamp(1, 24).min(span_bits);
    let shift = span_bits - bucket_bits;
    let buckets = 1usize << bucket_bits;
    let bucket = |k: u64| ((k - lo) >> shift) as usize;
    let mut starts = vec![0u32; buckets + 1];
    for &i in idx.iter() {
        starts[bucket(keys[i as usize]) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut at = starts.clone();
    let mut pairs = vec![(0u64, 0u32); n];
    for &i in idx.iter() {
        let k = keys[i as usize];
        let b = bucket(k);
        pairs[at[b] as usize] = (k, i);
        at[b] += 1;
    }
    for w in starts.windows(2) {
        let run = &mut pairs[w[0] as usize..w[1] as usize];
        if run.len() > 1 {
            run.sort_unstable();
        }
    }
    idx.clear();
    idx.extend(pairs.iter().map(|p| p.1));
}

/// The rows of `keys` in sorted order, ties in row order.
fn sorted_indices(keys: &Keys, n: usize) -> Vec<u32> {
    match keys {
        Keys::U64(k, nulls) => {
            let (mut idx, missing): (Vec<u32>, Vec<u32>) = match nulls {
                Some(nb) => (0..n as u32).partition(|&i| nb.is_valid(i as usize)),
                None => ((0..n as u32).collect(), vec![]),
            };
            radix_sort(k, &mut idx);
            idx.extend(missing);
            idx
        }
        Keys::Rows(rows) => {
            let mut idx: Vec<u32> = (0..n as u32).collect();
            idx.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
            idx
        }
    }
}

fn key_columns(b: &RecordBatch, by: &[usize]) -> Result<Vec<ArrayRef>, KernelError> {
    by.iter().map(|&c| b.columns().get(c).cloned().ok_or_else(|| err(format!("no column #{c} to sort by")))).collect()
}

/// `b` sorted by the columns `by` (descending where `descending`), stably.
pub fn sort(b: &RecordBatch, by: &[usize], descending: &[bool]) -> Result<RecordBatch, KernelError> {
    let keys = encode(&key_columns(b, by)?, descending)?;
    let idx = UInt32Array::from(sorted_indices(&keys, b.num_rows()));
    Ok(arrow::compute::take_record_batch(b, &idx)?)
}

/// The first `n` rows of `pieces` (one schema, concatenated) in the order
/// of [`sort`]: only those rows are gathered.
pub fn top_k(pieces: &[&RecordBatch], by: &[usize], descending: &[bool], n: usize) -> Result<RecordBatch, KernelError> {
    let first = pieces.first().ok_or_else(|| err("top rows of no batches"))?;
    let owned: Vec<RecordBatch> = pieces.iter().map(|b| (*b).clone()).collect();
    let b = if owned.len() == 1 { owned[0].clone() } else { arrow::compute::concat_batches(&first.schema(), &owned)? };
    let keys = encode(&key_columns(&b, by)?, descending)?;
    let mut idx = sorted_indices(&keys, b.num_rows());
    idx.truncate(n);
    Ok(arrow::compute::take_record_batch(&b, &UInt32Array::from(idx))?)
}

/// A regular sample of chunk `chunk`'s rows: their key columns, then
/// `__chunk` and `__row` (the tie-breakers).
pub fn sample(b: &RecordBatch, by: &[usize], per: usize, chunk: usize) -> Result<RecordBatch, KernelError> {
    let n = b.num_rows();
    let take = per.min(n);
    let rows: Vec<u32> = (0..take).map(|i| ((i * n + n / 2) / take.max(1)) as u32).collect();
    let idx = UInt32Array::from(rows.clone());
    let mut cols: Vec<ArrayRef> =
        key_columns(b, by)?.iter().map(|c| arrow::compute::take(c, &idx, None)).collect::<Result<_, _>>()?;
    let mut fields: Vec<Field> = by
        .iter()
        .zip(&cols)
        .enumerate()
        .map(|(i, (_, c))| Field::new(format!("k{i}"), c.data_type().clone(), true))
        .collect();
    cols.push(Arc::new(UInt32Array::from(vec![chunk as u32; take])));
    cols.push(Arc::new(UInt32Array::from(rows)));
    fields.push(Field::new("__chunk", DataType::UInt32, false));
    fields.push(Field::new("__row", DataType::UInt32, false));
    let opts = RecordBatchOptions::new().with_row_count(Some(take));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), cols, &opts)?)
}

fn u32s(b: &RecordBatch, i: usize) -> Result<&[u32], KernelError> {
    b.columns()
        .get(i)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt32Type>())
        .map(|a| a.values().as_ref())
        .ok_or_else(|| err("a sort sample without its tie-breaker columns"))
}

/// `parts - 1` pivots, evenly spaced through all the samples sorted by
/// (key, chunk, row).
pub fn pivots(samples: &[&RecordBatch], descending: &[bool], parts: usize) -> Result<RecordBatch, KernelError> {
    let first = samples.first().ok_or_else(|| err("pivots of no samples"))?;
    let owned: Vec<RecordBatch> = samples.iter().map(|b| (*b).clone()).collect();
    let all = arrow::compute::concat_batches(&first.schema(), &owned)?;
    let nk = descending.len();
    let keys = encode(&key_columns(&all, &(0..nk).collect::<Vec<_>>())?, descending)?;
    let (chunk, row) = (u32s(&all, nk)?, u32s(&all, nk + 1)?);
    let mut idx: Vec<u32> = (0..all.num_rows() as u32).collect();
    idx.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        keys.cmp(a, &keys, b).then((chunk[a], row[a]).cmp(&(chunk[b], row[b])))
    });
    let n = idx.len();
    let picks: Vec<u32> = if n == 0 { vec![] } else { (1..parts).map(|p| idx[(p * n / parts).min(n - 1)]).collect() };
    Ok(arrow::compute::take_record_batch(&all, &UInt32Array::from(picks))?)
}

/// Chunk `chunk`'s rows split into `pivots.num_rows() + 1` ranges: row `i`
/// goes after every pivot below (key_i, chunk, i). Each range keeps row order.
pub fn range_partition(
    b: &RecordBatch,
    by: &[usize],
    descending: &[bool],
    chunk: Option<usize>,
    pivots: &RecordBatch,
) -> Result<Vec<RecordBatch>, KernelError> {
    let keys = encode(&key_columns(b, by)?, descending)?;
    let nk = by.len();
    let pkeys = encode(&key_columns(pivots, &(0..nk).collect::<Vec<_>>())?, descending)?;
    let (pc, pr) = (u32s(pivots, nk)?, u32s(pivots, nk + 1)?);
    let np = pivots.num_rows();
    // without a chunk, each row ties after every pivot of its key: equal
    // keys land in one piece
    let tie = |i: usize| chunk.map_or((u32::MAX, u32::MAX), |c| (c as u32, i as u32));
    let mut part = vec![0u32; b.num_rows()];
    if let (Keys::U64(k, _), Keys::U64(pk, _)) = (&keys, &pkeys) {
        // one numeric key: compare plain integer tuples (missing last)
        let tuple = |present: bool, key: u64, c: u32, r: u32| (!present, if present { key } else { 0 }, c, r);
        let piv: Vec<(bool, u64, u32, u32)> = (0..np).map(|j| tuple(pkeys.present(j), pk[j], pc[j], pr[j])).collect();
        for (i, p) in part.iter_mut().enumerate() {
            let (c, r) = tie(i);
            let me = tuple(keys.present(i), k[i], c, r);
            *p = piv.partition_point(|x| *x < me) as u32;
        }
        return split_by(b, &part, np + 1);
    }
    for (i, p) in part.iter_mut().enumerate() {
        // pivots are sorted: count those below row i
        let (mut lo, mut hi) = (0usize, np);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let below = pkeys.cmp(mid, &keys, i).then((pc[mid], pr[mid]).cmp(&tie(i))) == Ordering::Less;
            if below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        *p = lo as u32;
    }
    split_by(b, &part, np + 1)
}

/// The rows of `b` in `parts` pieces, row `i` in piece `part[i]`, each
/// piece keeping row order (a counting sort by piece); string views are
/// compacted, so a piece does not hold the whole column's bytes.
pub(crate) fn split_by(b: &RecordBatch, part: &[u32], parts: usize) -> Result<Vec<RecordBatch>, KernelError> {
    let mut starts = vec![0usize; parts + 1];
    for &p in part {
        starts[p as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut order = vec![0u32; part.len()];
    let mut at = starts.clone();
    for (i, &p) in part.iter().enumerate() {
        order[at[p as usize]] = i as u32;
        at[p as usize] += 1;
    }
    (0..parts)
        .map(|p| {
            let idx = UInt32Array::from(order[starts[p]..starts[p + 1]].to_vec());
            Ok(mars_ir::frame::compact_views(&arrow::compute::take_record_batch(b, &idx)?))
        })
        .collect()
}
