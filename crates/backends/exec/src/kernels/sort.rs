//! Sorting frames: stable local sorts, and the pieces of a parallel sort by
//! regular sampling (sample each chunk, choose pivots, split each chunk by
//! them, sort each range).
//!
//! One numeric key (ints, floats, dates, times) sorts as order-preserving
//! `u64`s with an MSD bucket sort on the keys' range; any other key (several
//! columns, strings, decimals) as arrow-row bytes. A range of a Float64,
//! Int64 or UInt64 key with nothing missing is sorted without gathering at
//! random: the other columns are carried through the bucket pass and the
//! key column decodes from the sorted keys. Missing values (and NaN, as
//! pandas) go last whatever the direction. Rows are totally ordered by
//! (key, chunk, row), so ties are split between ranges without breaking
//! stability.

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

/// The rows `idx` (increasing) sorted by `keys[idx]`, ties in index order,
/// each with its key.
fn radix_sort(keys: &[u64], idx: impl Iterator<Item = u32>) -> Vec<(u64, u32)> {
    let mut pairs: Vec<(u64, u32)> = idx.map(|i| (keys[i as usize], i)).collect();
    let mut scratch = vec![(0u64, 0u32); pairs.len()];
    sort_pairs(&mut pairs, &mut scratch);
    pairs
}

/// How one pass of an MSD bucket sort splits pairs: the top `bits` bits of
/// each key's offset from the smallest key, and where each bucket starts.
struct BucketPlan {
    lo: u64,
    shift: u32,
    /// Bucket `b` is positions `starts[b]..starts[b + 1]`.
    starts: Vec<usize>,
}

impl BucketPlan {
    /// The plan for `v` in at most `2^max_bits` buckets of about 4 keys;
    /// `None` when the keys are all equal (or there are none).
    fn of(v: &[(u64, u32)], max_bits: u32) -> Option<BucketPlan> {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for &(k, _) in v {
            lo = lo.min(k);
            hi = hi.max(k);
        }
        if lo >= hi {
            return None;
        }
        let span_bits = 64 - (hi - lo).leading_zeros();
        let bits = (usize::BITS - (v.len() / 4).leading_zeros()).clamp(1, max_bits).min(span_bits);
        let mut plan = BucketPlan { lo, shift: span_bits - bits, starts: vec![0usize; (1 << bits) + 1] };
        for &(k, _) in v {
            let b = plan.bucket(k);
            plan.starts[b + 1] += 1;
        }
        for b in 1..plan.starts.len() {
            plan.starts[b] += plan.starts[b - 1];
        }
        Some(plan)
    }

    #[inline]
    fn bucket(&self, k: u64) -> usize {
        ((k - self.lo) >> self.shift) as usize
    }
}

/// Sorts `v` by (key, index), where equal keys are already in index order:
/// an MSD bucket sort on the keys' actual range. Each pass scatters to at
/// most 1024 buckets (few enough write streams to stay in cache), then
/// sorts each bucket in cache the same way; uniform keys end a few to a
/// bucket after two passes. `scratch` is as long as `v`.
fn sort_pairs(v: &mut [(u64, u32)], scratch: &mut [(u64, u32)]) {
    if v.len() <= 32 {
        v.sort_unstable();
        return;
    }
    // all equal: already in index order
    let Some(plan) = BucketPlan::of(v, 10) else { return };
    let mut at = plan.starts.clone();
    for &p in v.iter() {
        let b = plan.bucket(p.0);
        scratch[at[b]] = p;
        at[b] += 1;
    }
    // each bucket sorted in `scratch` (with `v`'s range as its scratch),
    // then copied back while still in cache
    for w in plan.starts.windows(2) {
        let (s, e) = (w[0], w[1]);
        if e - s > 1 {
            sort_pairs(&mut scratch[s..e], &mut v[s..e]);
        }
        v[s..e].copy_from_slice(&scratch[s..e]);
    }
}

/// The present rows of `keys` (a numeric key) sorted, ties in row order,
/// with their keys; then the missing rows in row order.
fn sorted_u64(k: &[u64], nulls: Option<&arrow::buffer::NullBuffer>, n: usize) -> (Vec<(u64, u32)>, Vec<u32>) {
    match nulls {
        Some(nb) => {
            let (idx, missing): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|&i| nb.is_valid(i as usize));
            (radix_sort(k, idx.into_iter()), missing)
        }
        None => (radix_sort(k, 0..n as u32), vec![]),
    }
}

/// The rows of `keys` in sorted order, ties in row order.
fn sorted_indices(keys: &Keys, n: usize) -> Vec<u32> {
    match keys {
        Keys::U64(k, nulls) => {
            let (pairs, missing) = sorted_u64(k, nulls.as_ref(), n);
            let mut idx: Vec<u32> = pairs.iter().map(|p| p.1).collect();
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

/// The column of type `dt` whose keys (as [`numeric_u64`] encodes them,
/// complemented when `descending`) are `sorted`'s, for the types whose
/// encoding is one-to-one.
fn decode_keys(dt: &DataType, sorted: &[(u64, u32)], descending: bool) -> Option<ArrayRef> {
    use arrow::array::{Float64Array, Int64Array, UInt64Array};
    let raw = |k: u64| if descending { !k } else { k };
    let sign = 1u64 << 63;
    Some(match dt {
        DataType::Float64 => Arc::new(Float64Array::from_iter_values(sorted.iter().map(|p| {
            let k = raw(p.0);
            f64::from_bits(if k & sign != 0 { k & !sign } else { !k })
        }))),
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(sorted.iter().map(|p| (raw(p.0) ^ sign) as i64))),
        DataType::UInt64 => Arc::new(UInt64Array::from_iter_values(sorted.iter().map(|p| raw(p.0)))),
        _ => return None,
    })
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
    if let (Keys::U64(k, None), Keys::U64(pk, _)) = (&keys, &pkeys) {
        if np <= 64 && (0..np).all(|j| pkeys.present(j)) {
            // no key missing, few pivots: count the pivot keys below each
            // row's key without branches, then settle ties with a pivot's
            // key by (chunk, row)
            let pk = &pk[..np];
            for (i, p) in part.iter_mut().enumerate() {
                let key = k[i];
                let (mut below, mut upto) = (0usize, 0usize);
                for &x in pk {
                    below += usize::from(x < key);
                    upto += usize::from(x <= key);
                }
                if upto > below {
                    let t = tie(i);
                    below += (below..upto).filter(|&j| (pc[j], pr[j]) < t).count();
                }
                *p = below as u32;
            }
            return split_by(b, &part, np + 1);
        }
    }
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
/// piece keeping row order; string views are compacted, so a piece does not
/// hold the whole column's bytes. Fixed-width columns without nulls are
/// scattered straight into their pieces (one pass); the rest are gathered
/// by a counting sort of the rows by piece.
pub(crate) fn split_by(b: &RecordBatch, part: &[u32], parts: usize) -> Result<Vec<RecordBatch>, KernelError> {
    let mut starts = vec![0usize; parts + 1];
    for &p in part {
        let slot = starts.get_mut(p as usize + 1).ok_or_else(|| err(format!("row for piece {p} of {parts}")))?;
        *slot += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut order: Option<UInt32Array> = None;
    let mut pieces: Vec<Vec<ArrayRef>> = vec![Vec::with_capacity(b.num_columns()); parts];
    for c in b.columns() {
        if let Some(split) = scatter_fixed(c, part, &starts) {
            for (piece, a) in pieces.iter_mut().zip(split?) {
                piece.push(a);
            }
            continue;
        }
        let order = order.get_or_insert_with(|| {
            let mut order = vec![0u32; part.len()];
            let mut at = starts.clone();
            for (i, &p) in part.iter().enumerate() {
                order[at[p as usize]] = i as u32;
                at[p as usize] += 1;
            }
            UInt32Array::from(order)
        });
        for (p, piece) in pieces.iter_mut().enumerate() {
            let idx = order.slice(starts[p], starts[p + 1] - starts[p]);
            piece.push(arrow::compute::take(c, &idx, None)?);
        }
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(p, cols)| {
            let opts = RecordBatchOptions::new().with_row_count(Some(starts[p + 1] - starts[p]));
            Ok(mars_ir::frame::compact_views(&RecordBatch::try_new_with_options(b.schema(), cols, &opts)?))
        })
        .collect()
}

/// The values of `c` as `T`s, when they are fixed-width values of `T`'s
/// size, none is null, and its buffer is aligned for `T`.
fn fixed_values<T: arrow::datatypes::ArrowNativeType>(c: &ArrayRef) -> Option<arrow::buffer::ScalarBuffer<T>> {
    if c.null_count() != 0 || c.logical_null_count() != 0 {
        return None;
    }
    if c.data_type().primitive_width()? != std::mem::size_of::<T>() {
        return None;
    }
    let data = c.to_data();
    let buf = match (data.buffers(), data.child_data()) {
        ([buf], []) => buf,
        _ => return None,
    };
    if buf.len() < (data.offset() + data.len()) * std::mem::size_of::<T>()
        || buf.as_ptr().align_offset(std::mem::align_of::<T>()) != 0
    {
        return None;
    }
    Some(arrow::buffer::ScalarBuffer::<T>::new(buf.clone(), data.offset(), data.len()))
}

/// An array of type `dt` holding `values` (no nulls).
fn fixed_array<T: arrow::datatypes::ArrowNativeType>(dt: &DataType, values: Vec<T>) -> Result<ArrayRef, KernelError> {
    let data = arrow::array::ArrayData::builder(dt.clone())
        .len(values.len())
        .add_buffer(arrow::buffer::Buffer::from_vec(values))
        .build()?;
    Ok(arrow::array::make_array(data))
}

/// Runs `$body` with `$t` bound to the unsigned integer type as wide as
/// the fixed-width values of type `$dt`, or evaluates to `None`.
macro_rules! by_width {
    ($dt:expr, $t:ident => $body:expr) => {
        match $dt.primitive_width() {
            Some(1) => {
                type $t = u8;
                $body
            }
            Some(2) => {
                type $t = u16;
                $body
            }
            Some(4) => {
                type $t = u32;
                $body
            }
            Some(8) => {
                type $t = u64;
                $body
            }
            Some(16) => {
                type $t = i128;
                $body
            }
            _ => None,
        }
    };
}

/// Column `c` split into pieces by `part` (as [`split_by`]) with one
/// scatter pass, when its values are fixed-width and none is null.
fn scatter_fixed(c: &ArrayRef, part: &[u32], starts: &[usize]) -> Option<Result<Vec<ArrayRef>, KernelError>> {
    fn scatter<T: arrow::datatypes::ArrowNativeType>(
        c: &ArrayRef,
        part: &[u32],
        starts: &[usize],
    ) -> Option<Result<Vec<ArrayRef>, KernelError>> {
        let values = fixed_values::<T>(c).filter(|v| v.len() == part.len())?;
        let mut out: Vec<Vec<T>> = starts.windows(2).map(|w| Vec::with_capacity(w[1] - w[0])).collect();
        for (&v, &p) in values.iter().zip(part) {
            out[p as usize].push(v);
        }
        Some(out.into_iter().map(|v| fixed_array(c.data_type(), v)).collect())
    }
    by_width!(c.data_type(), T => scatter::<T>(c, part, starts))
}

/// The rows of `pieces` (one schema), concatenated and sorted stably by
/// the columns `by` (as [`sort`]).
pub fn sort_pieces(pieces: &[&RecordBatch], by: &[usize], descending: &[bool]) -> Result<RecordBatch, KernelError> {
    let first = pieces.first().ok_or_else(|| err("sorting no batches"))?;
    if let ([at], [desc]) = (by, descending) {
        if let Some(sorted) = sort_one_key(pieces, *at, *desc)? {
            return Ok(sorted);
        }
    }
    if pieces.len() == 1 {
        return sort(first, by, descending);
    }
    let owned: Vec<RecordBatch> = pieces.iter().map(|b| (*b).clone()).collect();
    sort(&arrow::compute::concat_batches(&first.schema(), &owned)?, by, descending)
}

/// [`sort_pieces`] by one Float64, Int64 or UInt64 column with no value
/// missing (null or NaN), without concatenating the pieces: the sorted keys
/// decode back into the key column, and the other columns are carried
/// into the same order ([`bucket_sort`]). `None` when that does not apply.
fn sort_one_key(pieces: &[&RecordBatch], at: usize, descending: bool) -> Result<Option<RecordBatch>, KernelError> {
    let Some(first) = pieces.first() else { return Ok(None) };
    let n: usize = pieces.iter().map(|p| p.num_rows()).sum();
    if n > u32::MAX as usize {
        return Ok(None);
    }
    let flip = if descending { u64::MAX } else { 0 };
    let sign = 1u64 << 63;
    // the rows' keys in the order of the pieces' concatenation
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(n);
    for b in pieces {
        let col = b.columns().get(at).ok_or_else(|| err(format!("no column #{at} to sort by")))?;
        if col.data_type() != first.column(at).data_type() || col.logical_null_count() != 0 {
            return Ok(None);
        }
        match col.data_type() {
            DataType::Float64 => {
                let v = col.as_primitive::<arrow::datatypes::Float64Type>().values();
                if v.iter().any(|x| x.is_nan()) {
                    return Ok(None);
                }
                keys.extend(v.iter().map(|&x| {
                    let b = x.to_bits();
                    ((if b & sign != 0 { !b } else { b | sign }) ^ flip, 0)
                }));
            }
            DataType::Int64 => {
                let v = col.as_primitive::<arrow::datatypes::Int64Type>().values();
                keys.extend(v.iter().map(|&x| (((x as u64) ^ sign) ^ flip, 0)));
            }
            DataType::UInt64 => {
                let v = col.as_primitive::<arrow::datatypes::UInt64Type>().values();
                keys.extend(v.iter().map(|&x| (x ^ flip, 0)));
            }
            _ => return Ok(None),
        }
    }
    let sorted = bucket_sort(keys);
    let key = decode_keys(first.column(at).data_type(), &sorted.pairs, descending)
        .ok_or_else(|| err("a sort key type without a decoding"))?;
    let mut orig: Option<Vec<(usize, usize)>> = None;
    let columns = (0..first.num_columns())
        .map(|c| {
            if c == at {
                return Ok(key.clone());
            }
            let parts: Vec<ArrayRef> = pieces.iter().map(|b| b.column(c).clone()).collect();
            if let Some(col) = permute_fixed(&parts, &sorted) {
                return col;
            }
            // the (piece, row) at each position after the first pass
            let at_pos = orig.get_or_insert_with(|| {
                let mut o = vec![(0usize, 0usize); n];
                let rows = pieces.iter().enumerate().flat_map(|(p, b)| (0..b.num_rows()).map(move |r| (p, r)));
                for (&d, pr) in sorted.dest.iter().zip(rows) {
                    o[d as usize] = pr;
                }
                o
            });
            let idx: Vec<(usize, usize)> = sorted.pairs.iter().map(|p| at_pos[p.1 as usize]).collect();
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(arrow::compute::interleave(&refs, &idx)?)
        })
        .collect::<Result<Vec<_>, KernelError>>()?;
    let opts = RecordBatchOptions::new().with_row_count(Some(n));
    Ok(Some(RecordBatch::try_new_with_options(first.schema(), columns, &opts)?))
}

/// Rows sorted by [`bucket_sort`].
struct BucketSorted {
    /// (key, position after the first pass), in sorted order.
    pairs: Vec<(u64, u32)>,
    /// The position the first pass gave each row (rows in input order).
    dest: Vec<u32>,
}

/// The rows whose keys are `keys` (the second fields are ignored: the
/// vector is reused as scratch) sorted stably: one stable pass scatters
/// them into at most 256 buckets by their keys' top bits, then each bucket
/// is sorted in cache by (key, position) ([`sort_pairs`]). The pairs
/// come back holding their position after that first pass, so the other
/// columns can be scattered into bucket order in the same streaming way
/// and then gathered within a bucket, in cache, instead of at random
/// across the whole input.
fn bucket_sort(mut pairs: Vec<(u64, u32)>) -> BucketSorted {
    let n = pairs.len();
    let Some(plan) = BucketPlan::of(&pairs, 8) else {
        // all keys equal: already in order
        let sorted = pairs.iter().zip(0u32..).map(|(&(k, _), j)| (k, j)).collect();
        return BucketSorted { pairs: sorted, dest: (0..n as u32).collect() };
    };
    let mut at = plan.starts.clone();
    let (mut sorted, mut dest) = (vec![(0u64, 0u32); n], vec![0u32; n]);
    for (i, &(k, _)) in pairs.iter().enumerate() {
        let b = plan.bucket(k);
        let j = at[b];
        at[b] += 1;
        sorted[j] = (k, j as u32);
        dest[i] = j as u32;
    }
    // positions increase with the index within a bucket, so (key,
    // position) orders ties as (key, index) does
    for w in plan.starts.windows(2) {
        if w[1] - w[0] > 1 {
            sort_pairs(&mut sorted[w[0]..w[1]], &mut pairs[w[0]..w[1]]);
        }
    }
    BucketSorted { pairs: sorted, dest }
}

/// Column `parts` (in pieces, concatenated) in the order of `sorted`, when
/// every piece is fixed-width with no nulls: scattered into first-pass
/// order (a streaming pass), then gathered bucket by bucket.
fn permute_fixed(parts: &[ArrayRef], sorted: &BucketSorted) -> Option<Result<ArrayRef, KernelError>> {
    fn permute<T: arrow::datatypes::ArrowNativeType>(
        parts: &[ArrayRef],
        sorted: &BucketSorted,
    ) -> Option<Result<ArrayRef, KernelError>> {
        let values: Vec<arrow::buffer::ScalarBuffer<T>> = parts.iter().map(fixed_values::<T>).collect::<Option<_>>()?;
        let mut placed = vec![T::default(); sorted.dest.len()];
        let rows = values.iter().flat_map(|v| v.iter());
        for (&d, &v) in sorted.dest.iter().zip(rows) {
            placed[d as usize] = v;
        }
        let out: Vec<T> = sorted.pairs.iter().map(|p| placed[p.1 as usize]).collect();
        Some(fixed_array(parts[0].data_type(), out))
    }
    by_width!(parts.first()?.data_type(), T => permute::<T>(parts, sorted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, Int64Array, StringArray};

    /// A xorshift stream (no rand dependency in this crate).
    fn stream(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    #[test]
    fn bucket_sort_matches_a_comparison_sort() {
        let mut next = stream(7);
        // uniform, few distinct, skewed (one huge outlier), all equal, tiny
        let cases: Vec<Vec<u64>> = vec![
            (0..100_000).map(|_| next()).collect(),
            (0..50_000).map(|_| next() % 7).collect(),
            (0..20_000).map(|i| if i == 500 { u64::MAX } else { next() % 1000 }).collect(),
            vec![42; 3000],
            (0..33).map(|_| next() % 5).collect(),
            vec![],
        ];
        for keys in cases {
            let idx: Vec<u32> = (0..keys.len() as u32).collect();
            let got = radix_sort(&keys, idx.iter().copied());
            let mut want: Vec<(u64, u32)> = keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
            want.sort();
            assert_eq!(got, want, "{} keys", keys.len());
            let pairs: Vec<(u64, u32)> = keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
            let b = bucket_sort(pairs);
            let mut orig = vec![0u32; keys.len()];
            for (i, &d) in b.dest.iter().enumerate() {
                orig[d as usize] = i as u32;
            }
            let got: Vec<(u64, u32)> = b.pairs.iter().map(|&(k, j)| (k, orig[j as usize])).collect();
            assert_eq!(got, want, "bucket_sort of {} keys", keys.len());
        }
    }

    #[test]
    fn sort_decodes_the_key_column_and_gathers_the_rest() {
        let mut next = stream(3);
        let n = 5000;
        let mut a: Vec<f64> = (0..n).map(|_| (next() % 2000) as f64 / 7.0 - 100.0).collect();
        a[17] = -0.0;
        a[18] = 0.0;
        a[19] = f64::INFINITY;
        a[20] = f64::NEG_INFINITY;
        let b: Vec<i64> = (0..n as i64).collect();
        let batch = RecordBatch::try_from_iter([
            ("b", Arc::new(Int64Array::from(b)) as ArrayRef),
            ("a", Arc::new(Float64Array::from(a.clone())) as ArrayRef),
        ])
        .unwrap();
        for desc in [false, true] {
            let got =
                sort_pieces(&[&batch.slice(0, 1000), &batch.slice(1000, 0), &batch.slice(1000, 4000)], &[1], &[desc])
                    .unwrap();
            let mut want: Vec<(f64, i64)> = a.iter().enumerate().map(|(i, &x)| (x, i as i64)).collect();
            // stable by key (total order on bits keeps -0.0 before 0.0)
            want.sort_by(|x, y| if desc { y.0.total_cmp(&x.0) } else { x.0.total_cmp(&y.0) }.then(x.1.cmp(&y.1)));
            let ga = got.column(1).as_primitive::<arrow::datatypes::Float64Type>();
            let gb = got.column(0).as_primitive::<arrow::datatypes::Int64Type>();
            for (i, (x, row)) in want.iter().enumerate() {
                assert_eq!(ga.value(i).to_bits(), x.to_bits(), "row {i} desc={desc}");
                assert_eq!(gb.value(i), *row, "row {i} desc={desc}");
            }
        }
        // with a string column (gathered by interleave) and with a NaN
        // (not decodable: the general path), the pieces sort as their
        // concatenation does
        let words: Vec<Option<String>> = (0..n).map(|i| (i % 5 != 0).then(|| format!("w{}", i % 13))).collect();
        for nan in [false, true] {
            let mut a = a.clone();
            if nan {
                a[21] = f64::NAN;
            }
            let batch = RecordBatch::try_from_iter([
                ("a", Arc::new(Float64Array::from(a)) as ArrayRef),
                ("s", Arc::new(StringArray::from(words.clone())) as ArrayRef),
            ])
            .unwrap();
            let pieces = [batch.slice(0, 2500), batch.slice(2500, 2500)];
            for desc in [false, true] {
                let got = sort_pieces(&[&pieces[0], &pieces[1]], &[0], &[desc]).unwrap();
                assert_eq!(got, sort(&batch, &[0], &[desc]).unwrap(), "nan={nan} desc={desc}");
            }
        }
        // ints, descending
        let ints: Vec<i64> = (0..n).map(|_| (next() % 100) as i64 - 50).collect();
        let batch = RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(ints.clone())) as ArrayRef)]).unwrap();
        let got = sort_pieces(&[&batch], &[0], &[true]).unwrap();
        let mut want = ints;
        want.sort_by(|x, y| y.cmp(x));
        assert_eq!(got.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().as_ref(), want.as_slice());
    }

    #[test]
    fn split_by_scatters_and_gathers_alike() {
        let n = 1000;
        let part: Vec<u32> = (0..n).map(|i| (i * 7 % 5) as u32).collect();
        let strings: Vec<Option<String>> = (0..n).map(|i| (i % 9 != 0).then(|| format!("s{i}"))).collect();
        let batch = RecordBatch::try_from_iter([
            ("i", Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())) as ArrayRef),
            ("n", Arc::new(Int32Array::from((0..n).map(|i| (i % 4 != 0).then_some(i as i32)).collect::<Vec<_>>()))),
            ("s", Arc::new(StringArray::from(strings))),
        ])
        .unwrap();
        // a sliced batch: offsets into the buffers
        let batch = batch.slice(0, n);
        let pieces = split_by(&batch, &part, 5).unwrap();
        for (p, piece) in pieces.iter().enumerate() {
            let rows: Vec<u32> = (0..n as u32).filter(|&i| part[i as usize] == p as u32).collect();
            let want = arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows)).unwrap();
            assert_eq!(piece, &want, "piece {p}");
        }
        let sliced = batch.slice(3, 500);
        let pieces = split_by(&sliced, &part[..500], 5).unwrap();
        assert_eq!(pieces.iter().map(|p| p.num_rows()).sum::<usize>(), 500);
        let back = arrow::compute::concat_batches(&sliced.schema(), &pieces).unwrap();
        let mut firsts: Vec<i64> = back.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        firsts.sort_unstable();
        assert_eq!(firsts, (3..503).collect::<Vec<i64>>());
        assert!(split_by(&sliced, &vec![9; 500], 5).is_err(), "a piece out of range is an error");
    }
}
