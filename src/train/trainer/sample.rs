//! Training segments: random excerpts of the training tracks (or, with remixing, each stem
//! from its own track), augmented, drawn from a per-step RNG.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::TrainError;
use crate::train::augment::{AugmentConfig, augment};
use crate::train::dataset::{Example, Track};

/// Training data: tracks and the segment sampler.
pub(super) struct Sampler {
    /// The training tracks.
    pub(super) tracks: Vec<Track>,
    /// Their sample rate (the model's).
    pub(super) rate: u32,
    /// Segment length (samples).
    pub(super) len: usize,
    /// Augmentations applied to every segment.
    pub(super) augment: AugmentConfig,
}

impl Sampler {
    /// One augmented training segment drawn with `rng`.
    pub(super) fn example(&self, rng: &mut ChaCha8Rng) -> Result<Example, TrainError> {
        let pick = |rng: &mut ChaCha8Rng| &self.tracks[rng.random_range(0..self.tracks.len())];
        let start_in = |rng: &mut ChaCha8Rng, t: &Track| {
            if t.len > self.len {
                rng.random_range(0..t.len - self.len)
            } else {
                0
            }
        };
        let mut ex = if self.augment.remix {
            // Each stem from its own track and offset.
            let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
            for (i, stem) in stems.iter_mut().enumerate() {
                let t = pick(rng);
                let s = start_in(rng, t);
                let e = t.read_stems(s, self.len, self.rate)?;
                *stem = e.stems[i].clone();
            }
            Example { stems }
        } else {
            let t = pick(rng);
            let s = start_in(rng, t);
            t.read_stems(s, self.len, self.rate)?
        };
        augment(&mut ex, &self.augment, rng);
        Ok(ex)
    }
}

/// The RNG of step `step`, micro-batch `micro`: seeded with `seed`, one stream per pair.
pub(super) fn step_rng(seed: u64, step: usize, micro: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(((step as u64) << 16) | micro as u64);
    r
}
