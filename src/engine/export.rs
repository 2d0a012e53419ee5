//! Writing stems to disk: file-name templates, stem selection, the "instrumental" mix, and
//! the no-silent-overwrite rule (every target is checked before any file is written; each file
//! goes to a temp name and is renamed).

use std::path::{Path, PathBuf};

use crate::audio::AudioBuffer;
use crate::audio::encode::{SampleFormat, write_audio};

use super::EngineError;
use super::separator::Stems;

/// Name of the derived "everything but vocals" stem.
pub const INSTRUMENTAL: &str = "instrumental";

/// Where and how stems are written.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Output folder.
    pub out_dir: PathBuf,
    /// File-name template relative to `out_dir`; `{track}`, `{stem}`, `{ext}` are replaced.
    pub template: String,
    /// Sample format.
    pub format: SampleFormat,
    /// Stems to write (`None`: all model sources). May include [`INSTRUMENTAL`].
    pub stems: Option<Vec<String>>,
    /// Replace existing files.
    pub overwrite: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            out_dir: PathBuf::from("stems"),
            template: "{track}/{stem}.{ext}".into(),
            format: SampleFormat::Wav16,
            stems: None,
            overwrite: false,
        }
    }
}

/// Checks a `--stems` list against the model's sources; the error lists what is allowed. A
/// stem listed twice is refused (both would go to the same file).
pub fn validate_stems(requested: &[String], sources: &[String]) -> Result<(), EngineError> {
    for (i, s) in requested.iter().enumerate() {
        if requested[..i].contains(s) {
            return Err(EngineError::BadParameter(format!(
                "stem `{s}` is listed twice in --stems; list each stem once"
            )));
        }
        let known = sources.iter().any(|n| n == s)
            || (s == INSTRUMENTAL && sources.iter().any(|n| n == "vocals"));
        if !known {
            let mut allowed = sources.to_vec();
            if sources.iter().any(|n| n == "vocals") {
                allowed.push(INSTRUMENTAL.into());
            }
            return Err(EngineError::BadParameter(format!(
                "unknown stem `{s}`; this model produces: {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Track name used in templates: the input's file stem (the folder's name for a
/// `<track>/mixture.wav`), made safe for a folder name: path separators and control
/// characters become `_`, a name of only dots (`.`, `..` from an input named `...wav`) becomes
/// as many `_`, an empty one `track`. The result is always one plain path component, so it
/// can never lead out of the output folder.
pub fn track_name(input: &Path) -> String {
    let mut stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "track".into());
    // A MUSDB-style `<track>/mixture.wav` is named after its folder.
    if stem.eq_ignore_ascii_case("mixture")
        && let Some(dir) = input.parent().and_then(|p| p.file_name())
    {
        stem = dir.to_string_lossy().into_owned();
    }
    let name: String = stem
        .chars()
        .map(|c| {
            // `:` starts a drive prefix on Windows (`C:x`).
            if c == '/' || c == '\\' || c.is_control() || (cfg!(windows) && c == ':') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.is_empty() {
        "track".into()
    } else if name.chars().all(|c| c == '.') {
        "_".repeat(name.chars().count())
    } else {
        name
    }
}

/// Track names for `inputs`, in order, all different (compared ignoring case, as on macOS and
/// Windows file systems): the first input of a name keeps it, the next ones get `-2`, `-3`, …
/// (skipping names other inputs have).
pub fn unique_track_names(inputs: &[PathBuf]) -> Vec<String> {
    let natural: Vec<String> = inputs.iter().map(|p| track_name(p)).collect();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let all: std::collections::HashSet<String> = natural.iter().map(|n| n.to_lowercase()).collect();
    let mut out = Vec::with_capacity(natural.len());
    for name in natural {
        let mut pick = name.clone();
        let mut k = 2;
        while taken.contains(&pick.to_lowercase())
            || (pick != name && all.contains(&pick.to_lowercase()))
        {
            pick = format!("{name}-{k}");
            k += 1;
        }
        taken.insert(pick.to_lowercase());
        out.push(pick);
    }
    out
}

/// `template` with `{track}`, `{stem}` and `{ext}` replaced in one left-to-right pass (a
/// track name that contains `{stem}` stays literal).
fn expand(template: &str, track: &str, stem: &str, ext: &str) -> String {
    let mut out = String::with_capacity(template.len() + track.len() + stem.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let hit = [("{track}", track), ("{stem}", stem), ("{ext}", ext)]
            .into_iter()
            .find(|(key, _)| tail.starts_with(key));
        match hit {
            Some((key, value)) => {
                out.push_str(value);
                rest = &tail[key.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why `rel` is not a file path inside the output folder, if it is not: it must be relative,
/// made of plain names only (no `..`, `.`, root or drive prefix), and end in a file name.
fn outside_reason(rel: &str) -> Option<&'static str> {
    use std::path::Component;
    if rel.is_empty() {
        return Some("it is empty");
    }
    let p = Path::new(rel);
    if p.is_absolute() || p.has_root() {
        return Some("it is an absolute path; it must be relative to --out");
    }
    // `components()` drops inner `.` and a trailing separator, so look at the raw parts too.
    let raw_dots = rel
        .split(std::path::is_separator)
        .any(|part| part == "." || part == "..");
    if raw_dots || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Some("it contains `..`, `.` or a drive prefix; it must stay inside --out");
    }
    if rel.ends_with(std::path::is_separator) {
        return Some(
            "it ends with a folder separator; it must end in a file name such as {stem}.{ext}",
        );
    }
    None
}
impl ExportOptions {
    /// The stems that will be written, in order.
    pub fn selected(&self, sources: &[String]) -> Vec<String> {
        match &self.stems {
            Some(list) => list.clone(),
            None => sources.to_vec(),
        }
    }

    /// Checks the file-name template alone (call it before any work): it must contain
    /// `{stem}` and describe a file inside the output folder — relative, no `..` or `.`
    /// parts, ending in a file name.
    pub fn validate_template(&self) -> Result<(), EngineError> {
        if !self.template.contains("{stem}") {
            return Err(EngineError::BadParameter(format!(
                "the file-name template `{}` must contain {{stem}}, or every stem would get the same name",
                self.template
            )));
        }
        let sample = expand(&self.template, "track", "stem", self.format.extension());
        match outside_reason(&sample) {
            Some(why) => Err(EngineError::BadParameter(format!(
                "the file-name template `{}` is not allowed: {why}",
                self.template
            ))),
            None => Ok(()),
        }
    }

    /// The target path of each selected stem for `track`: always inside `out_dir`, and all
    /// different (an error otherwise).
    pub fn targets(
        &self,
        track: &str,
        sources: &[String],
    ) -> Result<Vec<(String, PathBuf)>, EngineError> {
        self.validate_template()?;
        let mut targets: Vec<(String, PathBuf)> = Vec::new();
        for stem in self.selected(sources) {
            let rel = expand(&self.template, track, &stem, self.format.extension());
            if let Some(why) = outside_reason(&rel) {
                return Err(EngineError::BadParameter(format!(
                    "the file-name template `{}` gives `{rel}` for track `{track}`, stem `{stem}`, \
                     which is not allowed: {why}",
                    self.template
                )));
            }
            let path = self.out_dir.join(rel);
            if targets.iter().any(|(_, p)| *p == path) {
                return Err(EngineError::BadParameter(format!(
                    "two stems would be written to the same file {} (is a stem listed twice?)",
                    path.display()
                )));
            }
            targets.push((stem, path));
        }
        Ok(targets)
    }

    /// Fails, naming every file, if any target exists and `overwrite` is off.
    pub fn check_targets(&self, targets: &[(String, PathBuf)]) -> Result<(), EngineError> {
        if self.overwrite {
            return Ok(());
        }
        let existing: Vec<String> = targets
            .iter()
            .filter(|(_, p)| p.exists())
            .map(|(_, p)| p.display().to_string())
            .collect();
        if existing.is_empty() {
            Ok(())
        } else {
            Err(EngineError::BadParameter(format!(
                "refusing to overwrite existing file(s): {} (pass --overwrite to replace them, or \
                 choose another --out)",
                existing.join(", ")
            )))
        }
    }

    /// The targets for `track` after the overwrite check, with leftovers of an interrupted
    /// earlier run (killed mid-write) beside them removed (temp files of running writers are
    /// kept). Call before any work that ends in writing.
    pub fn prepare(
        &self,
        track: &str,
        sources: &[String],
    ) -> Result<Vec<(String, PathBuf)>, EngineError> {
        let targets = self.targets(track, sources)?;
        self.check_targets(&targets)?;
        let mut dirs: Vec<&Path> = targets.iter().filter_map(|(_, p)| p.parent()).collect();
        dirs.dedup();
        for d in dirs {
            let _ = crate::audio::encode::clean_temp_files(d);
        }
        Ok(targets)
    }

    /// Writes the selected stems of `stems` for `track`; returns the written paths.
    pub fn write(&self, track: &str, stems: &Stems) -> Result<Vec<PathBuf>, EngineError> {
        let targets = self.prepare(track, &stems.names)?;
        let mut written = Vec::with_capacity(targets.len());
        for (stem, path) in targets {
            let buf = stem_buffer(stems, &stem)?;
            write_audio(&path, &buf, self.format, self.overwrite)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Which sources make up stem `name`, in summing order: the source itself, or for the
/// instrumental mix every source but vocals. The error lists the allowed names.
pub fn stem_sources(names: &[String], name: &str) -> Result<Vec<usize>, EngineError> {
    if let Some(i) = names.iter().position(|n| n == name) {
        return Ok(vec![i]);
    }
    if name == INSTRUMENTAL && names.iter().any(|n| n == "vocals") {
        return Ok((0..names.len()).filter(|&i| names[i] != "vocals").collect());
    }
    Err(validate_stems(&[name.to_string()], names)
        .err()
        .unwrap_or_else(|| EngineError::BadParameter(format!("unknown stem `{name}`"))))
}

/// The sum of `parts` (each `[channel][frames]`, equal shapes), added in order — the same
/// float operations for a whole song and for a block of it.
pub fn mix_channels(parts: &[&[Vec<f32>]]) -> Vec<Vec<f32>> {
    let mut acc: Vec<Vec<f32>> = parts.first().map(|p| p.to_vec()).unwrap_or_default();
    for part in parts.iter().skip(1) {
        for (dst, src) in acc.iter_mut().zip(part.iter()) {
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        }
    }
    acc
}

/// A source by name, or the instrumental mix (sum of every source but vocals).
fn stem_buffer(stems: &Stems, name: &str) -> Result<AudioBuffer, EngineError> {
    let idx = stem_sources(&stems.names, name)?;
    let parts: Vec<&[Vec<f32>]> = idx.iter().map(|&i| &stems.audio[i].channels[..]).collect();
    let rate = stems.audio[idx[0]].sample_rate;
    Ok(AudioBuffer::new(rate, mix_channels(&parts))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Vec<String> {
        ["vocals", "drums", "bass", "other"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn options(template: &str, out: &Path) -> ExportOptions {
        ExportOptions {
            out_dir: out.to_path_buf(),
            template: template.into(),
            ..Default::default()
        }
    }

    #[test]
    fn track_names_are_one_plain_component() {
        for (input, want) in [
            ("in/...wav", "__"),
            ("in/..wav", "_"),
            ("in/.wav", ".wav"),
            ("in/song.wav", "song"),
            ("in/a\\b.wav", "a_b"),
            ("in/new\nline.wav", "new_line"),
            ("Artist - Song/mixture.wav", "Artist - Song"),
            ("../mixture.wav", "mixture"),
            ("/", "track"),
        ] {
            let name = track_name(Path::new(input));
            assert_eq!(name, want, "{input:?}");
            let comps: Vec<_> = Path::new(&name).components().collect();
            assert!(
                matches!(comps[..], [std::path::Component::Normal(_)]),
                "{input:?} → {name:?}"
            );
        }
    }

    #[test]
    fn templates_never_leave_the_output_folder() {
        let out = Path::new("/tmp/out");
        for bad in [
            "../../escape/{stem}.wav",
            "../{stem}.wav",
            "/abs/{stem}.wav",
            "a/../../{stem}.wav",
            "./{stem}.wav",
            "a/./{stem}.wav",
            "{track}/../../{stem}.{ext}",
            "{stem}/",
            "{track}/{stem}/",
            "{stem}/.",
            "{stem}/..",
        ] {
            let e = options(bad, out).validate_template();
            assert!(e.is_err(), "{bad} accepted");
            let e = e.unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
            assert!(options(bad, out).targets("song", &sources()).is_err());
        }
        for good in [
            "{track}/{stem}.{ext}",
            "{stem}.wav",
            "x/{track}-{stem}.{ext}",
            "a..b/{stem}",
        ] {
            let opts = options(good, out);
            opts.validate_template().unwrap();
            for (_, p) in opts.targets("song", &sources()).unwrap() {
                assert!(p.starts_with(out), "{}", p.display());
            }
        }
        // A track name made of placeholders stays literal.
        let t = options("{track}/{stem}.{ext}", out)
            .targets("{stem}", &sources())
            .unwrap();
        assert_eq!(t[0].1, out.join("{stem}/vocals.wav"));
    }

    #[test]
    fn a_hostile_stem_or_track_name_is_refused_not_followed() {
        let out = Path::new("/tmp/out");
        let opts = options("{track}/{stem}.{ext}", out);
        assert!(opts.targets("..", &sources()).is_err());
        let evil = vec!["../../x".to_string()];
        assert!(opts.targets("song", &evil).is_err());
        // Two stems onto one file.
        let mut dup = options("{track}/{stem}.{ext}", out);
        dup.stems = Some(vec!["vocals".into(), "vocals".into()]);
        assert!(dup.targets("song", &sources()).is_err());
    }

    #[test]
    fn duplicate_stems_are_refused() {
        let list: Vec<String> = ["vocals", "vocals", "drums"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = validate_stems(&list, &sources()).unwrap_err().to_string();
        assert!(e.contains("vocals") && e.contains("twice"), "{e}");
        validate_stems(&list[1..], &sources()).unwrap();
    }

    #[test]
    fn inputs_with_the_same_name_get_distinct_track_names() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            unique_track_names(&[p("d1/song.wav"), p("d2/song.wav")]),
            ["song", "song-2"]
        );
        assert_eq!(
            unique_track_names(&[
                p("d1/song.wav"),
                p("d2/song.flac"),
                p("song-2.wav"),
                p("d3/Song.mp3")
            ]),
            ["song", "song-3", "song-2", "Song-4"]
        );
        assert_eq!(unique_track_names(&[p("a.wav"), p("b.wav")]), ["a", "b"]);
    }
}
