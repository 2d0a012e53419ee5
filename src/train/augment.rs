//! Data augmentation as in demucs / Open-Unmix: random gain per stem, channel swap, polarity
//! flip, and remixing stems across tracks (done by the sampler, which draws each stem from its
//! own random track). Each switch lives in the training config.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::dataset::Example;

/// Which augmentations run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Random gain per stem, uniform in dB over `[-gain_db, +gain_db]` (0 = off).
    pub gain_db: f32,
    /// Swap left/right of each stem with probability ½.
    pub channel_swap: bool,
    /// Flip each stem's polarity with probability ½.
    pub polarity_flip: bool,
    /// Draw each stem from an independently chosen track ("remix").
    pub remix: bool,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            gain_db: 6.0,
            channel_swap: true,
            polarity_flip: true,
            remix: true,
        }
    }
}

/// Applies the per-stem augmentations in place.
pub fn augment(ex: &mut Example, cfg: &AugmentConfig, rng: &mut impl Rng) {
    for stem in ex.stems.iter_mut() {
        let mut g = 1.0f32;
        if cfg.gain_db > 0.0 {
            let db = rng.random_range(-cfg.gain_db..=cfg.gain_db);
            g = 10f32.powf(db / 20.0);
        }
        if cfg.polarity_flip && rng.random_bool(0.5) {
            g = -g;
        }
        if cfg.channel_swap && rng.random_bool(0.5) {
            stem.swap(0, 1);
        }
        if g != 1.0 {
            stem.iter_mut().flatten().for_each(|v| *v *= g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn example() -> Example {
        let s = |v: f32| [vec![v; 8], vec![2.0 * v; 8]];
        Example {
            stems: [s(1.0), s(2.0), s(3.0), s(4.0)],
        }
    }

    #[test]
    fn off_is_identity_and_on_changes_each_stem_independently() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut ex = example();
        let off = AugmentConfig {
            gain_db: 0.0,
            channel_swap: false,
            polarity_flip: false,
            remix: false,
        };
        augment(&mut ex, &off, &mut rng);
        assert_eq!(ex.stems, example().stems);
        let mut changed = 0;
        for seed in 0..20 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut ex = example();
            augment(&mut ex, &AugmentConfig::default(), &mut rng);
            for (a, b) in ex.stems.iter().zip(example().stems.iter()) {
                // The ratio between channels survives gain and polarity; swap inverts it.
                let r = a[1][0] / a[0][0];
                assert!((r - 2.0).abs() < 1e-5 || (r - 0.5).abs() < 1e-5);
                changed += (a != b) as usize;
            }
        }
        assert!(
            changed > 60,
            "augmentation should change most stems, changed {changed}/80"
        );
    }
}
