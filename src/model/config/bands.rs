//! Band tables of the BS-Locoformer (BS-RoFormer's split: narrow bands at low frequencies,
//! wide ones above 8 kHz).

/// mixit-mss's fixed table (`band_split_config.BAND_SPLIT`, "same configuration as BS-RoFormer"):
/// 24×2, 12×4, 8×12, 8×24, 8×48, 128, 129 bins = 1025 bins (n_fft 2048) in 62 bands.
pub const MIXIT_BANDS: [usize; 62] = {
    let mut t = [0usize; 62];
    let mut i = 0;
    while i < 62 {
        t[i] = match i {
            0..=23 => 2,
            24..=35 => 4,
            36..=43 => 12,
            44..=51 => 24,
            52..=59 => 48,
            60 => 128,
            _ => 129,
        };
        i += 1;
    }
    t
};

/// MERL's table (`BSLocoformerSeparator`, release 1.1.0): for each range (Hz) with its
/// bins-per-band, `ceil((end − start) / (bins · freq_each_bin))` bands of that width, with
/// `freq_each_bin = (sample_rate // 2) / (n_fft // 2 + 1)`; the remaining bins become two
/// bands (`rest/2` rounded down, then up), or four at 48 kHz.
///
/// At 44.1 kHz / 2048 this is [`MIXIT_BANDS`]. Small STFTs whose fixed ranges already cover
/// more than F bins give an inconsistent table, which [`super::ModelConfig::validate`]
/// refuses.
pub fn merl_band_table(n_fft: usize, sample_rate: u32) -> Vec<usize> {
    const RANGES: [(f64, f64, usize); 5] = [
        (0.0, 1000.0, 2),
        (1000.0, 2000.0, 4),
        (2000.0, 4000.0, 12),
        (4000.0, 8000.0, 24),
        (8000.0, 16000.0, 48),
    ];
    let f = crate::dsp::stft::num_bins(n_fft);
    // Integer division first, then a float division (as the reference).
    let freq_each_bin = (sample_rate / 2) as f64 / f as f64;
    let mut bands = Vec::new();
    for (start, end, width) in RANGES {
        let count = ((end - start) / (width as f64 * freq_each_bin)).ceil() as usize;
        // Bounded: at most F bands of width ≥ 2 can fit (a bigger table is refused later).
        bands.extend(std::iter::repeat_n(width, count.min(f)));
    }
    let used: usize = bands.iter().sum();
    let rest = f.saturating_sub(used);
    if sample_rate == 48_000 {
        bands.extend([rest / 4, rest / 4, rest / 4, rest / 4 + rest % 4]);
    } else {
        bands.extend([rest / 2, rest - rest / 2]);
    }
    // Bands of zero width (a tiny STFT) are dropped; validation then reports the coverage.
    bands.retain(|&w| w > 0);
    bands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merl_table_at_44k1_2048_is_the_fixed_62_band_table() {
        let t = merl_band_table(2048, 44_100);
        assert_eq!(t, MIXIT_BANDS.to_vec());
        assert_eq!(t.iter().sum::<usize>(), 1025);
    }

    #[test]
    fn merl_table_at_48k_splits_the_rest_in_four() {
        let t = merl_band_table(2048, 48_000);
        assert_eq!(t.iter().sum::<usize>(), 1025);
        let n = t.len();
        let rest: usize = t[n - 4..].iter().sum();
        assert_eq!(t[n - 4], rest / 4);
        assert_eq!(t[n - 1], rest / 4 + rest % 4);
        // 48 kHz has coarser bins, so the fixed ranges need fewer bands of each width.
        assert!(t.iter().filter(|&&w| w == 2).count() <= 24);
    }
}
