//! Row hashing and grouping on Arrow key columns: the one place equal keys
//! are found, for group-by (ids per row) and for hash partitioning.
//!
//! Three paths, by key: one integer-like column (direct-indexed by value when
//! its range is small, else a hash table of the values); one string column
//! (a table of group ids compared by bytes); anything else through arrow-row
//! (several columns, floats, decimals …), whose row bytes are hashed and compared.
//! Hashes use a fixed seed, so every chunk — and every process — sends equal
//! keys to the same partition.

use super::KernelError;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

/// A row whose key has a missing value belongs to no group.
pub const NO_GROUP: u32 = u32::MAX;

fn hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x006d_6172_732d_7273)
}

/// Partitions hash with another seed than group tables: the rows of one
/// partition share their hashes' top bits, which would crowd a table's tags.
fn partition_hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x7061_7274_6974_696f)
}

/// The group of each row, numbered in order of first appearance.
#[derive(Debug)]
pub struct Groups {
    /// Per row: its group, or [`NO_GROUP`].
    pub ids: Vec<u32>,
    /// Per group: the row where it first appears.
    pub first: Vec<u32>,
    /// Whether some row has no group.
    pub has_none: bool,
}

impl Groups {
    pub fn len(&self) -> usize {
        self.first.len()
    }
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

/// Rows where every key is present.
fn key_validity(keys: &[ArrayRef]) -> Option<NullBuffer> {
    keys.iter().fold(None, |acc, k| NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref()))
}

/// The key as 64-bit integers when it is one integer-like column (equal keys,
/// equal integers).
fn as_i64(keys: &[ArrayRef]) -> Option<ArrayRef> {
    use DataType::*;
    let [k] = keys else { return None };
    match k.data_type() {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Date32 | Date64 | Timestamp(..) | Time32(_)
        | Time64(_) | Duration(_) => arrow::compute::cast(k, &Int64).ok(),
        _ => None,
    }
}

fn is_string(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn rows_of(keys: &[ArrayRef]) -> Result<Rows, KernelError> {
    Ok(converter(keys)?.convert_columns(keys)?)
}

/// Calls `f(bytes_of_row)` for each row of a one-string-column key.
macro_rules! with_str_bytes {
    ($key:expr, $value:ident => $body:expr) => {
        match $key.data_type() {
            DataType::Utf8 => {
                let a = $key.as_string::<i32>();
                let $value = |i: usize| a.value(i).as_bytes();
                $body
            }
            DataType::LargeUtf8 => {
                let a = $key.as_string::<i64>();
                let $value = |i: usize| a.value(i).as_bytes();
                $body
            }
            _ => {
                let a = $key.as_string_view();
                let $value = |i: usize| a.value(i).as_bytes();
                $body
            }
        }
    };
}

/// The group of each of the `n` rows of the key columns `keys`. No key
/// columns put every row in one group, which exists even with no rows (the
/// one group of a whole-column reduction).
pub fn group_rows(keys: &[ArrayRef], n: usize) -> Result<Groups, KernelError> {
    if keys.is_empty() {
        if n > NO_GROUP as usize {
            return Err(KernelError(format!("a chunk of {n} rows is too long to group (at most {NO_GROUP})")));
        }
        return Ok(Groups { ids: vec![0; n], first: vec![0], has_none: false });
    }
    if keys.len() > 1 {
        return group_columns(keys);
    }
    group_one(&keys[0])
}

/// The groups of one key column. Short strings held inline in a Utf8View
/// (at most 7 bytes: flags, codes, modes) are grouped as the integers their
/// views spell (bytes and length), which skips hashing and comparing bytes
/// and, for one-byte codes, is a direct-indexed table.
fn group_one(key: &ArrayRef) -> Result<Groups, KernelError> {
    if let Some(view) = key.as_string_view_opt() {
        let views = view.views();
        if views.iter().all(|&v| (v as u32) <= 7) {
            // inline data is zero-padded: (bytes, length) is unique per string
            let codes: Vec<i64> = views.iter().map(|&v| short_code(v) as i64).collect();
            let n = codes.len();
            if n > NO_GROUP as usize {
                return Err(KernelError(format!("a chunk of {n} rows is too long to group (at most {NO_GROUP})")));
            }
            let valid = key.logical_nulls();
            let mut g = Groups { ids: vec![NO_GROUP; n], first: Vec::new(), has_none: valid.is_some() };
            group_ints(&codes, valid.as_ref(), &mut g);
            return Ok(g);
        }
    }
    Ok(KeyIndex::build(std::slice::from_ref(key))?.1)
}

/// Several key columns: each grouped alone by its own path, then the group
/// ids combined pairwise into one integer per row (`a * groups_b + b`) and
/// grouped again, which beats hashing arrow-row bytes of every row. Groups
/// stay numbered in order of first appearance; a row with any key missing
/// has no group.
fn group_columns(keys: &[ArrayRef]) -> Result<Groups, KernelError> {
    if let Some(g) = group_short_strings(keys)? {
        return Ok(g);
    }
    let mut acc = group_one(&keys[0])?;
    for k in &keys[1..] {
        let g = group_one(k)?;
        let width = g.len() as u64;
        let mut valid = Vec::with_capacity(acc.ids.len());
        // ids are below 2^32 and so is width: the code fits u64, and as i64
        // (wrapped) stays distinct
        let codes: Vec<i64> = acc
            .ids
            .iter()
            .zip(&g.ids)
            .map(|(&a, &b)| {
                let ok = a != NO_GROUP && b != NO_GROUP;
                valid.push(ok);
                if ok {
                    (a as u64 * width + b as u64) as i64
                } else {
                    0
                }
            })
            .collect();
        let valid = NullBuffer::from(valid);
        let has_none = valid.null_count() > 0;
        let mut next = Groups { ids: vec![NO_GROUP; codes.len()], first: Vec::new(), has_none };
        group_ints(&codes, has_none.then_some(&valid), &mut next);
        acc = next;
    }
    Ok(acc)
}

/// The code of a Utf8View string held inline in at most 7 bytes: its bytes
/// and length (inline data is zero-padded, so equal codes, equal strings).
#[inline]
fn short_code(view: u128) -> u64 {
    (((view >> 32) as u64) << 3) | (view as u64 & 7)
}

/// How one short-string key's codes index a combined table: codes of
/// strings of at most one byte (below [`TINY`]) through a table of the codes
/// seen, numbered densely; longer ones by their offset in the key's range.
enum CodeIndex {
    Tiny(Vec<u32>),
    Range(u64),
}

/// Codes of strings of at most one byte are below this.
const TINY: usize = 1 << 11;

/// Several key columns that are all short strings (flags, codes, modes:
/// Utf8View, every value inline in at most 7 bytes) with few combinations
/// of codes: each row's group found in one pass, by indexing a direct table
/// with the keys' code indexes (no per-key id arrays, no hashing). `None`
/// when the keys are not like that.
fn group_short_strings(keys: &[ArrayRef]) -> Result<Option<Groups>, KernelError> {
    let n = keys[0].len();
    if n > NO_GROUP as usize {
        return Err(KernelError(format!("a chunk of {n} rows is too long to group (at most {NO_GROUP})")));
    }
    let valid = key_validity(keys);
    let mut views = Vec::with_capacity(keys.len());
    let mut index = Vec::with_capacity(keys.len());
    let mut slots = 1usize;
    for k in keys {
        let Some(v) = k.as_string_view_opt().map(|v| v.views()) else { return Ok(None) };
        // one pass: every value inline, and which one-byte codes occur (a
        // missing row marks its code too: an unused slot, harmless)
        let (mut seen, mut tiny) = (vec![false; TINY], true);
        for &x in v.iter() {
            match x as u32 {
                0 | 1 => seen[short_code(x) as usize] = true,
                2..=7 => tiny = false,
                _ => return Ok(None),
            }
        }
        let (ix, width) = if tiny {
            let mut map = vec![0u32; TINY];
            let mut d = 0u32;
            for (c, _) in seen.iter().enumerate().filter(|(_, &s)| s) {
                map[c] = d;
                d += 1;
            }
            (CodeIndex::Tiny(map), d.max(1) as usize)
        } else {
            let (mut lo, mut hi) = (u64::MAX, 0u64);
            for (i, &x) in v.iter().enumerate() {
                if valid.as_ref().is_none_or(|b| b.is_valid(i)) {
                    let c = short_code(x);
                    lo = lo.min(c);
                    hi = hi.max(c);
                }
            }
            if lo > hi {
                (lo, hi) = (0, 0);
            }
            (CodeIndex::Range(lo), usize::try_from(hi - lo + 1).unwrap_or(usize::MAX))
        };
        slots = match slots.checked_mul(width) {
            Some(s) if s <= (2 * n).max(1 << 16) => s,
            _ => return Ok(None),
        };
        views.push(v);
        index.push((ix, width));
    }
    if u32::try_from(slots).is_err() {
        return Ok(None);
    }
    // each row's slot, a key column at a time (tight loops, one kind of
    // code index each), the last column's loop also numbering the groups; a
    // missing row's slot is garbage, and skipped
    let (last, first_keys) = views.split_last().expect("at least two keys");
    let mut at = vec![0u32; n];
    fn add(at: &mut [u32], v: &[u128], width: u32, code: impl Fn(u128) -> u32) {
        for (a, &x) in at.iter_mut().zip(v) {
            *a = a.wrapping_mul(width).wrapping_add(code(x));
        }
    }
    for (v, (ix, width)) in first_keys.iter().zip(&index) {
        match ix {
            CodeIndex::Tiny(map) => add(&mut at, v, *width as u32, |x| map[short_code(x) as usize & (TINY - 1)]),
            CodeIndex::Range(lo) => add(&mut at, v, *width as u32, |x| short_code(x).wrapping_sub(*lo) as u32),
        }
    }
    let (ix, width) = index.last().expect("at least two keys");
    let mut g = Groups { ids: vec![NO_GROUP; n], first: Vec::new(), has_none: valid.is_some() };
    let mut table = vec![NO_GROUP; slots];
    let rows = Numbering { at: &at, last, valid: valid.as_ref(), width: *width as u32 };
    match ix {
        CodeIndex::Tiny(map) => rows.number(&mut g, &mut table, |x| map[short_code(x) as usize & (TINY - 1)]),
        CodeIndex::Range(lo) => rows.number(&mut g, &mut table, |x| short_code(x).wrapping_sub(*lo) as u32),
    }
    Ok(Some(g))
}

/// The last pass of [`group_short_strings`]: each row's slot (`at`, the
/// slot of its first keys, times `width`, plus the code of its `last` key)
/// numbered in a table of slots, in order of first appearance.
struct Numbering<'a> {
    at: &'a [u32],
    last: &'a [u128],
    valid: Option<&'a NullBuffer>,
    width: u32,
}

impl Numbering<'_> {
    #[inline]
    fn number(&self, g: &mut Groups, table: &mut [u32], code: impl Fn(u128) -> u32) {
        for (i, ((id, &a), &x)) in g.ids.iter_mut().zip(self.at).zip(self.last).enumerate() {
            if self.valid.is_some_and(|b| b.is_null(i)) {
                continue;
            }
            let s = &mut table[a.wrapping_mul(self.width).wrapping_add(code(x)) as usize];
            if *s == NO_GROUP {
                *s = g.first.len() as u32;
                g.first.push(i as u32);
            }
            *id = *s;
        }
    }
}

/// The first row of each distinct key of `keys` (several columns), in
/// order of appearance; missing values equal each other (pandas'
/// `drop_duplicates`).
pub fn first_rows(keys: &[ArrayRef]) -> Result<Vec<u32>, KernelError> {
    let n = keys.first().map_or(0, |k| k.len());
    if n > NO_GROUP as usize {
        return Err(KernelError(format!("a chunk of {n} rows is too long to group (at most {NO_GROUP})")));
    }
    if keys.is_empty() {
        return Ok(if n > 0 { vec![0] } else { vec![] });
    }
    let rows = rows_of(keys)?;
    let mut g = Groups { ids: vec![NO_GROUP; n], first: Vec::new(), has_none: false };
    group_bytes(n, None, |i| rows.row(i).data(), &mut g);
    Ok(g.first)
}

/// An index of the distinct keys of some rows (their groups), to find the
/// group of other rows' keys: the build side of a join.
pub enum KeyIndex {
    /// One integer-like key of a small range: a slot per value from `lo`.
    Direct { lo: i64, slots: Vec<u32> },
    /// One integer-like key; with `present`, a bit per value of the keys'
    /// range that a probe tests before the table (see [`Present`]).
    Ints { table: HashTable<(i64, u32)>, present: Option<Present> },
    /// One string key: (hash, group), compared with the group's first row of `col`.
    Strings { table: HashTable<(u64, u32)>, col: ArrayRef, first: Vec<u32> },
    /// Anything else, as arrow-row bytes (the converter encodes probes alike).
    Rows { table: HashTable<(u64, u32)>, conv: RowConverter, rows: Rows, first: Vec<u32> },
    /// Several integer-like keys whose ranges multiply to under 2^62: each
    /// row's keys packed into one integer (`Σ (k_i - lo_i) · stride_i`),
    /// indexed as one integer key; a probe key outside a range matches none.
    /// With `first`, the values of the first key present, tested before the
    /// table (a probe whose first key no row has is a miss).
    Packed { lo: Vec<i64>, hi: Vec<i64>, stride: Vec<i64>, first: Option<Present>, inner: Box<KeyIndex> },
}

/// Several integer-like key columns packed into one integer per row, with
/// the ranges `lo..=hi` and strides, when the ranges (of the valid rows)
/// multiply to under 2^62.
fn packed(keys: &[ArrayRef], valid: Option<&NullBuffer>) -> Option<(Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>)> {
    if keys.len() < 2 {
        return None;
    }
    let ints: Vec<ArrayRef> = keys.iter().map(|k| as_i64(std::slice::from_ref(k))).collect::<Option<_>>()?;
    let n = keys[0].len();
    let is_valid = |i: usize| valid.is_none_or(|v| v.is_valid(i));
    let (mut lo, mut hi, mut stride) = (Vec::new(), Vec::new(), Vec::new());
    let mut span: i128 = 1;
    for a in &ints {
        let v = a.as_primitive::<arrow::datatypes::Int64Type>().values();
        let (mut l, mut h) = (i64::MAX, i64::MIN);
        for (i, &x) in v.iter().enumerate() {
            if is_valid(i) {
                l = l.min(x);
                h = h.max(x);
            }
        }
        if l > h {
            (l, h) = (0, 0); // no valid rows
        }
        stride.push(span as i64);
        span = span.checked_mul(h as i128 - l as i128 + 1)?;
        if span >= 1 << 62 {
            return None;
        }
        lo.push(l);
        hi.push(h);
    }
    let mut codes = vec![0i64; n];
    for ((a, &l), &s) in ints.iter().zip(&lo).zip(&stride) {
        let v = a.as_primitive::<arrow::datatypes::Int64Type>().values();
        for (c, &x) in codes.iter_mut().zip(v.iter()) {
            *c = c.wrapping_add(x.wrapping_sub(l).wrapping_mul(s));
        }
    }
    Some((lo, hi, stride, codes))
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            KeyIndex::Direct { slots, .. } => format!("Direct({} slots)", slots.len()),
            KeyIndex::Ints { table, present } => {
                format!("Ints({}{})", table.len(), if present.is_some() { ", present bits" } else { "" })
            }
            KeyIndex::Strings { table, .. } => format!("Strings({})", table.len()),
            KeyIndex::Rows { table, .. } => format!("Rows({})", table.len()),
            KeyIndex::Packed { lo, inner, .. } => format!("Packed({} keys, {inner:?})", lo.len()),
        };
        f.write_str(&kind)
    }
}

impl KeyIndex {
    /// Index the keys of these rows; their groups, numbered in order of first appearance.
    pub fn build(keys: &[ArrayRef]) -> Result<(KeyIndex, Groups), KernelError> {
        let n = keys.first().map_or(0, |k| k.len());
        if n > NO_GROUP as usize {
            return Err(KernelError(format!("a chunk of {n} rows is too long to group (at most {NO_GROUP})")));
        }
        let valid = key_validity(keys);
        let mut g = Groups { ids: vec![NO_GROUP; n], first: Vec::new(), has_none: valid.is_some() };
        let index = if let Some(ints) = as_i64(keys) {
            group_ints(ints.as_primitive::<arrow::datatypes::Int64Type>().values(), valid.as_ref(), &mut g)
        } else if let Some((lo, hi, stride, codes)) = packed(keys, valid.as_ref()) {
            let inner = Box::new(group_ints(&codes, valid.as_ref(), &mut g));
            let first = match as_i64(&keys[..1]) {
                Some(k) if Present::worth(lo[0], hi[0], g.len()) => {
                    let v = k.as_primitive::<arrow::datatypes::Int64Type>().values();
                    Some(Present::of(lo[0], hi[0], v, valid.as_ref()))
                }
                _ => None,
            };
            KeyIndex::Packed { lo, hi, stride, first, inner }
        } else if keys.len() == 1 && is_string(keys[0].data_type()) {
            let table = with_str_bytes!(keys[0], value => group_bytes(n, valid.as_ref(), value, &mut g));
            KeyIndex::Strings { table, col: keys[0].clone(), first: g.first.clone() }
        } else {
            let conv = converter(keys)?;
            let rows = conv.convert_columns(keys)?;
            let table = group_bytes(n, valid.as_ref(), |i| rows.row(i).data(), &mut g);
            KeyIndex::Rows { table, conv, rows, first: g.first.clone() }
        };
        Ok((index, g))
    }

    /// The group of each row of `keys` (of the types the index was built
    /// from), or [`NO_GROUP`] for a key not in it or a missing one.
    pub fn find(&self, keys: &[ArrayRef]) -> Result<Vec<u32>, KernelError> {
        let n = keys.first().map_or(0, |k| k.len());
        let valid = key_validity(keys);
        let mut out = vec![NO_GROUP; n];
        let h = hasher();
        let ints =
            || as_i64(keys).ok_or_else(|| KernelError("an integer key probed with a key of another type".into()));
        match self {
            KeyIndex::Direct { .. } | KeyIndex::Ints { .. } => {
                self.find_ints(ints()?.as_primitive::<arrow::datatypes::Int64Type>().values(), &mut out)
            }
            KeyIndex::Packed { lo, hi, stride, first, inner } => {
                if keys.len() != lo.len() {
                    return Err(KernelError(format!("{} keys probed an index of {}", keys.len(), lo.len())));
                }
                let mut codes = vec![0i64; n];
                let mut inside = vec![true; n];
                for (j, (((k, &l), &top), &s)) in keys.iter().zip(lo).zip(hi).zip(stride).enumerate() {
                    let a = as_i64(std::slice::from_ref(k))
                        .ok_or_else(|| KernelError("an integer key probed with a key of another type".into()))?;
                    let v = a.as_primitive::<arrow::datatypes::Int64Type>().values();
                    for ((c, ok), &x) in codes.iter_mut().zip(inside.iter_mut()).zip(v.iter()) {
                        *ok &= x >= l && x <= top;
                        *c = c.wrapping_add(x.wrapping_sub(l).wrapping_mul(s));
                    }
                    if let (Some(p), 0) = (first, j) {
                        for (ok, &x) in inside.iter_mut().zip(v.iter()) {
                            *ok &= p.may_hold(x);
                        }
                    }
                }
                if first.is_some() {
                    // only the rows whose first key is present are looked up
                    let at: Vec<u32> = (0..n as u32).filter(|&i| inside[i as usize]).collect();
                    let some: Vec<i64> = at.iter().map(|&i| codes[i as usize]).collect();
                    let mut found = vec![NO_GROUP; at.len()];
                    inner.find_ints(&some, &mut found);
                    for (&i, f) in at.iter().zip(found) {
                        out[i as usize] = f;
                    }
                } else {
                    inner.find_ints(&codes, &mut out);
                    for (o, ok) in out.iter_mut().zip(inside) {
                        if !ok {
                            *o = NO_GROUP;
                        }
                    }
                }
            }
            KeyIndex::Strings { table, col, first } => {
                if keys.len() != 1 || !is_string(keys[0].data_type()) {
                    return Err(KernelError("a string key probed with a key of another type".into()));
                }
                with_str_bytes!(col, build => with_str_bytes!(keys[0], probe => {
                    for (i, o) in out.iter_mut().enumerate() {
                        let bytes = probe(i);
                        let hash = h.hash_one(bytes);
                        if let Some(e) = table.find(hash, |e| e.0 == hash && build(first[e.1 as usize] as usize) == bytes) {
                            *o = e.1;
                        }
                    }
                }));
            }
            KeyIndex::Rows { table, conv, rows, first } => {
                let probe = conv.convert_columns(keys)?;
                for (i, o) in out.iter_mut().enumerate() {
                    let bytes = probe.row(i).data();
                    let hash = h.hash_one(bytes);
                    if let Some(e) =
                        table.find(hash, |e| e.0 == hash && rows.row(first[e.1 as usize] as usize).data() == bytes)
                    {
                        *o = e.1;
                    }
                }
            }
        }
        if let Some(v) = valid {
            for (o, ok) in out.iter_mut().zip(v.iter()) {
                if !ok {
                    *o = NO_GROUP;
                }
            }
        }
        Ok(out)
    }
}

impl KeyIndex {
    /// Bytes the index holds (besides the rows it indexes).
    pub fn nbytes(&self) -> usize {
        match self {
            KeyIndex::Direct { slots, .. } => slots.len() * 4,
            KeyIndex::Ints { table, present } => table.len() * 24 + present.as_ref().map_or(0, |p| p.bits.len() * 8),
            KeyIndex::Strings { table, .. } => table.len() * 24,
            KeyIndex::Rows { table, rows, .. } => table.len() * 24 + rows.size(),
            KeyIndex::Packed { lo, first, inner, .. } => {
                lo.len() * 24 + first.as_ref().map_or(0, |p| p.bits.len() * 8) + inner.nbytes()
            }
        }
    }

    /// The group of each integer key of an integer index (`Direct`/`Ints`;
    /// other kinds leave `out` as it is).
    fn find_ints(&self, values: &[i64], out: &mut [u32]) {
        let h = hasher();
        match self {
            KeyIndex::Direct { lo, slots } => {
                let len = slots.len() as u64;
                for (o, &v) in out.iter_mut().zip(values) {
                    // below `lo` wraps to a huge offset: out of range like above the top
                    let at = v.wrapping_sub(*lo) as u64;
                    if at < len {
                        *o = slots[at as usize];
                    }
                }
            }
            KeyIndex::Ints { table, present: None } => {
                for (o, &v) in out.iter_mut().zip(values) {
                    if let Some(e) = table.find(h.hash_one(v), |e| e.0 == v) {
                        *o = e.1;
                    }
                }
            }
            KeyIndex::Ints { table, present: Some(p) } => {
                for (o, &v) in out.iter_mut().zip(values) {
                    if p.may_hold(v) {
                        if let Some(e) = table.find(h.hash_one(v), |e| e.0 == v) {
                            *o = e.1;
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn converter(keys: &[ArrayRef]) -> Result<RowConverter, KernelError> {
    Ok(RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?)
}

fn group_ints(values: &[i64], valid: Option<&NullBuffer>, g: &mut Groups) -> KeyIndex {
    let is_valid = |i: usize| valid.is_none_or(|v| v.is_valid(i));
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for (i, &v) in values.iter().enumerate() {
        if is_valid(i) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo > hi {
        return KeyIndex::Direct { lo: 0, slots: vec![] }; // no valid rows
    }
    let range = (hi as i128 - lo as i128) as u128;
    if range < (values.len() as u128 * 2).max(1 << 16) {
        // direct-indexed: a slot per value in lo..=hi
        let mut slots = vec![NO_GROUP; range as usize + 1];
        for (i, &v) in values.iter().enumerate() {
            if !is_valid(i) {
                continue;
            }
            let s = &mut slots[(v.wrapping_sub(lo)) as u64 as usize];
            if *s == NO_GROUP {
                *s = g.first.len() as u32;
                g.first.push(i as u32);
            }
            g.ids[i] = *s;
        }
        return KeyIndex::Direct { lo, slots };
    }
    let h = hasher();
    let mut table: HashTable<(i64, u32)> = HashTable::new();
    for (i, &v) in values.iter().enumerate() {
        if !is_valid(i) {
            continue;
        }
        let id = match table.entry(h.hash_one(v), |e| e.0 == v, |e| h.hash_one(e.0)) {
            Entry::Occupied(e) => e.get().1,
            Entry::Vacant(e) => {
                let id = g.first.len() as u32;
                e.insert((v, id));
                g.first.push(i as u32);
                id
            }
        };
        g.ids[i] = id;
    }
    let present = Present::worth(lo, hi, table.len()).then(|| Present::of(lo, hi, values, valid));
    KeyIndex::Ints { table, present }
}

/// A bit per value of an integer key's range `lo..=hi`, set for the values
/// a table holds. A join probe whose keys mostly miss (a filtered build
/// side, as TPC-H's orders against lineitem) tests a bitmap that stays in
/// cache instead of hashing into a table that does not.
#[derive(Debug)]
pub struct Present {
    lo: i64,
    bits: Vec<u64>,
}

impl Present {
    /// Worth keeping beside a table of `groups` keys in `lo..=hi`: the table
    /// outgrows the L1/L2 caches (16k keys and up), the bitmap is smaller
    /// than the table (16 bytes a key), and at most 8 MiB.
    fn worth(lo: i64, hi: i64, groups: usize) -> bool {
        let range = hi as i128 - lo as i128 + 1;
        groups >= 1 << 14 && range < groups as i128 * 128 && range <= 1 << 26
    }

    fn of(lo: i64, hi: i64, values: &[i64], valid: Option<&NullBuffer>) -> Present {
        let range = (hi as i128 - lo as i128 + 1) as usize;
        let mut bits = vec![0u64; range.div_ceil(64)];
        for (i, &v) in values.iter().enumerate() {
            if valid.is_none_or(|m| m.is_valid(i)) {
                let at = v.wrapping_sub(lo) as u64 as usize;
                bits[at / 64] |= 1 << (at % 64);
            }
        }
        Present { lo, bits }
    }

    /// Whether `v` may be a key: false only for a value no key has.
    #[inline]
    fn may_hold(&self, v: i64) -> bool {
        // below `lo` wraps to a huge offset, out of range like above the top
        let at = v.wrapping_sub(self.lo) as u64;
        let word = (at / 64) as usize;
        word < self.bits.len() && self.bits[word] >> (at % 64) & 1 == 1
    }
}

fn group_bytes<'a>(
    n: usize,
    valid: Option<&NullBuffer>,
    value: impl Fn(usize) -> &'a [u8],
    g: &mut Groups,
) -> HashTable<(u64, u32)> {
    let h = hasher();
    // (hash, group): a group's bytes are read back from its first row
    let mut table: HashTable<(u64, u32)> = HashTable::new();
    for i in 0..n {
        if valid.is_some_and(|v| v.is_null(i)) {
            continue;
        }
        let bytes = value(i);
        let hash = h.hash_one(bytes);
        let first = &g.first;
        let id = match table.entry(hash, |e| e.0 == hash && value(first[e.1 as usize] as usize) == bytes, |e| e.0) {
            Entry::Occupied(e) => e.get().1,
            Entry::Vacant(e) => {
                let id = g.first.len() as u32;
                e.insert((hash, id));
                g.first.push(i as u32);
                id
            }
        };
        g.ids[i] = id;
    }
    table
}

/// A hash of each row's key for partitioning (equal keys, equal hashes, in
/// every chunk with these column types and in every process). Rows with a
/// missing key hash to 0.
pub fn hash_rows(keys: &[ArrayRef]) -> Result<Vec<u64>, KernelError> {
    let n = keys.first().map_or(0, |k| k.len());
    let valid = key_validity(keys);
    let h = partition_hasher();
    let mut out = vec![0u64; n];
    if let Some(ints) = as_i64(keys) {
        for (o, &v) in out.iter_mut().zip(ints.as_primitive::<arrow::datatypes::Int64Type>().values()) {
            *o = h.hash_one(v);
        }
    } else if keys.len() == 1 && is_string(keys[0].data_type()) {
        with_str_bytes!(keys[0], value => for (i, o) in out.iter_mut().enumerate() {
            *o = h.hash_one(value(i));
        });
    } else {
        let rows = rows_of(keys)?;
        for (i, o) in out.iter_mut().enumerate() {
            *o = h.hash_one(rows.row(i).data());
        }
    }
    if let Some(v) = valid {
        for (o, ok) in out.iter_mut().zip(v.iter()) {
            if !ok {
                *o = 0;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, StringViewArray};
    use std::sync::Arc;

    /// Several integer keys are packed into one integer: probes find the
    /// build row of equal keys (missing keys and keys outside the build's
    /// ranges find none), as a scan of the build rows does.
    #[test]
    fn packed_integer_keys_find_what_a_scan_finds() {
        let a: Vec<Option<i64>> = (0..40).map(|i| (i % 9 != 4).then_some((i * 7 % 11) as i64 - 3)).collect();
        let b: Vec<i32> = (0..40).map(|i| (i % 5) * 1000).collect();
        let build: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int64Array::from(a.clone())),
            Arc::new(arrow::array::Int32Array::from(b.clone())),
        ];
        let (index, g) = KeyIndex::build(&build).unwrap();
        assert!(matches!(index, KeyIndex::Packed { .. }), "{index:?}");
        let pa: Vec<Option<i64>> = (0..60).map(|i| (i % 13 != 0).then_some((i * 5 % 17) as i64 - 5)).collect();
        let pb: Vec<i32> = (0..60).map(|i| (i % 7) * 1000 - 1000).collect();
        let probe: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int64Array::from(pa.clone())),
            Arc::new(arrow::array::Int32Array::from(pb.clone())),
        ];
        let found = index.find(&probe).unwrap();
        for i in 0..60 {
            let want =
                pa[i].and_then(|x| (0..40).find(|&j| a[j] == Some(x) && b[j] == pb[i])).map_or(NO_GROUP, |j| g.ids[j]);
            assert_eq!(found[i], want, "probe row {i}: ({:?}, {})", pa[i], pb[i]);
        }
        assert!(found.iter().any(|&f| f != NO_GROUP) && found.contains(&NO_GROUP));
    }

    /// Many sparse integer keys keep a bitmap of the values present beside
    /// their table: probes (hits, misses inside the range, keys beyond either
    /// end, the extremes of i64, missing ones) find what a map finds.
    #[test]
    fn sparse_integer_keys_with_a_bitmap_find_what_a_map_finds() {
        // 20k keys, every 37th value from -400_000 (a range of 740k), some missing
        let build: Vec<Option<i64>> = (0..20_000i64).map(|i| (i % 1000 != 7).then_some(-400_000 + i * 37)).collect();
        let (index, g) =
            KeyIndex::build(&[Arc::new(arrow::array::Int64Array::from(build.clone())) as ArrayRef]).unwrap();
        assert!(matches!(index, KeyIndex::Ints { present: Some(_), .. }), "{index:?}");
        let map: std::collections::HashMap<i64, u32> =
            build.iter().enumerate().filter_map(|(i, k)| Some(((*k)?, g.ids[i]))).collect();
        let mut probe: Vec<Option<i64>> = (-410_000..350_000i64).step_by(11).map(Some).collect();
        probe.extend([Some(i64::MIN), Some(i64::MAX), None, Some(-400_000), Some(-400_000 + 19_999 * 37)]);
        let found = index.find(&[Arc::new(arrow::array::Int64Array::from(probe.clone())) as ArrayRef]).unwrap();
        for (i, k) in probe.iter().enumerate() {
            let want = k.and_then(|k| map.get(&k).copied()).unwrap_or(NO_GROUP);
            assert_eq!(found[i], want, "probe {k:?}");
        }
        let hits = found.iter().filter(|&&f| f != NO_GROUP).count();
        assert!(hits > 1000 && hits < probe.len() / 2, "{hits} hits");
        // two keys packed into one, the first sparse (its bitmap tested
        // first): probes with the first key absent, present with another
        // second key, or both present, find what a map finds
        let second: Vec<i32> = (0..20_000).map(|i| i % 5).collect();
        let keys: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int64Array::from(build.clone())),
            Arc::new(arrow::array::Int32Array::from(second.clone())),
        ];
        let (index, g) = KeyIndex::build(&keys).unwrap();
        assert!(matches!(index, KeyIndex::Packed { first: Some(_), .. }), "{index:?}");
        let map: std::collections::HashMap<(i64, i32), u32> =
            (0..20_000).filter_map(|i| Some(((build[i]?, second[i]), g.ids[i]))).collect();
        let p0: Vec<Option<i64>> = probe.clone();
        let p1: Vec<i32> = (0..p0.len() as i32).map(|i| i % 7 - 1).collect();
        let found = index
            .find(&[
                Arc::new(arrow::array::Int64Array::from(p0.clone())) as ArrayRef,
                Arc::new(arrow::array::Int32Array::from(p1.clone())),
            ])
            .unwrap();
        for (i, k) in p0.iter().enumerate() {
            let want = k.and_then(|k| map.get(&(k, p1[i])).copied()).unwrap_or(NO_GROUP);
            assert_eq!(found[i], want, "probe ({k:?}, {})", p1[i]);
        }
        assert!(found.iter().filter(|&&f| f != NO_GROUP).count() > 100);
        // a dense range or few keys keep no bitmap
        let few: Vec<i64> = (0..1000).map(|i| i * 1_000_000).collect();
        let (index, _) = KeyIndex::build(&[Arc::new(arrow::array::Int64Array::from(few)) as ArrayRef]).unwrap();
        assert!(matches!(index, KeyIndex::Ints { present: None, .. }), "{index:?}");
    }
    /// Short inline views group as integers, long ones through bytes, and
    /// both give the groups a Utf8 column of the same strings gives
    /// (numbered by first appearance; missing in no group).
    #[test]
    fn string_views_group_as_utf8_does() {
        for values in [
            vec![Some("a"), Some(""), None, Some("abcdefg"), Some("a"), Some(""), Some("abcdefg"), Some("b")],
            vec![Some("R"), Some("A"), Some("N"), Some("R"), None, Some("A")],
            vec![Some("a string of more than twelve bytes"), Some("a"), Some("a string of more than twelve bytes")],
        ] {
            let views: ArrayRef = Arc::new(StringViewArray::from(values.clone()));
            let plain: ArrayRef = Arc::new(StringArray::from(values.clone()));
            let (g, w) = (
                group_rows(std::slice::from_ref(&views), values.len()).unwrap(),
                group_rows(std::slice::from_ref(&plain), values.len()).unwrap(),
            );
            assert_eq!(g.ids, w.ids, "{values:?}");
            assert_eq!(g.first, w.first, "{values:?}");
            // and as one key of several
            let other: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1; values.len()]));
            let (g, w) = (
                group_rows(&[views, other.clone()], values.len()).unwrap(),
                group_rows(&[plain, other], values.len()).unwrap(),
            );
            assert_eq!(g.ids, w.ids, "{values:?} with an int key");
        }
    }

    /// Several short-string keys go through one pass over a direct table;
    /// the groups are those of the same keys as Utf8 (by arrow-row), with
    /// a missing value in any key meaning no group.
    #[test]
    fn several_short_string_keys_group_as_utf8_does() {
        // one-letter flags span a small table; a 7-byte value spans too much
        // for it (the keys then go the general way): both agree with Utf8
        for (flags, fused) in [(["A", "N", "R", "", "O"], true), (["A", "N", "R", "", "abcdefg"], false)] {
            let a: Vec<Option<&str>> = (0..300).map(|i| (i % 17 != 3).then_some(flags[i * 7 % 5])).collect();
            let b: Vec<Option<&str>> = (0..300).map(|i| (i % 23 != 5).then_some(flags[i * 3 % 4])).collect();
            let c: Vec<Option<&str>> = (0..300).map(|i| Some(flags[(i / 50) % 5])).collect();
            let views: Vec<ArrayRef> = vec![
                Arc::new(StringViewArray::from(a.clone())),
                Arc::new(StringViewArray::from(b.clone())),
                Arc::new(StringViewArray::from(c.clone())),
            ];
            let plain: Vec<ArrayRef> =
                vec![Arc::new(StringArray::from(a)), Arc::new(StringArray::from(b)), Arc::new(StringArray::from(c))];
            assert_eq!(group_short_strings(&views).unwrap().is_some(), fused, "{flags:?}");
            let (g, w) = (group_rows(&views, 300).unwrap(), group_rows(&plain, 300).unwrap());
            assert_eq!(g.ids, w.ids, "{flags:?}");
            assert_eq!(g.first, w.first, "{flags:?}");
            assert!(g.has_none && g.ids.contains(&NO_GROUP));
        }
        // two-byte codes indexed by their range (with missing rows, whose
        // codes lie outside it) beside a one-byte key
        let two: Vec<Option<&str>> = (0..400).map(|i| (i % 13 != 2).then_some(["AB", "AD", "AC"][i * 5 % 3])).collect();
        let one: Vec<Option<&str>> = (0..400).map(|i| (i % 11 != 7).then_some(["x", "", "y"][i % 3])).collect();
        let views: Vec<ArrayRef> =
            vec![Arc::new(StringViewArray::from(two.clone())), Arc::new(StringViewArray::from(one.clone()))];
        let plain: Vec<ArrayRef> = vec![Arc::new(StringArray::from(two)), Arc::new(StringArray::from(one))];
        let g = group_short_strings(&views).unwrap().expect("a small range of two-byte codes");
        let w = group_rows(&plain, 400).unwrap();
        assert_eq!((g.ids, g.first), (w.ids, w.first));
        // the ranged key last (the pass that numbers the groups reads it)
        let (views, plain) = ([views[1].clone(), views[0].clone()], [plain[1].clone(), plain[0].clone()]);
        let g = group_short_strings(&views).unwrap().expect("a small range of two-byte codes");
        let w = group_rows(&plain, 400).unwrap();
        assert_eq!((g.ids, g.first), (w.ids, w.first));
        // a long string in any key: not this path
        let short: ArrayRef = Arc::new(StringViewArray::from(vec!["A"; 300]));
        let long: ArrayRef = Arc::new(StringViewArray::from(vec!["a string longer than seven"; 300]));
        assert!(group_short_strings(&[short, long]).unwrap().is_none());
    }
}
