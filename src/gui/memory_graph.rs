//! Live device-memory plot: allocator in-use and reserved over time, the planner's prediction
//! as a dashed line, and the adapter's total as a ceiling.

use eframe::egui;
use egui::{Color32, Pos2, Sense, Shape, Stroke, Ui, Vec2};

use crate::memory::planner::format_bytes;
use crate::memory::sampler::MemorySample;

const IN_USE: Color32 = Color32::from_rgb(90, 170, 255);
const RESERVED: Color32 = Color32::from_rgb(255, 170, 60);
const RSS: Color32 = Color32::from_rgb(170, 170, 170);
const PREDICTED: Color32 = Color32::from_rgb(120, 220, 120);
/// The device total is a fact about the machine, not an alarm: a neutral light grey.
const CEILING: Color32 = Color32::from_rgb(200, 200, 210);

/// Height of the legend band above the plot, in points (two lines of 11-point text).
const LEGEND_BAND: f32 = 30.0;

/// Samples of the running (or last) job, plus the two reference lines.
#[derive(Debug, Clone, Default)]
pub struct MemoryGraph {
    samples: Vec<MemorySample>,
    /// The planner's predicted peak, bytes.
    pub prediction: Option<u64>,
    /// The device's total memory, bytes.
    pub ceiling: Option<u64>,
}

impl MemoryGraph {
    /// Forgets the samples (a new job starts).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Adds a reading.
    pub fn push(&mut self, sample: MemorySample) {
        self.samples.push(sample);
    }

    /// Readings so far.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True without readings.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Largest device in-use reading (or resident set where the device reports none).
    pub fn peak(&self) -> Option<u64> {
        self.samples.iter().filter_map(|s| s.in_use.or(s.rss)).max()
    }

    /// Draws the plot.
    ///
    /// Layout: a legend band of [`LEGEND_BAND`] points on top, the plot below it.
    pub fn show(&self, ui: &mut Ui, height: f32) {
        let (rect, response) =
            ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
        response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "memory graph"));
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
        let device = self.samples.iter().any(|s| s.in_use.is_some());
        let value = |s: &MemorySample| if device { s.in_use } else { s.rss };
        let data_top = self
            .samples
            .iter()
            .flat_map(|s| [value(s), s.reserved])
            .flatten()
            .chain(self.prediction)
            .max()
            .unwrap_or(1 << 30)
            .max(1);
        // The ceiling is drawn when it is within reach; far above, it is only named.
        let ceiling_in_view = self.ceiling.filter(|&c| c <= data_top.saturating_mul(3));
        let top = data_top.max(ceiling_in_view.unwrap_or(0)) as f64 * 1.15;
        let t_max = self.samples.last().map_or(1.0, |s| s.t).max(1.0);
        // The top band holds the legend lines; the curves and levels are drawn below it so
        // that no text sits on a line.
        let plot = egui::Rect::from_min_max(
            rect.left_top() + Vec2::new(0.0, LEGEND_BAND.min(rect.height() * 0.5)),
            rect.right_bottom(),
        );
        let pt = |t: f64, b: u64| {
            Pos2::new(
                plot.left() + (t / t_max) as f32 * plot.width(),
                plot.bottom() - (b as f64 / top) as f32 * plot.height(),
            )
        };
        let font = egui::FontId::proportional(11.0);
        let hline = |bytes: u64, color: Color32, name: &str, dashed: bool| {
            let y = pt(0.0, bytes).y;
            let a = Pos2::new(rect.left(), y);
            let b = Pos2::new(rect.right(), y);
            if dashed {
                painter.extend(Shape::dashed_line(
                    &[a, b],
                    Stroke::new(1.5, color),
                    6.0,
                    4.0,
                ));
            } else {
                painter.line_segment([a, b], Stroke::new(1.5, color));
            }
            painter.text(
                Pos2::new(rect.right() - 4.0, y - 2.0),
                egui::Align2::RIGHT_BOTTOM,
                format!("{name} {}", format_bytes(bytes)),
                font.clone(),
                color,
            );
        };
        match (ceiling_in_view, self.ceiling) {
            (Some(c), _) => hline(c, CEILING, "device total", false),
            (None, Some(c)) => {
                painter.text(
                    rect.left_top() + Vec2::new(4.0, 16.0),
                    egui::Align2::LEFT_TOP,
                    format!("device total {} (off the scale)", format_bytes(c)),
                    font.clone(),
                    CEILING,
                );
            }
            (None, None) => {}
        }
        if let Some(p) = self.prediction {
            hline(p, PREDICTED, "predicted peak", true);
        }
        let series = |get: &dyn Fn(&MemorySample) -> Option<u64>| -> Vec<Pos2> {
            self.samples
                .iter()
                .filter_map(|s| get(s).map(|b| pt(s.t, b)))
                .collect()
        };
        let reserved = series(&|s| s.reserved);
        if reserved.len() > 1 {
            painter.line(reserved, Stroke::new(1.5, RESERVED));
        }
        let used = series(&value);
        if used.len() > 1 {
            painter.line(used, Stroke::new(2.0, if device { IN_USE } else { RSS }));
        }
        let legend = if device {
            "in use (blue) · reserved (orange)"
        } else {
            "process resident memory (grey)"
        };
        let now = self
            .samples
            .last()
            .and_then(value)
            .map(format_bytes)
            .unwrap_or_else(|| "no readings yet".into());
        painter.text(
            rect.left_top() + Vec2::new(4.0, 2.0),
            egui::Align2::LEFT_TOP,
            format!("Memory: {now} — {legend}"),
            font,
            ui.visuals().text_color(),
        );
    }
}
