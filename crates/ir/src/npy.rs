//! numpy's `.npy` format (version 1.0, C order, little-endian): what `mars run`
//! writes and what the local store spills tensors as.

use crate::data::TensorData;
use crate::error::{IrError, IrResult};
use ndarray::{ArrayD, IxDyn};

const MAGIC: &[u8] = b"\x93NUMPY";

fn descr(t: &TensorData) -> &'static str {
    use TensorData as T;
    match t {
        T::F64(_) => "<f8",
        T::F32(_) => "<f4",
        T::I64(_) => "<i8",
        T::I32(_) => "<i4",
        T::I16(_) => "<i2",
        T::I8(_) => "|i1",
        T::U64(_) => "<u8",
        T::U32(_) => "<u4",
        T::U16(_) => "<u2",
        T::U8(_) => "|u1",
        T::Bool(_) => "|b1",
    }
}

/// The whole `.npy` file of `t`.
/// The `.npy` header of `t`: magic, version, length, the dict padded so
/// the data starts 64-byte aligned.
fn npy_header(t: &TensorData) -> Vec<u8> {
    let shape = match t.shape() {
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr(t));
    while !(MAGIC.len() + 4 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

pub fn to_npy(t: &TensorData) -> Vec<u8> {
    use TensorData as T;
    let mut out = npy_header(t);
    out.reserve(t.nbytes());
    macro_rules! le {
        ($a:expr) => {
            match $a.as_slice() {
                // a standard-layout array on a little-endian machine: its bytes are the file's
                Some(values) if cfg!(target_endian = "little") => out.extend_from_slice(bytemuck::cast_slice(values)),
                _ => {
                    for v in $a.iter() {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        };
    }
    match t {
        T::F64(a) => le!(a),
        T::F32(a) => le!(a),
        T::I64(a) => le!(a),
        T::I32(a) => le!(a),
        T::I16(a) => le!(a),
        T::I8(a) => le!(a),
        T::U64(a) => le!(a),
        T::U32(a) => le!(a),
        T::U16(a) => le!(a),
        T::U8(a) => le!(a),
        T::Bool(a) => out.extend(a.iter().map(|&b| b as u8)),
    }
    out
}

fn bad(msg: impl std::fmt::Display) -> IrError {
    IrError::Serde(format!("not a C-order little-endian .npy file: {msg}"))
}

/// The value of a `.npy` file written by [`to_npy`] (or by numpy in C order).
pub fn from_npy(bytes: &[u8]) -> IrResult<TensorData> {
    from_npy_parts(&[bytes])
}

/// Bytes `at..at + dst.len()` of the concatenation of `parts`, into `dst`.
fn copy_out(parts: &[&[u8]], mut at: usize, dst: &mut [u8]) {
    let mut filled = 0;
    for p in parts {
        if filled == dst.len() {
            break;
        }
        if at >= p.len() {
            at -= p.len();
            continue;
        }
        let n = (p.len() - at).min(dst.len() - filled);
        dst[filled..filled + n].copy_from_slice(&p[at..at + n]);
        filled += n;
        at = 0;
    }
}

/// [`from_npy`] of the concatenation of `parts` (as they came off the
/// wire): the data is copied once, straight into the array's memory.
pub fn from_npy_parts(parts: &[&[u8]]) -> IrResult<TensorData> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut pre = [0u8; 12];
    copy_out(parts, 0, &mut pre[..total.min(12)]);
    if total < 10 || &pre[..6] != MAGIC {
        return Err(bad("the magic string is missing"));
    }
    let (hlen, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        2 | 3 if total >= 12 => (u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize, 12),
        v => return Err(bad(format!("unknown version {v}"))),
    };
    if hlen > (1 << 20) || start + hlen > total {
        return Err(bad("the header is cut short"));
    }
    let mut header = vec![0u8; hlen];
    copy_out(parts, start, &mut header);
    let header = std::str::from_utf8(&header).map_err(bad)?;
    let field = |name: &str| -> IrResult<&str> {
        let at = header.find(&format!("'{name}':")).ok_or_else(|| bad(format!("no '{name}' in the header")))?;
        Ok(header[at + name.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|d| d.split('\'').next()).ok_or_else(|| bad("descr"))?;
    if field("fortran_order")?.starts_with("True") {
        return Err(bad("Fortran order is not supported"));
    }
    let shape = field("shape")?;
    let shape = shape.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| bad("shape"))?;
    let shape: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(format!("shape entry {s:?}"))))
        .collect::<IrResult<_>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("the shape overflows"))?;
    let (at, body_len) = (start + hlen, total - start - hlen);
    macro_rules! read {
        ($t:ty, $var:ident) => {{
            const W: usize = std::mem::size_of::<$t>();
            if n.checked_mul(W) != Some(body_len) {
                return Err(bad(format!("{body_len} data bytes for shape {shape:?} of {descr}")));
            }
            // (allocated only now that the bytes are known to be there)
            let mut v: Vec<$t> = vec![<$t>::default(); n];
            copy_out(parts, at, bytemuck::cast_slice_mut(&mut v));
            if cfg!(target_endian = "big") {
                for x in v.iter_mut() {
                    *x = <$t>::from_le_bytes(x.to_ne_bytes());
                }
            }
            TensorData::$var(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(bad)?)
        }};
    }
    Ok(match descr {
        "<f8" => read!(f64, F64),
        "<f4" => read!(f32, F32),
        "<i8" => read!(i64, I64),
        "<i4" => read!(i32, I32),
        "<i2" => read!(i16, I16),
        "|i1" => read!(i8, I8),
        "<u8" => read!(u64, U64),
        "<u4" => read!(u32, U32),
        "<u2" => read!(u16, U16),
        "|u1" => read!(u8, U8),
        "|b1" => {
            if body_len != n {
                return Err(bad(format!("{body_len} data bytes for shape {shape:?} of |b1")));
            }
            let mut raw = vec![0u8; n];
            copy_out(parts, at, &mut raw);
            TensorData::Bool(ArrayD::from_shape_vec(IxDyn(&shape), raw.iter().map(|&b| b != 0).collect()).map_err(bad)?)
        }
        other => return Err(bad(format!("unsupported dtype {other:?}"))),
    })
}

/// A tensor's `.npy` encoding as its header (magic, version, dict) and its
/// data bytes borrowed from the array, when the array is in standard layout
/// on a little-endian machine (else `None`: use [`to_npy`]).
pub fn npy_split(t: &TensorData) -> Option<(Vec<u8>, &[u8])> {
    use TensorData as T;
    if !cfg!(target_endian = "little") {
        return None;
    }
    let data: &[u8] = match t {
        T::F64(a) => bytemuck::cast_slice(a.as_slice()?),
        T::F32(a) => bytemuck::cast_slice(a.as_slice()?),
        T::I64(a) => bytemuck::cast_slice(a.as_slice()?),
        T::I32(a) => bytemuck::cast_slice(a.as_slice()?),
        T::I16(a) => bytemuck::cast_slice(a.as_slice()?),
        T::I8(a) => bytemuck::cast_slice(a.as_slice()?),
        T::U64(a) => bytemuck::cast_slice(a.as_slice()?),
        T::U32(a) => bytemuck::cast_slice(a.as_slice()?),
        T::U16(a) => bytemuck::cast_slice(a.as_slice()?),
        T::U8(a) => a.as_slice()?,
        T::Bool(_) => return None,
    };
    Some((npy_header(t), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype_and_rank() {
        let f = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f64 * 0.5 - 1.0);
        let cases = vec![
            TensorData::F64(f.clone()),
            TensorData::F32(f.mapv(|v| v as f32)),
            TensorData::I64(f.mapv(|v| v as i64)),
            TensorData::I32(f.mapv(|v| v as i32)),
            TensorData::I16(f.mapv(|v| v as i16)),
            TensorData::I8(f.mapv(|v| v as i8)),
            TensorData::U64(f.mapv(|v| v.abs() as u64)),
            TensorData::U32(f.mapv(|v| v.abs() as u32)),
            TensorData::U16(f.mapv(|v| v.abs() as u16)),
            TensorData::U8(f.mapv(|v| v.abs() as u8)),
            TensorData::Bool(f.mapv(|v| v > 0.0)),
            TensorData::F64(ArrayD::from_elem(IxDyn(&[]), 2.5)),
            TensorData::I64(ArrayD::from_elem(IxDyn(&[0, 3]), 1)),
            TensorData::F64(ArrayD::from_elem(IxDyn(&[7]), 1.0)),
        ];
        for t in cases {
            let bytes = to_npy(&t);
            assert!((MAGIC.len() + 4 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize).is_multiple_of(64));
            assert_eq!(from_npy(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(from_npy(b"hello").unwrap_err().to_string().contains("magic"));
        let mut b = to_npy(&TensorData::F64(ArrayD::from_elem(IxDyn(&[4]), 1.0)));
        b.truncate(b.len() - 3);
        assert!(from_npy(&b).unwrap_err().to_string().contains("data bytes for shape [4]"));
    }
}
