//! The restricted unpickler: decodes a torch `data.pkl` into plain data ([`Value`]).
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
//! are capped, nesting depth is limited, the memory of the decoded tree (where every
//! shared reference becomes a copy) is counted before it is built and capped at
//! [`MAX_VALUE_BYTES`], tensor extents are checked against
//! their storage before any data is touched, and allocation sizes never come
//!
//! The interpreter lives in `machine` (opcodes, stack, memo), `calls` (the allow-listed
//! callables: tensor rebuilds, `OrderedDict`, …), `globals` (the allow-list) and `export`
//! (the conversion of the object graph into a [`Value`] tree, under a memory budget).

use std::collections::HashMap;
use std::sync::Arc;

use super::CheckpointError;
use super::tensor::{StorageRef, TensorRef};

mod calls;
mod export;
mod globals;
mod machine;
#[cfg(test)]
mod tests;

use machine::Machine;

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
/// Most memory the decoded [`Value`] tree may take (256 MiB), counting every value's own size
/// and the text, bytes and tensor metadata it holds, once per reference: a container the
/// pickle shares through its memo is copied for every reference in the tree, so a small
/// pickle could otherwise expand to gigabytes. Checked before the tree is built.
pub const MAX_VALUE_BYTES: u64 = 256 << 20;
/// Most memory the interpreter's containers may hold while the pickle runs (256 MiB):
/// building a container from a memoised one copies its items.
pub const MAX_HELD_BYTES: u64 = 256 << 20;
/// Most dimensions of a tensor.
pub const MAX_DIMS: usize = 64;
/// A tensor may have more elements than its storage (stride-0 broadcast views)
/// only up to this many elements.
pub const MAX_BROADCAST_ELEMENTS: u64 = 1 << 20;

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

/// Callback that returns the bytes of storage record `key`, which must hold at least `min_bytes`.
pub type RecordLoader<'a> = dyn FnMut(&str, u64) -> Result<Arc<Vec<u8>>, CheckpointError> + 'a;

/// Decode a torch pickle whose storages are supplied by `load_record`.
///
/// This is the interpreter behind [`super::pth::read_pth`]; it is public so that the
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
        held: 0,
    };
    let top = m.run()?;
    m.export_checked(&top)
}
