//! Conversion of the pickle's object graph into a [`Value`] tree.

use super::machine::{Machine, Obj, P, R};
use super::{MAX_DEPTH, MAX_VALUE_NODES, Value};

impl Machine<'_, '_> {
    /// Convert the object graph into a [`Value`] tree (bounded depth and size).
    pub(super) fn export(&self, p: &P, depth: usize, budget: &mut usize) -> R<Value> {
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

    pub(super) fn export_all(&self, v: &[P], depth: usize, budget: &mut usize) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(v.len().min(*budget));
        for x in v {
            out.push(self.export(x, depth + 1, budget)?);
        }
        Ok(out)
    }
}
