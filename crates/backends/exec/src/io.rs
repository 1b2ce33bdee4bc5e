//! Files: finding parquet files and their row groups (at graph-building
//! time), reading a chunk's row groups (a kernel), and writing results.
//!
//! A file is identified by path, length and modification time; a chunk read
//! from a file that changed since it was found is refused, not read as
//! something else. Decoders run under `catch_unwind`: a corrupt file is an
//! error naming it, never a crash.

use crate::error::KernelError;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use mars_ir::{ReadFilter, SourceFile};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::arrow::ProjectionMask;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn err(msg: impl Into<String>) -> KernelError {
    KernelError(msg.into())
}

/// Run a decoder that may panic on malformed bytes; a panic becomes an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, KernelError>) -> Result<T, KernelError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(err(format!("{what}: the decoder gave up (corrupt file?)"))))
}

fn modified_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// The files of `path`: itself, or the files of a folder whose names end in
/// `ext` (not hidden ones, nor `_SUCCESS` and the like), sorted by name.
pub fn list_files(path: &Path, ext: &str) -> Result<Vec<PathBuf>, KernelError> {
    let meta = std::fs::metadata(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            p.is_file() && name.ends_with(ext) && !name.starts_with(['.', '_'])
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err(format!("{} holds no {ext} files", path.display())));
    }
    Ok(files)
}

/// What `path` is now, for a [`SourceFile`] (row groups left empty).
pub fn source_file(path: &Path) -> Result<SourceFile, KernelError> {
    let meta = std::fs::metadata(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    Ok(SourceFile {
        path: path.to_string_lossy().into_owned(),
        len: meta.len(),
        modified_ns: modified_ns(&meta),
        row_groups: vec![],
        row_group_bytes: vec![],
    })
}

/// `schema` as frames carry it: fields without metadata.
fn plain(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), f.is_nullable()))
            .collect::<Vec<_>>(),
    ))
}

fn open(file: &SourceFile) -> Result<std::fs::File, KernelError> {
    let f = std::fs::File::open(&file.path).map_err(|e| err(format!("{}: {e}", file.path)))?;
    let meta = f.metadata().map_err(|e| err(format!("{}: {e}", file.path)))?;
    if meta.len() != file.len || modified_ns(&meta) != file.modified_ns {
        return Err(err(format!(
            "{} changed since it was read into the graph (was {} bytes, is {}); read it again",
            file.path,
            file.len,
            meta.len()
        )));
    }
    Ok(f)
}

/// A reader of parquet file `f`: its decimals stored as 64-bit integers are
/// read as Decimal64 (the stored integers as they are) rather than widened
/// to Decimal128, which would cost a conversion and twice the memory. With
/// `pages`, the pages' offsets are loaded (when the file has them), so a
/// read of part of a row group skips the other pages undecoded.
fn reader_of(
    f: std::fs::File,
    path: &str,
    pages: bool,
) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>, KernelError> {
    use arrow::datatypes::DataType;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::file::metadata::PageIndexPolicy;
    let ctx = |e: parquet::errors::ParquetError| err(format!("{path}: {e}"));
    let options = match pages {
        true => ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional),
        false => ArrowReaderOptions::new(),
    };
    let meta = ArrowReaderMetadata::load(&f, options).map_err(ctx)?;
    let descr = meta.parquet_schema();
    let mut changed = false;
    let fields: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|field| {
            let leaf = descr.columns().iter().position(|c| c.path().parts() == [field.name().as_str()]);
            let int64 = leaf.is_some_and(|i| descr.column(i).physical_type() == parquet::basic::Type::INT64);
            match field.data_type() {
                DataType::Decimal128(p, s) if int64 && *p <= 18 => {
                    changed = true;
                    field.as_ref().clone().with_data_type(DataType::Decimal64(*p, *s))
                }
                _ => field.as_ref().clone(),
            }
        })
        .collect();
    let meta = if changed {
        let schema = Arc::new(Schema::new_with_metadata(fields, meta.schema().metadata().clone()));
        ArrowReaderMetadata::try_new(meta.metadata().clone(), ArrowReaderOptions::new().with_schema(schema))
            .map_err(ctx)?
    } else {
        meta
    };
    Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta))
}

/// The parquet files of `path` (a file or a folder): their schema (all
/// must have the same) and row groups.
pub fn scan_parquet(path: &Path) -> Result<(SchemaRef, Vec<SourceFile>), KernelError> {
    let mut schema: Option<(SchemaRef, String)> = None;
    let mut out = Vec::new();
    for p in list_files(path, ".parquet")? {
        let mut file = source_file(&p)?;
        let f = open(&file)?;
        let builder = guarded(&file.path, || reader_of(f, &file.path, false))?;
        let groups = builder.metadata().row_groups();
        file.row_groups = groups.iter().map(|g| g.num_rows().max(0) as usize).collect();
        file.row_group_bytes = groups.iter().map(|g| g.total_byte_size().max(0) as u64).collect();
        let this = plain(builder.schema());
        match &schema {
            None => schema = Some((this, file.path.clone())),
            Some((s, first)) if s != &this => {
                return Err(err(format!(
                    "{} has columns {} but {first} has {}; the files of a folder must match",
                    file.path,
                    describe(&this),
                    describe(s)
                )))
            }
            Some(_) => {}
        }
        out.push(file);
    }
    let (schema, _) = schema.ok_or_else(|| err(format!("{} holds no parquet files", path.display())))?;
    Ok((schema, out))
}

fn describe(s: &Schema) -> String {
    let cols: Vec<String> = s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
    format!("[{}]", cols.join(", "))
}

/// Row groups `row_groups` of `file` (of them, only the file's rows
/// `start..end` given `rows`), the `columns` in this order; with a
/// `filter`, the row groups its statistics rule out are skipped and the rest
/// filtered while decoding (its columns first, the others only for the rows
/// it keeps, in one batch when it keeps many and in cache-sized ones when it
/// keeps few).
pub fn read_parquet(
    file: &SourceFile,
    row_groups: &[usize],
    rows: Option<(usize, usize)>,
    columns: &[String],
    filter: Option<&ReadFilter>,
) -> Result<RecordBatch, KernelError> {
    let scan = ParquetBatches::open(file, row_groups, rows, columns, filter, None)?;
    let schema = scan.schema.clone();
    let batches: Vec<RecordBatch> = scan.collect::<Result<_, _>>()?;
    match <[RecordBatch; 1]>::try_from(batches) {
        Ok([one]) => Ok(one),
        Err(batches) if batches.is_empty() => Ok(RecordBatch::new_empty(schema)),
        Err(batches) => Ok(arrow::compute::concat_batches(&schema, &batches)?),
    }
}

/// The rows of a parquet read (as [`read_parquet`]'s) in batches, each with
/// the asked-for columns in the asked-for order.
pub struct ParquetBatches {
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    /// The asked-for columns' positions in the reader's batches (file order).
    order: Vec<usize>,
    schema: SchemaRef,
    path: String,
    /// A filter applied to each batch as it is read: the predicate and its
    /// columns' positions in the reader's batches.
    filter: Option<(mars_ir::colexpr::ColExpr, Vec<usize>)>,
}

impl ParquetBatches {
    /// Open the read; `batch_rows: None` reads all the rows in one batch, or
    /// in cache-sized batches when a filter keeps fewer than a quarter.
    pub fn open(
        file: &SourceFile,
        row_groups: &[usize],
        rows: Option<(usize, usize)>,
        columns: &[String],
        filter: Option<&ReadFilter>,
        batch_rows: Option<usize>,
    ) -> Result<ParquetBatches, KernelError> {
        let f = open(file)?;
        guarded(&file.path, || {
            let ctx = |e: parquet::errors::ParquetError| err(format!("{}: {e}", file.path));
            let builder = reader_of(f, &file.path, rows.is_some())?;
            let full = builder.schema().clone();
            let have = builder.metadata().num_row_groups();
            if let Some(g) = row_groups.iter().find(|&&g| g >= have) {
                return Err(err(format!("{} has {have} row groups, not row group {g}", file.path)));
            }
            if let Some((start, end)) = rows.filter(|(start, end)| start > end) {
                return Err(err(format!("{}: rows {start}..{end} end before they start", file.path)));
            }
            let roots: Vec<usize> = columns
                .iter()
                .map(|c| full.index_of(c).map_err(|_| err(format!("{} has no column {c:?}", file.path))))
                .collect::<Result<_, _>>()?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
            let mut row_groups = row_groups.to_vec();
            let mut builder = builder;
            let mut kept = None;
            // given a batch size and a filter on some of the columns read,
            // the filter's columns are read with the others and it is
            // applied to each batch in cache, so each column is decoded
            // once. (When they share no column, the two-pass read decodes
            // no column twice, and arrow-rs's selection-aware decoding is
            // the cheaper way to drop the rows.)
            let shared = filter.is_some_and(|f| f.columns.iter().any(|c| columns.contains(c)));
            if let (Some(f), Some(batch_rows), true) = (filter, batch_rows, shared) {
                let row_groups = may_match(&builder, &row_groups, f).unwrap_or(row_groups);
                if let Some(range) = rows {
                    let range = within(&builder, &row_groups, range);
                    builder = builder.with_row_selection(range);
                }
                let named =
                    |c: &String| full.index_of(c).map_err(|_| err(format!("{} has no column {c:?}", file.path)));
                let mut all: Vec<usize> = roots.clone();
                for c in &f.columns {
                    all.push(named(c)?);
                }
                all.sort_unstable();
                all.dedup();
                let mask = ProjectionMask::roots(builder.parquet_schema(), all.iter().copied());
                let reader = builder
                    .with_row_groups(row_groups)
                    .with_projection(mask)
                    .with_batch_size(batch_rows.max(1))
                    .build()
                    .map_err(ctx)?;
                let read_schema = arrow::record_batch::RecordBatchReader::schema(&reader);
                let order: Vec<usize> = columns.iter().map(|c| read_schema.index_of(c)).collect::<Result<_, _>>()?;
                let at: Vec<usize> = f.columns.iter().map(|c| read_schema.index_of(c)).collect::<Result<_, _>>()?;
                let schema = plain(&read_schema.project(&order)?);
                return Ok(ParquetBatches {
                    reader,
                    order,
                    schema,
                    path: file.path.clone(),
                    filter: Some((f.expr.clone(), at)),
                });
            }
            if let Some(f) = filter {
                // statistics that cannot be read rule nothing out
                row_groups = may_match(&builder, &row_groups, f).unwrap_or(row_groups);
            }
            let range = rows.map(|r| within(&builder, &row_groups, r));
            // the rows read before any filter
            let rows = match &range {
                Some(r) => r.row_count(),
                None => row_groups.iter().map(|&g| builder.metadata().row_group(g).num_rows().max(0) as usize).sum(),
            };
            if let Some(f) = filter {
                let masks = predicate_masks(file, &builder, &row_groups, range.clone(), f)?;
                kept = Some(masks.iter().map(|m| m.true_count()).sum::<usize>());
                builder = builder.with_row_selection(selection(&masks, range.as_ref()));
            } else if let Some(range) = range {
                builder = builder.with_row_selection(range);
            }
            // one batch of all the rows it keeps when they are many: decoded
            // straight into the chunk's arrays, not into pieces concatenated
            // after; when a filter keeps few, cache-sized batches (then the
            // pieces are small)
            let batch_rows = match (batch_rows, kept) {
                (Some(b), _) => b.max(1),
                (None, Some(k)) if k * 4 < rows => FILTERED_BATCH_ROWS,
                (None, Some(k)) => k.max(1),
                (None, None) => rows.max(1),
            };
            let reader = builder
                .with_row_groups(row_groups)
                .with_projection(mask)
                .with_batch_size(batch_rows)
                .build()
                .map_err(ctx)?;
            let read_schema = arrow::record_batch::RecordBatchReader::schema(&reader);
            // the reader keeps file order; the frame has the asked-for order
            let order: Vec<usize> = columns.iter().map(|c| read_schema.index_of(c)).collect::<Result<_, _>>()?;
            let schema = plain(&read_schema.project(&order)?);
            Ok(ParquetBatches { reader, order, schema, path: file.path.clone(), filter: None })
        })
    }

    /// The batches' schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl std::fmt::Debug for ParquetBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParquetBatches({})", self.path)
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<RecordBatch, KernelError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = self.path.clone();
        guarded(&path, || loop {
            let Some(batch) = self.reader.next() else { return Ok(None) };
            let batch = batch.map_err(|e| err(format!("{path}: {e}")))?;
            let columns: Vec<arrow::array::ArrayRef> = self.order.iter().map(|&i| batch.column(i).clone()).collect();
            let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            let out = RecordBatch::try_new_with_options(self.schema.clone(), columns, &opts)?;
            let Some((expr, at)) = &self.filter else { return Ok(Some(out)) };
            let cols: Vec<arrow::array::ArrayRef> = at.iter().map(|&i| batch.column(i).clone()).collect();
            let mask = crate::kernels::frame::eval_mask(expr, &cols)?;
            // a missing answer keeps no row
            let mask = match arrow::array::Array::null_count(&mask) {
                0 => mask,
                _ => arrow::compute::prep_null_mask_filter(&mask),
            };
            match mask.true_count() {
                0 => continue,
                n if n == out.num_rows() => return Ok(Some(out)),
                _ => return Ok(Some(arrow::compute::filter_record_batch(&out, &mask)?)),
            }
        })
        .transpose()
    }
}

/// The masks of `filter` over `row_groups`, evaluated over its own columns
/// in cache-sized batches (a missing answer keeps no row).
fn predicate_masks(
    file: &SourceFile,
    builder: &ParquetRecordBatchReaderBuilder<std::fs::File>,
    row_groups: &[usize],
    range: Option<RowSelection>,
    f: &ReadFilter,
) -> Result<Vec<arrow::array::BooleanArray>, KernelError> {
    let full = builder.schema();
    let at: Vec<usize> = f
        .columns
        .iter()
        .map(|c| full.index_of(c).map_err(|_| err(format!("{} has no column {c:?}", file.path))))
        .collect::<Result<_, _>>()?;
    // the predicate's batch has its columns in file order
    let mut sorted = at.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let positions: Vec<usize> = at.iter().map(|a| sorted.binary_search(a).unwrap_or(0)).collect();
    let pmask = ProjectionMask::roots(builder.parquet_schema(), sorted.iter().copied());
    let mut pre = reader_of(open(file)?, &file.path, range.is_some())?;
    if let Some(range) = range {
        pre = pre.with_row_selection(range);
    }
    let pre = pre
        .with_row_groups(row_groups.to_vec())
        .with_projection(pmask)
        .with_batch_size(FILTERED_BATCH_ROWS)
        .build()
        .map_err(|e| err(format!("{}: {e}", file.path)))?;
    let mut masks = Vec::new();
    for b in pre {
        let b = b.map_err(|e| err(format!("{}: {e}", file.path)))?;
        let cols: Vec<arrow::array::ArrayRef> = positions.iter().map(|&p| b.column(p).clone()).collect();
        let m = crate::kernels::frame::eval_mask(&f.expr, &cols)?;
        masks.push(if arrow::array::Array::null_count(&m) > 0 { arrow::compute::prep_null_mask_filter(&m) } else { m });
    }
    Ok(masks)
}

/// The rows `masks` keep as a reader's selection, backed by the masks
/// themselves: the reader's policy turns them into runs to skip undecoded
/// only when the runs are long, and a dense scatter of kept rows (a date
/// range over unsorted rows) is not turned into runs and back into a mask.
/// Given `range`, the masks are of the rows it selects, the others kept by none.
fn selection(masks: &[arrow::array::BooleanArray], range: Option<&RowSelection>) -> RowSelection {
    let mut kept = arrow::array::BooleanBufferBuilder::new(masks.iter().map(|m| m.len()).sum());
    for m in masks {
        kept.append_buffer(m.values());
    }
    let kept = kept.finish();
    let Some(range) = range else { return RowSelection::from_boolean_buffer(kept) };
    let mut all = arrow::array::BooleanBufferBuilder::new(range.total_row_count());
    let mut at = 0;
    for s in range.iter() {
        if s.skip {
            all.append_n(s.row_count, false);
        } else {
            let n = s.row_count.min(kept.len().saturating_sub(at));
            all.append_buffer(&kept.slice(at, n));
            all.append_n(s.row_count - n, false);
            at += n;
        }
    }
    RowSelection::from_boolean_buffer(all.finish())
}

/// The rows `start..end` of the file, as a selection over `row_groups`
/// (the rows of the groups, in order, that a reader of them reads).
fn within(
    builder: &ParquetRecordBatchReaderBuilder<std::fs::File>,
    row_groups: &[usize],
    (start, end): (usize, usize),
) -> RowSelection {
    use parquet::arrow::arrow_reader::RowSelector;
    let meta = builder.metadata();
    let mut first = vec![0usize; meta.num_row_groups() + 1];
    for g in 0..meta.num_row_groups() {
        first[g + 1] = first[g] + meta.row_group(g).num_rows().max(0) as usize;
    }
    let mut out = Vec::new();
    for &g in row_groups {
        let (lo, hi) = (first[g], first[g + 1]);
        let (a, b) = (start.clamp(lo, hi), end.clamp(lo, hi).max(start.clamp(lo, hi)));
        out.extend([RowSelector::skip(a - lo), RowSelector::select(b - a), RowSelector::skip(hi - b)]);
    }
    RowSelection::from(out)
}

/// Rows a filtered parquet read decodes at a time.
const FILTERED_BATCH_ROWS: usize = 64 * 1024;

/// The row groups of `groups` whose statistics do not rule `filter` out.
fn may_match(
    builder: &ParquetRecordBatchReaderBuilder<std::fs::File>,
    groups: &[usize],
    filter: &ReadFilter,
) -> Result<Vec<usize>, parquet::errors::ParquetError> {
    let meta = builder.metadata();
    let chosen: Vec<&parquet::file::metadata::RowGroupMetaData> = groups.iter().map(|&g| meta.row_group(g)).collect();
    let (mut mins, mut maxs) = (Vec::new(), Vec::new());
    for c in &filter.columns {
        let conv = StatisticsConverter::try_new(c, builder.schema(), builder.parquet_schema())?;
        mins.push(conv.row_group_mins(chosen.iter().copied())?);
        maxs.push(conv.row_group_maxes(chosen.iter().copied())?);
    }
    let ok = crate::kernels::frame::row_groups_may_match(&filter.expr, &mins, &maxs, groups.len());
    Ok(groups.iter().zip(ok).filter(|(_, ok)| *ok).map(|(g, _)| *g).collect())
}

/// Writes record batches to one parquet file (snappy), a row group per
/// batch written; `finish` completes the file.
pub struct ParquetSink {
    writer: parquet::arrow::ArrowWriter<std::fs::File>,
    path: PathBuf,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParquetSink({})", self.path.display())
    }
}

impl ParquetSink {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<ParquetSink, KernelError> {
        let file = std::fs::File::create(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        Ok(ParquetSink { writer, path: path.to_path_buf() })
    }
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), KernelError> {
        let ctx = |e: parquet::errors::ParquetError| err(format!("{}: {e}", self.path.display()));
        self.writer.write(batch).map_err(ctx)?;
        self.writer.flush().map_err(|e| err(format!("{}: {e}", self.path.display())))
    }
    pub fn finish(self) -> Result<(), KernelError> {
        self.writer.close().map_err(|e| err(format!("{}: {e}", self.path.display())))?;
        Ok(())
    }
}

/// pandas' default `na_values`: what reads as missing in a CSV field.
pub const DEFAULT_NULLS: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn null_regex(nulls: &[String]) -> Result<regex::Regex, KernelError> {
    let alts: Vec<String> = nulls.iter().map(|n| regex::escape(n)).collect();
    regex::Regex::new(&format!("^(?:{})$", alts.join("|"))).map_err(|e| err(format!("null markers: {e}")))
}

/// The CSV files of `path` and the columns of the first, inferred from its
/// first 1,000 rows (ints, floats, bools, dates, timestamps, else strings)
/// then `types` by name; without a header the columns are named 0, 1, ….
pub fn scan_csv(
    path: &Path,
    format: &mars_ir::CsvFormat,
    types: &[(String, arrow::datatypes::DataType)],
) -> Result<(SchemaRef, Vec<SourceFile>), KernelError> {
    let paths = list_files(path, ".csv")?;
    let files: Vec<SourceFile> = paths.iter().map(|p| source_file(p)).collect::<Result<_, _>>()?;
    let first = &files[0];
    let f = open(first)?;
    let fmt = arrow_csv::reader::Format::default()
        .with_header(format.header)
        .with_delimiter(format.delimiter)
        .with_null_regex(null_regex(&format.nulls)?);
    let (inferred, _) = guarded(&first.path, || {
        fmt.infer_schema(std::io::BufReader::new(f), Some(1000)).map_err(|e| err(format!("{}: {e}", first.path)))
    })?;
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = if format.header { f.name().clone() } else { i.to_string() };
            Field::new(name, f.data_type().clone(), true)
        })
        .collect();
    for (name, dt) in types {
        let field = fields.iter_mut().find(|f| f.name() == name).ok_or_else(|| {
            let names: Vec<&String> = inferred.fields().iter().map(|f| f.name()).collect();
            err(format!(
                "{}: a type for column {name:?}, which is not in the file; its columns are {names:?}",
                first.path
            ))
        })?;
        *field = Field::new(name, dt.clone(), true);
    }
    Ok((Arc::new(Schema::new(fields)), files))
}

/// The lines of a CSV chunk: those starting in `start..end` (a line starts
/// at 0 or after a `\n`), and the byte where the first begins.
fn csv_lines(file: &SourceFile, start: u64, end: u64) -> Result<(Vec<u8>, u64), KernelError> {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    let io = |e: std::io::Error| err(format!("{}: {e}", file.path));
    let mut r = std::io::BufReader::new(open(file)?);
    let mut begin = 0u64;
    if start > 0 {
        r.seek(SeekFrom::Start(start - 1)).map_err(io)?;
        let mut skip = Vec::new();
        begin = start - 1 + r.read_until(b'\n', &mut skip).map_err(io)? as u64;
    }
    let mut buf = Vec::new();
    if begin < end {
        (&mut r).take(end - begin).read_to_end(&mut buf).map_err(io)?;
        if buf.last().is_some_and(|&b| b != b'\n') {
            r.read_until(b'\n', &mut buf).map_err(io)?;
        }
    }
    Ok((buf, begin))
}

/// The lines of `file` before byte `begin`.
fn lines_before(file: &SourceFile, begin: u64) -> usize {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(&file.path) else { return 0 };
    let mut bytes = Vec::new();
    if f.take(begin).read_to_end(&mut bytes).is_err() {
        return 0;
    }
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// A CSV chunk: the lines starting in `c.start..c.end`, parsed. A bad value
/// or a line of the wrong width is an error naming the file and the line
/// (counted from 1, the header included).
pub fn read_csv(c: &mars_ir::CsvChunk) -> Result<RecordBatch, KernelError> {
    let (buf, begin) = csv_lines(&c.file, c.start, c.end)?;
    let header = c.format.header && begin == 0;
    let full = c.schema.clone();
    let builder = arrow_csv::ReaderBuilder::new(full.clone())
        .with_header(header)
        .with_delimiter(c.format.delimiter)
        .with_null_regex(null_regex(&c.format.nulls)?)
        .with_batch_size(64 * 1024)
        .with_projection(c.columns.clone());
    let parsed = guarded(&c.file.path, || {
        let reader = builder.build(std::io::Cursor::new(&buf))?;
        let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
        Ok(arrow::compute::concat_batches(&schema, &batches)?)
    });
    let batch = parsed.map_err(|e| {
        // Arrow counts lines from the start of what it was given (the header
        // line included): from 0 in value errors, from 1 in width errors;
        // files count from 1
        let base = lines_before(&c.file, begin) + usize::from(!e.0.contains("incorrect number of fields"));
        let re = regex::Regex::new(r"line (\d+)").expect("a valid pattern");
        let msg = re.replace(&e.0, |m: &regex::Captures| {
            let n: usize = m[1].parse().unwrap_or(0);
            format!("line {}", base + n)
        });
        err(format!("{}: {msg}", c.file.path))
    })?;
    let schema = Arc::new(full.project(&c.columns)?);
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(schema, batch.columns().to_vec(), &opts)?)
}

/// Writes record batches to one CSV file: a header line, then the rows
/// (missing values empty, dates as YYYY-MM-DD).
pub struct CsvSink {
    writer: arrow_csv::Writer<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
}

impl std::fmt::Debug for CsvSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CsvSink({})", self.path.display())
    }
}

impl CsvSink {
    pub fn create(path: &Path) -> Result<CsvSink, KernelError> {
        let file = std::fs::File::create(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let writer = arrow_csv::WriterBuilder::new().with_header(true).build(std::io::BufWriter::new(file));
        Ok(CsvSink { writer, path: path.to_path_buf() })
    }
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), KernelError> {
        self.writer.write(batch).map_err(|e| err(format!("{}: {e}", self.path.display())))
    }
    pub fn finish(self) -> Result<(), KernelError> {
        use std::io::Write;
        let mut inner = self.writer.into_inner();
        inner.flush().map_err(|e| err(format!("{}: {e}", self.path.display())))
    }
}
