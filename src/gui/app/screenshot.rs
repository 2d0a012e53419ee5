//! `--screenshot`: grab the window once the song is on screen, write it as PNG, close.

use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::LocosepApp;

/// Progress of a `--screenshot` run.
#[derive(Debug)]
pub(super) struct ScreenshotJob {
    pub(super) path: PathBuf,
    pub(super) started: std::time::Instant,
    pub(super) requested: bool,
    /// Set by the screenshot callback: `Ok` once the PNG is written.
    pub(super) done: Arc<std::sync::Mutex<Option<Result<(), String>>>>,
}

impl LocosepApp {
    /// `--screenshot`: once the song is on screen with its spectrogram (or after 60 s), grab
    /// the next frame, write it as PNG, then close the window.
    pub(super) fn screenshot_step(&mut self, ctx: &egui::Context) {
        let ready = self.loading.is_none() && self.pending_spectrograms() == 0;
        let Some(job) = &mut self.screenshot else {
            return;
        };
        let result = job.done.lock().map(|d| d.clone()).unwrap_or(None);
        match result {
            Some(Ok(())) => {
                eprintln!("screenshot written to {}", job.path.display());
                self.screenshot = None;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Some(Err(e)) => {
                eprintln!("error: screenshot: {e}");
                self.screenshot = None;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            None if !job.requested
                && ((ready && job.started.elapsed() > Duration::from_secs(2))
                    || job.started.elapsed() > Duration::from_secs(60)) =>
            {
                job.requested = true;
                let (path, done) = (job.path.clone(), job.done.clone());
                let repaint = ctx.clone();
                ctx.request_screenshot(move |image| {
                    let r = write_png(&path, &image);
                    if let Ok(mut d) = done.lock() {
                        *d = Some(r);
                    }
                    repaint.request_repaint();
                });
            }
            None => ctx.request_repaint_after(Duration::from_millis(100)),
        }
    }
}

/// Writes an RGBA image as PNG (temp file + rename; replaces an existing file: the user named
/// it on the command line).
pub(super) fn write_png(path: &Path, image: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    crate::audio::encode::write_atomic(path, true, |f| {
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w as u32, h as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&rgba)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
    .map_err(|e| format!("{}: {e}", path.display()))
}
