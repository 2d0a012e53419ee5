//! The pickle stack machine: opcodes, stack, marks and memo. Containers live in an arena
//! (`Machine::objs`) and are referenced by index, so sharing through the memo costs nothing
//! here; what sharing costs once the graph is exported is counted in `export`.

use std::collections::HashMap;
use std::sync::Arc;

use super::globals::{Global, resolve_global};
use super::{MAX_DIMS, MAX_HELD_BYTES, MAX_MEMO, MAX_OBJECTS, MAX_STACK, RecordLoader};
use crate::model::checkpoint::CheckpointError;
use crate::model::checkpoint::tensor::{StorageRef, TensorRef};

/// Hashable dict keys, for replacing duplicates in O(1).
#[derive(PartialEq, Eq, Hash)]
pub(super) enum KeyRepr {
    Str(Arc<str>),
    Int(i64),
    Bool(bool),
    None,
}

#[derive(Default)]
pub(super) struct DictObj {
    pub(super) items: Vec<(P, P)>,
    pub(super) index: HashMap<KeyRepr, usize>,
}

pub(super) enum Obj {
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
pub(super) enum P {
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
    pub(super) fn kind(&self) -> &'static str {
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

pub(super) struct Machine<'a, 'l> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) op_pos: usize,
    pub(super) name: Arc<str>,
    pub(super) stack: Vec<P>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, P>,
    pub(super) objs: Vec<Obj>,
    pub(super) storages: HashMap<String, Arc<Vec<u8>>>,
    pub(super) load_record: &'l mut RecordLoader<'l>,
    /// Bytes held by the containers of `objs` (see [`MAX_HELD_BYTES`]).
    pub(super) held: u64,
}

pub(super) type R<T> = Result<T, CheckpointError>;

impl<'a> Machine<'a, '_> {
    pub(super) fn err(&self, detail: impl Into<String>) -> CheckpointError {
        CheckpointError::Pickle {
            path: self.name.to_string(),
            offset: self.op_pos,
            detail: detail.into(),
        }
    }

    pub(super) fn limit(&self, what: &str, limit: usize) -> CheckpointError {
        CheckpointError::LimitExceeded {
            path: self.name.to_string(),
            what: what.into(),
            limit: limit.to_string(),
        }
    }

    pub(super) fn take(&mut self, n: usize) -> R<&'a [u8]> {
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

    pub(super) fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(super) fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(super) fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    pub(super) fn len_u64(&mut self) -> R<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err("length does not fit in memory"))
    }

    pub(super) fn line(&mut self) -> R<String> {
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

    pub(super) fn utf8(&mut self, n: usize) -> R<P> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(P::Str(Arc::from(s))),
            Err(_) => Err(self.err("string is not valid UTF-8")),
        }
    }

    pub(super) fn push(&mut self, p: P) -> R<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.limit("pickle stack depth", MAX_STACK));
        }
        self.stack.push(p);
        Ok(())
    }

    pub(super) fn pop(&mut self) -> R<P> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    pub(super) fn top(&self) -> R<&P> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.last().ok_or_else(|| self.err("stack underflow"))
    }

    pub(super) fn pop_mark(&mut self) -> R<Vec<P>> {
        let m = self.marks.pop().ok_or_else(|| self.err("MARK expected"))?;
        if m > self.stack.len() {
            return Err(self.err("corrupt MARK"));
        }
        Ok(self.stack.split_off(m))
    }

    pub(super) fn alloc(&mut self, o: Obj) -> R<P> {
        if self.objs.len() >= MAX_OBJECTS {
            return Err(self.limit("number of objects in the pickle", MAX_OBJECTS));
        }
        let items = match &o {
            Obj::List(v) | Obj::Tuple(v) | Obj::Set(v) => v.len(),
            Obj::Dict(d) => 2 * d.items.len(),
            Obj::Storage(_) | Obj::Tensor(_) => 0,
        };
        self.hold(std::mem::size_of::<Obj>(), items)?;
        self.objs.push(o);
        Ok(P::Obj(self.objs.len() - 1))
    }

    pub(super) fn memo_put(&mut self, idx: u32) -> R<()> {
        let v = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return Err(self.limit("pickle memo size", MAX_MEMO));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    pub(super) fn memo_get(&mut self, idx: u32) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {idx} is not defined")))?;
        self.push(v)
    }

    pub(super) fn obj(&self, p: &P) -> Option<&Obj> {
        match p {
            P::Obj(i) => self.objs.get(*i),
            _ => None,
        }
    }

    pub(super) fn obj_index(&self, p: &P, what: &str) -> R<usize> {
        match p {
            P::Obj(i) if *i < self.objs.len() => Ok(*i),
            other => Err(self.err(format!(
                "{what} expects a container, found {}",
                other.kind()
            ))),
        }
    }

    pub(super) fn key_repr(p: &P) -> Option<KeyRepr> {
        match p {
            P::Str(s) => Some(KeyRepr::Str(s.clone())),
            P::Int(i) => Some(KeyRepr::Int(*i)),
            P::Bool(b) => Some(KeyRepr::Bool(*b)),
            P::None => Some(KeyRepr::None),
            _ => None,
        }
    }

    /// Counts `bytes` plus `items` stack values as held by containers; refuses past
    /// [`MAX_HELD_BYTES`] (a memoised list passed to `torch.Size` or `set` again and again is
    /// copied every time).
    pub(super) fn hold(&mut self, bytes: usize, items: usize) -> R<()> {
        let more = (items as u64)
            .saturating_mul(std::mem::size_of::<P>() as u64)
            .saturating_add(bytes as u64);
        self.held = self.held.saturating_add(more);
        if self.held > MAX_HELD_BYTES {
            return Err(CheckpointError::LimitExceeded {
                path: self.name.to_string(),
                what: "the memory taken by the pickle's containers".into(),
                limit: format!("{} MiB", MAX_HELD_BYTES >> 20),
            });
        }
        Ok(())
    }

    pub(super) fn set_items(&mut self, target: &P, pairs: Vec<P>) -> R<()> {
        if !pairs.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS needs key/value pairs"));
        }
        self.hold(0, pairs.len())?;
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

    pub(super) fn append_items(&mut self, target: &P, items: Vec<P>) -> R<()> {
        self.hold(0, items.len())?;
        let i = self.obj_index(target, "APPEND")?;
        match self.objs.get_mut(i) {
            Some(Obj::List(l)) | Some(Obj::Set(l)) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.err("APPEND on something that is not a list")),
        }
    }

    pub(super) fn global(&mut self, module: &str, name: &str) -> R<()> {
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

    pub(super) fn run(&mut self) -> R<P> {
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

    pub(super) fn describe(&self, p: &P) -> String {
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

    pub(super) fn tuple_items(&self, p: &P, what: &str) -> R<Vec<P>> {
        match self.obj(p) {
            Some(Obj::Tuple(v)) | Some(Obj::List(v)) => Ok(v.clone()),
            _ => Err(self.err(format!(
                "{what} must be a tuple, found {}",
                self.describe(p)
            ))),
        }
    }

    pub(super) fn str_of(&self, p: &P, what: &str) -> R<Arc<str>> {
        match p {
            P::Str(s) => Ok(s.clone()),
            other => Err(self.err(format!(
                "{what} must be a string, found {}",
                self.describe(other)
            ))),
        }
    }

    pub(super) fn usize_of(&self, p: &P, what: &str) -> R<usize> {
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

    pub(super) fn usizes(&self, p: &P, what: &str) -> R<Vec<usize>> {
        let items = self.tuple_items(p, what)?;
        if items.len() > MAX_DIMS {
            return Err(self.limit(&format!("{what} rank"), MAX_DIMS));
        }
        items.iter().map(|x| self.usize_of(x, what)).collect()
    }
}
