//! Finding and loading the General MIDI SoundFont the renderer plays through.
//!
//! Search order (first hit wins): an explicit path, `$LOCOSEP_SOUNDFONT`,
//! `<assets dir>/soundfonts/sf_GMbank.sf2`, then Debian's `csound-soundfont` install path
//! [`SYSTEM_SOUNDFONT`]. An explicit path or environment variable that does not exist is an
//! error of its own rather than a silent fall-through, so a typo is never masked by the default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustysynth::{SoundFont, SoundFontError};

use super::error::{Result, SynthError};

/// Environment variable naming a SoundFont to use when none is passed explicitly.
pub const SOUNDFONT_ENV: &str = "LOCOSEP_SOUNDFONT";

/// File name of the public-domain General MIDI bank from Debian's `csound-soundfont`.
pub const DEFAULT_SOUNDFONT_NAME: &str = "sf_GMbank.sf2";

/// Where `apt-get install csound-soundfont` puts [`DEFAULT_SOUNDFONT_NAME`].
pub const SYSTEM_SOUNDFONT: &str = "/usr/share/sounds/sf2/sf_GMbank.sf2";

/// The crate's `assets/` folder as seen at build time (a vendored SoundFont lives in
/// `assets/soundfonts/`).
fn bundled_assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// Resolves the SoundFont to use: `explicit`, then `$LOCOSEP_SOUNDFONT`, then
/// `<root>/soundfonts/sf_GMbank.sf2` for each of `asset_roots` in order (pass
/// `crate::assets::asset_roots()`, or `&[]` for `bundled_assets_dir` alone), then
/// [`SYSTEM_SOUNDFONT`].
///
/// Errors: [`SynthError::Io`] when an explicit or environment path does not exist,
/// [`SynthError::SoundFontNotFound`] (which says how to install one) when no default exists.
pub fn find_soundfont(explicit: Option<&Path>, asset_roots: &[PathBuf]) -> Result<PathBuf> {
    let bundled = [bundled_assets_dir()];
    let roots = if asset_roots.is_empty() {
        &bundled[..]
    } else {
        asset_roots
    };
    let mut defaults: Vec<PathBuf> = roots
        .iter()
        .map(|r| r.join("soundfonts").join(DEFAULT_SOUNDFONT_NAME))
        .collect();
    defaults.push(PathBuf::from(SYSTEM_SOUNDFONT));
    find_soundfont_in(explicit, std::env::var_os(SOUNDFONT_ENV), &defaults)
}

/// [`find_soundfont`] with the environment value and default list passed in (testable).
fn find_soundfont_in(
    explicit: Option<&Path>,
    env_value: Option<OsString>,
    defaults: &[PathBuf],
) -> Result<PathBuf> {
    let must_exist = |path: PathBuf, what: &str| {
        if path.is_file() {
            Ok(path)
        } else {
            let msg = format!("{what} SoundFont does not exist or is not a file");
            Err(SynthError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, msg),
            ))
        }
    };
    if let Some(path) = explicit {
        return must_exist(path.to_path_buf(), "the given");
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        return must_exist(PathBuf::from(value), &format!("the ${SOUNDFONT_ENV}"));
    }
    defaults
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| SynthError::SoundFontNotFound {
            searched: defaults.to_vec(),
        })
}

/// Resolves (see [`find_soundfont`]) and loads a SoundFont.
pub fn load_default_soundfont(
    explicit: Option<&Path>,
    asset_roots: &[PathBuf],
) -> Result<Arc<SoundFont>> {
    load_soundfont(&find_soundfont(explicit, asset_roots)?)
}

/// Loads an SF2 file. SF3 files (by extension, by `ifil` version 3, or by Ogg-compressed
/// sample data) are refused with [`SynthError::Sf3NotSupported`].
pub fn load_soundfont(path: &Path) -> Result<Arc<SoundFont>> {
    let bytes = std::fs::read(path).map_err(|e| SynthError::io(path, e))?;
    let has_sf3_extension = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("sf3"));
    if has_sf3_extension || sf_major_version(&bytes).is_some_and(|v| v >= 3) {
        return Err(SynthError::Sf3NotSupported {
            path: path.to_path_buf(),
        });
    }
    match SoundFont::new(&mut bytes.as_slice()) {
        Ok(sf) => Ok(Arc::new(sf)),
        Err(SoundFontError::UnsupportedSampleFormat) => Err(SynthError::Sf3NotSupported {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(SynthError::BadSoundFont {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Reads the major version from the `ifil` chunk of a `RIFF sfbk` file's `INFO` list, if the
/// header is well formed (2 for SF2, 3 for SF3).
fn sf_major_version(bytes: &[u8]) -> Option<u16> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"sfbk" {
        return None;
    }
    // The INFO list comes first in every SoundFont 2/3 file.
    if bytes.get(12..16)? != b"LIST" || bytes.get(20..24)? != b"INFO" {
        return None;
    }
    let info_end = 20usize.checked_add(u32_at(16)? as usize)?.min(bytes.len());
    let mut at = 24;
    while at + 8 <= info_end {
        let id = bytes.get(at..at + 4)?;
        let size = u32_at(at + 4)? as usize;
        if id == b"ifil" {
            return Some(u16::from_le_bytes(
                bytes.get(at + 8..at + 10)?.try_into().ok()?,
            ));
        }
        // Sub-chunks are padded to an even size.
        at = at.checked_add(8 + size + (size & 1))?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal RIFF sfbk header with an `ifil` of the given major version (no samples).
    fn fake_soundfont(major: u16) -> Vec<u8> {
        let mut info = b"INFO".to_vec();
        info.extend_from_slice(b"ifil");
        info.extend_from_slice(&4u32.to_le_bytes());
        info.extend_from_slice(&major.to_le_bytes());
        info.extend_from_slice(&1u16.to_le_bytes());
        let mut list = b"LIST".to_vec();
        list.extend_from_slice(&(info.len() as u32).to_le_bytes());
        list.extend_from_slice(&info);
        let mut riff = b"RIFF".to_vec();
        riff.extend_from_slice(&((list.len() + 4) as u32).to_le_bytes());
        riff.extend_from_slice(b"sfbk");
        riff.extend_from_slice(&list);
        riff
    }

    #[test]
    fn sf3_is_refused_by_version_and_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let by_version = dir.path().join("bank.sf2");
        std::fs::write(&by_version, fake_soundfont(3)).unwrap();
        let by_extension = dir.path().join("bank.sf3");
        std::fs::write(&by_extension, fake_soundfont(2)).unwrap();
        for path in [by_version, by_extension] {
            let err = load_soundfont(&path).unwrap_err();
            assert!(matches!(err, SynthError::Sf3NotSupported { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("SF3") && msg.contains("rustysynth"), "{msg}");
            assert!(msg.contains("convert it to SF2"), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
    }

    #[test]
    fn broken_sf2_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.sf2");
        std::fs::write(&path, fake_soundfont(2)).unwrap();
        let err = load_soundfont(&path).unwrap_err();
        assert!(matches!(err, SynthError::BadSoundFont { .. }), "{err}");
        assert!(err.to_string().contains("broken.sf2"));
    }

    #[test]
    fn missing_soundfont_says_how_to_install_one() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = [dir.path().join("a.sf2"), dir.path().join("b.sf2")];
        let err = find_soundfont_in(None, None, &defaults).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("apt-get install csound-soundfont"), "{msg}");
        assert!(msg.contains("--soundfont"), "{msg}");
        assert!(msg.contains("a.sf2") && msg.contains("b.sf2"), "{msg}");
    }

    #[test]
    fn search_order_is_explicit_env_then_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let [x, e, d] = ["x.sf2", "e.sf2", "d.sf2"].map(|n| dir.path().join(n));
        for p in [&x, &e, &d] {
            std::fs::write(p, b"").unwrap();
        }
        let defaults = [dir.path().join("missing.sf2"), d.clone()];
        let env = Some(e.clone().into_os_string());
        assert_eq!(
            find_soundfont_in(Some(&x), env.clone(), &defaults).unwrap(),
            x
        );
        assert_eq!(find_soundfont_in(None, env, &defaults).unwrap(), e);
        assert_eq!(find_soundfont_in(None, None, &defaults).unwrap(), d);
        // A wrong explicit path is an error, not a fall-through to the defaults.
        let missing = dir.path().join("typo.sf2");
        let err = find_soundfont_in(Some(&missing), None, &defaults).unwrap_err();
        assert!(err.to_string().contains("typo.sf2"), "{err}");
    }
}
