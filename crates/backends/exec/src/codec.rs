//! The one encoding of a chunk's value as bytes, for spilling to disk and for
//! user data saved beside a graph (and, with the cluster, the wire): a tag
//! byte, then `.npy` for a tensor (dtype and shape in its header), Arrow IPC
//! stream bytes for a frame, or bincode for a reduction partial. A chunk of
//! several outputs is their count (u32) then each as length (u64) and IPC bytes;
//! a join's build side is its key count and positions (u32s) then IPC bytes
//! (the index is rebuilt when read).

use crate::data::ChunkData;
use crate::error::{ExecError, ExecResult};

const TENSOR: u8 = 0;
const FRAME: u8 = 1;
const PARTIAL: u8 = 2;
const PARTS: u8 = 3;
const TABLE: u8 = 4;

/// The bytes of a chunk's value.
pub fn encode(data: &ChunkData) -> ExecResult<Vec<u8>> {
    let mut bytes = Vec::with_capacity(data.nbytes() + 256);
    match data {
        ChunkData::Tensor(t) => {
            bytes.push(TENSOR);
            bytes.extend_from_slice(&mars_ir::npy::to_npy(t));
        }
        ChunkData::Frame(b) => {
            bytes.push(FRAME);
            bytes.extend_from_slice(&mars_ir::frame::batch_to_ipc(b)?);
        }
        ChunkData::Partial { shape, state } => {
            bytes.push(PARTIAL);
            bincode::serialize_into(&mut bytes, &(shape, state))
                .map_err(|e| ExecError::Other(format!("cannot encode a reduction partial: {e}")))?;
        }
        ChunkData::Table(t) => {
            bytes.push(TABLE);
            let n = u32::try_from(t.keys.len()).map_err(|_| ExecError::Other("too many keys".into()))?;
            bytes.extend_from_slice(&n.to_le_bytes());
            for &k in &t.keys {
                let k = u32::try_from(k).map_err(|_| ExecError::Other("a key position past u32".into()))?;
                bytes.extend_from_slice(&k.to_le_bytes());
            }
            bytes.extend_from_slice(&mars_ir::frame::batch_to_ipc(&t.batch)?);
        }
        ChunkData::Parts(parts) => {
            bytes.push(PARTS);
            let n = u32::try_from(parts.len()).map_err(|_| ExecError::Other("too many pieces".into()))?;
            bytes.extend_from_slice(&n.to_le_bytes());
            for b in parts {
                let ipc = mars_ir::frame::batch_to_ipc(b)?;
                bytes.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
                bytes.extend_from_slice(&ipc);
            }
        }
    }
    Ok(bytes)
}

/// [`encode`]'s bytes as a prefix and a body borrowed from the value, when
/// the value is a tensor in standard layout (its data is then sent or
/// written without a copy): `None` otherwise.
pub fn encode_split(data: &ChunkData) -> Option<(Vec<u8>, &[u8])> {
    let ChunkData::Tensor(t) = data else { return None };
    let (header, body) = mars_ir::npy::npy_split(t)?;
    let mut prefix = Vec::with_capacity(header.len() + 1);
    prefix.push(TENSOR);
    prefix.extend_from_slice(&header);
    Some((prefix, body))
}

/// [`decode`] of `len` bytes read as they arrive (off the wire, in pieces):
/// a tensor's array is allocated once its header has come (and only if the
/// header agrees with `len`), and each piece is copied straight into it, so
/// pieces need not be kept; other values are gathered and decoded at the end.
#[derive(Debug)]
pub struct ChunkReader {
    len: usize,
    got: usize,
    state: Reading,
}

#[derive(Debug)]
enum Reading {
    Start,
    Tensor(mars_ir::npy::NpyReader),
    Other(Vec<u8>),
}

impl ChunkReader {
    /// A reader of exactly `len` bytes of [`encode`] output.
    pub fn new(len: usize) -> ChunkReader {
        ChunkReader { len, got: 0, state: Reading::Start }
    }

    /// The next bytes; more than `len` in all is an error.
    pub fn push(&mut self, piece: &[u8]) -> Result<(), String> {
        if piece.is_empty() {
            return Ok(());
        }
        self.got += piece.len();
        if self.got > self.len {
            return Err(format!("more than the {} bytes announced", self.len));
        }
        match &mut self.state {
            Reading::Start if piece[0] == TENSOR => {
                let mut r = mars_ir::npy::NpyReader::with_len(self.len - 1);
                r.push(&piece[1..]).map_err(|e| e.to_string())?;
                self.state = Reading::Tensor(r);
            }
            Reading::Start => {
                let mut v = Vec::with_capacity(self.len);
                v.extend_from_slice(piece);
                self.state = Reading::Other(v);
            }
            Reading::Tensor(r) => r.push(piece).map_err(|e| e.to_string())?,
            Reading::Other(v) => v.extend_from_slice(piece),
        }
        Ok(())
    }

    /// The value, once all `len` bytes have come.
    pub fn finish(self) -> Result<ChunkData, String> {
        if self.got != self.len {
            return Err(format!("{} of the {} bytes announced", self.got, self.len));
        }
        match self.state {
            Reading::Start => decode(&[]),
            Reading::Tensor(r) => Ok(ChunkData::Tensor(r.finish().map_err(|e| e.to_string())?)),
            Reading::Other(v) => decode(&v),
        }
    }
}

/// [`decode`] of the concatenation of `parts` (as they came off the wire):
/// a tensor's data is copied once, straight into its array.
pub fn decode_parts(parts: &[&[u8]]) -> Result<ChunkData, String> {
    let mut r = ChunkReader::new(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        r.push(p)?;
    }
    r.finish()
}

/// A chunk's value from [`encode`]'s bytes; malformed bytes are an error
/// (saying what is wrong), never a panic.
pub fn decode(bytes: &[u8]) -> Result<ChunkData, String> {
    match bytes.split_first() {
        Some((&TENSOR, rest)) => Ok(ChunkData::Tensor(mars_ir::npy::from_npy(rest).map_err(|e| e.to_string())?)),
        Some((&FRAME, rest)) => Ok(ChunkData::Frame(mars_ir::frame::ipc_to_batch(rest).map_err(|e| e.to_string())?)),
        Some((&PARTIAL, rest)) => {
            use bincode::Options as _;
            // (the same encoding as `bincode::serialize`, reading no more than the bytes given)
            let opts = bincode::DefaultOptions::new()
                .with_fixint_encoding()
                .allow_trailing_bytes()
                .with_limit(rest.len() as u64);
            let (shape, state) = opts.deserialize(rest).map_err(|e| e.to_string())?;
            Ok(ChunkData::Partial { shape, state })
        }
        Some((&PARTS, rest)) => {
            let (n, mut rest) = take_u64(rest, 4)?;
            let mut parts = Vec::new();
            for i in 0..n {
                let (len, tail) = take_u64(rest, 8)?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= tail.len())
                    .ok_or_else(|| format!("piece {i} says {len} bytes but {} are left (truncated?)", tail.len()))?;
                parts.push(mars_ir::frame::ipc_to_batch(&tail[..len]).map_err(|e| format!("piece {i}: {e}"))?);
                rest = &tail[len..];
            }
            if !rest.is_empty() {
                return Err(format!("{} bytes after the last piece", rest.len()));
            }
            Ok(ChunkData::Parts(parts))
        }
        Some((&TABLE, rest)) => {
            let (n, mut rest) = take_u64(rest, 4)?;
            let mut keys = Vec::new();
            for _ in 0..n {
                let (k, tail) = take_u64(rest, 4)?;
                keys.push(k as usize);
                rest = tail;
            }
            let batch = mars_ir::frame::ipc_to_batch(rest).map_err(|e| e.to_string())?;
            let table = crate::kernels::join::JoinTable::build(batch, &keys).map_err(|e| e.0)?;
            Ok(ChunkData::Table(std::sync::Arc::new(table)))
        }
        Some((tag, _)) => Err(format!("unknown chunk tag {tag}")),
        None => Err("no bytes".into()),
    }
}

/// A little-endian integer of `width` bytes (4 or 8) and the bytes after it.
fn take_u64(bytes: &[u8], width: usize) -> Result<(u64, &[u8]), String> {
    if bytes.len() < width {
        return Err(format!("{} bytes where a {width}-byte length was expected (truncated?)", bytes.len()));
    }
    let (head, rest) = bytes.split_at(width);
    let mut buf = [0u8; 8];
    buf[..width].copy_from_slice(head);
    Ok((u64::from_le_bytes(buf), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use mars_ir::TensorData;
    use std::sync::Arc;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let t =
            ChunkData::Tensor(TensorData::I64(ndarray::ArrayD::from_shape_vec(vec![2, 3], (0..6).collect()).unwrap()));
        let b = RecordBatch::try_from_iter(vec![
            ("a", Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ])
        .unwrap();
        let f = ChunkData::Frame(b.clone());
        let parts = ChunkData::Parts(vec![b.slice(0, 1), b.slice(1, 0), b.clone()]);
        let table = ChunkData::Table(Arc::new(crate::kernels::join::JoinTable::build(b, &[1]).unwrap()));
        for d in [&t, &f, &parts, &table] {
            let bytes = encode(d).unwrap();
            assert_eq!(&decode(&bytes).unwrap(), d);
            // a truncation is an error, never a panic or other data (an Arrow
            // stream cut only before its end-of-stream marker is still whole)
            for n in 0..bytes.len() {
                if let Ok(v) = decode(&bytes[..n]) {
                    assert_eq!(&v, d, "a prefix of {n} bytes decoded to something else");
                }
            }
            assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        }
        assert!(decode(&[9, 1, 2]).unwrap_err().contains("unknown chunk tag 9"));
    }
}
