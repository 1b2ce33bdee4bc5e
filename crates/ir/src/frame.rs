//! Record batches inside the IR travel as Arrow IPC stream bytes.

use crate::error::{IrError, IrResult};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

pub fn batch_to_ipc(batch: &RecordBatch) -> IrResult<Vec<u8>> {
    let batch = &compact_views(batch);
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema()).map_err(|e| IrError::Serde(e.to_string()))?;
        w.write(batch).map_err(|e| IrError::Serde(e.to_string()))?;
        w.finish().map_err(|e| IrError::Serde(e.to_string()))?;
    }
    Ok(buf)
}

/// `batch` with each string or binary view column whose data buffers are
/// mostly bytes it no longer refers to (a slice, a filter's or a shuffle
/// piece's share of a larger column) copied into buffers of its own
/// (`gc`), so a piece neither keeps nor writes the whole column's bytes.
pub fn compact_views(batch: &RecordBatch) -> RecordBatch {
    use arrow::array::{Array, ArrayRef, AsArray, GenericByteViewArray};
    use arrow::datatypes::{ByteViewType, DataType};
    /// The array compacted, when its buffers are mostly bytes it does not use.
    fn compacted<T: ByteViewType + ?Sized>(a: &GenericByteViewArray<T>) -> Option<ArrayRef> {
        let held: usize = a.data_buffers().iter().map(|b| b.len()).sum();
        (held > 2 * a.total_buffer_bytes_used() + (64 << 10)).then(|| std::sync::Arc::new(a.gc()) as ArrayRef)
    }
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| {
            let gc = match c.data_type() {
                DataType::Utf8View => compacted(c.as_string_view()),
                DataType::BinaryView => compacted(c.as_binary_view()),
                _ => None,
            };
            changed |= gc.is_some();
            gc.unwrap_or_else(|| c.clone())
        })
        .collect();
    if !changed {
        return batch.clone();
    }
    let opts = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(batch.schema(), columns, &opts).unwrap_or_else(|_| batch.clone())
}

/// Decode Arrow IPC stream bytes. The bytes may come from a file or a client:
/// a decoder panic on malformed input is caught and reported as an error, so
/// no input can take the process down.
pub fn ipc_to_batch(bytes: &[u8]) -> IrResult<RecordBatch> {
    std::panic::catch_unwind(|| decode_ipc(bytes))
        .unwrap_or_else(|_| Err(IrError::Serde("malformed Arrow IPC bytes (the decoder gave up)".into())))
}

fn decode_ipc(bytes: &[u8]) -> IrResult<RecordBatch> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| IrError::Serde(e.to_string()))?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|e| IrError::Serde(e.to_string()))?;
    // `batch_to_ipc` always writes a batch (maybe of no rows): none means the bytes were cut
    if batches.is_empty() {
        return Err(IrError::Serde("Arrow IPC bytes with a schema but no record batch (truncated?)".into()));
    }
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| IrError::Serde(e.to_string()))
}

/// Whether frames carry columns of this Arrow type: what the frame kernels
/// read and write. Real files bring more than the tensor dtypes: strings as
/// Utf8 or Utf8View, decimals, dates and timestamps, all with nulls.
pub fn supported_type(dt: &DataType) -> bool {
    use DataType::*;
    match dt {
        Null | Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32 | Float64 => true,
        Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView => true,
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => true,
        Date32 | Date64 | Timestamp(..) | Time32(_) | Time64(_) | Duration(_) => true,
        Dictionary(k, v) => k.is_dictionary_key_type() && supported_type(v),
        _ => false,
    }
}

/// A column type as explain and errors show it: the numpy name where a tensor
/// dtype matches (`int64`, `float64`, `bool`, `utf8` …), else Arrow's.
pub fn type_name(dt: &DataType) -> String {
    match crate::DType::from_arrow(dt) {
        Some(d) => d.name().to_string(),
        None => dt.to_string(),
    }
}

/// Refuse column types frames do not carry (the error names the column).
pub fn check_schema(schema: &Schema) -> IrResult<()> {
    match schema.fields().iter().find(|f| !supported_type(f.data_type())) {
        Some(f) => Err(IrError::DType(format!("column {:?} has unsupported Arrow type {}", f.name(), f.data_type()))),
        None => Ok(()),
    }
}

/// The schema a frame of this batch has: its fields without metadata (a key
/// hashes the schema, so it holds nothing but names, types and nullability),
/// supported types only.
pub fn batch_schema(batch: &RecordBatch) -> IrResult<SchemaRef> {
    let schema = batch.schema();
    check_schema(&schema)?;
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), f.is_nullable())).collect();
    Ok(std::sync::Arc::new(Schema::new(fields)))
}

/// The meta of a batch: its schema (supported types only) and row count.
pub fn batch_meta(batch: &RecordBatch) -> IrResult<crate::Meta> {
    Ok(crate::Meta::Frame { schema: batch_schema(batch)?, nrows: crate::Dim::Known(batch.num_rows()) })
}

/// The key user data is held under: a hash of its bytes (Arrow IPC for a
/// batch), so the same data is put once.
pub fn batch_key(batch: &RecordBatch) -> IrResult<crate::Key> {
    Ok(crate::Key::of_bytes(&batch_to_ipc(batch)?))
}

/// The positions of `columns` in `schema`; an unknown name is an error that
/// lists the columns there are (as pandas' KeyError would show them).
pub fn column_indices(schema: &Schema, columns: &[String]) -> IrResult<Vec<usize>> {
    columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| {
                let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
                IrError::Invalid(format!("column {c:?} is not in the frame; its columns are {names:?}"))
            })
        })
        .collect()
}

/// The fields of `schema` with `field` as column `name`: in the place of a
/// column of that name, else last. Also where it went and whether it replaced one.
pub fn with_column(schema: &Schema, name: &str, field: &Field) -> (Vec<Field>, (usize, bool)) {
    let new = Field::new(name, field.data_type().clone(), true);
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = new;
            (fields, (i, true))
        }
        Err(_) => {
            fields.push(new);
            let at = fields.len() - 1;
            (fields, (at, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, StringViewArray};

    /// A few rows sliced from a large string-view column are compacted:
    /// their IPC bytes are theirs, not the column's, and the values stay.
    #[test]
    fn sliced_string_views_are_compacted_before_writing() {
        let values: Vec<String> = (0..20_000).map(|i| format!("a string longer than twelve bytes #{i}")).collect();
        let col = StringViewArray::from_iter_values(values.iter());
        let batch = RecordBatch::try_from_iter([("s", std::sync::Arc::new(col) as arrow::array::ArrayRef)]).unwrap();
        let piece = batch.slice(100, 10);
        let compact = compact_views(&piece);
        let held: usize = compact.column(0).as_string_view().data_buffers().iter().map(|b| b.len()).sum();
        assert!(held < 1000, "{held} bytes held for 10 strings");
        let ipc = batch_to_ipc(&piece).unwrap();
        assert!(ipc.len() < 4096, "{} IPC bytes for 10 strings", ipc.len());
        assert_eq!(ipc_to_batch(&ipc).unwrap(), piece);
        // a whole column is left as it is
        let whole = compact_views(&batch);
        assert!(whole.column(0).to_data().buffers()[1].as_ptr() == batch.column(0).to_data().buffers()[1].as_ptr());
    }
}
