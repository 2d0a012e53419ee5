//! The temp-file-and-rename rules every output shares (see the [`encode`](super) module docs),
//! and the clean-up of temp files a crash left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::audio::AudioError;

/// Suffix of temporary files created by [`write_atomic`].
pub const TEMP_SUFFIX: &str = ".locosep-tmp";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temp path next to `path`: `.<file name>.<pid>-<counter>-<nanos>.locosep-tmp`.
pub(super) fn temp_path_for(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the output path has no file name",
        )
    })?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.{}-{n}-{nanos}{TEMP_SUFFIX}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(path.with_file_name(tmp_name))
}

/// Atomically creates/replaces `path` with content produced by `f`.
///
/// `f` writes into a fresh temporary file in the same directory (it may seek; the file starts
/// empty). Afterwards the file is `fsync`ed and moved onto `path`. Missing parent directories are
/// created. If `path` exists and `overwrite` is false → [`AudioError::Exists`] and nothing is
/// written. On any error the temporary file is removed and an existing `path` is untouched.
/// Reusable for any output (audio, JSON, ...).
pub fn write_atomic(
    path: &Path,
    overwrite: bool,
    f: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), AudioError> {
    let werr = |source: io::Error| AudioError::Write {
        path: path.to_path_buf(),
        source,
    };
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(AudioError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent).map_err(werr)?;
    }
    let tmp = temp_path_for(path).map_err(werr)?;
    let mut file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&tmp)
        .map_err(werr)?;
    // From here on, every error path must remove `tmp`.
    let result = f(&mut file)
        .and_then(|()| file.flush())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(werr(e));
    }
    let committed = if overwrite {
        fs::rename(&tmp, path)
    } else {
        commit_no_clobber(&tmp, path)
    };
    if let Err(e) = committed {
        let _ = fs::remove_file(&tmp);
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(AudioError::Exists {
                path: path.to_path_buf(),
            });
        }
        return Err(werr(e));
    }
    sync_parent_dir(path);
    Ok(())
}

/// Moves `tmp` to `path` without ever replacing an existing `path`. Uses `hard_link` (fails with
/// `AlreadyExists` atomically) and falls back to check-then-rename on filesystems without links.
pub(super) fn commit_no_clobber(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            let _ = fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if path.symlink_metadata().is_ok() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            fs::rename(tmp, path)
        }
    }
}

/// Best-effort fsync of the directory entry (Unix); errors are ignored.
pub(super) fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// True if `path`'s file name looks like a temporary file left by [`write_atomic`]
/// (starts with `.` and ends with `.locosep-tmp`).
pub fn is_temp_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.starts_with('.') && n.ends_with(TEMP_SUFFIX) && n.len() > TEMP_SUFFIX.len() + 1
    })
}

/// The process id written into a temporary file's name by [`write_atomic`]
/// (`.{name}.{pid}-{n}-{nanos}.locosep-tmp`), if the name has that shape.
fn temp_owner(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?.strip_suffix(TEMP_SUFFIX)?;
    let (_, tail) = name.rsplit_once('.')?;
    tail.split('-').next()?.parse().ok()
}

/// Whether process `pid` is running (Linux: `/proc/<pid>` exists; elsewhere only this process
/// is known to run).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        false
    }
}

/// Deletes leftover temporary files (see [`is_temp_file`]) directly inside `dir` (not
/// recursive) whose writer is no longer running — a temp file of a live process (this one or
/// another locosep writing beside it) is left alone. Returns how many were removed. A missing
/// directory counts as 0.
pub fn clean_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let p = entry.path();
        let live = temp_owner(&p).is_some_and(process_alive);
        if is_temp_file(&p) && !live && entry.file_type()?.is_file() {
            match fs::remove_file(&p) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Deletes the temporary files (see [`is_temp_file`]) directly inside `dir` that this process
/// is writing — for a process about to exit mid-write (a second Ctrl-C). Returns how many were
/// removed; a missing directory counts as 0.
pub fn remove_own_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let p = entry.path();
        if is_temp_file(&p)
            && temp_owner(&p) == Some(me)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(&p).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_spares_temp_files_of_running_processes() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join(format!(
            ".vocals.wav.{}-0-1{TEMP_SUFFIX}",
            std::process::id()
        ));
        // Pid 0 is never a user process: a leftover of a dead writer.
        let dead = dir.path().join(format!(".drums.wav.0-3-9{TEMP_SUFFIX}"));
        let odd = dir.path().join(format!(".bass.wav{TEMP_SUFFIX}"));
        let keep = dir.path().join("other.wav");
        for p in [&own, &dead, &odd, &keep] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(temp_owner(&own), Some(std::process::id()));
        assert_eq!(clean_temp_files(dir.path()).unwrap(), 2);
        assert!(own.exists() && keep.exists());
        assert!(!dead.exists() && !odd.exists());
    }

    #[test]
    fn own_temp_files_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join(format!(
            ".vocals.wav.{}-0-1{TEMP_SUFFIX}",
            std::process::id()
        ));
        let other = dir.path().join(format!(".drums.wav.0-3-9{TEMP_SUFFIX}"));
        let keep = dir.path().join("bass.wav");
        for p in [&own, &other, &keep] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_own_temp_files(dir.path()).unwrap(), 1);
        assert!(!own.exists() && other.exists() && keep.exists());
        assert_eq!(
            remove_own_temp_files(&dir.path().join("missing")).unwrap(),
            0
        );
    }

    #[test]
    fn atomic_refuses_overwrite_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.json");
        write_atomic(&p, false, |f| f.write_all(b"old")).unwrap();
        let e = write_atomic(&p, false, |f| f.write_all(b"new")).unwrap_err();
        assert!(matches!(e, AudioError::Exists { .. }));
        assert!(e.to_string().contains("--overwrite") && e.to_string().contains("out.json"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        // Failing writer: temp removed, old file untouched.
        let e = write_atomic(&p, true, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(matches!(e, AudioError::Write { .. }));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        write_atomic(&p, true, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_file_detection_and_cleanup() {
        let d = tempfile::tempdir().unwrap();
        let t = temp_path_for(&d.path().join("song.wav")).unwrap();
        assert!(is_temp_file(&t), "{t:?}");
        assert!(
            t.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".song.wav.")
        );
        assert!(!is_temp_file(Path::new("song.wav")));
        assert!(!is_temp_file(Path::new(".locosep-tmp")));
        fs::write(&t, b"x").unwrap();
        // A leftover of a writer that is gone (pid 0 is never a user process).
        fs::write(d.path().join(".other.flac.0-1-2.locosep-tmp"), b"x").unwrap();
        fs::write(d.path().join("keep.wav"), b"x").unwrap();
        // This process's own temp file is in use: spared.
        assert_eq!(clean_temp_files(d.path()).unwrap(), 1);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
        assert!(t.exists());
        assert_eq!(clean_temp_files(&d.path().join("missing")).unwrap(), 0);
    }
}
