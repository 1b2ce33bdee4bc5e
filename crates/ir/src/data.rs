//! [`TensorData`]: an n-dimensional array of one of the tensor dtypes.
//!
//! Kernels and fetched results both use it; the numpy-style `Display` lives in
//! `display.rs`.

use crate::dtype::DType;
use crate::error::IrError;
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// Run `$body` with the type alias `$t` bound to the element type of a tensor dtype
/// (non-tensor dtypes use f64; `infer` rejects them before kernels run).
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Float32 => {
                type $t = f32;
                $body
            }
            $crate::DType::Int64 => {
                type $t = i64;
                $body
            }
            $crate::DType::Int32 => {
                type $t = i32;
                $body
            }
            $crate::DType::Bool => {
                type $t = bool;
                $body
            }
            $crate::DType::Int16 => {
                type $t = i16;
                $body
            }
            $crate::DType::Int8 => {
                type $t = i8;
                $body
            }
            $crate::DType::UInt64 => {
                type $t = u64;
                $body
            }
            $crate::DType::UInt32 => {
                type $t = u32;
                $body
            }
            $crate::DType::UInt16 => {
                type $t = u16;
                $body
            }
            $crate::DType::UInt8 => {
                type $t = u8;
                $body
            }
            _ => {
                type $t = f64;
                $body
            }
        }
    };
}

/// A dense tensor value. Always holds one `ndarray::ArrayD` of the element type
/// matching its [`DType`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    F64(ArrayD<f64>),
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
    I16(ArrayD<i16>),
    I8(ArrayD<i8>),
    U64(ArrayD<u64>),
    U32(ArrayD<u32>),
    U16(ArrayD<u16>),
    U8(ArrayD<u8>),
}

/// Run `$body` with `$a` bound to the inner array, whatever the dtype.
#[macro_export]
macro_rules! with_tensor {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::TensorData::F64($a) => $body,
            $crate::TensorData::F32($a) => $body,
            $crate::TensorData::I64($a) => $body,
            $crate::TensorData::I32($a) => $body,
            $crate::TensorData::Bool($a) => $body,
            $crate::TensorData::I16($a) => $body,
            $crate::TensorData::I8($a) => $body,
            $crate::TensorData::U64($a) => $body,
            $crate::TensorData::U32($a) => $body,
            $crate::TensorData::U16($a) => $body,
            $crate::TensorData::U8($a) => $body,
        }
    };
}

/// Map the inner array to a new array of the same element type.
#[macro_export]
macro_rules! map_tensor {
    ($data:expr, $a:ident => $body:expr) => {
        match $data {
            $crate::TensorData::F64($a) => $crate::TensorData::F64($body),
            $crate::TensorData::F32($a) => $crate::TensorData::F32($body),
            $crate::TensorData::I64($a) => $crate::TensorData::I64($body),
            $crate::TensorData::I32($a) => $crate::TensorData::I32($body),
            $crate::TensorData::Bool($a) => $crate::TensorData::Bool($body),
            $crate::TensorData::I16($a) => $crate::TensorData::I16($body),
            $crate::TensorData::I8($a) => $crate::TensorData::I8($body),
            $crate::TensorData::U64($a) => $crate::TensorData::U64($body),
            $crate::TensorData::U32($a) => $crate::TensorData::U32($body),
            $crate::TensorData::U16($a) => $crate::TensorData::U16($body),
            $crate::TensorData::U8($a) => $crate::TensorData::U8($body),
        }
    };
}

/// Element types a [`TensorData`] can hold.
pub trait Element: Copy + Send + Sync + 'static + Default + PartialOrd + std::fmt::Debug {
    const DTYPE: DType;
    fn wrap(a: ArrayD<Self>) -> TensorData;
    fn unwrap(d: TensorData) -> Result<ArrayD<Self>, TensorData>;
    fn unwrap_ref(d: &TensorData) -> Option<&ArrayD<Self>>;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn to_bool(self) -> bool;
    fn from_bool(v: bool) -> Self;
}

macro_rules! element {
    ($t:ty, $variant:ident, $dtype:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
            fn wrap(a: ArrayD<Self>) -> TensorData {
                TensorData::$variant(a)
            }
            fn unwrap(d: TensorData) -> Result<ArrayD<Self>, TensorData> {
                match d {
                    TensorData::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
            fn unwrap_ref(d: &TensorData) -> Option<&ArrayD<Self>> {
                match d {
                    TensorData::$variant(a) => Some(a),
                    _ => None,
                }
            }
            #[allow(clippy::unnecessary_cast)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[allow(clippy::unnecessary_cast)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[allow(clippy::unnecessary_cast)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[allow(clippy::unnecessary_cast)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_bool(self) -> bool {
                self != (0 as $t)
            }
            fn from_bool(v: bool) -> Self {
                (v as u8) as $t
            }
        }
        impl From<ArrayD<$t>> for TensorData {
            fn from(a: ArrayD<$t>) -> Self {
                TensorData::$variant(a)
            }
        }
        impl From<ndarray::Array1<$t>> for TensorData {
            fn from(a: ndarray::Array1<$t>) -> Self {
                TensorData::$variant(a.into_dyn())
            }
        }
        impl From<ndarray::Array2<$t>> for TensorData {
            fn from(a: ndarray::Array2<$t>) -> Self {
                TensorData::$variant(a.into_dyn())
            }
        }
        impl TryFrom<TensorData> for ArrayD<$t> {
            type Error = IrError;
            fn try_from(d: TensorData) -> Result<Self, IrError> {
                let found = d.dtype();
                <$t as Element>::unwrap(d).map_err(|_| {
                    IrError::DType(format!("cannot convert a {found} tensor into an array of {}", DType::$dtype))
                })
            }
        }
    };
}

element!(f64, F64, Float64);
element!(f32, F32, Float32);
element!(i64, I64, Int64);
element!(i32, I32, Int32);
element!(i16, I16, Int16);
element!(i8, I8, Int8);
element!(u64, U64, UInt64);
element!(u32, U32, UInt32);
element!(u16, U16, UInt16);
element!(u8, U8, UInt8);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn wrap(a: ArrayD<Self>) -> TensorData {
        TensorData::Bool(a)
    }
    fn unwrap(d: TensorData) -> Result<ArrayD<Self>, TensorData> {
        match d {
            TensorData::Bool(a) => Ok(a),
            other => Err(other),
        }
    }
    fn unwrap_ref(d: &TensorData) -> Option<&ArrayD<Self>> {
        match d {
            TensorData::Bool(a) => Some(a),
            _ => None,
        }
    }
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn to_bool(self) -> bool {
        self
    }
    fn from_bool(v: bool) -> Self {
        v
    }
}
impl From<ArrayD<bool>> for TensorData {
    fn from(a: ArrayD<bool>) -> Self {
        TensorData::Bool(a)
    }
}
impl From<ndarray::Array1<bool>> for TensorData {
    fn from(a: ndarray::Array1<bool>) -> Self {
        TensorData::Bool(a.into_dyn())
    }
}
impl From<ndarray::Array2<bool>> for TensorData {
    fn from(a: ndarray::Array2<bool>) -> Self {
        TensorData::Bool(a.into_dyn())
    }
}
impl TryFrom<TensorData> for ArrayD<bool> {
    type Error = IrError;
    fn try_from(d: TensorData) -> Result<Self, IrError> {
        let found = d.dtype();
        bool::unwrap(d).map_err(|_| IrError::DType(format!("cannot convert a {found} tensor into an array of bool")))
    }
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F64(_) => DType::Float64,
            TensorData::F32(_) => DType::Float32,
            TensorData::I64(_) => DType::Int64,
            TensorData::I32(_) => DType::Int32,
            TensorData::Bool(_) => DType::Bool,
            TensorData::I16(_) => DType::Int16,
            TensorData::I8(_) => DType::Int8,
            TensorData::U64(_) => DType::UInt64,
            TensorData::U32(_) => DType::UInt32,
            TensorData::U16(_) => DType::UInt16,
            TensorData::U8(_) => DType::UInt8,
        }
    }
    pub fn shape(&self) -> &[usize] {
        with_tensor!(self, a => a.shape())
    }
    pub fn len(&self) -> usize {
        with_tensor!(self, a => a.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().itemsize()
    }
    /// A zero-filled array of `dtype`.
    pub fn zeros(dtype: DType, shape: &[usize]) -> TensorData {
        with_dtype!(dtype, T => T::wrap(ArrayD::from_elem(IxDyn(shape), T::default())))
    }
    /// Convert every element to `dtype` (numpy `astype`, C casting rules).
    pub fn cast(&self, dtype: DType) -> TensorData {
        if self.dtype() == dtype {
            return self.clone();
        }
        fn conv<S: Element, T: Element>(a: &ArrayD<S>) -> TensorData {
            let out = if T::DTYPE == DType::Bool {
                a.mapv(|v| T::from_bool(v.to_bool()))
            } else if T::DTYPE.is_float() || S::DTYPE.is_float() {
                a.mapv(|v| T::from_f64(v.to_f64()))
            } else {
                a.mapv(|v| T::from_i64(v.to_i64()))
            };
            T::wrap(out)
        }
        with_tensor!(self, a => with_dtype!(dtype, T => conv::<_, T>(a)))
    }
    /// The values as f64, in logical (C) order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_tensor!(self, a => a.iter().map(|v| v.to_f64()).collect())
    }
}

impl TensorData {
    /// The block `ranges` (half-open, one per axis), copied into a standard-layout array.
    pub fn slice_ranges(&self, ranges: &[(usize, usize)]) -> TensorData {
        map_tensor!(self, a => a
            .slice_each_axis(|ax| ndarray::Slice::from(ranges[ax.axis.index()].0..ranges[ax.axis.index()].1))
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_from_checks_dtype() {
        let d = TensorData::from(ndarray::arr1(&[1.0f64, 2.0]));
        let err = ArrayD::<i64>::try_from(d.clone()).unwrap_err();
        assert!(err.to_string().contains("float64"), "{err}");
        let a = ArrayD::<f64>::try_from(d).unwrap();
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn cast_truncates_like_numpy() {
        let d = TensorData::from(ndarray::arr1(&[1.7f64, -2.5, 0.0]));
        assert_eq!(d.cast(DType::Int32), TensorData::from(ndarray::arr1(&[1i32, -2, 0])));
        assert_eq!(d.cast(DType::Bool), TensorData::from(ndarray::arr1(&[true, true, false])));
    }
}
