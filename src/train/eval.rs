//! Evaluation: museval-v4 SDR (median over 1 s frames, then median over tracks), global SDR
//! (uSDR, MDX style) and SI-SDR, of a model or of estimates already on disk.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::dataset::{STEMS, Track, read_segment};
use super::error::TrainError;
use crate::audio::AudioBuffer;
use crate::audio::decode::probe_info;
use crate::dsp::metrics::{museval_sdr, nan_median, si_sdr, usdr};
use crate::engine::{CancelToken, SeparateParams, Separator};

/// Scores of one stem of one track.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct StemScore {
    /// museval v4 SDR (median over frames), dB; NaN when undefined (silent reference).
    pub sdr: f64,
    /// Global SDR (MDX), dB.
    pub usdr: f64,
    /// SI-SDR over the whole excerpt (channels concatenated), dB.
    pub si_sdr: f64,
}

/// The JSON report: `{"tracks": {track: {stem: {sdr, usdr, si_sdr}}}, "summary": {stem: …}}`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct EvalReport {
    /// Per track, per stem.
    pub tracks: BTreeMap<String, BTreeMap<String, StemScore>>,
    /// Per stem: median over tracks of each metric.
    pub summary: BTreeMap<String, StemScore>,
}

/// Reads the evaluated excerpt of a track: the middle `seconds` (0 = all).
fn excerpt(track: &Track, seconds: f64, rate: u32) -> (usize, usize) {
    let want = if seconds > 0.0 {
        (seconds * rate as f64) as usize
    } else {
        track.len
    };
    let len = want.min(track.len).max(1);
    ((track.len - len) / 2, len)
}

/// Scores estimates `[stem][channel]` against references; all four stems.
pub fn score(
    references: &[[Vec<f32>; 2]; 4],
    estimates: &[[Vec<f32>; 2]; 4],
    rate: u32,
) -> [StemScore; 4] {
    let refs: Vec<&[Vec<f32>]> = references.iter().map(|r| &r[..]).collect();
    let ests: Vec<&[Vec<f32>]> = estimates.iter().map(|e| &e[..]).collect();
    // museval evaluates all sources jointly (a frame silent in any source is skipped for all);
    // when a source is silent over the whole excerpt museval refuses the track, and we score
    // the other sources alone instead.
    let joint = museval_sdr(&refs, &ests, rate as usize).ok();
    std::array::from_fn(|s| {
        let sdr = match &joint {
            Some(v) => v[s],
            None => museval_sdr(&refs[s..s + 1], &ests[s..s + 1], rate as usize)
                .ok()
                .and_then(|v| v[0]),
        }
        .unwrap_or(f64::NAN);
        let flat = |x: &[Vec<f32>; 2]| [x[0].as_slice(), x[1].as_slice()].concat();
        StemScore {
            sdr,
            usdr: usdr(&references[s][..], &estimates[s][..]),
            si_sdr: si_sdr(&flat(&references[s]), &flat(&estimates[s])),
        }
    })
}

fn to_stereo(buf: &AudioBuffer) -> [Vec<f32>; 2] {
    let l = buf.channels[0].clone();
    let r = buf.channels.get(1).cloned().unwrap_or_else(|| l.clone());
    [l, r]
}

/// Separates each track's excerpt with `sep` and returns its per-stem museval SDR.
pub fn score_tracks(
    sep: &Separator,
    tracks: &[Track],
    seconds: f64,
) -> Result<Vec<[f64; 4]>, TrainError> {
    Ok(evaluate_model(sep, tracks, seconds, &mut |_| {})?
        .tracks
        .values()
        .map(|m| std::array::from_fn(|s| m.get(STEMS[s]).map_or(f64::NAN, |x| x.sdr)))
        .collect())
}

/// Evaluates a model on tracks (excerpts of `seconds`, 0 = whole tracks).
pub fn evaluate_model(
    sep: &Separator,
    tracks: &[Track],
    seconds: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<EvalReport, TrainError> {
    let rate = sep.config().sample_rate;
    let mut report = EvalReport::default();
    for t in tracks {
        progress(&t.name);
        let (start, len) = excerpt(t, seconds, rate);
        let mix = t.read_mixture(start, len, rate)?;
        let refs = t.read_stems(start, len, rate)?.stems;
        let audio =
            AudioBuffer::new(rate, mix.to_vec()).map_err(|e| TrainError::Invalid(e.to_string()))?;
        let stems = sep.separate(
            &audio,
            &SeparateParams::default(),
            &CancelToken::new(),
            &mut |_| {},
        )?;
        let mut est: [[Vec<f32>; 2]; 4] = Default::default();
        for (s, name) in STEMS.iter().enumerate() {
            if let Some(i) = stems.names.iter().position(|n| n == name) {
                est[s] = to_stereo(&stems.audio[i]);
            } else {
                est[s] = [vec![0.0; len], vec![0.0; len]];
            }
        }
        add_track(&mut report, &t.name, &score(&refs, &est, rate));
    }
    summarise(&mut report);
    Ok(report)
}

/// Evaluates estimates on disk (`<estimates>/<track>/<stem>.wav`), or with `baseline` the
/// mixture itself as every stem's estimate.
pub fn evaluate_estimates(
    tracks: &[Track],
    estimates: Option<&Path>,
    seconds: f64,
    rate: u32,
) -> Result<EvalReport, TrainError> {
    if let Some(dir) = estimates
        && !dir.is_dir()
    {
        return Err(TrainError::Invalid(format!(
            "the estimates folder '{}' does not exist or is not a folder",
            dir.display()
        )));
    }
    let mut report = EvalReport::default();
    for t in tracks {
        let (start, len) = excerpt(t, seconds, rate);
        let refs = t.read_stems(start, len, rate)?.stems;
        let mut est: [[Vec<f32>; 2]; 4] = Default::default();
        match estimates {
            Some(dir) => {
                let track_dir = dir.join(&t.name);
                let mut found = 0;
                for (s, name) in STEMS.iter().enumerate() {
                    let p = track_dir.join(format!("{name}.wav"));
                    est[s] = if p.exists() {
                        check_estimate(&p, t)?;
                        found += 1;
                        read_segment(&p.into(), start, len, rate)?
                    } else {
                        [vec![0.0; len], vec![0.0; len]]
                    };
                }
                if found == 0 {
                    return Err(TrainError::Invalid(format!(
                        "no estimate for track '{}': none of {} exists in '{}'",
                        t.name,
                        STEMS.map(|s| format!("{s}.wav")).join(", "),
                        track_dir.display()
                    )));
                }
            }
            None => {
                let mix = t.read_mixture(start, len, rate)?;
                for e in est.iter_mut() {
                    *e = mix.clone();
                }
            }
        }
        add_track(&mut report, &t.name, &score(&refs, &est, rate));
    }
    summarise(&mut report);
    Ok(report)
}

/// Refuses an estimate whose sample rate or length differs from its track's reference: it
/// would be scored against the wrong samples without a word.
fn check_estimate(path: &Path, track: &Track) -> Result<(), TrainError> {
    let (rate, frames) = match hound::WavReader::open(path) {
        Ok(r) => (r.spec().sample_rate, r.duration() as usize),
        Err(_) => {
            let info = probe_info(path)?;
            let secs = info.duration_secs.unwrap_or(0.0);
            (
                info.sample_rate,
                (secs * info.sample_rate as f64).round() as usize,
            )
        }
    };
    if rate != track.rate {
        return Err(TrainError::Invalid(format!(
            "estimate '{}' is at {rate} Hz but the reference of track '{}' is at {} Hz",
            path.display(),
            track.name,
            track.rate
        )));
    }
    if frames != track.len {
        return Err(TrainError::Invalid(format!(
            "estimate '{}' has {frames} samples but the reference of track '{}' has {}",
            path.display(),
            track.name,
            track.len
        )));
    }
    Ok(())
}

fn add_track(report: &mut EvalReport, name: &str, scores: &[StemScore; 4]) {
    let m = STEMS
        .iter()
        .zip(scores)
        .map(|(s, v)| (s.to_string(), *v))
        .collect();
    report.tracks.insert(name.to_string(), m);
}

fn summarise(report: &mut EvalReport) {
    for stem in STEMS {
        let col = |f: fn(&StemScore) -> f64| {
            let v: Vec<f64> = report
                .tracks
                .values()
                .filter_map(|m| m.get(stem))
                .map(f)
                .collect();
            nan_median(&v).unwrap_or(f64::NAN)
        };
        report.summary.insert(
            stem.to_string(),
            StemScore {
                sdr: col(|s| s.sdr),
                usdr: col(|s| s.usdr),
                si_sdr: col(|s| s.si_sdr),
            },
        );
    }
}

impl EvalReport {
    /// Aligned text table: one row per track and stem, then the summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<28} {:<8} {:>9} {:>9} {:>9}\n",
            "track", "stem", "SDR", "uSDR", "SI-SDR"
        );
        for (t, m) in self
            .tracks
            .iter()
            .map(|(k, v)| (k.clone(), v))
            .chain(std::iter::once(("median".to_string(), &self.summary)))
        {
            for (s, v) in m {
                out.push_str(&format!(
                    "{t:<28} {s:<8} {:>9.2} {:>9.2} {:>9.2}\n",
                    v.sdr, v.usdr, v.si_sdr
                ));
            }
        }
        out
    }

    /// Per-stem median SDR next to `baseline`'s (the mixture as every estimate) and the
    /// improvement, then the mean improvement over stems where both are defined.
    pub fn improvement_table(&self, baseline: &EvalReport) -> String {
        let mut out = format!(
            "{:<8} {:>9} {:>9} {:>12}\n",
            "stem", "SDR", "mixture", "improvement"
        );
        let mut deltas = Vec::new();
        for (stem, v) in &self.summary {
            let b = baseline.summary.get(stem).map_or(f64::NAN, |b| b.sdr);
            let d = v.sdr - b;
            if d.is_finite() {
                deltas.push(d);
            }
            out.push_str(&format!("{stem:<8} {:>9.2} {b:>9.2} {d:>+12.2}\n", v.sdr));
        }
        let mean = deltas.iter().sum::<f64>() / deltas.len().max(1) as f64;
        out.push_str(&format!(
            "mean SDR improvement over the mixture: {mean:+.2} dB\n"
        ));
        out
    }

    /// Mean over stems of the summary SDR, over the stems where it is defined; NaN when it is
    /// defined for none (silent references, empty excerpts).
    pub fn mean_sdr(&self) -> f64 {
        let v: Vec<f64> = self
            .summary
            .values()
            .map(|s| s.sdr)
            .filter(|v| v.is_finite())
            .collect();
        if v.is_empty() {
            return f64::NAN;
        }
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn improvement_is_estimate_minus_mixture_per_stem() {
        let row = |sdr| StemScore {
            sdr,
            usdr: 0.0,
            si_sdr: 0.0,
        };
        let mut est = EvalReport::default();
        let mut base = EvalReport::default();
        for (stem, e, b) in [
            ("bass", 4.0, -2.0),
            ("vocals", 1.0, 0.5),
            ("drums", f64::NAN, 1.0),
        ] {
            est.summary.insert(stem.into(), row(e));
            base.summary.insert(stem.into(), row(b));
        }
        let t = est.improvement_table(&base);
        assert!(t.contains("bass"), "{t}");
        assert!(t.contains("+6.00"), "{t}");
        assert!(t.contains("+0.50"), "{t}");
        // NaN stems are shown but left out of the mean: (6 + 0.5) / 2.
        assert!(
            t.contains("mean SDR improvement over the mixture: +3.25 dB"),
            "{t}"
        );
    }

    #[test]
    fn perfect_estimates_score_high_and_mixture_baseline_is_finite() {
        let n = 3 * 8000;
        let tone = |f: f32, a: f32| -> [Vec<f32>; 2] {
            let v: Vec<f32> = (0..n).map(|i| a * (i as f32 * f).sin()).collect();
            [v.clone(), v]
        };
        let refs = [
            tone(0.01, 0.5),
            tone(0.03, 0.3),
            tone(0.002, 0.4),
            tone(0.07, 0.2),
        ];
        let perfect = score(&refs, &refs.clone(), 8000);
        assert!(
            perfect.iter().all(|s| s.usdr > 60.0 && s.si_sdr > 60.0),
            "{perfect:?}"
        );
        let mut mix = [vec![0.0; n], vec![0.0; n]];
        for r in &refs {
            for (m, c) in mix.iter_mut().zip(r) {
                m.iter_mut().zip(c).for_each(|(a, b)| *a += b);
            }
        }
        let baseline = score(&refs, &[mix.clone(), mix.clone(), mix.clone(), mix], 8000);
        assert!(
            baseline.iter().all(|s| s.sdr.is_finite() && s.sdr < 10.0),
            "{baseline:?}"
        );
    }
}
