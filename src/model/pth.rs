//! A restricted reader for PyTorch zip checkpoints (`torch.save` ≥ 1.6).
//!
//! # Format
//!
//! `torch.save(obj, f)` writes a zip archive (entries *stored*, never
//! compressed) with a single top folder whose name varies (`archive/`,
//! `checkpoint/`, `espnet_checkpoint/`, …):
//!
//! * `<folder>/data.pkl` — the object graph, pickled with protocol 2.
//!   Tensors appear as calls `torch._utils._rebuild_tensor_v2(storage,
//!   storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
//! * `<folder>/data/<key>` — one raw little-endian record per tensor
//!   *storage*. The pickle refers to it through a persistent id (opcode
//!   `BINPERSID`) `('storage', torch.FloatStorage, '<key>', '<location>',
//!   numel)`. Several tensors may view one storage (e.g. tied or sliced
//!   parameters); each record is read once and shared.
//! * `<folder>/byteorder` (optional) — `little` or `big`; only `little` is accepted.
//! * `<folder>/version`, `<folder>/.data/serialization_id` — ignored.
//!
//! # Security model
//!
//! A pickle is a program: its `GLOBAL`/`STACK_GLOBAL` opcodes name arbitrary
//! Python callables and `REDUCE` calls them, which is how malicious
//! checkpoints run `os.system`. This module is *not* a Python interpreter. It
//! decodes the opcodes into plain data ([`Value`]) and resolves every global
//! against a fixed allow-list (`collections.OrderedDict`, the
//! `torch._utils._rebuild_*` tensor constructors, torch storage and dtype
//! names, and a few inert builtins such as `set`). Any other global is
//! rejected *the moment it is read*, before anything could use it, with
//! [`CheckpointError::ForbiddenGlobal`] naming it. `REDUCE`, `NEWOBJ` and
//! `BUILD` on allow-listed names are interpreted by the code below, which
//! only builds data; nothing named in a file is ever executed.
//!
//! Resource use is bounded: the pickle may be at most [`MAX_PICKLE_BYTES`],
//! a storage at most [`MAX_STORAGE_BYTES`], the stack, memo and object count
//! are capped, nesting depth is limited, tensor extents are checked against
//! their storage before any data is touched, and allocation sizes never come
//! from a file's claims alone. Malformed input yields an error, never a panic.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use crate::model::state_dict::{CheckpointError, TensorF32};

/// Largest accepted `data.pkl` (64 MiB).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// Largest accepted single tensor storage (4 GiB).
pub const MAX_STORAGE_BYTES: u64 = 4 << 30;
/// Most values the pickle stack may hold at once.
pub const MAX_STACK: usize = 1 << 20;
/// Most memo entries.
pub const MAX_MEMO: usize = 1 << 22;
/// Most containers/tensors a pickle may create.
pub const MAX_OBJECTS: usize = 1 << 23;
/// Deepest container nesting in the result.
pub const MAX_DEPTH: usize = 256;
/// Most nodes in the resulting [`Value`] tree (shared objects count once per reference).
pub const MAX_VALUE_NODES: usize = 1 << 23;
/// Most dimensions of a tensor.
pub const MAX_DIMS: usize = 64;
/// A tensor may have more elements than its storage (stride-0 broadcast views)
/// only up to this many elements.
pub const MAX_BROADCAST_ELEMENTS: u64 = 1 << 20;

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
    source: Arc<str>,
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

/// A decoded pickle value. Only data — never anything callable.
#[derive(Debug, Clone)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` that fits in 64 bits.
    Int(i64),
    /// Larger Python `int`: little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(String),
    /// Python `bytes`.
    Bytes(Vec<u8>),
    /// Python `list`.
    List(Vec<Value>),
    /// Python `tuple` (also `torch.Size`).
    Tuple(Vec<Value>),
    /// `dict` / `OrderedDict`, in insertion order (later duplicate keys replace earlier ones).
    Dict(Vec<(Value, Value)>),
    /// `set` / `frozenset`, in pickle order.
    Set(Vec<Value>),
    /// A reference to an allow-listed global that was not called (e.g. `torch.float32`).
    Global {
        /// Python module.
        module: String,
        /// Attribute name.
        name: String,
    },
    /// A bare tensor storage.
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
}

impl Value {
    /// Short description of the kind of value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::BigInt(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Dict(_) => "a dict",
            Value::Set(_) => "a set",
            Value::Global { .. } => "a type reference",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    /// Look up a string key when `self` is a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The tensor, when `self` is one.
    pub fn as_tensor(&self) -> Option<&TensorRef> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

/// Read and decode a PyTorch zip checkpoint from disk.
pub fn read_pth(path: impl AsRef<Path>) -> Result<Value, CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| CheckpointError::Io {
        path: name.clone(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| CheckpointError::Io {
            path: name.clone(),
            source,
        })?
        .len();
    read_pth_from(std::io::BufReader::new(file), len, &name)
}

/// Decode a PyTorch zip checkpoint held in memory; `name_for_errors` names it in messages.
pub fn read_pth_bytes(bytes: &[u8], name_for_errors: &str) -> Result<Value, CheckpointError> {
    read_pth_from(
        std::io::Cursor::new(bytes),
        bytes.len() as u64,
        name_for_errors,
    )
}

fn zip_err(name: &str, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Zip {
        path: name.to_string(),
        detail: e.to_string(),
    }
}

/// Read one stored zip entry, bounding the allocation by the archive size.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    entry: &str,
    limit: u64,
    what: &str,
    archive_len: u64,
    name: &str,
) -> Result<Option<Vec<u8>>, CheckpointError> {
    let mut f = match zip.by_name(entry) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(zip::result::ZipError::UnsupportedArchive(msg)) if msg.contains("ompression") => {
            return Err(CheckpointError::CompressedEntry {
                path: name.into(),
                entry: entry.into(),
                method: "unsupported method".into(),
            });
        }
        Err(e) => return Err(zip_err(name, e)),
    };
    if f.compression() != zip::CompressionMethod::Stored {
        return Err(CheckpointError::CompressedEntry {
            path: name.into(),
            entry: entry.into(),
            method: format!("{:?}", f.compression()),
        });
    }
    let size = f.size();
    if size > limit {
        return Err(CheckpointError::LimitExceeded {
            path: name.into(),
            what: format!("{what} ({size} bytes)"),
            limit: format!("{limit} bytes"),
        });
    }
    if size > archive_len {
        return Err(CheckpointError::Truncated {
            path: name.into(),
            what: what.into(),
            expected: size,
            actual: archive_len,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    (&mut f)
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|e| zip_err(name, format!("{what}: {e}")))?;
    if (buf.len() as u64) < size {
        return Err(CheckpointError::Truncated {
            path: name.into(),
            what: what.into(),
            expected: size,
            actual: buf.len() as u64,
        });
    }
    Ok(Some(buf))
}

/// Largest distance of the zip end-of-central-directory record from the end of the file (its
/// 22 bytes plus a comment of at most 65 535 bytes).
const EOCD_SEARCH: u64 = 22 + 65_535;

/// Whether the last [`EOCD_SEARCH`] bytes hold a zip end-of-central-directory signature. Without
/// one the zip reader would scan the whole file for it (minutes for a multi-GB truncated
/// download), so the file is refused before it is opened.
fn has_zip_directory<R: Read + Seek>(reader: &mut R, len: u64) -> std::io::Result<bool> {
    use std::io::SeekFrom;
    let start = len.saturating_sub(EOCD_SEARCH);
    reader.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    reader.by_ref().take(len - start).read_to_end(&mut tail)?;
    reader.seek(SeekFrom::Start(0))?;
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
}

fn read_pth_from<R: Read + Seek>(
    mut reader: R,
    archive_len: u64,
    name: &str,
) -> Result<Value, CheckpointError> {
    let has_directory =
        has_zip_directory(&mut reader, archive_len).map_err(|source| CheckpointError::Io {
            path: name.into(),
            source,
        })?;
    if !has_directory {
        return Err(CheckpointError::NotACheckpoint {
            path: name.into(),
            detail: "it starts like a zip (a torch.save checkpoint) but has no zip directory at \
                     its end: the file is truncated, e.g. an interrupted download"
                .into(),
        });
    }
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| match e {
        zip::result::ZipError::InvalidArchive(_) | zip::result::ZipError::Io(_) => {
            CheckpointError::NotACheckpoint {
                path: name.into(),
                detail: format!(
                    "not a readable zip archive ({e}); expected a torch.save checkpoint"
                ),
            }
        }
        other => zip_err(name, other),
    })?;
    // Locate `<folder>/data.pkl` (one folder level, any name; or at the root).
    let mut prefixes: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.strip_suffix("data.pkl"))
        .filter(|p| p.is_empty() || (p.ends_with('/') && p.matches('/').count() == 1))
        .map(str::to_string)
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let prefix = match prefixes.len() {
        1 => prefixes.remove(0),
        0 => {
            return Err(CheckpointError::NotACheckpoint {
                path: name.into(),
                detail: "the zip archive has no `<folder>/data.pkl`, so it was not written by torch.save".into(),
            });
        }
        _ => {
            return Err(zip_err(
                name,
                format!(
                    "several pickles found ({})",
                    prefixes.join("data.pkl, ") + "data.pkl"
                ),
            ));
        }
    };
    if let Some(order) = read_entry(
        &mut zip,
        &format!("{prefix}byteorder"),
        64,
        "byteorder record",
        archive_len,
        name,
    )? {
        let found = String::from_utf8_lossy(&order).trim().to_string();
        if found != "little" {
            return Err(CheckpointError::ByteOrder {
                path: name.into(),
                found,
            });
        }
    }
    let pickle = read_entry(
        &mut zip,
        &format!("{prefix}data.pkl"),
        MAX_PICKLE_BYTES,
        "data.pkl",
        archive_len,
        name,
    )?
    .ok_or_else(|| zip_err(name, "data.pkl vanished"))?;
    let mut load = |key: &str, min_bytes: u64| -> Result<Arc<Vec<u8>>, CheckpointError> {
        let record = format!("{prefix}data/{key}");
        if min_bytes > MAX_STORAGE_BYTES {
            return Err(CheckpointError::LimitExceeded {
                path: name.into(),
                what: format!("tensor storage `{key}` ({min_bytes} bytes)"),
                limit: format!("{MAX_STORAGE_BYTES} bytes"),
            });
        }
        let what = format!("tensor storage `{record}`");
        let data = read_entry(
            &mut zip,
            &record,
            MAX_STORAGE_BYTES,
            &what,
            archive_len,
            name,
        )?
        .ok_or_else(|| CheckpointError::MissingRecord {
            path: name.into(),
            record: record.clone(),
        })?;
        if (data.len() as u64) < min_bytes {
            return Err(CheckpointError::Truncated {
                path: name.into(),
                what,
                expected: min_bytes,
                actual: data.len() as u64,
            });
        }
        Ok(Arc::new(data))
    };
    unpickle(&pickle, name, &mut load)
}

/// Callback that returns the bytes of storage record `key`, which must hold at least `min_bytes`.
pub type RecordLoader<'a> = dyn FnMut(&str, u64) -> Result<Arc<Vec<u8>>, CheckpointError> + 'a;

/// Decode a torch pickle whose storages are supplied by `load_record`.
///
/// This is the interpreter behind [`read_pth`]; it is public so that the
/// pickle layer can be tested and fuzzed without a zip container. Each
/// storage key is requested at most once.
pub fn unpickle(
    pickle: &[u8],
    name: &str,
    load_record: &mut RecordLoader<'_>,
) -> Result<Value, CheckpointError> {
    if pickle.len() as u64 > MAX_PICKLE_BYTES {
        return Err(CheckpointError::LimitExceeded {
            path: name.into(),
            what: format!("data.pkl ({} bytes)", pickle.len()),
            limit: format!("{MAX_PICKLE_BYTES} bytes"),
        });
    }
    let mut m = Machine {
        data: pickle,
        pos: 0,
        op_pos: 0,
        name: Arc::from(name),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objs: Vec::new(),
        storages: HashMap::new(),
        load_record,
    };
    let top = m.run()?;
    let mut budget = MAX_VALUE_NODES;
    m.export(&top, 0, &mut budget)
}

// ---------------------------------------------------------------------------
// Interpreter internals
// ---------------------------------------------------------------------------

/// Allow-listed globals. Anything not representable here is rejected when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.FloatStorage` etc.
    StorageType(DType),
    /// `torch.float32` etc.
    Dtype(DType),
    /// `torch.Tensor`, `torch.nn.parameter.Parameter` (only as a `_rebuild_from_type_v2` argument).
    TensorType(&'static str),
    TorchSize,
    TorchDevice,
    CodecsEncode,
    Set,
    FrozenSet,
}

impl Global {
    fn path(self) -> (String, String) {
        let (m, n): (&str, String) = match self {
            Global::OrderedDict => ("collections", "OrderedDict".into()),
            Global::RebuildTensorV2 => ("torch._utils", "_rebuild_tensor_v2".into()),
            Global::RebuildTensorV3 => ("torch._utils", "_rebuild_tensor_v3".into()),
            Global::RebuildParameter => ("torch._utils", "_rebuild_parameter".into()),
            Global::RebuildParameterWithState => {
                ("torch._utils", "_rebuild_parameter_with_state".into())
            }
            Global::RebuildFromTypeV2 => ("torch._tensor", "_rebuild_from_type_v2".into()),
            Global::StorageType(d) => ("torch", storage_class_name(d).into()),
            Global::Dtype(d) => ("torch", d.name().into()),
            Global::TensorType(n) => ("torch", n.into()),
            Global::TorchSize => ("torch", "Size".into()),
            Global::TorchDevice => ("torch", "device".into()),
            Global::CodecsEncode => ("_codecs", "encode".into()),
            Global::Set => ("builtins", "set".into()),
            Global::FrozenSet => ("builtins", "frozenset".into()),
        };
        (m.to_string(), n)
    }
}

fn storage_class_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "FloatStorage",
        DType::F64 => "DoubleStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::I16 => "ShortStorage",
        DType::I8 => "CharStorage",
        DType::U8 => "ByteStorage",
        DType::Bool => "BoolStorage",
        DType::C64 => "ComplexFloatStorage",
        DType::C128 => "ComplexDoubleStorage",
    }
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    // Python 2 names written by protocol-2 pickles from Python 3.
    let module = match module {
        "__builtin__" => "builtins",
        other => other,
    };
    let storage = |n: &str| -> Option<DType> {
        Some(match n {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" | "UntypedStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            "ComplexFloatStorage" => DType::C64,
            "ComplexDoubleStorage" => DType::C128,
            _ => return None,
        })
    };
    let dtype = |n: &str| -> Option<DType> {
        Some(match n {
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            "complex64" | "cfloat" => DType::C64,
            "complex128" | "cdouble" => DType::C128,
            _ => return None,
        })
    };
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") => Global::TensorType("Tensor"),
        ("torch.nn.parameter", "Parameter") => Global::TensorType("nn.parameter.Parameter"),
        ("torch", "Size") => Global::TorchSize,
        ("torch", "device") => Global::TorchDevice,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("builtins", "set") => Global::Set,
        ("builtins", "frozenset") => Global::FrozenSet,
        ("torch" | "torch.cuda" | "torch.storage", n) if storage(n).is_some() => {
            Global::StorageType(storage(n)?)
        }
        ("torch", n) if dtype(n).is_some() => Global::Dtype(dtype(n)?),
        _ => return None,
    })
}

/// Hashable dict keys, for replacing duplicates in O(1).
#[derive(PartialEq, Eq, Hash)]
enum KeyRepr {
    Str(Arc<str>),
    Int(i64),
    Bool(bool),
    None,
}

#[derive(Default)]
struct DictObj {
    items: Vec<(P, P)>,
    index: HashMap<KeyRepr, usize>,
}

enum Obj {
    List(Vec<P>),
    Tuple(Vec<P>),
    Dict(DictObj),
    Set(Vec<P>),
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// A stack value. Containers live in `Machine::objs` and are referenced by
/// index, so mutation through the memo is visible everywhere and dropping
/// never recurses.
#[derive(Clone)]
enum P {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Arc<Vec<u8>>),
    Float(f64),
    Str(Arc<str>),
    Bytes(Arc<Vec<u8>>),
    Global(Global),
    Obj(usize),
}

impl P {
    fn kind(&self) -> &'static str {
        match self {
            P::None => "None",
            P::Bool(_) => "bool",
            P::Int(_) | P::BigInt(_) => "int",
            P::Float(_) => "float",
            P::Str(_) => "str",
            P::Bytes(_) => "bytes",
            P::Global(_) => "global",
            P::Obj(_) => "object",
        }
    }
}

struct Machine<'a, 'l> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    name: Arc<str>,
    stack: Vec<P>,
    marks: Vec<usize>,
    memo: HashMap<u32, P>,
    objs: Vec<Obj>,
    storages: HashMap<String, Arc<Vec<u8>>>,
    load_record: &'l mut RecordLoader<'l>,
}

type R<T> = Result<T, CheckpointError>;

impl<'a> Machine<'a, '_> {
    fn err(&self, detail: impl Into<String>) -> CheckpointError {
        CheckpointError::Pickle {
            path: self.name.to_string(),
            offset: self.op_pos,
            detail: detail.into(),
        }
    }

    fn limit(&self, what: &str, limit: usize) -> CheckpointError {
        CheckpointError::LimitExceeded {
            path: self.name.to_string(),
            what: what.into(),
            limit: limit.to_string(),
        }
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| CheckpointError::Truncated {
                path: self.name.to_string(),
                what: format!("data.pkl (opcode at byte {})", self.op_pos),
                expected: (self.pos as u64).saturating_add(n as u64),
                actual: self.data.len() as u64,
            })?;
        let data = self.data;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    fn len_u64(&mut self) -> R<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("length does not fit in memory"))
    }

    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .take(256)
            .position(|b| *b == b'\n')
            .ok_or_else(|| self.err("unterminated GLOBAL name"))?;
        let s = std::str::from_utf8(&rest[..nl])
            .map_err(|_| self.err("GLOBAL name is not UTF-8"))?
            .to_string();
        self.pos += nl + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> R<P> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(P::Str(Arc::from(s))),
            Err(_) => Err(self.err("string is not valid UTF-8")),
        }
    }

    fn push(&mut self, p: P) -> R<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.limit("pickle stack depth", MAX_STACK));
        }
        self.stack.push(p);
        Ok(())
    }

    fn pop(&mut self) -> R<P> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn top(&self) -> R<&P> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.last().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> R<Vec<P>> {
        let m = self.marks.pop().ok_or_else(|| self.err("MARK expected"))?;
        if m > self.stack.len() {
            return Err(self.err("corrupt MARK"));
        }
        Ok(self.stack.split_off(m))
    }

    fn alloc(&mut self, o: Obj) -> R<P> {
        if self.objs.len() >= MAX_OBJECTS {
            return Err(self.limit("number of objects in the pickle", MAX_OBJECTS));
        }
        self.objs.push(o);
        Ok(P::Obj(self.objs.len() - 1))
    }

    fn memo_put(&mut self, idx: u32) -> R<()> {
        let v = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return Err(self.limit("pickle memo size", MAX_MEMO));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {idx} is not defined")))?;
        self.push(v)
    }

    fn obj(&self, p: &P) -> Option<&Obj> {
        match p {
            P::Obj(i) => self.objs.get(*i),
            _ => None,
        }
    }

    fn obj_index(&self, p: &P, what: &str) -> R<usize> {
        match p {
            P::Obj(i) if *i < self.objs.len() => Ok(*i),
            other => Err(self.err(format!(
                "{what} expects a container, found {}",
                other.kind()
            ))),
        }
    }

    fn key_repr(p: &P) -> Option<KeyRepr> {
        match p {
            P::Str(s) => Some(KeyRepr::Str(s.clone())),
            P::Int(i) => Some(KeyRepr::Int(*i)),
            P::Bool(b) => Some(KeyRepr::Bool(*b)),
            P::None => Some(KeyRepr::None),
            _ => None,
        }
    }

    fn set_items(&mut self, target: &P, pairs: Vec<P>) -> R<()> {
        if !pairs.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS needs key/value pairs"));
        }
        let i = self.obj_index(target, "SETITEM")?;
        let Some(Obj::Dict(d)) = self.objs.get_mut(i) else {
            return Err(self.err("SETITEM on something that is not a dict"));
        };
        let mut it = pairs.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            match Self::key_repr(&k) {
                Some(repr) => match d.index.get(&repr) {
                    Some(&slot) => d.items[slot].1 = v,
                    None => {
                        d.index.insert(repr, d.items.len());
                        d.items.push((k, v));
                    }
                },
                None => d.items.push((k, v)),
            }
        }
        Ok(())
    }

    fn append_items(&mut self, target: &P, items: Vec<P>) -> R<()> {
        let i = self.obj_index(target, "APPEND")?;
        match self.objs.get_mut(i) {
            Some(Obj::List(l)) | Some(Obj::Set(l)) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.err("APPEND on something that is not a list")),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> R<()> {
        match resolve_global(module, name) {
            Some(g) => self.push(P::Global(g)),
            None => Err(CheckpointError::ForbiddenGlobal {
                path: self.name.to_string(),
                module: if module == "__builtin__" {
                    "builtins".into()
                } else {
                    module.into()
                },
                name: name.into(),
            }),
        }
    }

    fn run(&mut self) -> R<P> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!("unknown pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME length: framing is irrelevant for in-memory data.
                }
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return Err(self.limit("pickle MARK depth", MAX_STACK));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(P::None)?,
                0x88 => self.push(P::Bool(true))?,
                0x89 => self.push(P::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(P::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(P::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(P::Int(v as i64))?
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = self.u32()? as i32;
                        usize::try_from(n).map_err(|_| self.err("negative LONG4 length"))?
                    };
                    let b = self.take(n)?.to_vec();
                    let p = if n == 0 {
                        P::Int(0)
                    } else if n <= 8 {
                        let neg = b[n - 1] & 0x80 != 0;
                        let mut full = [if neg { 0xff } else { 0 }; 8];
                        full[..n].copy_from_slice(&b);
                        P::Int(i64::from_le_bytes(full))
                    } else {
                        P::BigInt(Arc::new(b))
                    };
                    self.push(p)?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.push(P::Float(v))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(s)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(s)?
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let s = self.utf8(n)?;
                    self.push(s)?
                }
                b'U' | b'T' => {
                    // Python 2 str: decode as latin-1.
                    let n = if op == b'U' {
                        self.u8()? as usize
                    } else {
                        let n = self.u32()? as i32;
                        usize::try_from(n).map_err(|_| self.err("negative BINSTRING length"))?
                    };
                    let s: String = self.take(n)?.iter().map(|&b| b as char).collect();
                    self.push(P::Str(Arc::from(s)))?
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(P::Bytes(Arc::new(b)))?
                }
                b')' => {
                    let p = self.alloc(Obj::Tuple(Vec::new()))?;
                    self.push(p)?
                }
                b']' => {
                    let p = self.alloc(Obj::List(Vec::new()))?;
                    self.push(p)?
                }
                b'}' => {
                    let p = self.alloc(Obj::Dict(DictObj::default()))?;
                    self.push(p)?
                }
                0x8f => {
                    let p = self.alloc(Obj::Set(Vec::new()))?;
                    self.push(p)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let p = self.alloc(Obj::Tuple(items))?;
                    self.push(p)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let p = self.alloc(Obj::Tuple(items))?;
                    self.push(p)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let p = self.alloc(Obj::List(items))?;
                    self.push(p)?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let p = self.alloc(Obj::Set(items))?;
                    self.push(p)?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let p = self.alloc(Obj::Dict(DictObj::default()))?;
                    self.set_items(&p, items)?;
                    self.push(p)?
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    self.append_items(&target, vec![v])?
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.append_items(&target, items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, items)?
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?
                }
                0x94 => {
                    let i =
                        u32::try_from(self.memo.len()).map_err(|_| self.err("memo overflow"))?;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?
                }
                b'i' => {
                    // INST: class named inline, called with the marked arguments.
                    let module = self.line()?;
                    let name = self.line()?;
                    if resolve_global(&module, &name).is_none() {
                        self.global(&module, &name)?;
                    }
                    return Err(CheckpointError::UnsupportedOpcode {
                        path: self.name.to_string(),
                        opcode: op,
                        offset: self.op_pos,
                    });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (P::Str(m), P::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let out = self.call(&func, &args, 0)?;
                    self.push(out)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match cls {
                        P::Global(Global::OrderedDict) => {
                            let out = self.call(&cls, &args, 0)?;
                            self.push(out)?
                        }
                        other => {
                            return Err(self.err(format!(
                                "NEWOBJ on unsupported class ({})",
                                self.describe(&other)
                            )));
                        }
                    }
                }
                b'b' => {
                    let _state = self.pop()?;
                    let target = self.top()?;
                    match self.obj(target) {
                        // OrderedDict `_metadata`, tensor/parameter attributes: irrelevant data.
                        Some(Obj::Dict(_)) | Some(Obj::Tensor(_)) | Some(Obj::List(_)) => {}
                        _ => {
                            return Err(self.err(format!(
                                "BUILD on unsupported object ({})",
                                self.describe(target)
                            )));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(&pid)?;
                    let p = self.alloc(Obj::Storage(storage))?;
                    self.push(p)?
                }
                _ => {
                    return Err(CheckpointError::UnsupportedOpcode {
                        path: self.name.to_string(),
                        opcode: op,
                        offset: self.op_pos,
                    });
                }
            }
        }
    }

    fn describe(&self, p: &P) -> String {
        match p {
            P::Global(g) => {
                let (m, n) = g.path();
                format!("`{m}.{n}`")
            }
            P::Obj(_) => match self.obj(p) {
                Some(Obj::List(_)) => "a list".into(),
                Some(Obj::Tuple(_)) => "a tuple".into(),
                Some(Obj::Dict(_)) => "a dict".into(),
                Some(Obj::Set(_)) => "a set".into(),
                Some(Obj::Storage(_)) => "a storage".into(),
                Some(Obj::Tensor(_)) => "a tensor".into(),
                None => "an object".into(),
            },
            other => other.kind().into(),
        }
    }

    fn tuple_items(&self, p: &P, what: &str) -> R<Vec<P>> {
        match self.obj(p) {
            Some(Obj::Tuple(v)) | Some(Obj::List(v)) => Ok(v.clone()),
            _ => Err(self.err(format!(
                "{what} must be a tuple, found {}",
                self.describe(p)
            ))),
        }
    }

    fn str_of(&self, p: &P, what: &str) -> R<Arc<str>> {
        match p {
            P::Str(s) => Ok(s.clone()),
            other => Err(self.err(format!(
                "{what} must be a string, found {}",
                self.describe(other)
            ))),
        }
    }

    fn usize_of(&self, p: &P, what: &str) -> R<usize> {
        match p {
            P::Int(i) => usize::try_from(*i)
                .map_err(|_| self.err(format!("{what} must be a non-negative int, found {i}"))),
            P::Bool(b) => Ok(*b as usize),
            other => Err(self.err(format!(
                "{what} must be an int, found {}",
                self.describe(other)
            ))),
        }
    }

    fn usizes(&self, p: &P, what: &str) -> R<Vec<usize>> {
        let items = self.tuple_items(p, what)?;
        if items.len() > MAX_DIMS {
            return Err(self.limit(&format!("{what} rank"), MAX_DIMS));
        }
        items.iter().map(|x| self.usize_of(x, what)).collect()
    }

    fn persistent_load(&mut self, pid: &P) -> R<StorageRef> {
        let items = self.tuple_items(pid, "persistent id")?;
        if items.len() != 5 {
            return Err(self.err(format!(
                "persistent id has {} fields, expected 5",
                items.len()
            )));
        }
        if !matches!(&items[0], P::Str(s) if &**s == "storage") {
            return Err(self.err("persistent id is not a `storage` reference"));
        }
        let dtype = match &items[1] {
            P::Global(Global::StorageType(d)) => *d,
            P::Global(Global::Dtype(d)) => *d,
            other => {
                return Err(self.err(format!(
                    "storage type must be a torch storage class, found {}",
                    self.describe(other)
                )));
            }
        };
        let key = self.str_of(&items[2], "storage key")?;
        if key.is_empty() || key.len() > 256 {
            return Err(self.err("invalid storage key"));
        }
        let location = self.str_of(&items[3], "storage location")?;
        let numel = self.usize_of(&items[4], "storage size")? as u64;
        let min_bytes = numel
            .checked_mul(dtype.size() as u64)
            .ok_or_else(|| self.err("storage size overflows"))?;
        if min_bytes > MAX_STORAGE_BYTES {
            return Err(CheckpointError::LimitExceeded {
                path: self.name.to_string(),
                what: format!("tensor storage `{key}` ({min_bytes} bytes)"),
                limit: format!("{MAX_STORAGE_BYTES} bytes"),
            });
        }
        let data = match self.storages.get(&*key) {
            Some(d) => {
                if (d.len() as u64) < min_bytes {
                    return Err(CheckpointError::Truncated {
                        path: self.name.to_string(),
                        what: format!("tensor storage `{key}`"),
                        expected: min_bytes,
                        actual: d.len() as u64,
                    });
                }
                d.clone()
            }
            None => {
                let d = (self.load_record)(&key, min_bytes)?;
                if (d.len() as u64) < min_bytes {
                    return Err(CheckpointError::Truncated {
                        path: self.name.to_string(),
                        what: format!("tensor storage `{key}`"),
                        expected: min_bytes,
                        actual: d.len() as u64,
                    });
                }
                self.storages.insert(key.to_string(), d.clone());
                d
            }
        };
        Ok(StorageRef {
            key: key.to_string(),
            dtype,
            location: location.to_string(),
            numel,
            data,
        })
    }

    /// Interpret a call of an allow-listed global. Builds data only.
    fn call(&mut self, func: &P, args: &P, depth: usize) -> R<P> {
        let g = match func {
            P::Global(g) => *g,
            other => {
                return Err(self.err(format!(
                    "REDUCE on {}, which is not callable",
                    self.describe(other)
                )));
            }
        };
        let args = self.tuple_items(args, "call arguments")?;
        match g {
            Global::OrderedDict => {
                let d = self.alloc(Obj::Dict(DictObj::default()))?;
                if let Some(init) = args.first() {
                    let pairs = self.tuple_items(init, "OrderedDict initialiser")?;
                    let mut flat = Vec::with_capacity(pairs.len() * 2);
                    for pair in &pairs {
                        let kv = self.tuple_items(pair, "OrderedDict item")?;
                        if kv.len() != 2 {
                            return Err(self.err("OrderedDict item must be a (key, value) pair"));
                        }
                        flat.extend(kv);
                    }
                    self.set_items(&d, flat)?;
                }
                Ok(d)
            }
            Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                let v3 = g == Global::RebuildTensorV3;
                let min = if v3 { 7 } else { 6 };
                if args.len() < min || args.len() > min + 1 {
                    return Err(self.err(format!(
                        "tensor rebuild expects {min} or {} arguments, got {}",
                        min + 1,
                        args.len()
                    )));
                }
                let storage = match self.obj(&args[0]) {
                    Some(Obj::Storage(s)) => s.clone(),
                    _ => {
                        return Err(self.err(format!(
                            "tensor storage argument is {}",
                            self.describe(&args[0])
                        )));
                    }
                };
                let dtype = if v3 {
                    match &args[6] {
                        P::Global(Global::Dtype(d)) => *d,
                        other => {
                            return Err(self.err(format!(
                                "tensor dtype argument is {}",
                                self.describe(other)
                            )));
                        }
                    }
                } else {
                    storage.dtype
                };
                let offset = self.usize_of(&args[1], "storage offset")?;
                let shape = self.usizes(&args[2], "tensor size")?;
                let stride = self.usizes(&args[3], "tensor stride")?;
                let requires_grad = matches!(args[4], P::Bool(true));
                let t = self.make_tensor(storage, dtype, offset, shape, stride, requires_grad)?;
                self.alloc(Obj::Tensor(t))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let tensor = args
                    .first()
                    .ok_or_else(|| self.err("_rebuild_parameter without data"))?;
                match self.obj(tensor) {
                    Some(Obj::Tensor(t)) => {
                        let mut t = t.clone();
                        t.requires_grad = matches!(args.get(1), Some(P::Bool(true)));
                        self.alloc(Obj::Tensor(t))
                    }
                    _ => Err(self.err(format!("parameter data is {}", self.describe(tensor)))),
                }
            }
            Global::RebuildFromTypeV2 => {
                // (func, new_type, args, state): apply the inner rebuild function.
                if args.len() != 4 || depth > 2 {
                    return Err(self.err("malformed _rebuild_from_type_v2 call"));
                }
                if !matches!(args[1], P::Global(Global::TensorType(_))) {
                    return Err(self.err(format!(
                        "tensor subclass {} is not supported",
                        self.describe(&args[1])
                    )));
                }
                let (f, a) = (args[0].clone(), args[2].clone());
                self.call(&f, &a, depth + 1)
            }
            Global::TorchSize => {
                let items = match args.first() {
                    Some(p) => self.tuple_items(p, "torch.Size argument")?,
                    None => Vec::new(),
                };
                self.alloc(Obj::Tuple(items))
            }
            Global::TorchDevice => {
                let mut s = match args.first() {
                    Some(P::Str(s)) => s.to_string(),
                    _ => return Err(self.err("torch.device expects a string")),
                };
                if let Some(P::Int(i)) = args.get(1) {
                    s = format!("{s}:{i}");
                }
                Ok(P::Str(Arc::from(s)))
            }
            Global::CodecsEncode => {
                let s = match args.first() {
                    Some(P::Str(s)) => s.clone(),
                    _ => return Err(self.err("_codecs.encode expects a string")),
                };
                let enc = match args.get(1) {
                    Some(P::Str(e)) => e.to_ascii_lowercase(),
                    None => "utf-8".into(),
                    _ => return Err(self.err("_codecs.encode encoding must be a string")),
                };
                let bytes = match enc.as_str() {
                    "latin1" | "latin-1" | "iso-8859-1" => s
                        .chars()
                        .map(|c| {
                            u8::try_from(c as u32)
                                .map_err(|_| self.err("character outside latin-1"))
                        })
                        .collect::<R<Vec<u8>>>()?,
                    "utf-8" | "utf8" => s.as_bytes().to_vec(),
                    other => return Err(self.err(format!("unsupported encoding `{other}`"))),
                };
                Ok(P::Bytes(Arc::new(bytes)))
            }
            Global::Set | Global::FrozenSet => {
                let items = match args.first() {
                    Some(p) => self.tuple_items(p, "set argument")?,
                    None => Vec::new(),
                };
                self.alloc(Obj::Set(items))
            }
            Global::StorageType(_) | Global::Dtype(_) | Global::TensorType(_) => Err(self.err(
                format!("{} cannot be called in a checkpoint", self.describe(func)),
            )),
        }
    }

    fn make_tensor(
        &self,
        storage: StorageRef,
        dtype: DType,
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
        requires_grad: bool,
    ) -> R<TensorRef> {
        let bad = |detail: String| CheckpointError::InvalidTensor {
            path: self.name.to_string(),
            detail: format!("{detail} (storage `{}`)", storage.key),
        };
        if shape.len() != stride.len() {
            return Err(bad(format!(
                "size {shape:?} and stride {stride:?} have different ranks"
            )));
        }
        let storage_bytes = storage.numel.saturating_mul(storage.dtype.size() as u64);
        let capacity = storage_bytes / dtype.size() as u64;
        let mut numel: u64 = 1;
        for &d in &shape {
            numel = numel
                .checked_mul(d as u64)
                .ok_or_else(|| bad(format!("size {shape:?} overflows")))?;
        }
        if numel > 0 {
            let mut last: u64 = offset as u64;
            for (&d, &s) in shape.iter().zip(&stride) {
                let span = (d as u64 - 1)
                    .checked_mul(s as u64)
                    .ok_or_else(|| bad("stride overflows".into()))?;
                last = last
                    .checked_add(span)
                    .ok_or_else(|| bad("stride overflows".into()))?;
            }
            if last >= capacity {
                return Err(bad(format!(
                    "view (offset {offset}, size {shape:?}, stride {stride:?}) reaches element {last} \
                     but the storage holds {capacity}"
                )));
            }
            if numel > capacity.max(MAX_BROADCAST_ELEMENTS) {
                return Err(CheckpointError::LimitExceeded {
                    path: self.name.to_string(),
                    what: format!("tensor with {numel} elements viewing a storage of {capacity}"),
                    limit: format!("{MAX_BROADCAST_ELEMENTS} elements for broadcast views"),
                });
            }
            usize::try_from(numel).map_err(|_| bad("too many elements".into()))?;
        }
        Ok(TensorRef {
            storage,
            dtype,
            offset,
            shape,
            stride,
            requires_grad,
            source: self.name.clone(),
        })
    }

    /// Convert the object graph into a [`Value`] tree (bounded depth and size).
    fn export(&self, p: &P, depth: usize, budget: &mut usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err(self.limit("container nesting depth (or a reference cycle)", MAX_DEPTH));
        }
        if *budget == 0 {
            return Err(self.limit("number of values in the checkpoint", MAX_VALUE_NODES));
        }
        *budget -= 1;
        Ok(match p {
            P::None => Value::None,
            P::Bool(b) => Value::Bool(*b),
            P::Int(i) => Value::Int(*i),
            P::BigInt(b) => Value::BigInt(b.to_vec()),
            P::Float(f) => Value::Float(*f),
            P::Str(s) => Value::Str(s.to_string()),
            P::Bytes(b) => Value::Bytes(b.to_vec()),
            P::Global(g) => {
                let (module, name) = g.path();
                Value::Global { module, name }
            }
            P::Obj(_) => match self.obj(p) {
                Some(Obj::List(v)) => Value::List(self.export_all(v, depth, budget)?),
                Some(Obj::Tuple(v)) => Value::Tuple(self.export_all(v, depth, budget)?),
                Some(Obj::Set(v)) => Value::Set(self.export_all(v, depth, budget)?),
                Some(Obj::Dict(d)) => {
                    let mut out = Vec::with_capacity(d.items.len());
                    for (k, v) in &d.items {
                        out.push((
                            self.export(k, depth + 1, budget)?,
                            self.export(v, depth + 1, budget)?,
                        ));
                    }
                    Value::Dict(out)
                }
                Some(Obj::Storage(s)) => Value::Storage(s.clone()),
                Some(Obj::Tensor(t)) => Value::Tensor(t.clone()),
                None => return Err(self.err("dangling object reference")),
            },
        })
    }

    fn export_all(&self, v: &[P], depth: usize, budget: &mut usize) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(v.len().min(*budget));
        for x in v {
            out.push(self.export(x, depth + 1, budget)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel)
    }

    /// Build a torch-style zip (stored entries) around a pickle and records.
    fn make_pth(folder: &str, pickle: &[u8], records: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zw.start_file(format!("{folder}/data.pkl"), opts).unwrap();
        zw.write_all(pickle).unwrap();
        zw.start_file(format!("{folder}/byteorder"), opts).unwrap();
        zw.write_all(b"little").unwrap();
        for (k, v) in records {
            zw.start_file(format!("{folder}/data/{k}"), opts).unwrap();
            zw.write_all(v).unwrap();
        }
        zw.finish().unwrap().into_inner()
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Pickle for `_rebuild_tensor_v2(storage('0', FloatStorage, numel), offset, size, stride, False, OrderedDict())`.
    fn tensor_pickle(numel: u8, offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x06\x00\x00\x00cuda:0K");
        p.push(numel);
        p.extend(b"tQK");
        p.push(offset);
        p.push(b'(');
        for s in size {
            p.extend([b'K', *s]);
        }
        p.extend(b"t(");
        for s in stride {
            p.extend([b'K', *s]);
        }
        p.extend(b"t\x89ccollections\nOrderedDict\n)RtRr");
        p.extend(0u32.to_le_bytes()); // LONG_BINPUT 0 (tensor)
        p
    }

    fn ordered_dict_with(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut p = b"\x80\x02ccollections\nOrderedDict\n)R(".to_vec();
        for (k, v) in entries {
            p.push(b'X');
            p.extend((k.len() as u32).to_le_bytes());
            p.extend(k.as_bytes());
            p.extend(v);
        }
        p.extend(b"u.");
        p
    }

    fn expect_forbidden(bytes: &[u8], module: &str, name: &str) {
        let e = read_pth_bytes(bytes, "evil.pth").unwrap_err();
        match &e {
            CheckpointError::ForbiddenGlobal {
                module: m,
                name: n,
                path,
            } => {
                assert_eq!(
                    (m.as_str(), n.as_str(), path.as_str()),
                    (module, name, "evil.pth")
                );
            }
            other => panic!("expected ForbiddenGlobal for {module}.{name}, got {other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("`{module}.{name}`")) && msg.contains("evil.pth"),
            "{msg}"
        );
        assert!(msg.contains("never runs code"), "{msg}");
    }

    #[test]
    fn fixtures_parse_to_values() {
        let v = read_pth(fixture("tflocoformer/tiny-separator/espnet_checkpoint.pth")).unwrap();
        let Value::Dict(items) = &v else {
            panic!("top is {}", v.kind())
        };
        assert_eq!(items.len(), 62);
        let t = v
            .get("separator.conv.0.weight")
            .and_then(Value::as_tensor)
            .unwrap();
        assert_eq!(t.shape, vec![32, 2, 3, 3]);
        assert_eq!(t.storage.location, "cpu");
    }

    #[test]
    fn mss_optimizer_state_parses() {
        let v = read_pth(fixture("tflocoformer/mss-tiny/checkpoint.pth")).unwrap();
        assert!(matches!(v.get("epoch"), Some(Value::Int(41))));
        assert!(matches!(v.get("loss"), Some(Value::Float(f)) if *f == -3.5));
        let opt = v.get("optimizer_state_dict").unwrap();
        let Some(Value::Dict(state)) = opt.get("state") else {
            panic!("no optimizer state")
        };
        assert!(!state.is_empty());
        let (k0, s0) = &state[0];
        assert!(matches!(k0, Value::Int(0)));
        let step = s0.get("step").and_then(Value::as_tensor).unwrap();
        assert!(step.shape.is_empty());
        assert_eq!(step.to_f32().unwrap().data.len(), 1);
        assert!(s0.get("exp_avg").and_then(Value::as_tensor).is_some());
        let Some(Value::List(groups)) = opt.get("param_groups") else {
            panic!("no param_groups")
        };
        let g = &groups[0];
        assert!(matches!(g.get("betas"), Some(Value::Tuple(b)) if b.len() == 2));
        assert!(matches!(g.get("foreach"), Some(Value::None)));
        assert!(matches!(g.get("amsgrad"), Some(Value::Bool(false))));
        assert!(matches!(g.get("params"), Some(Value::List(p)) if !p.is_empty()));
        // rope.freqs of blocks 0 and 1 share one storage record.
        let msd = v.get("model_state_dict").unwrap();
        let a = msd
            .get("blocks.0.freq_path.attn.rope.freqs")
            .and_then(Value::as_tensor)
            .unwrap();
        let b = msd
            .get("blocks.1.freq_path.attn.rope.freqs")
            .and_then(Value::as_tensor)
            .unwrap();
        assert_eq!(a.storage.key, b.storage.key);
        assert!(Arc::ptr_eq(&a.storage.data, &b.storage.data));
    }

    #[test]
    fn strided_offset_and_shared_views() {
        let data = f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        // Transposed 2x3 view of a 3x2 block starting at offset 1: t[i][j] = s[1 + i + 2j].
        let mut p = b"\x80\x02}(X\x01\x00\x00\x00a".to_vec();
        p.extend(tensor_pickle(8, 1, &[2, 3], &[1, 2]));
        p.extend(b"X\x01\x00\x00\x00b");
        // Second view of the same storage key: scalar at offset 7.
        p.extend(tensor_pickle(8, 7, &[], &[]));
        p.extend(b"X\x01\x00\x00\x00c");
        // Broadcast: shape [2, 2], stride [0, 1] from offset 4.
        p.extend(tensor_pickle(8, 4, &[2, 2], &[0, 1]));
        p.extend(b"u.");
        let mut loads = 0;
        let mut load = |k: &str, _min: u64| {
            assert_eq!(k, "0");
            loads += 1;
            Ok::<_, CheckpointError>(Arc::new(data.clone()))
        };
        let v = unpickle(&p, "mem", &mut load).unwrap();
        assert_eq!(loads, 1, "shared storage must be read once");
        let get = |k: &str| {
            v.get(k)
                .and_then(Value::as_tensor)
                .unwrap()
                .to_f32()
                .unwrap()
        };
        assert_eq!(get("a").data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        assert_eq!(get("a").shape, vec![2, 3]);
        assert_eq!(get("b").data, vec![7.0]);
        assert_eq!(get("c").data, vec![4.0, 5.0, 4.0, 5.0]);
    }

    #[test]
    fn out_of_bounds_views_and_short_records_are_errors() {
        let mut p = b"\x80\x02".to_vec();
        p.extend(tensor_pickle(8, 6, &[3], &[1]));
        p.push(b'.');
        let mut load = |_: &str, _: u64| Ok::<_, CheckpointError>(Arc::new(f32_bytes(&[0.0; 8])));
        let e = unpickle(&p, "mem", &mut load).unwrap_err();
        assert!(matches!(e, CheckpointError::InvalidTensor { .. }), "{e}");

        let mut p = b"\x80\x02".to_vec();
        p.extend(tensor_pickle(8, 0, &[8], &[1]));
        p.push(b'.');
        let bytes = make_pth("short", &p, &[("0", f32_bytes(&[0.0; 5]))]);
        let e = read_pth_bytes(&bytes, "short.pth").unwrap_err();
        assert!(matches!(e, CheckpointError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("short.pth"));

        let bytes = make_pth("missing", &p, &[]);
        let e = read_pth_bytes(&bytes, "m.pth").unwrap_err();
        assert!(matches!(e, CheckpointError::MissingRecord { .. }), "{e}");

        let ok = make_pth("whatever_name", &p, &[("0", f32_bytes(&[2.0; 8]))]);
        let v = read_pth_bytes(&ok, "ok.pth").unwrap();
        assert_eq!(v.as_tensor().unwrap().to_f32().unwrap().data, vec![2.0; 8]);
    }

    #[test]
    fn big_endian_and_compressed_are_rejected() {
        let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zw.start_file("a/data.pkl", opts).unwrap();
        zw.write_all(b"\x80\x02N.").unwrap();
        zw.start_file("a/byteorder", opts).unwrap();
        zw.write_all(b"big").unwrap();
        let bytes = zw.finish().unwrap().into_inner();
        let e = read_pth_bytes(&bytes, "be.pth").unwrap_err();
        assert!(matches!(e, CheckpointError::ByteOrder { .. }), "{e}");

        // Same archive with data.pkl marked as deflated (method 8) in both headers.
        let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zw.start_file("a/data.pkl", opts).unwrap();
        zw.write_all(b"\x80\x02N.").unwrap();
        let mut bytes = zw.finish().unwrap().into_inner();
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let at = bytes.windows(4).position(|w| w == sig).unwrap();
            let field = at + if sig[2] == 3 { 8 } else { 10 };
            bytes[field] = 8;
        }
        let e = read_pth_bytes(&bytes, "deflated.pth").unwrap_err();
        assert!(matches!(e, CheckpointError::CompressedEntry { .. }), "{e}");
    }

    // ---------------- security ----------------

    #[test]
    fn os_system_reduce_is_refused_and_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let cmd = format!("touch {}", marker.display());
        let mut p = b"\x80\x02cos\nsystem\nq\x00X".to_vec();
        p.extend((cmd.len() as u32).to_le_bytes());
        p.extend(cmd.as_bytes());
        p.extend(b"\x85R.");
        let bytes = make_pth("archive", &p, &[]);
        expect_forbidden(&bytes, "os", "system");
        let path = dir.path().join("evil.pth");
        std::fs::write(&path, &bytes).unwrap();
        let e = crate::model::state_dict::load_state_dict(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::ForbiddenGlobal { .. }), "{e}");
        assert!(!marker.exists(), "marker file must not be created");
    }

    #[test]
    fn other_dangerous_globals_are_refused() {
        for (module, name) in [
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("subprocess", "Popen"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("copyreg", "_reconstructor"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_qtensor"),
        ] {
            let mut p = format!("\x7f\x02c{module}\n{name}\n").into_bytes();
            p[0] = 0x80;
            p.extend(b"X\x02\x00\x00\x00idq\x01\x85R.");
            expect_forbidden(&make_pth("archive", &p, &[]), module, name);
        }
        // Python-2 module name as written by protocol 2.
        let p = b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.";
        expect_forbidden(&make_pth("archive", p, &[]), "builtins", "eval");
        // STACK_GLOBAL variant (protocol 4).
        let p = b"\x80\x04\x95\x30\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
        expect_forbidden(&make_pth("archive", p, &[]), "os", "system");
        // INST opcode (protocol 0).
        let p = b"(X\x02\x00\x00\x00idios\nsystem\n.";
        expect_forbidden(&make_pth("archive", p, &[]), "os", "system");
    }

    #[test]
    fn forbidden_global_nested_in_valid_state_dict() {
        let mut p = ordered_dict_with(&[
            ("separator.good.weight", tensor_pickle(4, 0, &[4], &[1])),
            (
                "separator.evil",
                b"cwebbrowser\nopen\nX\x01\x00\x00\x00x\x85R".to_vec(),
            ),
        ]);
        let bytes = make_pth("espnet_checkpoint", &p, &[("0", f32_bytes(&[1.0; 4]))]);
        expect_forbidden(&bytes, "webbrowser", "open");
        // Sanity: without the evil entry the same file loads.
        p = ordered_dict_with(&[("separator.good.weight", tensor_pickle(4, 0, &[4], &[1]))]);
        let bytes = make_pth("espnet_checkpoint", &p, &[("0", f32_bytes(&[1.0; 4]))]);
        let sd = crate::model::state_dict::load_state_dict_bytes(&bytes, "ok.pth").unwrap();
        assert_eq!(sd["good.weight"].data, vec![1.0; 4]);
    }

    #[test]
    fn hostile_fixture_files_are_refused() {
        let dir = fixture("hostile");
        let marker = Path::new("/tmp/locosep-hostile-marker");
        let marker_existed = marker.exists();
        let expected = [
            ("posix_system.pth", "posix", "system"),
            ("builtins_eval.pth", "builtins", "eval"),
            ("subprocess_popen.pth", "subprocess", "Popen"),
            ("stack_global_os_system.pth", "os", "system"),
            ("nested_in_state_dict.pth", "os", "system"),
        ];
        for (file, module, name) in expected {
            let path = dir.join(file);
            let e = read_pth(&path).unwrap_err();
            match &e {
                CheckpointError::ForbiddenGlobal {
                    module: m, name: n, ..
                } => {
                    assert_eq!((m.as_str(), n.as_str()), (module, name), "{file}");
                }
                other => panic!("{file}: expected ForbiddenGlobal, got {other}"),
            }
            assert!(e.to_string().contains(file), "{e}");
        }
        assert!(
            marker_existed || !marker.exists(),
            "a hostile fixture ran code"
        );
    }

    #[test]
    fn resource_caps() {
        // Deep nesting (list inside list ...) must be an error, not a stack overflow.
        let mut p = b"\x80\x02".to_vec();
        p.extend(vec![b']'; 100_000]);
        p.extend(vec![b'a'; 99_999]);
        p.push(b'.');
        let e = unpickle(&p, "deep", &mut |_, _| unreachable!()).unwrap_err();
        assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
        // A list that contains itself.
        let e = unpickle(
            b"\x80\x02]q\x00h\x00a.",
            "cycle",
            &mut |_, _| unreachable!(),
        )
        .unwrap_err();
        assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
        // Exponential sharing (billion laughs).
        let mut p = b"\x80\x02]".to_vec();
        for _ in 0..64 {
            p.extend(b"q\x00h\x00h\x00\x86");
        }
        p.push(b'.');
        let e = unpickle(&p, "laughs", &mut |_, _| unreachable!()).unwrap_err();
        assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
        // A storage claiming more than 4 GiB.
        let p = b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu\x8a\x05\x00\x00\x00\x00\x01tQ.";
        let e = unpickle(p, "huge", &mut |_, _| unreachable!()).unwrap_err();
        assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
        // Broadcast view with an absurd element count.
        let mut p = b"\x80\x02".to_vec();
        p.extend(tensor_pickle(1, 0, &[255, 255, 255, 255], &[0, 0, 0, 0]));
        p.push(b'.');
        let e = unpickle(&p, "bcast", &mut |_, _| Ok(Arc::new(vec![0; 4]))).unwrap_err();
        assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
    }

    /// xorshift64* — deterministic, dependency-free randomness for the fuzz test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, src: &[u8], hot: std::ops::Range<usize>) -> Vec<u8> {
        let mut b = src.to_vec();
        for _ in 0..1 + rng.below(4) {
            let i = if rng.below(4) == 0 || hot.is_empty() {
                rng.below(b.len())
            } else {
                hot.start + rng.below(hot.len())
            };
            if i >= b.len() {
                continue;
            }
            match rng.below(5) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b[i] = rng.next() as u8,
                2 => b[i] = [0x00, 0xff, 0x7f, 0x80, b'(', b'R', b'.', b'Q', 0x8a][rng.below(9)],
                3 => {
                    b.remove(i);
                }
                _ => b.insert(i, rng.next() as u8),
            }
        }
        b
    }

    #[test]
    fn fuzz_mutations_never_panic() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut outcomes = [0usize; 2];
        for rel in [
            "tflocoformer/tiny-separator/espnet_checkpoint.pth",
            "tflocoformer/mss-tiny/checkpoint.pth",
        ] {
            let file = std::fs::read(fixture(rel)).unwrap();
            // Pickle-level: mutate data.pkl and feed the interpreter with the real records.
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&file[..])).unwrap();
            let pkl_name = zip
                .file_names()
                .find(|n| n.ends_with("/data.pkl"))
                .unwrap()
                .to_string();
            let folder = pkl_name.trim_end_matches("data.pkl").to_string();
            let mut pickle = Vec::new();
            zip.by_name(&pkl_name)
                .unwrap()
                .read_to_end(&mut pickle)
                .unwrap();
            let mut records: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).unwrap();
                if let Some(k) = f.name().strip_prefix(&format!("{folder}data/")) {
                    let k = k.to_string();
                    let mut v = Vec::new();
                    f.read_to_end(&mut v).unwrap();
                    records.insert(k, Arc::new(v));
                }
            }
            let mut loader = |k: &str, _min: u64| {
                records
                    .get(k)
                    .cloned()
                    .ok_or_else(|| CheckpointError::MissingRecord {
                        path: "fuzz".into(),
                        record: k.into(),
                    })
            };
            for _ in 0..600 {
                let m = mutate(&mut rng, &pickle, 0..pickle.len());
                outcomes[unpickle(&m, "fuzz", &mut loader).is_ok() as usize] += 1;
            }
            for _ in 0..100 {
                let cut = rng.below(pickle.len());
                outcomes[unpickle(&pickle[..cut], "fuzz", &mut loader).is_ok() as usize] += 1;
            }
            // File-level: mutate the zip container (headers and directory are the hot zone).
            let cd = file.len().saturating_sub(6000);
            for k in 0..300 {
                let hot = if k % 2 == 0 { 0..200 } else { cd..file.len() };
                let m = mutate(&mut rng, &file, hot);
                outcomes[read_pth_bytes(&m, "fuzz.pth").is_ok() as usize] += 1;
                outcomes[crate::model::state_dict::load_state_dict_bytes(&m, "fuzz.pth").is_ok()
                    as usize] += 1;
            }
            for _ in 0..100 {
                let cut = rng.below(file.len());
                outcomes[read_pth_bytes(&file[..cut], "fuzz.pth").is_ok() as usize] += 1;
            }
        }
        let total = outcomes[0] + outcomes[1];
        eprintln!("fuzz: {} rejected, {} accepted", outcomes[0], outcomes[1]);
        assert!(total >= 2000, "{total}");
        assert!(outcomes[0] > 0, "mutations should mostly be rejected");
    }
}
