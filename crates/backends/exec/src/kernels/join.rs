//! Hash joins: the build side indexed once ([`JoinTable`], a chunk value
//! every probe chunk reads), then each probe chunk matched against it.
//!
//! The index is a [`KeyIndex`] (a direct-indexed array for a dense integer
//! key, else a hash table) over the build rows' distinct keys, and the rows of
//! each key in one array (CSR). Missing keys never match (as SQL and Polars;
//! pandas would match NaN with NaN).

use super::hash::{KeyIndex, NO_GROUP};
use super::KernelError;
use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use mars_ir::join::Side;
use mars_ir::JoinProbeChunk;
use std::sync::Arc;

fn err(msg: impl Into<String>) -> KernelError {
    KernelError(msg.into())
}

/// A join's build side: its rows and an index of their keys.
#[derive(Debug)]
pub struct JoinTable {
    pub batch: RecordBatch,
    pub keys: Vec<usize>,
    index: KeyIndex,
    /// The rows of key group `g` are `rows[offsets[g]..offsets[g + 1]]`.
    offsets: Vec<u32>,
    rows: Vec<u32>,
    /// Each key on one row: the index finds rows (when `offsets` is empty)
    /// or groups whose row is `rows[g]`.
    unique: bool,
    /// A unique, direct-indexed build side laid out by key.
    dense: Option<Dense>,
}

/// The build rows placed at their key's slot `k - lo` (missing where no row
/// has that key), so a probe row reads one place per column instead of the
/// index and then the row.
#[derive(Debug)]
struct Dense {
    lo: i64,
    exists: arrow::buffer::BooleanBuffer,
    batch: RecordBatch,
}

impl PartialEq for JoinTable {
    fn eq(&self, other: &Self) -> bool {
        self.batch == other.batch && self.keys == other.keys
    }
}

fn columns(b: &RecordBatch, at: &[usize]) -> Result<Vec<ArrayRef>, KernelError> {
    at.iter()
        .map(|&k| {
            b.columns()
                .get(k)
                .cloned()
                .ok_or_else(|| err(format!("key #{k} of a batch of {} columns", b.num_columns())))
        })
        .collect()
}

impl JoinTable {
    /// Index `batch`'s rows by the key columns at `keys`.
    pub fn build(batch: RecordBatch, keys: &[usize]) -> Result<JoinTable, KernelError> {
        let (index, groups) = KeyIndex::build(&columns(&batch, keys)?)?;
        // a counting sort of the rows by group (rows of a missing key dropped)
        let mut offsets = vec![0u32; groups.len() + 1];
        for &g in &groups.ids {
            if g != NO_GROUP {
                offsets[g as usize + 1] += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut at = offsets.clone();
        let mut rows = vec![0u32; offsets.last().copied().unwrap_or(0) as usize];
        for (r, &g) in groups.ids.iter().enumerate() {
            if g != NO_GROUP {
                rows[at[g as usize] as usize] = r as u32;
                at[g as usize] += 1;
            }
        }
        // every key once (a dimension table): a group is its one row, and a
        // direct index can name the row itself, saving a lookup per probe
        let unique = rows.len() == groups.len();
        let mut dense = None;
        let index = match index {
            KeyIndex::Direct { lo, mut slots } if unique => {
                for s in slots.iter_mut().filter(|s| **s != NO_GROUP) {
                    *s = groups.first[*s as usize];
                }
                offsets.clear();
                let at: UInt32Array = slots.iter().map(|&s| (s != NO_GROUP).then_some(s)).collect();
                let exists = arrow::buffer::BooleanBuffer::from_iter(slots.iter().map(|&s| s != NO_GROUP));
                dense = Some(Dense { lo, exists, batch: take_batch(&batch, &at)? });
                KeyIndex::Direct { lo, slots }
            }
            other => other,
        };
        Ok(JoinTable { batch, keys: keys.to_vec(), index, offsets, rows, unique, dense })
    }

    /// Bytes held: the rows and the index.
    pub fn nbytes(&self) -> usize {
        let index = self.index.nbytes();
        let dense = self.dense.as_ref().map_or(0, |d| d.batch.get_array_memory_size() + d.exists.len() / 8);
        self.batch.get_array_memory_size() + index + (self.offsets.len() + self.rows.len()) * 4 + dense
    }
}

/// No row on this side (an unmatched row of the other).
const NONE: u32 = u32::MAX;

fn indices(v: Vec<u32>) -> UInt32Array {
    if v.contains(&NONE) {
        v.into_iter().map(|x| (x != NONE).then_some(x)).collect()
    } else {
        UInt32Array::from(v)
    }
}

/// `col` at rows `idx` (missing where `idx` is); the column itself when
/// `idx` is every row in order.
fn take(col: &ArrayRef, idx: &UInt32Array) -> Result<ArrayRef, KernelError> {
    let identity = idx.null_count() == 0
        && idx.len() == col.len()
        && idx.values().iter().enumerate().all(|(i, &v)| v as usize == i);
    if identity {
        return Ok(col.clone());
    }
    Ok(arrow::compute::take(col, idx, None)?)
}

/// The probe chunk's rows matched against `table`: every (probe, build) pair
/// of equal keys in probe order, then (as asked) unmatched probe rows in
/// their place and unmatched build rows last; the result columns `p.cols`.
pub fn probe(probe: &RecordBatch, table: &JoinTable, p: &JoinProbeChunk) -> Result<RecordBatch, KernelError> {
    let keys = columns(probe, &p.keys)?;
    if let (Some(d), [key], false) = (&table.dense, keys.as_slice(), p.keep_build) {
        if let Some(at) = dense_slots(d, key)? {
            // every probe row is kept once (matched, or unmatched in a left join)
            if p.keep_probe || !at.contains(&NONE) {
                let all: Vec<u32> = (0..at.len() as u32).collect();
                return assemble(probe, &d.batch, p, all, at);
            }
            // an inner join: the matched rows, each with its slot
            let (mut pi, mut bi) = (Vec::new(), Vec::new());
            for (i, &a) in at.iter().enumerate().filter(|(_, &a)| a != NONE) {
                pi.push(i as u32);
                bi.push(a);
            }
            return assemble(probe, &d.batch, p, pi, bi);
        }
    }
    let found = table.index.find(&keys)?;
    let (mut pi, mut bi) = (Vec::with_capacity(probe.num_rows()), Vec::with_capacity(probe.num_rows()));
    let mut matched = if p.keep_build { vec![false; table.batch.num_rows()] } else { vec![] };
    for (i, &g) in found.iter().enumerate() {
        if g == NO_GROUP {
            if p.keep_probe {
                pi.push(i as u32);
                bi.push(NONE);
            }
            continue;
        }
        let rows = match (table.unique, table.offsets.is_empty()) {
            (true, true) => std::slice::from_ref(&found[i]),
            (true, false) => std::slice::from_ref(&table.rows[g as usize]),
            _ => &table.rows[table.offsets[g as usize] as usize..table.offsets[g as usize + 1] as usize],
        };
        for &r in rows {
            pi.push(i as u32);
            bi.push(r);
            if p.keep_build {
                matched[r as usize] = true;
            }
        }
    }
    if p.keep_build {
        for (r, m) in matched.iter().enumerate() {
            if !m {
                pi.push(NONE);
                bi.push(r as u32);
            }
        }
    }
    assemble(probe, &table.batch, p, pi, bi)
}

/// Each probe key's slot in the dense layout, [`NONE`] where no build row
/// has it (or it is missing); `None` when the key is not integer-like.
fn dense_slots(d: &Dense, key: &ArrayRef) -> Result<Option<Vec<u32>>, KernelError> {
    use arrow::datatypes::DataType::*;
    if !matches!(key.data_type(), Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Date32 | Date64) {
        return Ok(None);
    }
    let ints = arrow::compute::cast(key, &Int64)?;
    let values = ints.as_any().downcast_ref::<arrow::array::Int64Array>().map(|a| a.values().clone());
    let Some(values) = values else { return Ok(None) };
    let len = d.exists.len() as u64;
    // the exists bits as bytes, from bit `shift` of the first
    let (bytes, shift) = (d.exists.inner().as_slice(), d.exists.offset() as u64);
    let slot = |v: i64| {
        // below `lo` wraps to a huge offset: out of range like above the top
        let a = v.wrapping_sub(d.lo) as u64;
        let b = a.wrapping_add(shift);
        if a < len && (bytes[(b / 8) as usize] >> (b % 8)) & 1 == 1 {
            a as u32
        } else {
            NONE
        }
    };
    let mut at: Vec<u32> = values.iter().map(|&v| slot(v)).collect();
    if let Some(nulls) = key.logical_nulls() {
        for (a, ok) in at.iter_mut().zip(nulls.iter()) {
            if !ok {
                *a = NONE;
            }
        }
    }
    Ok(Some(at))
}

fn take_batch(b: &RecordBatch, idx: &UInt32Array) -> Result<RecordBatch, KernelError> {
    let cols: Vec<ArrayRef> =
        b.columns().iter().map(|c| arrow::compute::take(c, idx, None)).collect::<Result<_, _>>()?;
    let fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    let opts = RecordBatchOptions::new().with_row_count(Some(idx.len()));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), cols, &opts)?)
}

/// The result columns from probe rows `pi` and rows `bi` of `build` (the
/// build side's rows, or its dense layout); [`NONE`] where a side has no row.
fn assemble(
    probe: &RecordBatch,
    build: &RecordBatch,
    p: &JoinProbeChunk,
    pi: Vec<u32>,
    bi: Vec<u32>,
) -> Result<RecordBatch, KernelError> {
    let n = pi.len();
    let (pi, bi) = (indices(pi), indices(bi));
    let side = |s: Side| if s == p.probe { (probe, &pi) } else { (build, &bi) };
    let mut out = Vec::with_capacity(p.cols.len());
    let mut fields = Vec::with_capacity(p.cols.len());
    for (c, name) in p.cols.iter().zip(&p.names) {
        let (batch, idx) = side(c.side);
        let col = batch.columns().get(c.col).ok_or_else(|| err(format!("no column #{}", c.col)))?;
        let mut values = take(col, idx)?;
        if let (Some(o), true) = (c.or, idx.null_count() > 0) {
            // a key merged on a shared name: the other side's where this one has no row
            let other_side = if c.side == Side::Left { Side::Right } else { Side::Left };
            let (ob, oidx) = side(other_side);
            let other = ob.columns().get(o).ok_or_else(|| err(format!("no column #{o}")))?;
            let other = arrow::compute::cast(&take(other, oidx)?, values.data_type())?;
            let here = BooleanArray::from((0..n).map(|i| idx.is_valid(i)).collect::<Vec<_>>());
            values = arrow::compute::kernels::zip::zip(&here, &values, &other)?;
        }
        fields.push(Field::new(name, values.data_type().clone(), true));
        out.push(values);
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), out, &opts)?)
}
