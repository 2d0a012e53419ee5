//! Model weights as plain `f32` tensors, and the file formats they come from.
//!
//! locosep reads model weights from two kinds of files:
//!
//! * **safetensors** (`*.safetensors`, [`safetensors`]): a JSON header and raw tensor bytes;
//!   a pure data format, and the preferred one.
//! * **PyTorch checkpoints** (`*.pth`, `*.pt`, `*.ckpt` written by `torch.save` ≥ 1.6): a zip
//!   archive ([`pth`]) holding a pickle (`<folder>/data.pkl`) plus one raw record per tensor
//!   storage. Pickle is a small stack-machine language that can call arbitrary Python
//!   functions, so these files are read by the restricted interpreter in [`pickle`], which only
//!   understands tensors and plain containers and refuses any other reference (see that module
//!   for the security model).
//!
//! [`load_state_dict`] detects the format from the file *content* (zip magic `PK` → PyTorch,
//! otherwise safetensors), picks the model weights out of a training checkpoint
//! ([`state_dict`]: `model_state_dict`, `state_dict` or `model` entries), and strips a
//! `separator.` / `module.` prefix shared by every key.
//!
//! All failures are reported as [`CheckpointError`], whose messages name the file and are
//! meant to be shown to end users as they are.
//!
//! Layers, leaves first (no cycles): [`error`] and [`tensor`] → [`pickle`] → [`pth`];
//! [`tensor`] → [`safetensors`]; [`pickle`] → [`state_dict`]; [`tensor`] → [`pth_write`] (the
//! writer, which only emits tensors and plain containers); this module on top.

use std::fs;
use std::io::Read;
use std::path::Path;

pub mod error;
pub mod pickle;
pub mod pth;
pub mod pth_write;
pub mod safetensors;
pub mod state_dict;
pub mod tensor;
#[cfg(test)]
mod test_pickles;

pub use error::CheckpointError;
pub use pth_write::{PthLayout, encode_pth, write_pth};
pub use safetensors::{read_safetensors, safetensors_from_bytes, write_safetensors};
pub use state_dict::state_dict_from_value;
pub use tensor::{DType, StateDict, StorageRef, TensorF32, TensorRef};

/// A path as shown in messages.
fn display(path: &Path) -> String {
    path.display().to_string()
}

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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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

/// Writes `bytes` to `path` atomically: first to `.<name>.<pid>.locosep-tmp` in the same
/// folder, flushed, then moved into place, so readers never see a half-written file. An
/// existing file is replaced only when `overwrite` is true; otherwise
/// [`CheckpointError::AlreadyExists`] and nothing changes (also when the file appears while
/// writing: the final step is a hard link, which fails if the name is taken). The temporary
/// file is removed on every failure.
pub fn write_file_atomic(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
) -> Result<(), CheckpointError> {
    use std::io::Write as _;
    use std::path::PathBuf;
    let name = display(path);
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(CheckpointError::AlreadyExists { path: name });
    }
    let encoded = bytes;
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
