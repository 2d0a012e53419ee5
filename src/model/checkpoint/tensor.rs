//! Tensors as checkpoints describe them: [`TensorF32`] (dense `f32`, what the model loads),
//! [`DType`] and the half-precision conversions, and the strided [`TensorRef`] view into a
//! shared [`StorageRef`] that a PyTorch pickle builds.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::CheckpointError;

/// A dense, row-major `f32` tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorF32 {
    /// Size of every dimension, outermost first. Empty for a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major (C) order.
    pub data: Vec<f32>,
}

impl TensorF32 {
    /// Number of elements implied by `shape` (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Model weights by parameter name (e.g. `blocks.0.freq_path.attn.qkv.weight`).
pub type StateDict = BTreeMap<String, TensorF32>;

/// Element type of a tensor storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (`torch.float32`).
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer (also untyped byte storage).
    U8,
    /// Boolean (one byte).
    Bool,
    /// complex64 — recognised, not convertible to f32.
    C64,
    /// complex128 — recognised, not convertible to f32.
    C128,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::C64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::C128 => 16,
        }
    }

    /// PyTorch name of the dtype (`float32`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
            DType::C64 => "complex64",
            DType::C128 => "complex128",
        }
    }
}

/// Convert IEEE 754 half-precision bits to `f32`.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal: normalise.
            let mut e: i32 = -1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            let m = m & 0x3ff;
            let exp32 = (127 - 15 + 1 + e) as u32;
            sign | (exp32 << 23) | (m << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// Convert bfloat16 bits to `f32`.
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// One tensor storage record: raw little-endian bytes shared by every tensor viewing it.
#[derive(Clone)]
pub struct StorageRef {
    /// Record key (`<folder>/data/<key>`).
    pub key: String,
    /// Element type declared by the storage class (`torch.FloatStorage` → F32).
    pub dtype: DType,
    /// Device the storage lived on when saved (`cpu`, `cuda:0`, …); informational.
    pub location: String,
    /// Number of elements declared in the pickle.
    pub numel: u64,
    /// The record bytes (at least `numel * dtype.size()` long).
    pub data: Arc<Vec<u8>>,
}

impl std::fmt::Debug for StorageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageRef")
            .field("key", &self.key)
            .field("dtype", &self.dtype)
            .field("location", &self.location)
            .field("numel", &self.numel)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// A tensor as described by the checkpoint: a strided view into a storage.
///
/// Extents are validated against the storage when the tensor is read, so
/// [`TensorRef::to_f32`] only fails for dtypes that have no `f32` conversion.
#[derive(Debug, Clone)]
pub struct TensorRef {
    /// The storage viewed.
    pub storage: StorageRef,
    /// Element type of the tensor (normally the storage's).
    pub dtype: DType,
    /// Offset of the first element, in elements of `dtype`.
    pub offset: usize,
    /// Size of every dimension.
    pub shape: Vec<usize>,
    /// Stride of every dimension, in elements.
    pub stride: Vec<usize>,
    /// `requires_grad` flag as saved.
    pub requires_grad: bool,
    pub(crate) source: Arc<str>,
}

impl TensorRef {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Materialise as a dense row-major `f32` tensor (gathering strided views).
    ///
    /// Floating-point, integer and bool tensors are converted; complex tensors
    /// give [`CheckpointError::UnsupportedDtype`].
    pub fn to_f32(&self) -> Result<TensorF32, CheckpointError> {
        let size = self.dtype.size();
        let bytes = self.storage.data.as_slice();
        let decode: fn(&[u8]) -> f32 = match self.dtype {
            DType::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::F64 => {
                |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            DType::F16 => |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            DType::BF16 => |b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            DType::I64 => {
                |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            DType::I32 => |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            DType::I16 => |b| i16::from_le_bytes([b[0], b[1]]) as f32,
            DType::I8 => |b| b[0] as i8 as f32,
            DType::U8 => |b| b[0] as f32,
            DType::Bool => |b| if b[0] != 0 { 1.0 } else { 0.0 },
            DType::C64 | DType::C128 => {
                return Err(CheckpointError::UnsupportedDtype {
                    path: self.source.to_string(),
                    tensor: format!("storage {}", self.storage.key),
                    dtype: self.dtype.name().into(),
                });
            }
        };
        let n = self.numel();
        let get = |idx: usize| -> Result<f32, CheckpointError> {
            let start = idx
                .checked_mul(size)
                .ok_or_else(|| self.invalid("element offset overflows"))?;
            let b = bytes
                .get(start..start.saturating_add(size))
                .ok_or_else(|| self.invalid("element outside its storage"))?;
            Ok(decode(b))
        };
        let mut data = Vec::with_capacity(n);
        if n == 0 {
            return Ok(TensorF32 {
                shape: self.shape.clone(),
                data,
            });
        }
        // Row-major contiguous fast path.
        let mut expect = 1usize;
        let mut contiguous = true;
        for (d, s) in self.shape.iter().zip(&self.stride).rev() {
            if *d != 1 && *s != expect {
                contiguous = false;
                break;
            }
            expect = expect.saturating_mul(*d);
        }
        if contiguous {
            let start = self
                .offset
                .checked_mul(size)
                .ok_or_else(|| self.invalid("offset overflows"))?;
            let end = n
                .checked_mul(size)
                .and_then(|l| l.checked_add(start))
                .ok_or_else(|| self.invalid("size overflows"))?;
            let slice = bytes
                .get(start..end)
                .ok_or_else(|| self.invalid("tensor extends past its storage"))?;
            data.extend(slice.chunks_exact(size).map(decode));
        } else {
            let mut index = vec![0usize; self.shape.len()];
            let mut pos = self.offset;
            for _ in 0..n {
                data.push(get(pos)?);
                // Advance the multi-index (last dimension fastest).
                for d in (0..self.shape.len()).rev() {
                    index[d] += 1;
                    pos = pos.wrapping_add(self.stride[d]);
                    if index[d] < self.shape[d] {
                        break;
                    }
                    pos = pos.wrapping_sub(self.stride[d].wrapping_mul(self.shape[d]));
                    index[d] = 0;
                }
            }
        }
        Ok(TensorF32 {
            shape: self.shape.clone(),
            data,
        })
    }

    fn invalid(&self, detail: &str) -> CheckpointError {
        CheckpointError::InvalidTensor {
            path: self.source.to_string(),
            detail: format!("{detail} (storage {})", self.storage.key),
        }
    }
}
