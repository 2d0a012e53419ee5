//! The desktop app (eframe/egui, wgpu renderer).
//!
//! It drives the engine only through [`EngineCommand`]/[`EngineEvent`] channels (it never names
//! a burn type) and the audio thread only through [`player::ToAudio`]/[`player::FromAudio`].

use eframe::egui;
use std::path::PathBuf;

use crate::engine::messages::{EngineCommand, EngineEvent};
use crate::engine::worker::EngineHandle;

mod app;
pub mod command;
pub mod compare;
pub mod dialogs;
pub mod export_panel;
pub mod finetune;
pub mod lane;
pub mod memory_graph;
pub mod mixer;
pub mod models_window;
pub mod notices;
pub mod player;
pub mod presets_panel;
pub mod settings;
pub mod spectrogram;
pub mod time_view;
pub mod waveform;
pub mod weights_check;

#[cfg(test)]
mod tests;

pub use app::{AppOptions, LocosepApp};

/// The Get-models window over the user's catalog and data folder, with its download worker.
/// Downloads are verified by the CLI's loader check (`model::folder::verify_model_dir`).
fn models_window(ctx: egui::Context) -> Result<models_window::ModelsWindow, String> {
    let catalog = crate::catalog::load_catalog().map_err(|e| e.to_string())?;
    let store = crate::catalog::Store::from_env().map_err(|e| e.to_string())?;
    let rows = models_window::ModelsWindow::rows_from(&catalog, &store);
    let (tx, rx) = models_window::spawn_worker(
        store,
        catalog,
        crate::catalog::DownloadOptions::from_env(),
        crate::model::folder::verify_model_dir,
        move || ctx.request_repaint(),
    )
    .map_err(|e| format!("cannot start the download worker: {e}"))?;
    Ok(models_window::ModelsWindow::new(rows, tx, rx))
}

/// Opens the window (wgpu renderer) and runs until it is closed; `path` is opened at once.
pub fn run(path: Option<PathBuf>, screenshot: Option<PathBuf>) -> Result<(), String> {
    let no_display =
        std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none();
    if no_display && cfg!(target_os = "linux") {
        return Err("no display found (neither DISPLAY nor WAYLAND_DISPLAY is set): the GUI needs a desktop \
                    session; use `locosep separate …` for headless work, or run under xvfb-run"
            .into());
    }
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("locosep")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "locosep",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let (tx, rx): (
                std::sync::mpsc::Sender<EngineCommand>,
                std::sync::mpsc::Receiver<EngineEvent>,
            ) = EngineHandle::spawn(move || ctx.request_repaint())?;
            let repaint = cc.egui_ctx.clone();
            let (train_tx, train_rx) =
                crate::train::worker::spawn(move || repaint.request_repaint())
                    .map_err(|e| format!("cannot start the training worker: {e}"))?;
            let offer_models = path.is_none() && screenshot.is_none();
            let models = models_window(cc.egui_ctx.clone());
            let app = LocosepApp::new(
                &cc.egui_ctx,
                cc.storage,
                tx,
                rx,
                AppOptions {
                    open: path,
                    settings_path: settings::Settings::default_path(),
                    audio: screenshot.is_none(),
                    screenshot,
                },
            )
            .with_trainer(train_tx, train_rx);
            let app = match models {
                Ok(w) => app.with_models(w, offer_models),
                Err(e) => {
                    eprintln!("warning: no Get-models window: {e}");
                    app
                }
            };
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| format!("cannot open the window: {e}"))
}
