//! Model weights as plain `f32` tensors, and the file formats they come from.
//!
//! locosep reads model weights from two kinds of files:
//!
//! * **safetensors** (`*.safetensors`): an 8-byte little-endian header length,
//!   a JSON header describing every tensor (dtype, shape, byte range) and the
//!   raw tensor bytes. It is a pure data format and is the preferred format.
//!   `F32` tensors are read as-is; `F16`, `BF16` and `F64` are converted to
//!   `f32`.
//! * **PyTorch checkpoints** (`*.pth`, `*.pt`, `*.ckpt` written by
//!   `torch.save` ≥ 1.6): a zip archive holding a pickle (`<folder>/data.pkl`)
//!   plus one raw record per tensor storage. Pickle is a small stack-machine
//!   language that can call arbitrary Python functions, so these files are read
//!   by the restricted interpreter in [`crate::model::pth`], which only
//!   understands tensors and plain containers and refuses any other reference
//!   (see that module for the security model).
//!
//! [`load_state_dict`] detects the format from the file *content* (zip magic
//! `PK` → PyTorch, otherwise safetensors), picks the model weights out of a
//! training checkpoint (`model_state_dict`, `state_dict` or `model` entries),
//! and strips a `separator.` / `module.` prefix shared by every key.
//!
//! All failures are reported as [`CheckpointError`], whose messages name the
//! file and are meant to be shown to end users as they are.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::model::pth::{self, Value};

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

/// Everything that can go wrong while reading or writing model weights.
///
/// Every variant names the file involved; the `Display` text is written for
/// end users.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File being read.
        path: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File being written.
        path: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Refused to overwrite an existing file.
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The existing file.
        path: String,
    },
    /// The content is neither a PyTorch zip checkpoint nor safetensors.
    #[error("{path} is not a model checkpoint locosep can read: {detail}")]
    NotACheckpoint {
        /// File being read.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The zip container of a `.pth` file is damaged or unusual.
    #[error("{path} is not a valid PyTorch zip checkpoint: {detail}")]
    Zip {
        /// File being read.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A zip entry uses compression; `torch.save` never compresses.
    #[error(
        "{path}: entry `{entry}` is compressed ({method}); PyTorch checkpoints store entries \
         uncompressed, so this file was repacked by another tool — extract and re-save it with torch.save"
    )]
    CompressedEntry {
        /// File being read.
        path: String,
        /// Zip entry name.
        entry: String,
        /// Compression method found.
        method: String,
    },
    /// A storage record referenced by the pickle is absent from the archive.
    #[error(
        "{path}: the checkpoint refers to tensor storage `{record}`, which is missing from the archive"
    )]
    MissingRecord {
        /// File being read.
        path: String,
        /// Zip entry name that was expected.
        record: String,
    },
    /// The checkpoint was written on a big-endian machine.
    #[error(
        "{path}: tensor data is stored in `{found}` byte order; only little-endian checkpoints are supported"
    )]
    ByteOrder {
        /// File being read.
        path: String,
        /// Content of the `byteorder` record.
        found: String,
    },
    /// The pickle uses an opcode this reader does not implement.
    #[error(
        "{path}: unsupported pickle opcode 0x{opcode:02x} at byte {offset} of data.pkl \
         (locosep reads checkpoints written by torch.save with the default pickle protocol)"
    )]
    UnsupportedOpcode {
        /// File being read.
        path: String,
        /// The opcode byte.
        opcode: u8,
        /// Offset inside the pickle.
        offset: usize,
    },
    /// The pickle references a Python global outside the allow-list.
    #[error(
        "refusing to load {path}: the checkpoint references `{module}.{name}`, which is not a tensor \
         or plain container; locosep never runs code from a checkpoint"
    )]
    ForbiddenGlobal {
        /// File being read.
        path: String,
        /// Python module of the global.
        module: String,
        /// Attribute name of the global.
        name: String,
    },
    /// The pickle is structurally invalid.
    #[error("{path}: malformed checkpoint pickle at byte {offset} of data.pkl: {detail}")]
    Pickle {
        /// File being read.
        path: String,
        /// Offset inside the pickle.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// Data ended before the declared size.
    #[error("{path} is truncated: {what} needs {expected} bytes but only {actual} are present")]
    Truncated {
        /// File being read.
        path: String,
        /// The item that is short.
        what: String,
        /// Bytes required.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A tensor uses a data type that cannot be converted to `f32`.
    #[error("{path}: tensor `{tensor}` has data type {dtype}, which locosep cannot convert to f32")]
    UnsupportedDtype {
        /// File being read.
        path: String,
        /// Tensor name (or storage key).
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor's shape/stride/offset does not fit its storage.
    #[error("{path}: invalid tensor: {detail}")]
    InvalidTensor {
        /// File being read.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A safety cap was hit (the file is larger or deeper than any sane checkpoint).
    #[error("{path}: {what} exceeds the limit of {limit}; refusing to load it")]
    LimitExceeded {
        /// File being read.
        path: String,
        /// The quantity that is too large.
        what: String,
        /// The limit, human-readable.
        limit: String,
    },
    /// The checkpoint holds no recognisable model weights.
    #[error("{path}: no model weights found: {detail}")]
    NoStateDict {
        /// File being read.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The safetensors file is invalid.
    #[error("{path} is not a valid safetensors file: {detail}")]
    Safetensors {
        /// File being read or written.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Read every tensor of a safetensors file as `f32`.
///
/// `F32` tensors are copied; `F16`, `BF16` and `F64` tensors are converted.
/// Any other dtype is an [`CheckpointError::UnsupportedDtype`] error.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<StateDict, CheckpointError> {
    let path = path.as_ref();
    check_safetensors_size(path)?;
    let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
        path: display(path),
        source,
    })?;
    safetensors_from_bytes(&bytes, &display(path))
}

/// Largest safetensors header read before the size check (the format's own limit is 100 MB).
const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// Reads only the header of a safetensors file and checks that the tensors it declares cover
/// the file exactly, so that a damaged or hostile file is refused before its whole content is
/// read into memory.
fn check_safetensors_size(path: &Path) -> Result<(), CheckpointError> {
    let name = display(path);
    let io = |source| CheckpointError::Io {
        path: name.clone(),
        source,
    };
    let bad = |detail: String| CheckpointError::Safetensors {
        path: name.clone(),
        detail,
    };
    let mut f = fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| bad("the file is shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_SAFETENSORS_HEADER || 8 + n > len {
        return Err(bad(format!(
            "the header claims {n} bytes but the file has {len}: damaged or truncated"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let end = header
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "__metadata__")
                .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    if 8 + n + end != len {
        return Err(bad(format!(
            "the header describes {} bytes of tensors but the file holds {}: damaged or \
             truncated",
            end,
            len - 8 - n
        )));
    }
    Ok(())
}

/// Parse safetensors content held in memory; `name` is used in error messages.
pub fn safetensors_from_bytes(bytes: &[u8], name: &str) -> Result<StateDict, CheckpointError> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Safetensors {
        path: name.to_string(),
        detail: e.to_string(),
    })?;
    let mut out = StateDict::new();
    for (key, view) in st.iter() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| pth::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| pth::bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => {
                return Err(CheckpointError::UnsupportedDtype {
                    path: name.to_string(),
                    tensor: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let shape = view.shape().to_vec();
        if data.len() != shape.iter().product::<usize>() {
            return Err(CheckpointError::Safetensors {
                path: name.to_string(),
                detail: format!(
                    "tensor `{key}` has {} values for shape {shape:?}",
                    data.len()
                ),
            });
        }
        out.insert(key.to_string(), TensorF32 { shape, data });
    }
    Ok(out)
}

/// Little-endian `f32` bytes of a tensor, for the safetensors writer.
struct F32View<'a> {
    shape: &'a [usize],
    bytes: Vec<u8>,
}

impl safetensors::View for &F32View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Write `tensors` as an `F32` safetensors file.
///
/// The file is first written to `.<name>.<pid>.locosep-tmp` in the same
/// directory, flushed, and then moved into place, so readers never see a
/// half-written file. An existing file at `path` is replaced only when
/// `overwrite` is true; otherwise [`CheckpointError::AlreadyExists`] is
/// returned and nothing is changed. `metadata` becomes the `__metadata__`
/// header entry.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &StateDict,
    metadata: Option<HashMap<String, String>>,
    overwrite: bool,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let name = display(path);
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(CheckpointError::AlreadyExists { path: name });
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (key, t) in tensors {
        if t.data.len() != t.numel() {
            return Err(CheckpointError::Safetensors {
                path: name,
                detail: format!(
                    "tensor `{key}` has {} values for shape {:?}",
                    t.data.len(),
                    t.shape
                ),
            });
        }
        let mut bytes = Vec::with_capacity(t.data.len() * 4);
        for v in &t.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        views.push((
            key.as_str(),
            F32View {
                shape: &t.shape,
                bytes,
            },
        ));
    }
    let encoded = safetensors::tensor::serialize(views.iter().map(|(k, v)| (*k, v)), metadata)
        .map_err(|e| CheckpointError::Safetensors {
            path: name.clone(),
            detail: e.to_string(),
        })?;
    drop(views);

    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{file_name}.{}.locosep-tmp", std::process::id()));
    let write_err = |source| CheckpointError::Write {
        path: name.clone(),
        source,
    };
    let result = (|| -> Result<(), CheckpointError> {
        let mut f = fs::File::create(&tmp).map_err(write_err)?;
        f.write_all(&encoded).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        drop(f);
        if overwrite {
            fs::rename(&tmp, path).map_err(write_err)?;
        } else {
            // hard_link fails atomically if the destination appeared meanwhile.
            match fs::hard_link(&tmp, path) {
                Ok(()) => {
                    let _ = fs::remove_file(&tmp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(CheckpointError::AlreadyExists { path: name.clone() });
                }
                Err(_) => {
                    // File systems without hard links: best-effort check, then rename.
                    if fs::symlink_metadata(path).is_ok() {
                        return Err(CheckpointError::AlreadyExists { path: name.clone() });
                    }
                    fs::rename(&tmp, path).map_err(write_err)?;
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Prefixes removed from every key when *all* keys of the state dict carry them: DataParallel /
/// AveragedModel (`module.`), ESPnet (`separator.`), mixit-mss's task and wrapper
/// (`model.model.`, stripped one `model.` at a time).
const STRIP_PREFIXES: [&str; 3] = ["module.", "separator.", "model."];

/// Entries of a training checkpoint that are not weights: mixit-mss's STFT window buffers
/// (`model.stft.0.window`, `model.istft.window`, `stft.0.window`) and AveragedModel's counter.
fn is_buffer_to_ignore(key: &str) -> bool {
    key.ends_with("stft.0.window")
        || key.ends_with("istft.window")
        || key == "n_averaged"
        || key.ends_with(".n_averaged")
}

/// Entries of a training checkpoint that hold the model weights, in order of preference.
const MODEL_KEYS: [&str; 3] = ["model_state_dict", "state_dict", "model"];

/// Load model weights from a PyTorch `.pth` checkpoint or a safetensors file.
///
/// The format is detected from the content, not the extension. For PyTorch
/// checkpoints the model weights are taken from the `model_state_dict`,
/// `state_dict` or `model` entry of a training checkpoint when present
/// (otherwise the top-level dict itself); non-tensor entries are ignored, and
/// a `module.` / `separator.` prefix is removed when every key carries it.
pub fn load_state_dict(path: impl AsRef<Path>) -> Result<StateDict, CheckpointError> {
    let path = path.as_ref();
    let name = display(path);
    let mut head = [0u8; 16];
    let n = {
        let mut f = fs::File::open(path).map_err(|source| CheckpointError::Io {
            path: name.clone(),
            source,
        })?;
        read_up_to(&mut f, &mut head).map_err(|source| CheckpointError::Io {
            path: name.clone(),
            source,
        })?
    };
    match sniff(&head[..n]) {
        Format::Pth => {
            let value = pth::read_pth(path)?;
            state_dict_from_value(&value, &name)
        }
        Format::SafeTensors => read_safetensors(path),
        Format::Unknown(detail) => Err(CheckpointError::NotACheckpoint { path: name, detail }),
    }
}

/// Like [`load_state_dict`], for file content already in memory.
pub fn load_state_dict_bytes(bytes: &[u8], name: &str) -> Result<StateDict, CheckpointError> {
    match sniff(bytes) {
        Format::Pth => state_dict_from_value(&pth::read_pth_bytes(bytes, name)?, name),
        Format::SafeTensors => safetensors_from_bytes(bytes, name),
        Format::Unknown(detail) => Err(CheckpointError::NotACheckpoint {
            path: name.to_string(),
            detail,
        }),
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum Format {
    Pth,
    SafeTensors,
    Unknown(String),
}

fn sniff(head: &[u8]) -> Format {
    if head.starts_with(b"PK") {
        return Format::Pth;
    }
    if head.len() >= 9 && head[8] == b'{' {
        return Format::SafeTensors;
    }
    if head.first() == Some(&0x80) {
        return Format::Unknown(
            "it looks like a legacy (pre-1.6, non-zip) torch.save file; load it in PyTorch and \
             re-save it with a current torch.save, or export safetensors"
                .into(),
        );
    }
    if head.is_empty() {
        return Format::Unknown("the file is empty".into());
    }
    Format::Unknown(
        "expected a PyTorch zip checkpoint (starting with `PK`) or a safetensors file".into(),
    )
}

fn dict_get<'a>(items: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    items.iter().find_map(|(k, v)| match k {
        Value::Str(s) if s == key => Some(v),
        _ => None,
    })
}

/// Pick the model weights out of an unpickled checkpoint (see [`load_state_dict`]).
///
/// `name` is used in error messages.
pub fn state_dict_from_value(value: &Value, name: &str) -> Result<StateDict, CheckpointError> {
    let mut items = match value {
        Value::Dict(items) => items.as_slice(),
        Value::Tensor(_) => {
            return Err(CheckpointError::NoStateDict {
                path: name.into(),
                detail: "the file holds a single tensor, not a dict of named weights".into(),
            });
        }
        other => {
            return Err(CheckpointError::NoStateDict {
                path: name.into(),
                detail: format!(
                    "the file holds {}, not a dict of named weights",
                    other.kind()
                ),
            });
        }
    };
    // Descend into training-checkpoint wrappers (possibly nested, e.g. {"model": {"state_dict": ...}}).
    for _ in 0..4 {
        match MODEL_KEYS.iter().find_map(|k| match dict_get(items, k) {
            Some(Value::Dict(inner)) => Some(inner.as_slice()),
            _ => None,
        }) {
            Some(inner) => items = inner,
            None => break,
        }
    }
    let mut named: Vec<(String, &pth::TensorRef)> = Vec::new();
    for (k, v) in items {
        if let (Value::Str(key), Value::Tensor(t)) = (k, v) {
            if !is_buffer_to_ignore(key) {
                named.push((key.clone(), t));
            }
        }
    }
    if named.is_empty() {
        let keys: Vec<String> = items
            .iter()
            .take(12)
            .map(|(k, v)| match k {
                Value::Str(s) => format!("`{s}` ({})", v.kind()),
                other => format!("{} ({})", other.kind(), v.kind()),
            })
            .collect();
        let detail = if keys.is_empty() {
            "the checkpoint dict is empty".to_string()
        } else {
            format!(
                "no tensors among the entries {}{}",
                keys.join(", "),
                if items.len() > 12 { ", …" } else { "" }
            )
        };
        return Err(CheckpointError::NoStateDict {
            path: name.into(),
            detail,
        });
    }
    loop {
        let mut stripped = false;
        for prefix in STRIP_PREFIXES {
            if named
                .iter()
                .all(|(k, _)| k.len() > prefix.len() && k.starts_with(prefix))
            {
                for (k, _) in named.iter_mut() {
                    *k = k[prefix.len()..].to_string();
                }
                stripped = true;
            }
        }
        if !stripped {
            break;
        }
    }
    let mut out = StateDict::new();
    for (key, t) in named {
        let tensor = t.to_f32().map_err(|e| match e {
            CheckpointError::UnsupportedDtype { path, dtype, .. } => {
                CheckpointError::UnsupportedDtype {
                    path,
                    tensor: key.clone(),
                    dtype,
                }
            }
            other => other,
        })?;
        out.insert(key, tensor);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tflocoformer")
            .join(rel)
    }

    fn assert_same(pth: &StateDict, st: &StateDict) {
        assert_eq!(pth.len(), st.len(), "key count");
        for (k, v) in st {
            let p = pth.get(k).unwrap_or_else(|| panic!("missing key {k}"));
            assert_eq!(p.shape, v.shape, "shape of {k}");
            assert_eq!(p.data.len(), v.data.len());
            for (a, b) in p.data.iter().zip(&v.data) {
                assert_eq!(a.to_bits(), b.to_bits(), "value of {k}");
            }
        }
    }

    #[test]
    fn tiny_separator_pth_matches_safetensors() {
        let pth = load_state_dict(fixture("tiny-separator/espnet_checkpoint.pth")).unwrap();
        let st = load_state_dict(fixture("tiny-separator/weights.safetensors")).unwrap();
        assert_eq!(st.len(), 62);
        assert!(pth.keys().all(|k| !k.starts_with("separator.")));
        assert_same(&pth, &st);
    }

    #[test]
    fn mss_tiny_pth_matches_safetensors() {
        let pth = load_state_dict(fixture("mss-tiny/checkpoint.pth")).unwrap();
        let st = read_safetensors(fixture("mss-tiny/weights.safetensors")).unwrap();
        assert_eq!(st.len(), 62);
        assert_same(&pth, &st);
        let f = &pth["blocks.1.frame_path.attn.rope.freqs"];
        assert_eq!(f.shape, vec![4]);
        assert_eq!(f.data, pth["blocks.0.frame_path.attn.rope.freqs"].data);
    }

    #[test]
    fn prefix_stripping_only_when_all_keys_carry_it() {
        let bytes = fs::read(fixture("tiny-separator/espnet_checkpoint.pth")).unwrap();
        let v = pth::read_pth_bytes(&bytes, "x.pth").unwrap();
        // Add a key without the prefix: nothing must be stripped.
        let Value::Dict(mut items) = v else {
            panic!("not a dict")
        };
        let first_tensor = items[0].1.clone();
        items.push((Value::Str("extra.weight".into()), first_tensor));
        let sd = state_dict_from_value(&Value::Dict(items.clone()), "x.pth").unwrap();
        assert!(sd.contains_key("separator.conv.0.weight"));
        assert!(sd.contains_key("extra.weight"));
        // Wrapped as a DataParallel training checkpoint: both prefixes go.
        let wrapped: Vec<(Value, Value)> = items[..items.len() - 1]
            .iter()
            .map(|(k, v)| match k {
                Value::Str(s) => (Value::Str(format!("module.{s}")), v.clone()),
                other => (other.clone(), v.clone()),
            })
            .collect();
        let top = Value::Dict(vec![
            (Value::Str("epoch".into()), Value::Int(3)),
            (Value::Str("state_dict".into()), Value::Dict(wrapped)),
        ]);
        let sd = state_dict_from_value(&top, "x.pth").unwrap();
        assert_eq!(sd.len(), 62);
        assert!(sd.contains_key("conv.0.weight"));
    }

    #[test]
    fn mixit_task_dicts_lose_their_prefixes_and_window_buffers() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/checkpoint");
        for name in ["mixit_task.pth", "lightning.ckpt"] {
            let sd = load_state_dict(corpus.join(name)).unwrap();
            let keys: Vec<&String> = sd.keys().collect();
            assert_eq!(
                keys,
                vec!["band_split_module.band_split_module.0.0.weight"],
                "{name}"
            );
        }
        // The published fixture: every key under `model.model.`, three windows dropped.
        let published = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bslocoformer/mixit-small/checkpoints/model.pth");
        let sd = load_state_dict(published).unwrap();
        assert!(
            sd.keys()
                .all(|k| !k.starts_with("model.") && !k.ends_with("window"))
        );
        assert!(sd.contains_key("blocks.0.freq_path.attn.qkv.weight"));
    }

    /// A truncated multi-GB download is refused from its tail and header alone: a `PK` file
    /// without a zip directory at its end, and a safetensors file shorter than its header says
    /// (both 2 GiB sparse files: reading them whole would take seconds and gigabytes).
    #[test]
    fn truncated_big_checkpoints_are_refused_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let pk = dir.path().join("model.pth");
        {
            let mut f = fs::File::create(&pk).unwrap();
            f.write_all(b"PK\x03\x04 a truncated torch.save").unwrap();
            f.set_len(2 << 30).unwrap();
        }
        let msg = load_state_dict(&pk).unwrap_err().to_string();
        assert!(
            msg.contains("truncated") && msg.contains("model.pth"),
            "{msg}"
        );
        let st = dir.path().join("model.safetensors");
        {
            let header =
                br#"{"w":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}"#;
            let mut f = fs::File::create(&st).unwrap();
            f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
            f.write_all(header).unwrap();
            f.set_len(2 << 30).unwrap();
        }
        let msg = load_state_dict(&st).unwrap_err().to_string();
        assert!(
            msg.contains("truncated") && msg.contains("model.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn no_tensors_is_a_clear_error() {
        let top = Value::Dict(vec![(Value::Str("epoch".into()), Value::Int(3))]);
        let e = state_dict_from_value(&top, "ckpt.pth").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("ckpt.pth") && msg.contains("epoch"), "{msg}");
    }

    #[test]
    fn safetensors_round_trip_and_overwrite_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("w.safetensors");
        let mut sd = StateDict::new();
        sd.insert(
            "a.weight".into(),
            TensorF32 {
                shape: vec![2, 3],
                data: vec![1.0, -2.5, 3.0, f32::MIN, 0.0, 7.25],
            },
        );
        sd.insert(
            "b".into(),
            TensorF32 {
                shape: vec![],
                data: vec![42.0],
            },
        );
        sd.insert(
            "empty".into(),
            TensorF32 {
                shape: vec![0, 4],
                data: vec![],
            },
        );
        let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        write_safetensors(&out, &sd, Some(meta), false).unwrap();
        assert_eq!(read_safetensors(&out).unwrap(), sd);
        assert_eq!(load_state_dict(&out).unwrap(), sd);

        let mut other = sd.clone();
        other.insert(
            "c".into(),
            TensorF32 {
                shape: vec![1],
                data: vec![1.0],
            },
        );
        let e = write_safetensors(&out, &other, None, false).unwrap_err();
        assert!(matches!(e, CheckpointError::AlreadyExists { .. }), "{e}");
        assert_eq!(
            read_safetensors(&out).unwrap(),
            sd,
            "file must be untouched"
        );
        write_safetensors(&out, &other, None, true).unwrap();
        assert_eq!(read_safetensors(&out).unwrap(), other);
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");

        let bad = TensorF32 {
            shape: vec![3],
            data: vec![1.0],
        };
        let e = write_safetensors(
            dir.path().join("bad.safetensors"),
            &[("x".to_string(), bad)].into(),
            None,
            false,
        )
        .unwrap_err();
        assert!(matches!(e, CheckpointError::Safetensors { .. }));
    }

    #[test]
    fn safetensors_half_types_convert() {
        use safetensors::{Dtype, tensor::TensorView};
        let f16: Vec<u8> = [0x3c00u16, 0xc000, 0x7bff]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bf16: Vec<u8> = [0x3f80u16, 0xc000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f64b: Vec<u8> = [0.5f64, -1.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let views = vec![
            ("h", TensorView::new(Dtype::F16, vec![3], &f16).unwrap()),
            ("b", TensorView::new(Dtype::BF16, vec![2], &bf16).unwrap()),
            ("d", TensorView::new(Dtype::F64, vec![1, 2], &f64b).unwrap()),
        ];
        let bytes = safetensors::tensor::serialize(views, None).unwrap();
        let sd = load_state_dict_bytes(&bytes, "mem").unwrap();
        assert_eq!(sd["h"].data, vec![1.0, -2.0, 65504.0]);
        assert_eq!(sd["b"].data, vec![1.0, -2.0]);
        assert_eq!(sd["d"].data, vec![0.5, -1.25]);
        assert_eq!(sd["d"].shape, vec![1, 2]);
    }

    #[test]
    fn unknown_content_is_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.pth");
        fs::write(&p, b"hello world, not a checkpoint").unwrap();
        let msg = load_state_dict(&p).unwrap_err().to_string();
        assert!(msg.contains("notes.pth"), "{msg}");
        let legacy = dir.path().join("old.pth");
        fs::write(
            &legacy,
            [
                0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
            ],
        )
        .unwrap();
        let msg = load_state_dict(&legacy).unwrap_err().to_string();
        assert!(msg.contains("legacy"), "{msg}");
        let empty = dir.path().join("empty.safetensors");
        fs::write(&empty, b"").unwrap();
        assert!(load_state_dict(&empty).is_err());
    }
}
