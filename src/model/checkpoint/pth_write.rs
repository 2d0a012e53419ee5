//! Writing PyTorch checkpoints: the zip layout of `torch.save` (≥ 1.6) around a protocol-2
//! pickle that holds nothing but `OrderedDict`s, strings and `_rebuild_tensor_v2` calls over
//! one little-endian `FloatStorage` record per tensor — what `torch.load` (also with
//! `weights_only=True`) and locosep's own reader (`pth.rs`) take.
//!
//! Two layouts, for continuing a run in the reference trainers with
//! `load_state_dict(strict=True)`:
//! - [`PthLayout::Fork`]: the music fork's training checkpoint, `{"model_state_dict": …}`;
//! - [`PthLayout::Espnet`]: ESPnet's model state dict, every key prefixed `separator.`.

use std::io::Write as _;
use std::path::Path;

use super::tensor::StateDict;
use super::{CheckpointError, display, write_file_atomic};

/// Which container the weights are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PthLayout {
    /// `{"model_state_dict": OrderedDict(name → tensor)}` (the music fork's `train.py`).
    Fork,
    /// `OrderedDict("separator." + name → tensor)` (ESPnet's `enh` model, MERL's release).
    Espnet,
}

/// Folder every record of the archive sits in (`torch.save` uses the file's stem; any name
/// works as long as all records share it).
const ARCHIVE: &str = "archive";

/// Alignment of the tensor records in the zip (what `torch.save` uses, so `torch.load(…,
/// mmap=True)` can map them).
const ALIGN: u16 = 64;

/// The bytes of a `.pth` file holding `sd` (reference names) in `layout`.
pub fn encode_pth(sd: &StateDict, layout: PthLayout) -> Result<Vec<u8>, String> {
    for (key, t) in sd {
        if t.data.len() != t.numel() {
            return Err(format!(
                "tensor `{key}` has {} values for shape {:?}",
                t.data.len(),
                t.shape
            ));
        }
    }
    let prefix = match layout {
        PthLayout::Fork => "",
        PthLayout::Espnet => "separator.",
    };
    let mut p = Pickle::default();
    p.bytes.extend([0x80, 2]); // PROTO 2
    if layout == PthLayout::Fork {
        p.bytes.push(b'}'); // EMPTY_DICT
        p.string("model_state_dict");
    }
    p.ordered_dict();
    p.bytes.push(b'('); // MARK
    for (i, (key, t)) in sd.iter().enumerate() {
        p.string(&format!("{prefix}{key}"));
        p.tensor(i, &t.shape);
    }
    p.bytes.push(b'u'); // SETITEMS
    if layout == PthLayout::Fork {
        p.bytes.push(b's'); // SETITEM
    }
    p.bytes.push(b'.'); // STOP

    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let total: usize = sd.values().map(|t| t.data.len() * 4).sum();
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(total >= u32::MAX as usize);
    let zerr = |e: zip::result::ZipError| e.to_string();
    let ierr = |e: std::io::Error| e.to_string();
    zw.start_file(format!("{ARCHIVE}/data.pkl"), opts)
        .map_err(zerr)?;
    zw.write_all(&p.bytes).map_err(ierr)?;
    zw.start_file(format!("{ARCHIVE}/byteorder"), opts)
        .map_err(zerr)?;
    zw.write_all(b"little").map_err(ierr)?;
    for (i, t) in sd.values().enumerate() {
        zw.start_file(format!("{ARCHIVE}/data/{i}"), opts.with_alignment(ALIGN))
            .map_err(zerr)?;
        let mut bytes = Vec::with_capacity(t.data.len() * 4);
        for v in &t.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        zw.write_all(&bytes).map_err(ierr)?;
    }
    zw.start_file(format!("{ARCHIVE}/version"), opts)
        .map_err(zerr)?;
    zw.write_all(b"3\n").map_err(ierr)?;
    zw.start_file(format!("{ARCHIVE}/.data/version"), opts)
        .map_err(zerr)?;
    zw.write_all(b"3\n").map_err(ierr)?;
    Ok(zw.finish().map_err(zerr)?.into_inner())
}

/// Writes `sd` as a `.pth` file in `layout` (temp file + rename; an existing file is replaced
/// only when `overwrite`).
pub fn write_pth(
    path: impl AsRef<Path>,
    sd: &StateDict,
    layout: PthLayout,
    overwrite: bool,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = encode_pth(sd, layout).map_err(|detail| CheckpointError::Write {
        path: display(path),
        source: std::io::Error::other(detail),
    })?;
    write_file_atomic(path, &bytes, overwrite)
}

/// A protocol-2 pickle being written (no memo: nothing is referenced twice).
#[derive(Default)]
struct Pickle {
    bytes: Vec<u8>,
}

impl Pickle {
    /// BINUNICODE.
    fn string(&mut self, s: &str) {
        self.bytes.push(b'X');
        self.bytes.extend((s.len() as u32).to_le_bytes());
        self.bytes.extend(s.as_bytes());
    }

    /// An integer: BININT for what fits in 32 bits, else LONG1.
    fn int(&mut self, v: usize) {
        match i32::try_from(v) {
            Ok(v) => {
                self.bytes.push(b'J');
                self.bytes.extend(v.to_le_bytes());
            }
            Err(_) => {
                self.bytes.extend([0x8a, 8]);
                self.bytes.extend((v as u64).to_le_bytes());
            }
        }
    }

    /// GLOBAL `module.name`.
    fn global(&mut self, module: &str, name: &str) {
        self.bytes.push(b'c');
        self.bytes.extend(format!("{module}\n{name}\n").as_bytes());
    }

    /// `collections.OrderedDict()` on the stack.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.bytes.extend([b')', b'R']); // EMPTY_TUPLE, REDUCE
    }

    /// A tuple of ints.
    fn int_tuple(&mut self, v: &[usize]) {
        self.bytes.push(b'(');
        for &x in v {
            self.int(x);
        }
        self.bytes.push(b't');
    }

    /// `torch._utils._rebuild_tensor_v2(storage i, 0, shape, contiguous strides, False,
    /// OrderedDict())`, the storage a persistent id `('storage', torch.FloatStorage, 'i',
    /// 'cpu', numel)` naming record `data/i`.
    fn tensor(&mut self, i: usize, shape: &[usize]) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.bytes.push(b'(');
        self.bytes.push(b'(');
        self.string("storage");
        self.global("torch", "FloatStorage");
        self.string(&i.to_string());
        self.string("cpu");
        self.int(shape.iter().product());
        self.bytes.push(b't');
        self.bytes.push(b'Q'); // BINPERSID
        self.int(0);
        self.int_tuple(shape);
        let mut strides = vec![1usize; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        self.int_tuple(&strides);
        self.bytes.push(0x89); // NEWFALSE
        self.ordered_dict();
        self.bytes.push(b't');
        self.bytes.push(b'R');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::checkpoint::pth::read_pth_bytes;
    use crate::model::checkpoint::{TensorF32, load_state_dict, load_state_dict_bytes};

    fn sample() -> StateDict {
        let mut sd = StateDict::new();
        sd.insert(
            "conv.0.weight".into(),
            TensorF32 {
                shape: vec![2, 1, 3],
                data: vec![1.5, -0.0, f32::MIN_POSITIVE, 3.25, -7.0, 1e-30],
            },
        );
        sd.insert(
            "blocks.0.freq_path.attn_norm.gamma".into(),
            TensorF32 {
                shape: vec![4],
                data: vec![0.1, 0.2, 0.3, 0.4],
            },
        );
        sd.insert(
            "scalar".into(),
            TensorF32 {
                shape: vec![],
                data: vec![42.0],
            },
        );
        sd
    }

    /// Both layouts read back through locosep's restricted reader with the same names, shapes
    /// and bit-identical values; the ESPnet file carries the `separator.` prefix and the fork
    /// file the `model_state_dict` wrapper (seen in the raw unpickled value).
    #[test]
    fn both_layouts_round_trip_bit_identically() {
        let sd = sample();
        for layout in [PthLayout::Fork, PthLayout::Espnet] {
            let bytes = encode_pth(&sd, layout).unwrap();
            let back = load_state_dict_bytes(&bytes, "x.pth").unwrap();
            assert_eq!(
                back.keys().collect::<Vec<_>>(),
                sd.keys().collect::<Vec<_>>()
            );
            for (k, t) in &sd {
                let b = &back[k];
                assert_eq!(b.shape, t.shape, "{k}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&b.data), bits(&t.data), "{k}");
            }
            let raw = format!("{:?}", read_pth_bytes(&bytes, "x.pth").unwrap());
            match layout {
                PthLayout::Fork => assert!(raw.contains("model_state_dict"), "{raw}"),
                PthLayout::Espnet => assert!(raw.contains("separator.conv.0.weight"), "{raw}"),
            }
        }
    }

    /// The tensor records are 64-byte aligned in the file, as `torch.save` writes them.
    #[test]
    fn records_are_aligned() {
        let bytes = encode_pth(&sample(), PthLayout::Fork).unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        for i in 0..zip.len() {
            let f = zip.by_index(i).unwrap();
            if f.name().contains("/data/") {
                assert_eq!(f.data_start() % 64, 0, "{}", f.name());
            }
        }
    }

    /// `write_pth` refuses an existing file without `overwrite` and leaves it as it was; with
    /// it, replaces it; the file loads through the path-based loader.
    #[test]
    fn write_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.pth");
        std::fs::write(&out, b"mine").unwrap();
        let e = write_pth(&out, &sample(), PthLayout::Espnet, false).unwrap_err();
        assert!(matches!(e, CheckpointError::AlreadyExists { .. }), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"mine");
        write_pth(&out, &sample(), PthLayout::Espnet, true).unwrap();
        assert_eq!(load_state_dict(&out).unwrap(), sample());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
}
