//! Conversion of the pickle's object graph into a [`Value`] tree.
//!
//! In the machine a container referenced twice (through the memo) exists once; in the tree it
//! is copied for every reference. A 731-byte pickle whose list holds two references to the
//! previous list, 60 levels deep, would expand to 2⁶⁰ values. So before anything is built,
//! [`Machine::export_cost`] walks the graph once (each object visited once, its result
//! memoised) and adds up the bytes the tree would take — every value's own size plus the
//! text, bytes and tensor metadata it copies, counted once per reference — and the export is
//! refused when that exceeds [`MAX_VALUE_BYTES`]. The same walk finds reference cycles and
//! nesting deeper than [`MAX_DEPTH`].

use std::mem::size_of;

use super::machine::{Machine, Obj, P, R};
use super::{MAX_DEPTH, MAX_VALUE_BYTES, Value};
use crate::model::checkpoint::CheckpointError;

/// What exporting one object costs: bytes of the tree built under it, and its height.
#[derive(Clone, Copy)]
enum Cost {
    /// Being visited (seeing it again means a reference cycle).
    InProgress,
    /// Done.
    Known { bytes: u64, height: usize },
}

impl Machine<'_, '_> {
    /// Converts the object graph under `top` into a [`Value`] tree, after checking that the
    /// tree fits in [`MAX_VALUE_BYTES`] and [`MAX_DEPTH`].
    pub(super) fn export_checked(&self, top: &P) -> R<Value> {
        let mut costs: Vec<Option<Cost>> = vec![None; self.objs.len()];
        let (bytes, _) = self.export_cost(top, 0, &mut costs)?;
        if bytes > MAX_VALUE_BYTES {
            return Err(CheckpointError::LimitExceeded {
                path: self.name.to_string(),
                what: format!(
                    "the memory its values would take once shared references are expanded ({})",
                    mib(bytes)
                ),
                limit: mib(MAX_VALUE_BYTES),
            });
        }
        self.export(top, 0)
    }

    fn depth_error(&self) -> CheckpointError {
        self.limit("container nesting depth (or a reference cycle)", MAX_DEPTH)
    }

    /// Bytes and height of the tree `p` exports to, entered at nesting `depth`. Each object is
    /// walked once; later references reuse its memoised cost. Saturates instead of
    /// overflowing.
    fn export_cost(&self, p: &P, depth: usize, costs: &mut [Option<Cost>]) -> R<(u64, usize)> {
        if depth > MAX_DEPTH {
            return Err(self.depth_error());
        }
        let node = size_of::<Value>() as u64;
        let heap = |n: usize| node.saturating_add(n as u64);
        let i = match p {
            P::None | P::Bool(_) | P::Int(_) | P::Float(_) => return Ok((node, 0)),
            P::BigInt(b) | P::Bytes(b) => return Ok((heap(b.len()), 0)),
            P::Str(s) => return Ok((heap(s.len()), 0)),
            P::Global(g) => {
                let (m, n) = g.path();
                return Ok((heap(m.len() + n.len()), 0));
            }
            P::Obj(i) => *i,
        };
        match costs.get(i).copied().flatten() {
            Some(Cost::InProgress) => return Err(self.depth_error()),
            Some(Cost::Known { bytes, height }) => {
                if depth + height > MAX_DEPTH {
                    return Err(self.depth_error());
                }
                return Ok((bytes, height));
            }
            None => {}
        }
        if let Some(c) = costs.get_mut(i) {
            *c = Some(Cost::InProgress);
        }
        let (mut bytes, mut height) = (node, 0);
        match self.obj(p) {
            Some(Obj::List(v)) | Some(Obj::Tuple(v)) | Some(Obj::Set(v)) => {
                for x in v {
                    self.add_child(x, depth, costs, &mut bytes, &mut height)?;
                }
            }
            Some(Obj::Dict(d)) => {
                for (k, v) in &d.items {
                    self.add_child(k, depth, costs, &mut bytes, &mut height)?;
                    self.add_child(v, depth, costs, &mut bytes, &mut height)?;
                }
            }
            Some(Obj::Storage(s)) => {
                bytes = heap(s.key.len() + s.location.len());
            }
            Some(Obj::Tensor(t)) => {
                let dims = (t.shape.len() + t.stride.len()) * size_of::<usize>();
                bytes = heap(t.storage.key.len() + t.storage.location.len() + dims);
            }
            None => return Err(self.err("dangling object reference")),
        }
        if let Some(c) = costs.get_mut(i) {
            *c = Some(Cost::Known { bytes, height });
        }
        Ok((bytes, height))
    }

    /// Adds the cost of `child` of a container at `depth` to `bytes` and `height`.
    fn add_child(
        &self,
        child: &P,
        depth: usize,
        costs: &mut [Option<Cost>],
        bytes: &mut u64,
        height: &mut usize,
    ) -> R<()> {
        let (b, h) = self.export_cost(child, depth + 1, costs)?;
        *bytes = bytes.saturating_add(b);
        *height = (*height).max(h + 1);
        Ok(())
    }

    /// Converts the object graph into a [`Value`] tree (depth-bounded; its size was checked
    /// by [`Machine::export_cost`]).
    fn export(&self, p: &P, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err(self.depth_error());
        }
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
                Some(Obj::List(v)) => Value::List(self.export_all(v, depth)?),
                Some(Obj::Tuple(v)) => Value::Tuple(self.export_all(v, depth)?),
                Some(Obj::Set(v)) => Value::Set(self.export_all(v, depth)?),
                Some(Obj::Dict(d)) => {
                    let mut out = Vec::with_capacity(d.items.len());
                    for (k, v) in &d.items {
                        out.push((self.export(k, depth + 1)?, self.export(v, depth + 1)?));
                    }
                    Value::Dict(out)
                }
                Some(Obj::Storage(s)) => Value::Storage(s.clone()),
                Some(Obj::Tensor(t)) => Value::Tensor(t.clone()),
                None => return Err(self.err("dangling object reference")),
            },
        })
    }

    fn export_all(&self, v: &[P], depth: usize) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(v.len());
        for x in v {
            out.push(self.export(x, depth + 1)?);
        }
        Ok(out)
    }
}

/// `bytes` in MiB, for messages.
fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1u64 << 20) as f64;
    if m >= 1e6 {
        format!("{m:.3e} MiB")
    } else {
        format!("{m:.0} MiB")
    }
}
