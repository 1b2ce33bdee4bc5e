//! Chunk values: tensors, record batches, and reduction partials.

use arrow::record_batch::RecordBatch;
use mars_ir::TensorData;

/// Partial state of a tree reduction, per output position (row-major over the
/// keepdims shape).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Partial {
    /// Sums/products/min/max of floats.
    F(Vec<f64>),
    /// Sums/products/min/max of integers and bools.
    I(Vec<i64>),
    /// Counts, means and sums of squared deviations (Chan et al.).
    Moments { count: Vec<f64>, mean: Vec<f64>, m2: Vec<f64> },
    /// Best value and its index.
    Arg { val: Vec<f64>, idx: Vec<i64> },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChunkData {
    Tensor(TensorData),
    Frame(RecordBatch),
    Partial {
        shape: Vec<usize>,
        state: Partial,
    },
    /// Several outputs of one chunk (a shuffle map's piece per reducer); a
    /// consumer reads the piece it names.
    Parts(Vec<RecordBatch>),
    /// A join's build side, indexed by its keys (read by every probe chunk).
    Table(std::sync::Arc<crate::kernels::join::JoinTable>),
}

impl ChunkData {
    pub fn shape(&self) -> Vec<usize> {
        match self {
            ChunkData::Tensor(t) => t.shape().to_vec(),
            ChunkData::Frame(b) => vec![b.num_rows(), b.num_columns()],
            ChunkData::Partial { shape, .. } => shape.clone(),
            ChunkData::Parts(p) => {
                vec![p.iter().map(|b| b.num_rows()).sum(), p.first().map_or(0, |b| b.num_columns())]
            }
            ChunkData::Table(t) => vec![t.batch.num_rows(), t.batch.num_columns()],
        }
    }
    pub fn nbytes(&self) -> usize {
        match self {
            ChunkData::Tensor(t) => t.nbytes(),
            ChunkData::Frame(b) => b.get_array_memory_size(),
            ChunkData::Partial { state, .. } => match state {
                Partial::F(v) => v.len() * 8,
                Partial::I(v) => v.len() * 8,
                Partial::Moments { count, .. } => count.len() * 24,
                Partial::Arg { val, .. } => val.len() * 16,
            },
            ChunkData::Parts(p) => p.iter().map(|b| b.get_array_memory_size()).sum(),
            ChunkData::Table(t) => t.nbytes(),
        }
    }
    pub fn tensor(&self) -> Option<&TensorData> {
        match self {
            ChunkData::Tensor(t) => Some(t),
            _ => None,
        }
    }
}
