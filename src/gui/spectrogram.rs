//! Spectrograms: computed off the UI thread with realfft (log-frequency rows, dB colour map),
//! uploaded as textures, drawn for the visible [`TimeView`].

use eframe::egui;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use egui::{Color32, ColorImage, Pos2, Rect, Sense, TextureHandle, TextureOptions, Ui, Vec2};
use realfft::RealFftPlanner;

use super::time_view::TimeView;
use crate::audio::AudioBuffer;

/// FFT size of the display spectrogram.
const N_FFT: usize = 2048;
/// At most this many columns (frames) per texture.
const MAX_COLUMNS: usize = 4096;
/// Rows of the log-frequency axis.
const ROWS: usize = 192;
/// Lowest frequency shown, Hz.
const F_MIN: f64 = 30.0;
/// dB range shown below the loudest bin.
const DB_RANGE: f32 = 90.0;
/// dB range of a difference image (±).
const DIFF_RANGE: f32 = 24.0;

/// Identifies one requested spectrogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpecId(u64);

/// What to draw.
#[derive(Debug, Clone)]
pub enum SpecSource {
    /// The spectrogram of a buffer (channels averaged).
    Audio(Arc<AudioBuffer>),
    /// `dB(a) − dB(b)`, on a diverging colour map.
    Difference(Arc<AudioBuffer>, Arc<AudioBuffer>),
}

/// Spectrogram magnitudes in dB on the log-frequency grid, `[column][row]` (row 0 = lowest).
#[derive(Debug, Clone, PartialEq)]
pub struct LogSpec {
    /// Columns (time frames).
    pub columns: usize,
    /// dB values, column-major, `ROWS` per column.
    pub db: Vec<f32>,
    /// Sample rate of the source.
    pub sample_rate: u32,
}

/// Computes the log-frequency dB spectrogram of `audio`.
fn log_spectrogram(audio: &AudioBuffer) -> LogSpec {
    let n = audio.len();
    let chans = audio.channels.len().max(1) as f32;
    let hop = (n / MAX_COLUMNS + 1).max(N_FFT / 8);
    let columns = (n / hop).max(1);
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(N_FFT);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / N_FFT as f32).cos())
        .collect();
    let sr = f64::from(audio.sample_rate.max(1));
    let nyquist = sr / 2.0;
    let bins = crate::dsp::stft::num_bins(N_FFT);
    // Bin range of each log-spaced row.
    let edges: Vec<usize> = (0..=ROWS)
        .map(|r| {
            let f = F_MIN * (nyquist / F_MIN).powf(r as f64 / ROWS as f64);
            ((f / nyquist * (bins - 1) as f64).round() as usize).min(bins - 1)
        })
        .collect();
    let mut db = Vec::with_capacity(columns * ROWS);
    let mut power = vec![0f32; bins];
    for c in 0..columns {
        let center = c * hop + hop / 2;
        for (i, x) in input.iter_mut().enumerate() {
            let idx = (center + i).checked_sub(N_FFT / 2);
            let mut v = 0.0;
            if let Some(idx) = idx.filter(|&k| k < n) {
                for ch in &audio.channels {
                    v += ch[idx];
                }
            }
            *x = v / chans * window[i];
        }
        if fft
            .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .is_err()
        {
            spectrum.iter_mut().for_each(|s| *s = Default::default());
        }
        for (p, s) in power.iter_mut().zip(&spectrum) {
            *p = s.norm_sqr();
        }
        for r in 0..ROWS {
            let (a, b) = (edges[r], edges[r + 1].max(edges[r] + 1).min(bins));
            let m = power[a..b].iter().copied().fold(0f32, f32::max);
            db.push(10.0 * (m + 1e-12).log10());
        }
    }
    LogSpec {
        columns,
        db,
        sample_rate: audio.sample_rate,
    }
}

/// Colours a spectrogram: dB below its maximum on a dark-to-bright map.
fn colorize(spec: &LogSpec) -> ColorImage {
    let max = spec.db.iter().copied().fold(f32::MIN, f32::max);
    image_from(spec, |v| {
        magma(((v - max + DB_RANGE) / DB_RANGE).clamp(0.0, 1.0))
    })
}

/// Colours `a − b` in dB: blue where `b` is louder, red where `a` is.
fn colorize_difference(a: &LogSpec, b: &LogSpec) -> ColorImage {
    let columns = a.columns.min(b.columns);
    let floor = a.db.iter().chain(&b.db).copied().fold(f32::MIN, f32::max) - DB_RANGE;
    let diff = LogSpec {
        columns,
        db: a.db[..columns * ROWS]
            .iter()
            .zip(&b.db[..columns * ROWS])
            .map(|(x, y)| x.max(floor) - y.max(floor))
            .collect(),
        sample_rate: a.sample_rate,
    };
    image_from(&diff, |v| diverging((v / DIFF_RANGE).clamp(-1.0, 1.0)))
}

fn image_from(spec: &LogSpec, color: impl Fn(f32) -> Color32) -> ColorImage {
    let (w, h) = (spec.columns, ROWS);
    let mut pixels = vec![Color32::BLACK; w * h];
    for c in 0..w {
        for r in 0..h {
            // Row 0 of the image is the top: the highest frequency.
            pixels[(h - 1 - r) * w + c] = color(spec.db[c * ROWS + r]);
        }
    }
    ColorImage::new([w, h], pixels)
}

fn lerp_color(stops: &[(f32, [u8; 3])], x: f32) -> Color32 {
    let i = stops
        .iter()
        .rposition(|(p, _)| *p <= x)
        .unwrap_or(0)
        .min(stops.len() - 2);
    let ((p0, c0), (p1, c1)) = (stops[i], stops[i + 1]);
    let t = ((x - p0) / (p1 - p0).max(1e-6)).clamp(0.0, 1.0);
    let ch =
        |k: usize| (f32::from(c0[k]) + t * (f32::from(c1[k]) - f32::from(c0[k]))).round() as u8;
    Color32::from_rgb(ch(0), ch(1), ch(2))
}

/// A magma-like map for `x` in [0, 1].
fn magma(x: f32) -> Color32 {
    const STOPS: [(f32, [u8; 3]); 5] = [
        (0.0, [0, 0, 4]),
        (0.25, [80, 18, 123]),
        (0.5, [182, 54, 121]),
        (0.75, [251, 136, 97]),
        (1.0, [252, 253, 191]),
    ];
    lerp_color(&STOPS, x)
}

/// Blue – near black – red for `x` in [-1, 1].
fn diverging(x: f32) -> Color32 {
    const STOPS: [(f32, [u8; 3]); 3] = [
        (-1.0, [60, 130, 255]),
        (0.0, [20, 20, 24]),
        (1.0, [255, 90, 60]),
    ];
    lerp_color(&STOPS, x)
}

/// Computes spectrograms on a background thread and keeps their textures.
pub struct Spectrograms {
    tx: Sender<(SpecId, SpecSource)>,
    rx: Receiver<(SpecId, ColorImage)>,
    textures: HashMap<SpecId, TextureHandle>,
    pending: HashSet<SpecId>,
    next: u64,
}

impl Spectrograms {
    /// Starts the `locosep-spectrogram` thread; it calls `ctx.request_repaint()` per result.
    pub fn new(ctx: &egui::Context) -> Self {
        let (tx, work) = channel::<(SpecId, SpecSource)>();
        let (done, rx) = channel();
        let ctx = ctx.clone();
        // If the thread cannot start, requests stay pending and lanes show "computing…".
        let _ = std::thread::Builder::new()
            .name("locosep-spectrogram".into())
            .spawn(move || {
                while let Ok((id, source)) = work.recv() {
                    let image = match &source {
                        SpecSource::Audio(a) => colorize(&log_spectrogram(a)),
                        SpecSource::Difference(a, b) => {
                            colorize_difference(&log_spectrogram(a), &log_spectrogram(b))
                        }
                    };
                    if done.send((id, image)).is_err() {
                        return;
                    }
                    ctx.request_repaint();
                }
            });
        Self {
            tx,
            rx,
            textures: HashMap::new(),
            pending: HashSet::new(),
            next: 0,
        }
    }

    /// Queues a spectrogram; its texture appears after a later [`Self::poll`].
    pub fn request(&mut self, source: SpecSource) -> SpecId {
        self.next += 1;
        let id = SpecId(self.next);
        if self.tx.send((id, source)).is_ok() {
            self.pending.insert(id);
        }
        id
    }

    /// Uploads finished images as textures.
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Ok((id, image)) = self.rx.try_recv() {
            if self.pending.remove(&id) {
                let tex = ctx.load_texture(
                    format!("spectrogram-{}", id.0),
                    image,
                    TextureOptions::LINEAR,
                );
                self.textures.insert(id, tex);
            }
        }
    }

    /// Forgets a spectrogram (its texture is freed).
    pub fn forget(&mut self, id: SpecId) {
        self.pending.remove(&id);
        self.textures.remove(&id);
    }

    /// Spectrograms still being computed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Draws spectrogram `id` for the visible part of `view` (the whole source when `view` is
    /// `None`), with frequency labels.
    pub fn show(&self, ui: &mut Ui, id: SpecId, label: &str, view: Option<&TimeView>, height: f32) {
        let size = Vec2::new(ui.available_width(), height);
        let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Image, true, format!("{label} spectrogram"))
        });
        let painter = ui.painter_at(rect);
        match self.textures.get(&id) {
            Some(tex) => {
                let uv = match view {
                    Some(v) if v.duration > 0.0 => {
                        let (a, b) = ((v.start / v.duration) as f32, (v.end() / v.duration) as f32);
                        Rect::from_min_max(Pos2::new(a, 0.0), Pos2::new(b, 1.0))
                    }
                    _ => Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                };
                painter.image(tex.id(), rect, uv, Color32::WHITE);
                let font = egui::FontId::monospace(9.0);
                for f in [100.0, 1000.0, 10000.0] {
                    let y = rect.bottom()
                        - rect.height() * (f64::ln(f / F_MIN) / f64::ln(22050.0 / F_MIN)) as f32;
                    if y > rect.top() + 8.0 {
                        let text = if f >= 1000.0 {
                            format!("{}k", f / 1000.0)
                        } else {
                            format!("{f}")
                        };
                        painter.text(
                            Pos2::new(rect.left() + 2.0, y),
                            egui::Align2::LEFT_CENTER,
                            text,
                            font.clone(),
                            Color32::from_gray(200),
                        );
                    }
                }
            }
            None => {
                painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
                painter.text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "computing spectrogram…",
                    egui::FontId::proportional(12.0),
                    ui.visuals().weak_text_color(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lights_up_its_row() {
        let sr = 44100;
        let x: Vec<f32> = (0..sr)
            .map(|i| (i as f32 * 1000.0 * std::f32::consts::TAU / sr as f32).sin())
            .collect();
        let s = log_spectrogram(&AudioBuffer {
            sample_rate: sr as u32,
            channels: vec![x],
        });
        let col = &s.db[(s.columns / 2) * ROWS..(s.columns / 2 + 1) * ROWS];
        let peak = col
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(r, _)| r)
            .unwrap_or(0);
        let f = F_MIN * (22050.0 / F_MIN).powf(peak as f64 / ROWS as f64);
        assert!((800.0..1250.0).contains(&f), "peak row at {f} Hz");
        assert_eq!(colorize(&s).size, [s.columns, ROWS]);
    }
}
