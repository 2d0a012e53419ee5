//! Hand-made torch pickles and zip archives for the checkpoint tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::CheckpointError;
use super::pth::read_pth_bytes;

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Build a torch-style zip (stored entries) around a pickle and records.
pub fn make_pth(folder: &str, pickle: &[u8], records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
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

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Pickle for `_rebuild_tensor_v2(storage('0', FloatStorage, numel), offset, size, stride, False, OrderedDict())`.
pub fn tensor_pickle(numel: u8, offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
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

pub fn ordered_dict_with(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
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

pub fn expect_forbidden(bytes: &[u8], module: &str, name: &str) {
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
