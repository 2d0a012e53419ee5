//! A PNG of the training curves: loss per step (top panel, blue) and validation SDR per stem
//! (bottom panel: vocals red, drums orange, bass green, other purple, mean black). Drawn
//! without a font; the axes span the data's range (grid lines every tenth).

use std::path::Path;

use super::trainer::{TrainError, TrainState};

const W: usize = 800;
const H: usize = 600;

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            for d in 0..2 {
                self.set(x as i64, y as i64 + d, c);
            }
        }
    }
    fn panel(&mut self, top: usize, bottom: usize, series: &[(Vec<(f64, f64)>, [u8; 3])]) {
        let pts: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|(s, _)| s.iter().copied())
            .filter(|p| p.1.is_finite())
            .collect();
        if pts.is_empty() {
            return;
        }
        let (x0, x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (xs, ys) = ((x1 - x0).max(1e-9), (y1 - y0).max(1e-9));
        let (left, right) = (40.0, (W - 20) as f64);
        let map = |p: (f64, f64)| {
            (
                left + (p.0 - x0) / xs * (right - left),
                bottom as f64 - (p.1 - y0) / ys * (bottom - top) as f64,
            )
        };
        for g in 0..=10 {
            let y = top as f64 + g as f64 / 10.0 * (bottom - top) as f64;
            self.line((left, y), (right, y), [225, 225, 225]);
            let x = left + g as f64 / 10.0 * (right - left);
            self.line((x, top as f64), (x, bottom as f64), [225, 225, 225]);
        }
        for (s, c) in series {
            let s: Vec<(f64, f64)> = s.iter().copied().filter(|p| p.1.is_finite()).collect();
            for w in s.windows(2) {
                self.line(map(w[0]), map(w[1]), *c);
            }
            if s.len() == 1 {
                let (x, y) = map(s[0]);
                self.line((x - 2.0, y), (x + 2.0, y), *c);
            }
        }
    }
}

/// Writes the curves of `state` to `path` (PNG, 800×600).
pub fn write_png(path: &Path, state: &TrainState) -> Result<(), TrainError> {
    let mut c = Canvas {
        px: vec![255; W * H * 3],
    };
    let loss: Vec<(f64, f64)> = state
        .steps
        .iter()
        .map(|s| (s.step as f64, s.loss as f64))
        .collect();
    c.panel(20, 280, &[(loss, [30, 90, 200])]);
    let colours = [[200, 40, 40], [230, 140, 20], [40, 150, 60], [130, 60, 170]];
    let mut series: Vec<(Vec<(f64, f64)>, [u8; 3])> = (0..4)
        .map(|s| {
            (
                state
                    .valid
                    .iter()
                    .map(|v| (v.step as f64, v.sdr[s]))
                    .collect(),
                colours[s],
            )
        })
        .collect();
    series.push((
        state
            .valid
            .iter()
            .map(|v| (v.step as f64, v.mean_sdr))
            .collect(),
        [0, 0, 0],
    ));
    c.panel(320, 580, &series);
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, W as u32, H as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| TrainError::Invalid(format!("png: {e}")))?;
        w.write_image_data(&c.px)
            .map_err(|e| TrainError::Invalid(format!("png: {e}")))?;
    }
    crate::audio::encode::write_atomic(path, true, |f| std::io::Write::write_all(f, &bytes))
        .map_err(|e| TrainError::Invalid(e.to_string()))
}
