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

/// Checks a `--stems` list against the model's sources; the error lists what is allowed.
pub fn validate_stems(requested: &[String], sources: &[String]) -> Result<(), EngineError> {
    for s in requested {
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
/// `<track>/mixture.wav`), made safe for a folder name.
pub fn track_name(input: &Path) -> String {
    let mut stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "track".into());
    // A MUSDB-style `<track>/mixture.wav` is named after its folder.
    if stem.eq_ignore_ascii_case("mixture") {
        if let Some(dir) = input.parent().and_then(|p| p.file_name()) {
            stem = dir.to_string_lossy().into_owned();
        }
    }
    stem.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

impl ExportOptions {
    /// The stems that will be written, in order.
    pub fn selected(&self, sources: &[String]) -> Vec<String> {
        match &self.stems {
            Some(list) => list.clone(),
            None => sources.to_vec(),
        }
    }

    /// The target path of each selected stem for `track`.
    pub fn targets(
        &self,
        track: &str,
        sources: &[String],
    ) -> Result<Vec<(String, PathBuf)>, EngineError> {
        if !self.template.contains("{stem}") {
            return Err(EngineError::BadParameter(format!(
                "the file-name template `{}` must contain {{stem}}, or every stem would get the same name",
                self.template
            )));
        }
        Ok(self
            .selected(sources)
            .into_iter()
            .map(|stem| {
                let rel = self
                    .template
                    .replace("{track}", track)
                    .replace("{stem}", &stem)
                    .replace("{ext}", self.format.extension());
                let path = self.out_dir.join(rel);
                (stem, path)
            })
            .collect())
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
pub fn stem_buffer(stems: &Stems, name: &str) -> Result<AudioBuffer, EngineError> {
    let idx = stem_sources(&stems.names, name)?;
    let parts: Vec<&[Vec<f32>]> = idx.iter().map(|&i| &stems.audio[i].channels[..]).collect();
    let rate = stems.audio[idx[0]].sample_rate;
    Ok(AudioBuffer::new(rate, mix_channels(&parts))?)
}
