//! The output folder of a training run, and the rules that keep the user's files safe in it.
//!
//! - A folder is a **locosep run** when it holds the marker file [`RUN_MARKER`], written when a
//!   run starts (or, for runs from before the marker, a `train.json` and `last/state.json`). `train` writes into an empty or missing folder, into a run, or — only with
//!   `overwrite` — into any other folder; a non-empty folder that is not a run is refused.
//! - locosep only ever replaces or deletes names it makes: `best/`, `last/`, `step_NNNNNN/`
//!   (see `step_number`), `train.json`, `curves.png`, the marker and its own hidden temporary
//!   folders (see `is_leftover`).
//! - A checkpoint folder is replaced atomically ([`replace_dir`]): the new one is written to a
//!   temporary sibling, the old one renamed aside, the new one renamed in, and only then the
//!   aside copy deleted. At every moment the final name holds a complete checkpoint (or the
//!   old one), never a half-written or missing one.
//! - `best/` is replaced only by a better validation score than the one stored with it
//!   (`best_score`).

use std::io;
use std::path::{Path, PathBuf};

/// Marker file that makes a folder a locosep training run.
pub const RUN_MARKER: &str = ".locosep-run";

/// What the marker file says (for a person who finds it).
const MARKER_TEXT: &str = "This folder is a locosep training run (checkpoints, logs, curves).\n\
locosep replaces best/, last/ and step_NNNNNN/ in it; other files are left alone.\n";

/// The step number of a step checkpoint folder named by locosep: `step_` followed by the
/// number zero-padded to (at least) six digits, exactly as `format!("step_{:06}", n)` writes
/// it. Any other name (`step_ my notes`, `step_1`, `step_0000001`) is `None`.
fn step_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("step_")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (format!("{n:06}") == digits).then_some(n)
}

/// The folder name of the step checkpoint after `step` steps.
pub fn step_dir_name(step: usize) -> String {
    format!("step_{step:06}")
}

/// What [`check_out`] found in the output folder.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFolder {
    /// The folder already holds a locosep run (the marker is there).
    pub is_run: bool,
    /// The validation score `best/` must be beaten by before it is replaced; `None` when there
    /// is no `best/` or it may be replaced by any score (`overwrite`).
    pub best_to_beat: Option<f64>,
}

/// Why an output folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutError {
    /// `out` exists and is not a folder.
    #[error("--out {} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// `out` holds files and is not a locosep run.
    #[error(
        "--out {} is not empty and is not a locosep training run (it has no .locosep-run file); \
         locosep would replace best/, last/ and step_NNNNNN/ in it — choose an empty or new \
         folder, or pass --overwrite to train into it anyway",
        .0.display()
    )]
    NotARun(PathBuf),
    /// `resume` was asked for but there is no checkpoint to resume.
    #[error(
        "--resume: there is nothing to resume in {}: {what} is missing (start without --resume \
         to begin a new run)",
        out.display()
    )]
    NothingToResume {
        /// The output folder.
        out: PathBuf,
        /// The missing piece.
        what: String,
    },
    /// `best/` exists but its score cannot be read, so it cannot be compared.
    #[error(
        "{} exists but has no validation score locosep can read (state.json); it is kept — pass \
         --overwrite to let this run replace it, or choose another --out",
        .0.display()
    )]
    UnscoredBest(PathBuf),
    /// The folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Checks `out` before a run, writing nothing (see the module docs for the rules).
pub fn check_out(out: &Path, resume: bool, overwrite: bool) -> Result<OutFolder, OutError> {
    let ioe = |source| OutError::Io {
        path: out.to_path_buf(),
        source,
    };
    let meta = match out.metadata() {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(ioe(e)),
    };
    if meta.as_ref().is_some_and(|m| !m.is_dir()) {
        return Err(OutError::NotAFolder(out.to_path_buf()));
    }
    let is_run = out.join(RUN_MARKER).is_file() || is_legacy_run(out);
    if resume {
        let last = out.join("last");
        for f in ["model.safetensors", "state.json", "optimizer.bin"] {
            if !last.join(f).is_file() {
                return Err(OutError::NothingToResume {
                    out: out.to_path_buf(),
                    what: format!("last/{f}"),
                });
            }
        }
    } else if meta.is_some() && !is_run && !overwrite {
        let mut entries = std::fs::read_dir(out).map_err(ioe)?;
        if entries.next().is_some() {
            return Err(OutError::NotARun(out.to_path_buf()));
        }
    }
    let best = out.join("best");
    let best_to_beat = if overwrite || best.symlink_metadata().is_err() {
        None
    } else {
        Some(best_score(&best).ok_or(OutError::UnscoredBest(best))?)
    };
    Ok(OutFolder {
        is_run,
        best_to_beat,
    })
}

/// A run written before the marker existed: `train.json` and `last/state.json` both hold the
/// JSON objects locosep writes (a `steps` setting and a `step` count).
fn is_legacy_run(out: &Path) -> bool {
    let has = |file: &Path, key: &str| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get(key).is_some())
    };
    has(&out.join("train.json"), "steps") && has(&out.join("last/state.json"), "step")
}

/// Creates `out` if needed and writes the run marker (after [`check_out`] accepted it).
pub fn claim_out(out: &Path) -> io::Result<()> {
    std::fs::create_dir_all(out)?;
    let marker = out.join(RUN_MARKER);
    if !marker.is_file() {
        std::fs::write(marker, MARKER_TEXT)?;
    }
    Ok(())
}

/// The validation score stored with a checkpoint folder: `best_sdr` of its `state.json`
/// (finite), else `None`.
fn best_score(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("best_sdr")?.as_f64().filter(|s| s.is_finite())
}

/// A hidden sibling name of `dir` that does not exist yet:
/// `.{name}.locosep-{kind}-{pid}-{n}`.
fn free_sibling(dir: &Path, kind: &str) -> io::Result<PathBuf> {
    let name = dir.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no folder name", dir.display()),
        )
    })?;
    let pid = std::process::id();
    for n in 0..10_000u32 {
        let p = dir.with_file_name(format!(
            ".{}.locosep-{kind}-{pid}-{n}",
            name.to_string_lossy()
        ));
        if p.symlink_metadata().is_err() {
            return Ok(p);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free temporary name beside {}", dir.display()),
    ))
}

/// Creates a new, empty, hidden temporary folder beside `dir` to write its replacement in.
pub fn temp_dir_for(dir: &Path) -> io::Result<PathBuf> {
    loop {
        let p = free_sibling(dir, "tmp")?;
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes a file, a symlink (not what it points to) or a folder tree.
fn remove_any(p: &Path) -> io::Result<()> {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves the complete folder `new` onto `dir`: an existing `dir` is first renamed aside, then
/// `new` renamed in, then the aside copy deleted. If moving `new` in fails, the old `dir` is
/// renamed back. Never deletes `dir` before its replacement is in place.
pub fn replace_dir(new: &Path, dir: &Path) -> io::Result<()> {
    let aside = if dir.symlink_metadata().is_ok() {
        let a = free_sibling(dir, "old")?;
        std::fs::rename(dir, &a)?;
        Some(a)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(new, dir) {
        if let Some(a) = &aside {
            let _ = std::fs::rename(a, dir);
        }
        return Err(e);
    }
    if let Some(a) = aside {
        remove_any(&a)?;
    }
    Ok(())
}

/// Whether `name` is a temporary or aside folder name made by [`temp_dir_for`] /
/// [`replace_dir`] (`.{best|last|step_NNNNNN}.locosep-{tmp|old}-{pid}-{n}`); returns its pid.
fn is_leftover(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (base, tail) = rest.rsplit_once(".locosep-")?;
    if !(base == "best" || base == "last" || step_number(base).is_some()) {
        return None;
    }
    let tail = tail
        .strip_prefix("tmp-")
        .or_else(|| tail.strip_prefix("old-"))?;
    let (pid, n) = tail.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` may still be running (Linux: `/proc/<pid>` exists; elsewhere every
/// other process is assumed alive, so nothing of it is removed).
fn may_be_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Deletes the temporary folders that a killed run left in `out` (see `is_leftover`), unless
/// their process still runs. Returns how many were removed.
pub fn clean_leftovers(out: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(out) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(is_leftover) else {
            continue;
        };
        if !may_be_alive(pid) && remove_any(&e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Deletes the oldest step checkpoints of `out` so that at most `keep` (≥ 1) remain among
/// those at or before `step` (later ones belong to an earlier, longer run and are left). Only
/// folders named by `step_number` are considered; symlinks and files never.
pub fn prune(out: &Path, keep: usize, step: usize) {
    let Ok(rd) = std::fs::read_dir(out) else {
        return;
    };
    let mut steps: Vec<(usize, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let n = step_number(e.file_name().to_str()?)?;
            (n <= step).then(|| (n, e.path()))
        })
        .collect();
    steps.sort();
    let excess = steps.len().saturating_sub(keep.max(1));
    for (_, p) in steps.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_locosep_makes_are_step_folders() {
        assert_eq!(step_number("step_000001"), Some(1));
        assert_eq!(step_number("step_123456"), Some(123_456));
        assert_eq!(step_number("step_1234567"), Some(1_234_567));
        for bad in [
            "step_",
            "step_1",
            "step_00001",
            "step_0000001",
            "step_ my notes",
            "step_00000a",
            "step_000001 ",
            "Step_000001",
            "step_+00001",
        ] {
            assert_eq!(step_number(bad), None, "{bad}");
        }
        assert_eq!(step_dir_name(7), "step_000007");
    }

    #[test]
    fn prune_spares_user_folders_files_symlinks_and_later_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        for d in [
            "step_000001",
            "step_000002",
            "step_000003",
            "step_000004",
            "step_000009",
            "step_ my notes",
            "step_1",
        ] {
            std::fs::create_dir(out.join(d)).unwrap();
            std::fs::write(out.join(d).join("f"), d).unwrap();
        }
        std::fs::write(out.join("step_000000"), "a user file").unwrap();
        prune(out, 2, 4);
        let mut left: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "step_ my notes",
                "step_000000",
                "step_000003",
                "step_000004",
                "step_000009",
                "step_1"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out.join("step_ my notes/f")).unwrap(),
            "step_ my notes"
        );
    }

    #[test]
    fn replace_dir_swaps_complete_folders_and_keeps_the_old_one_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("best");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("model"), "old").unwrap();
        let new = temp_dir_for(&dir).unwrap();
        assert!(
            new.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".best.")
        );
        std::fs::write(new.join("model"), "new").unwrap();
        replace_dir(&new, &dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("model")).unwrap(), "new");
        assert!(!new.exists());
        // Only `best` is left: no temporary or aside folder.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        // A replacement that cannot be moved in (it does not exist): the old folder stays.
        let err = replace_dir(&tmp.path().join("missing"), &dir);
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(dir.join("model")).unwrap(), "new");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn check_out_refuses_foreign_folders_and_empty_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        // Missing or empty: fine.
        assert!(!check_out(&out, false, false).unwrap().is_run);
        std::fs::create_dir(&out).unwrap();
        assert!(check_out(&out, false, false).is_ok());
        // Nothing to resume.
        let e = check_out(&out, true, false).unwrap_err().to_string();
        assert!(
            e.contains("nothing to resume") && e.contains("last/"),
            "{e}"
        );
        // A user's file: refused unless --overwrite.
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let e = check_out(&out, false, false).unwrap_err().to_string();
        assert!(
            e.contains("--overwrite") && e.contains("not a locosep"),
            "{e}"
        );
        assert!(check_out(&out, false, true).is_ok());
        // A run: accepted; its best/ must be beaten by the stored score.
        claim_out(&out).unwrap();
        std::fs::create_dir(out.join("best")).unwrap();
        let e = check_out(&out, false, false).unwrap_err().to_string();
        assert!(e.contains("best"), "{e}");
        std::fs::write(out.join("best/state.json"), r#"{"best_sdr": -3.5}"#).unwrap();
        let f = check_out(&out, false, false).unwrap();
        assert!(f.is_run);
        assert_eq!(f.best_to_beat, Some(-3.5));
        assert_eq!(check_out(&out, false, true).unwrap().best_to_beat, None);
        // A run from before the marker: recognised by its train.json and last/state.json.
        let old = tmp.path().join("old");
        std::fs::create_dir_all(old.join("last")).unwrap();
        std::fs::write(old.join("train.json"), r#"{"steps": 10}"#).unwrap();
        assert!(
            check_out(&old, false, false).is_err(),
            "half a run is not a run"
        );
        std::fs::write(old.join("last/state.json"), r#"{"step": 10}"#).unwrap();
        assert!(check_out(&old, false, false).unwrap().is_run);
        // A file as --out.
        let e = check_out(&out.join("notes.txt"), false, false).unwrap_err();
        assert!(matches!(e, OutError::NotAFolder(_)), "{e}");
    }

    #[test]
    fn leftovers_are_recognised_strictly() {
        let pid = std::process::id();
        assert_eq!(
            is_leftover(&format!(".best.locosep-tmp-{pid}-0")),
            Some(pid)
        );
        assert_eq!(is_leftover(".step_000003.locosep-old-12-3"), Some(12));
        assert_eq!(is_leftover(".notes.locosep-tmp-12-3"), None);
        assert_eq!(is_leftover("best.locosep-tmp"), None);
        assert_eq!(is_leftover(".last.locosep-tmp-12-"), None);
        let tmp = tempfile::tempdir().unwrap();
        // Pid 0 is never a user process: a dead writer's leftover.
        let dead = tmp.path().join(".last.locosep-tmp-0-1");
        let live = tmp.path().join(format!(".last.locosep-tmp-{pid}-1"));
        let user = tmp.path().join(".last.mine");
        for d in [&dead, &live, &user] {
            std::fs::create_dir(d).unwrap();
        }
        assert_eq!(clean_leftovers(tmp.path()), 1);
        assert!(!dead.exists() && live.exists() && user.exists());
    }
}
