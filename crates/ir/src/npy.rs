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

/// The parsed header of a `.npy` file: what the data bytes are.
#[derive(Clone, Debug)]
struct Header {
    descr: String,
    shape: Vec<usize>,
    /// Bytes before the data (magic, version, length, dict).
    data_at: usize,
    /// Bytes of data the shape and dtype call for.
    data_len: usize,
}

/// The header at the start of `pre` (the first bytes of a file), or `None`
/// when `pre` is too short to hold all of it.
fn parse_header(pre: &[u8]) -> IrResult<Option<Header>> {
    if pre.len() < 12 {
        if !MAGIC.starts_with(&pre[..pre.len().min(6)]) {
            return Err(bad("the magic string is missing"));
        }
        return Ok(None);
    }
    if &pre[..6] != MAGIC {
        return Err(bad("the magic string is missing"));
    }
    let (hlen, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        2 | 3 => (u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize, 12),
        v => return Err(bad(format!("unknown version {v}"))),
    };
    if hlen > (1 << 20) {
        return Err(bad("the header is too long"));
    }
    if pre.len() < start + hlen {
        return Ok(None);
    }
    let header = std::str::from_utf8(&pre[start..start + hlen]).map_err(bad)?;
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
    let width = match descr {
        "<f8" | "<i8" | "<u8" => 8,
        "<f4" | "<i4" | "<u4" => 4,
        "<i2" | "<u2" => 2,
        "|i1" | "|u1" | "|b1" => 1,
        other => return Err(bad(format!("unsupported dtype {other:?}"))),
    };
    let data_len = n.checked_mul(width).ok_or_else(|| bad("the shape overflows"))?;
    Ok(Some(Header { descr: descr.to_string(), shape, data_at: start + hlen, data_len }))
}

/// A tensor's elements while its bytes arrive.
#[derive(Debug)]
enum Buf {
    F64(Vec<f64>),
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U64(Vec<u64>),
    U32(Vec<u32>),
    U16(Vec<u16>),
    /// `|u1` and `|b1` (bools become `bool`s at the end).
    U8(Vec<u8>),
}

macro_rules! each_buf {
    ($b:expr, $v:ident => $e:expr) => {
        match $b {
            Buf::F64($v) => $e,
            Buf::F32($v) => $e,
            Buf::I64($v) => $e,
            Buf::I32($v) => $e,
            Buf::I16($v) => $e,
            Buf::I8($v) => $e,
            Buf::U64($v) => $e,
            Buf::U32($v) => $e,
            Buf::U16($v) => $e,
            Buf::U8($v) => $e,
        }
    };
}

impl Buf {
    /// Room for the data `h` describes (zeroed: fresh pages from the OS).
    fn new(h: &Header) -> Buf {
        let n = h.shape.iter().product();
        match h.descr.as_str() {
            "<f8" => Buf::F64(vec![0.0; n]),
            "<f4" => Buf::F32(vec![0.0; n]),
            "<i8" => Buf::I64(vec![0; n]),
            "<i4" => Buf::I32(vec![0; n]),
            "<i2" => Buf::I16(vec![0; n]),
            "|i1" => Buf::I8(vec![0; n]),
            "<u8" => Buf::U64(vec![0; n]),
            "<u4" => Buf::U32(vec![0; n]),
            "<u2" => Buf::U16(vec![0; n]),
            _ => Buf::U8(vec![0; n]),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        each_buf!(self, v => bytemuck::cast_slice_mut(v.as_mut_slice()))
    }

    fn into_tensor(mut self, h: &Header) -> IrResult<TensorData> {
        if cfg!(target_endian = "big") {
            // the file is little-endian: reverse each element's bytes
            let width = each_buf!(&self, v => std::mem::size_of_val(&v[..]) / v.len().max(1));
            for x in self.bytes_mut().chunks_exact_mut(width.max(1)) {
                x.reverse();
            }
        }
        let shape = IxDyn(&h.shape);
        Ok(match self {
            Buf::F64(v) => TensorData::F64(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::F32(v) => TensorData::F32(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::I64(v) => TensorData::I64(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::I32(v) => TensorData::I32(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::I16(v) => TensorData::I16(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::I8(v) => TensorData::I8(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::U64(v) => TensorData::U64(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::U32(v) => TensorData::U32(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::U16(v) => TensorData::U16(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            Buf::U8(v) if h.descr == "|b1" => {
                TensorData::Bool(ArrayD::from_shape_vec(shape, v.iter().map(|&b| b != 0).collect()).map_err(bad)?)
            }
            Buf::U8(v) => TensorData::U8(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
        })
    }
}

/// A `.npy` file read as its bytes arrive (off the wire, in pieces): the
/// header is gathered first, then the array is allocated once and each later
/// piece is copied straight into it, so a piece can be dropped as soon as it
/// has been pushed.
#[derive(Debug, Default)]
pub struct NpyReader {
    /// The whole file's length, when known: a header asking for more data
    /// is refused before anything is allocated.
    len: Option<usize>,
    /// The first bytes, until the header is complete.
    head: Vec<u8>,
    body: Option<(Header, Buf)>,
    /// Data bytes written so far.
    filled: usize,
}

impl NpyReader {
    pub fn new() -> NpyReader {
        NpyReader::default()
    }

    /// A reader of a file of exactly `len` bytes.
    pub fn with_len(len: usize) -> NpyReader {
        NpyReader { len: Some(len), ..NpyReader::default() }
    }

    /// The next bytes of the file. More bytes than the header announces
    /// are an error (and nothing is allocated before the header is read).
    pub fn push(&mut self, mut piece: &[u8]) -> IrResult<()> {
        if self.body.is_none() {
            // header bytes come in small: take at most what a header can be
            let want = (12 + (1 << 20)).min(self.head.len() + piece.len()) - self.head.len();
            self.head.extend_from_slice(&piece[..want]);
            piece = &piece[want..];
            let Some(h) = parse_header(&self.head)? else {
                return Ok(());
            };
            if let Some(len) = self.len {
                if h.data_at.checked_add(h.data_len) != Some(len) {
                    return Err(bad(format!(
                        "shape {:?} of {} needs {} data bytes, but the file has {}",
                        h.shape,
                        h.descr,
                        h.data_len,
                        len.saturating_sub(h.data_at)
                    )));
                }
            }
            let mut buf = Buf::new(&h);
            // bytes of the data already gathered with the header
            let extra = &self.head[h.data_at..];
            if extra.len() > h.data_len {
                return Err(bad(format!("more than {} data bytes for shape {:?}", h.data_len, h.shape)));
            }
            buf.bytes_mut()[..extra.len()].copy_from_slice(extra);
            self.filled = extra.len();
            self.head = Vec::new();
            self.body = Some((h, buf));
        }
        let Some((h, buf)) = &mut self.body else { return Ok(()) };
        if self.filled + piece.len() > h.data_len {
            return Err(bad(format!("more than {} data bytes for shape {:?}", h.data_len, h.shape)));
        }
        buf.bytes_mut()[self.filled..self.filled + piece.len()].copy_from_slice(piece);
        self.filled += piece.len();
        Ok(())
    }

    /// The array, once every byte has come.
    pub fn finish(self) -> IrResult<TensorData> {
        let Some((h, buf)) = self.body else {
            return Err(if self.head.len() < 10 {
                bad("the magic string is missing")
            } else {
                bad("the header is cut short")
            });
        };
        if self.filled != h.data_len {
            return Err(bad(format!("{} data bytes for shape {:?} of {}", self.filled, h.shape, h.descr)));
        }
        buf.into_tensor(&h)
    }
}

/// [`from_npy`] of the concatenation of `parts` (as they came off the
/// wire): the data is copied once, straight into the array's memory.
pub fn from_npy_parts(parts: &[&[u8]]) -> IrResult<TensorData> {
    let mut r = NpyReader::new();
    for p in parts {
        r.push(p)?;
    }
    r.finish()
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
