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
use mars_ir::SourceFile;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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

/// The parquet files of `path` (a file or a folder): their schema (all
/// must have the same) and row groups.
pub fn scan_parquet(path: &Path) -> Result<(SchemaRef, Vec<SourceFile>), KernelError> {
    let mut schema: Option<(SchemaRef, String)> = None;
    let mut out = Vec::new();
    for p in list_files(path, ".parquet")? {
        let mut file = source_file(&p)?;
        let f = open(&file)?;
        let builder = guarded(&file.path, || {
            ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| err(format!("{}: {e}", file.path)))
        })?;
        file.row_groups = builder.metadata().row_groups().iter().map(|g| g.num_rows().max(0) as usize).collect();
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

/// Row groups `row_groups` of `file`, the `columns` in this order.
pub fn read_parquet(file: &SourceFile, row_groups: &[usize], columns: &[String]) -> Result<RecordBatch, KernelError> {
    let f = open(file)?;
    guarded(&file.path, || {
        let ctx = |e: parquet::errors::ParquetError| err(format!("{}: {e}", file.path));
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(ctx)?;
        let full = builder.schema().clone();
        let have = builder.metadata().num_row_groups();
        if let Some(g) = row_groups.iter().find(|&&g| g >= have) {
            return Err(err(format!("{} has {have} row groups, not row group {g}", file.path)));
        }
        let roots: Vec<usize> = columns
            .iter()
            .map(|c| full.index_of(c).map_err(|_| err(format!("{} has no column {c:?}", file.path))))
            .collect::<Result<_, _>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let reader = builder
            .with_row_groups(row_groups.to_vec())
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(ctx)?;
        let read_schema = arrow::record_batch::RecordBatchReader::schema(&reader);
        let batches: Vec<RecordBatch> =
            reader.collect::<Result<_, _>>().map_err(|e| err(format!("{}: {e}", file.path)))?;
        let batch = arrow::compute::concat_batches(&read_schema, &batches)?;
        // the reader keeps file order; the frame has the asked-for order
        let order: Vec<usize> = columns.iter().map(|c| batch.schema().index_of(c)).collect::<Result<_, _>>()?;
        let batch = batch.project(&order)?;
        let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(plain(&batch.schema()), batch.columns().to_vec(), &opts)?)
    })
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
