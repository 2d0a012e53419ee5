//! The allow-listed callables of a torch pickle, interpreted: tensor and parameter rebuilds,
//! `OrderedDict`, `torch.Size`, `set`, … They only build data; nothing named in a file runs.

use std::sync::Arc;

use super::globals::Global;
use super::machine::{DictObj, Machine, Obj, P, R};
use super::{MAX_BROADCAST_ELEMENTS, MAX_STORAGE_BYTES};
use crate::model::checkpoint::CheckpointError;
use crate::model::checkpoint::tensor::{DType, StorageRef, TensorRef};

impl Machine<'_, '_> {
    pub(super) fn persistent_load(&mut self, pid: &P) -> R<StorageRef> {
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
    pub(super) fn call(&mut self, func: &P, args: &P, depth: usize) -> R<P> {
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

    pub(super) fn make_tensor(
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
}
