//! safetensors files: an 8-byte little-endian header length, a JSON header describing every
//! tensor (dtype, shape, byte range) and the raw tensor bytes. A pure data format, and the
//! preferred one. `F32` tensors are read as-is; `F16`, `BF16` and `F64` are converted.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::tensor::{StateDict, TensorF32, bf16_to_f32, f16_to_f32};
use super::{CheckpointError, display};

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
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
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

    super::write_file_atomic(path, &encoded, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::checkpoint::load_state_dict;
    use crate::model::checkpoint::load_state_dict_bytes;

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
}
