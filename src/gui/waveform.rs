//! Waveform overview: min/max peaks per pixel, a time ruler, the playhead, click to seek, drag
//! to select a loop region, Ctrl+wheel to zoom and Shift+wheel to pan (the plain wheel scrolls
//! the lane list).

use eframe::egui;
use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui, Vec2};

use super::time_view::TimeView;
use crate::audio::AudioBuffer;

/// Samples summarised by one precomputed min/max pair.
const BLOCK: usize = 256;

/// Precomputed min/max pairs of a mono mix, so drawing never walks the whole song.
#[derive(Debug, Clone, Default)]
pub struct Peaks {
    sample_rate: u32,
    /// Mono mix (mean of the channels), for close zooms.
    mono: Vec<f32>,
    /// `(min, max)` of each block of [`BLOCK`] samples.
    blocks: Vec<(f32, f32)>,
}

impl Peaks {
    /// Summarises `audio`.
    pub fn new(audio: &AudioBuffer) -> Self {
        let n = audio.len();
        let chans = audio.channels.len().max(1) as f32;
        let mut mono = vec![0f32; n];
        for ch in &audio.channels {
            for (m, x) in mono.iter_mut().zip(ch) {
                *m += x / chans;
            }
        }
        let blocks = mono
            .chunks(BLOCK)
            .map(|c| {
                c.iter()
                    .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
            })
            .collect();
        Self {
            sample_rate: audio.sample_rate,
            mono,
            blocks,
        }
    }

    /// `(min, max)` of samples `a..b`.
    fn range(&self, a: usize, b: usize) -> Option<(f32, f32)> {
        let b = b.min(self.mono.len());
        if a >= b {
            return None;
        }
        let fold = |it: &mut dyn Iterator<Item = (f32, f32)>| {
            it.fold((f32::MAX, f32::MIN), |(lo, hi), (l, h)| {
                (lo.min(l), hi.max(h))
            })
        };
        if b - a <= 4 * BLOCK {
            return Some(fold(&mut self.mono[a..b].iter().map(|&x| (x, x))));
        }
        let (ba, bb) = (a.div_ceil(BLOCK), b / BLOCK);
        let head = self.mono[a..(ba * BLOCK).min(b)].iter().map(|&x| (x, x));
        let mid = self.blocks[ba..bb].iter().copied();
        let tail = self.mono[(bb * BLOCK).max(a)..b].iter().map(|&x| (x, x));
        Some(fold(&mut head.chain(mid).chain(tail)))
    }
}

/// What the user did to a waveform this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaveAction {
    /// Clicked: move the playhead here (seconds).
    Seek(f64),
    /// Dragged: loop this region (seconds).
    Select(f64, f64),
    /// Scrolled or zoomed: the new view.
    View(TimeView),
}

/// Draws one waveform lane. `selection` is the loop region, `playhead` the position (seconds).
pub fn show(
    ui: &mut Ui,
    label: &str,
    peaks: &Peaks,
    view: &TimeView,
    playhead: f64,
    selection: Option<(f64, f64)>,
    height: f32,
    color: Color32,
) -> Option<WaveAction> {
    let size = Vec2::new(ui.available_width(), height);
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Canvas, true, format!("{label} waveform"))
    });
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let (l, r) = (rect.left(), rect.right());

    if let Some((a, b)) = selection {
        let (xa, xb) = (view.x_of(a, l, r), view.x_of(b, l, r));
        let sel = Rect::from_x_y_ranges(xa.max(l)..=xb.min(r), rect.y_range());
        painter.rect_filled(sel, 0.0, Color32::from_rgba_unmultiplied(255, 210, 80, 40));
    }

    // One vertical line per pixel column, min to max.
    let sr = f64::from(peaks.sample_rate.max(1));
    let mid = rect.center().y;
    let half = rect.height() * 0.45;
    let cols = rect.width().max(1.0) as usize;
    let stroke = Stroke::new(1.0, color);
    for i in 0..cols {
        let t0 = view.start + view.span * i as f64 / cols as f64;
        let t1 = view.start + view.span * (i + 1) as f64 / cols as f64;
        let (a, b) = (
            (t0 * sr) as usize,
            ((t1 * sr) as usize).max((t0 * sr) as usize + 1),
        );
        if let Some((lo, hi)) = peaks.range(a, b) {
            let x = l + i as f32 + 0.5;
            painter.line_segment(
                [
                    Pos2::new(x, mid - hi.clamp(-1.0, 1.0) * half),
                    Pos2::new(x, mid - lo.clamp(-1.0, 1.0) * half + 0.5),
                ],
                stroke,
            );
        }
    }
    painter.text(
        rect.left_top() + Vec2::new(4.0, 2.0),
        egui::Align2::LEFT_TOP,
        label,
        egui::FontId::proportional(12.0),
        ui.visuals().strong_text_color(),
    );
    let px = view.x_of(playhead, l, r);
    if (l..=r).contains(&px) {
        painter.vline(
            px,
            rect.y_range(),
            Stroke::new(1.5, Color32::from_rgb(255, 80, 80)),
        );
    }

    // Interactions.
    let mut action = None;
    if response.hovered() {
        // The plain wheel is left to the lane list (it scrolls the lanes); Ctrl+wheel (egui's
        // zoom modifier, also a pinch) zooms time around the pointer; Shift+wheel (egui turns it
        // into horizontal scrolling, as does a sideways trackpad swipe) pans.
        let pan = ui.input(|i| i.smooth_scroll_delta.x);
        let zoom = ui.input(|i| i.zoom_delta());
        let anchor = response
            .hover_pos()
            .map_or(view.start + view.span / 2.0, |p| view.t_of(p.x, l, r));
        let mut v = *view;
        if zoom != 1.0 {
            v.zoom(1.0 / f64::from(zoom), anchor);
        }
        if pan != 0.0 {
            v.pan(-f64::from(pan) / f64::from(rect.width().max(1.0)) * v.span);
        }
        if v != *view {
            action = Some(WaveAction::View(v));
        }
    }
    if response.clicked() {
        if let Some(p) = response.interact_pointer_pos() {
            action = Some(WaveAction::Seek(view.t_of(p.x, l, r)));
        }
    }
    if response.dragged() || response.drag_stopped() {
        let start = ui.input(|i| i.pointer.press_origin());
        if let (Some(a), Some(b)) = (start, response.interact_pointer_pos()) {
            let (ta, tb) = (view.t_of(a.x, l, r), view.t_of(b.x, l, r));
            if (tb - ta).abs() > view.span * 0.002 {
                action = Some(WaveAction::Select(ta.min(tb), ta.max(tb)));
            }
        }
    }
    action
}

/// Draws a time ruler for `view` (ticks at a readable step).
pub fn ruler(ui: &mut Ui, view: &TimeView) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(ui.available_width(), 16.0), Sense::hover());
    let painter = ui.painter_at(rect);
    let steps = [
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ];
    let want = view.span / f64::from((rect.width() / 80.0).max(1.0));
    let step = steps.iter().copied().find(|s| *s >= want).unwrap_or(600.0);
    let mut t = (view.start / step).ceil() * step;
    let color = ui.visuals().text_color();
    while t <= view.end() {
        let x = view.x_of(t, rect.left(), rect.right());
        painter.vline(
            x,
            rect.bottom() - 5.0..=rect.bottom(),
            Stroke::new(1.0, color),
        );
        painter.text(
            Pos2::new(x + 2.0, rect.top()),
            egui::Align2::LEFT_TOP,
            format_time(t, step < 1.0),
            egui::FontId::monospace(10.0),
            color,
        );
        t += step;
    }
}

/// `75.5` → `1:15.5` (with tenths when `fine`).
pub fn format_time(seconds: f64, fine: bool) -> String {
    let m = (seconds / 60.0).floor();
    let s = seconds - m * 60.0;
    if fine {
        format!("{}:{:04.1}", m as u64, s)
    } else {
        format!("{}:{:02}", m as u64, s.floor() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_range_matches_direct_scan() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let p = Peaks::new(&AudioBuffer {
            sample_rate: 100,
            channels: vec![x.clone()],
        });
        for (a, b) in [(0, 5000), (3, 1030), (255, 257), (1000, 4097)] {
            let lo = x[a..b].iter().copied().fold(f32::MAX, f32::min);
            let hi = x[a..b].iter().copied().fold(f32::MIN, f32::max);
            assert_eq!(p.range(a, b), Some((lo, hi)), "{a}..{b}");
        }
        assert_eq!(format_time(75.5, true), "1:15.5");
    }
}
