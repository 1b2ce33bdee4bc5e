//! Record batches inside the IR travel as Arrow IPC stream bytes.

use crate::error::{IrError, IrResult};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

pub fn batch_to_ipc(batch: &RecordBatch) -> IrResult<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema()).map_err(|e| IrError::Serde(e.to_string()))?;
        w.write(batch).map_err(|e| IrError::Serde(e.to_string()))?;
        w.finish().map_err(|e| IrError::Serde(e.to_string()))?;
    }
    Ok(buf)
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
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| IrError::Serde(e.to_string()))
}

/// Column names and dtypes of a batch; unsupported Arrow types are an error naming the column.
pub fn batch_columns(batch: &RecordBatch) -> IrResult<Vec<(String, crate::DType)>> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| {
            crate::DType::from_arrow(f.data_type()).map(|d| (f.name().clone(), d)).ok_or_else(|| {
                IrError::DType(format!("column {:?} has unsupported Arrow type {}", f.name(), f.data_type()))
            })
        })
        .collect()
}

/// The meta of a batch: its columns (supported types only) and row count.
pub fn batch_meta(batch: &RecordBatch) -> IrResult<crate::Meta> {
    Ok(crate::Meta::Frame { columns: batch_columns(batch)?, nrows: crate::Dim::Known(batch.num_rows()) })
}
