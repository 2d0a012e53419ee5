//! One lane of the Separate tab: a named buffer with its waveform peaks and spectrogram.

use std::sync::Arc;

use super::spectrogram::{SpecId, SpecSource, Spectrograms};
use super::waveform::Peaks;
use crate::audio::AudioBuffer;

/// The mix or a stem, ready to draw.
pub struct Lane {
    /// `mix`, `vocals`, …
    pub name: String,
    /// The audio.
    pub audio: Arc<AudioBuffer>,
    /// Waveform summary.
    pub peaks: Peaks,
    /// Its spectrogram (computed off-thread).
    pub spec: SpecId,
}

impl Lane {
    /// Summarises `audio` and requests its spectrogram.
    pub fn new(name: &str, audio: Arc<AudioBuffer>, specs: &mut Spectrograms) -> Self {
        let peaks = Peaks::new(&audio);
        let spec = specs.request(SpecSource::Audio(audio.clone()));
        Self {
            name: name.to_string(),
            audio,
            peaks,
            spec,
        }
    }
}
