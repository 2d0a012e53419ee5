//! The zip layer of PyTorch checkpoints (`torch.save` ≥ 1.6).
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
//!
//! The pickle itself is decoded by the restricted interpreter in [`super::pickle`].

use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use super::CheckpointError;
use super::pickle::{MAX_PICKLE_BYTES, MAX_STORAGE_BYTES, Value, unpickle};

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;

    use super::*;
    use crate::model::checkpoint::test_pickles::*;

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
