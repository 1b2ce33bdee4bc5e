//! What the control plane carries besides plain numbers: keys as 16 bytes,
//! backend errors kind by kind, the chunk tasks a worker runs, held results.

use crate::proto;
use mars_backends::{BackendError, TileableResult};
use mars_ir::{ChunkIndex, ChunkNode, ChunkOp, ChunkShape, DType, Key};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tonic::Status;

/// The most bytes one control message may have (graphs, launch batches).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

pub fn key_bytes(k: &Key) -> Vec<u8> {
    k.0.to_le_bytes().to_vec()
}

pub fn key_of(bytes: &[u8]) -> Result<Key, Status> {
    let b: [u8; 16] = bytes
        .try_into()
        .map_err(|_| Status::invalid_argument(format!("a chunk key is 16 bytes, not {}", bytes.len())))?;
    Ok(Key(u128::from_le_bytes(b)))
}

pub fn keys_of(list: &[Vec<u8>]) -> Result<Vec<Key>, Status> {
    list.iter().map(|b| key_of(b)).collect()
}

/// A backend error as the wire carries it.
pub fn failure(e: &BackendError) -> proto::Failure {
    let mut f = proto::Failure { message: e.to_string(), ..Default::default() };
    f.kind = match e {
        BackendError::Kernel { op, chunk, msg } => {
            f.op = op.clone();
            f.chunk = chunk.clone();
            f.message = msg.clone();
            "kernel"
        }
        BackendError::NotHeld(k) => {
            f.message = k.clone();
            "not_held"
        }
        BackendError::Cancelled(t) => {
            f.task = *t;
            "cancelled"
        }
        BackendError::UnknownTask(t) => {
            f.task = *t;
            "unknown_task"
        }
        BackendError::Memory(m) => {
            f.message = m.clone();
            "memory"
        }
        BackendError::Other(m) => {
            f.message = m.clone();
            "other"
        }
        BackendError::Tile(_) | BackendError::Ir(_) => "graph",
    }
    .to_string();
    f
}

/// The error a [`failure`] describes.
pub fn error_of(f: proto::Failure) -> BackendError {
    match f.kind.as_str() {
        "kernel" => BackendError::Kernel { op: f.op, chunk: f.chunk, msg: f.message },
        "not_held" => BackendError::NotHeld(f.message),
        "cancelled" => BackendError::Cancelled(f.task),
        "unknown_task" => BackendError::UnknownTask(f.task),
        "memory" => BackendError::Memory(f.message),
        _ => BackendError::Other(f.message),
    }
}

/// A gRPC status as a backend error (the call itself failed).
pub fn status_error(what: &str, s: Status) -> BackendError {
    let msg = s.message();
    match s.code() {
        tonic::Code::Unauthenticated => BackendError::Other(format!("{what}: unauthenticated: {msg}")),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
            BackendError::Other(format!("{what}: the cluster is unreachable ({msg})"))
        }
        _ => BackendError::Other(format!("{what}: {msg}")),
    }
}

/// One chunk for a worker to run: the node without graph positions, its
/// inputs by key, and for each input a worker holding it (empty when the
/// worker running it holds it too).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub key: Key,
    pub op: Arc<ChunkOp>,
    pub shape: ChunkShape,
    pub dtype: Option<DType>,
    pub index: ChunkIndex,
    pub inputs: Vec<(Key, String)>,
}

impl Task {
    pub fn node(&self) -> ChunkNode {
        ChunkNode {
            key: self.key,
            op: self.op.clone(),
            inputs: Default::default(),
            shape: self.shape.clone(),
            dtype: self.dtype,
            index: self.index.clone(),
        }
    }
}

fn bincode_options(len: usize) -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new().with_fixint_encoding().allow_trailing_bytes().with_limit(len as u64)
}

pub fn encode_tasks(tasks: &[Task]) -> Result<Vec<u8>, String> {
    bincode::serialize(tasks).map_err(|e| format!("cannot encode a launch batch: {e}"))
}

pub fn decode_tasks(bytes: &[u8]) -> Result<Vec<Task>, Status> {
    use bincode::Options;
    bincode_options(bytes.len())
        .deserialize(bytes)
        .map_err(|e| Status::invalid_argument(format!("malformed launch batch: {e}")))
}

/// A held result as JSON (the client reads chunk keys, nsplits and meta).
pub fn result_json(r: &TileableResult) -> Result<String, Status> {
    serde_json::to_string(r).map_err(|e| Status::internal(format!("cannot encode a result: {e}")))
}

pub fn result_of(json: &str) -> Result<TileableResult, BackendError> {
    serde_json::from_str(json).map_err(|e| BackendError::Other(format!("malformed result from the cluster: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_wire_as_they_were() {
        let errs = [
            BackendError::Kernel { op: "Map".into(), chunk: "ab index=[0]".into(), msg: "bad".into() },
            BackendError::NotHeld("k".into()),
            BackendError::Cancelled(3),
            BackendError::UnknownTask(4),
            BackendError::Memory("too big".into()),
            BackendError::Other("x".into()),
        ];
        for e in errs {
            assert_eq!(error_of(failure(&e)), e);
        }
    }

    #[test]
    fn keys_are_sixteen_bytes() {
        let k = Key(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(key_of(&key_bytes(&k)).unwrap(), k);
        assert!(key_of(&[1, 2, 3]).unwrap_err().message().contains("16 bytes"));
    }

    #[test]
    fn malformed_launch_batches_are_errors() {
        let t = Task {
            key: Key(7),
            op: Arc::new(ChunkOp::Arange { start: 0.0, step: 1.0, n: 3 }),
            shape: [mars_ir::Dim::Known(3)].into_iter().collect(),
            dtype: Some(DType::Float64),
            index: [0].into_iter().collect(),
            inputs: vec![(Key(1), "127.0.0.1:1".into())],
        };
        let bytes = encode_tasks(&[t]).unwrap();
        assert_eq!(decode_tasks(&bytes).unwrap()[0].key, Key(7));
        for cut in 0..bytes.len() {
            assert!(decode_tasks(&bytes[..cut]).is_err());
        }
        // a huge length prefix is refused, not allocated
        let mut big = bytes.clone();
        big[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_tasks(&big).is_err());
    }
}
