//! The visible time window shared by every waveform and spectrogram (zoom and scroll).

/// Which part of the song is on screen, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeView {
    /// Left edge, seconds.
    pub start: f64,
    /// Visible span, seconds (> 0).
    pub span: f64,
    /// Song duration, seconds.
    pub duration: f64,
}

/// The shortest span the view zooms to, seconds.
const MIN_SPAN: f64 = 0.01;

impl TimeView {
    /// The whole song.
    pub fn fit(duration: f64) -> Self {
        let duration = duration.max(MIN_SPAN);
        Self {
            start: 0.0,
            span: duration,
            duration,
        }
    }

    /// Right edge, seconds.
    pub fn end(&self) -> f64 {
        self.start + self.span
    }

    /// Zooms by `factor` (< 1 zooms in) keeping time `anchor` where it is on screen.
    pub fn zoom(&mut self, factor: f64, anchor: f64) {
        let span = (self.span * factor).clamp(MIN_SPAN, self.duration);
        let rel = if self.span > 0.0 {
            (anchor - self.start) / self.span
        } else {
            0.0
        };
        self.start = anchor - rel * span;
        self.span = span;
        self.clamp();
    }

    /// Scrolls by `seconds` (positive: later).
    pub fn pan(&mut self, seconds: f64) {
        self.start += seconds;
        self.clamp();
    }

    /// Keeps the window inside the song.
    pub fn clamp(&mut self) {
        self.span = self.span.clamp(MIN_SPAN, self.duration.max(MIN_SPAN));
        self.start = self.start.clamp(0.0, (self.duration - self.span).max(0.0));
    }

    /// The x coordinate of time `t` in a rect spanning `left..right`.
    pub fn x_of(&self, t: f64, left: f32, right: f32) -> f32 {
        left + ((t - self.start) / self.span) as f32 * (right - left)
    }

    /// The time at x coordinate `x` in a rect spanning `left..right`.
    pub fn t_of(&self, x: f32, left: f32, right: f32) -> f64 {
        let w = (right - left).max(1.0);
        (self.start + f64::from((x - left) / w) * self.span).clamp(0.0, self.duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_anchor_and_stays_inside() {
        let mut v = TimeView::fit(100.0);
        v.zoom(0.5, 50.0);
        assert!((v.start - 25.0).abs() < 1e-9 && (v.span - 50.0).abs() < 1e-9);
        v.pan(1000.0);
        assert!((v.end() - 100.0).abs() < 1e-9);
        v.zoom(10.0, 0.0);
        assert_eq!(v, TimeView::fit(100.0));
    }
}
