//! Export: folder, format, which stems (and the instrumental), name template; existing files
//! are never replaced without asking.

use eframe::egui;
use std::path::PathBuf;

use egui::Ui;

use super::command::Command;
use super::settings::ExportSettings;
use crate::audio::encode::SampleFormat;
use crate::engine::export::{ExportOptions, INSTRUMENTAL};

/// The export form and its overwrite question.
#[derive(Debug, Clone, Default)]
pub struct ExportPanel {
    /// The form (saved into the settings).
    pub form: ExportSettings,
    /// Files that exist and would be replaced: the question being asked.
    pub confirm: Option<Vec<PathBuf>>,
    /// The last result, for the status line.
    pub status: Option<String>,
}

impl ExportPanel {
    /// Starts from saved settings.
    pub fn new(form: ExportSettings) -> Self {
        Self {
            form,
            confirm: None,
            status: None,
        }
    }

    /// The engine's options for stems named `names`.
    pub fn options(&self, names: &[String], overwrite: bool) -> Result<ExportOptions, String> {
        let format: SampleFormat = self.form.format.parse()?;
        let mut stems: Vec<String> = names
            .iter()
            .filter(|n| !self.form.skipped.contains(n))
            .cloned()
            .collect();
        if self.form.instrumental && names.iter().any(|n| n == "vocals") {
            stems.push(INSTRUMENTAL.to_string());
        }
        if stems.is_empty() {
            return Err("no stem is selected for export".into());
        }
        Ok(ExportOptions {
            out_dir: self.form.out_dir.clone(),
            template: self.form.template.clone(),
            format,
            stems: Some(stems),
            overwrite,
        })
    }

    /// Draws the form for stems `names` (empty: nothing separated yet).
    pub fn show(&mut self, ui: &mut Ui, names: &[String], busy: bool, commands: &mut Vec<Command>) {
        ui.heading("Export");
        ui.horizontal(|ui| {
            ui.label("Folder:");
            ui.label(self.form.out_dir.display().to_string());
            if ui.button("Choose…").clicked() {
                commands.push(Command::PickExportDir);
            }
        });
        egui::ComboBox::from_label("format")
            .selected_text(self.form.format.clone())
            .show_ui(ui, |ui| {
                for f in SampleFormat::NAMES {
                    ui.selectable_value(&mut self.form.format, f.to_string(), f);
                }
            });
        ui.horizontal(|ui| {
            ui.label("Names:");
            ui.add(
                egui::TextEdit::singleline(&mut self.form.template)
                    .hint_text("{track}/{stem}.{ext}")
                    .desired_width(160.0),
            );
        });
        ui.horizontal_wrapped(|ui| {
            for n in names {
                let mut on = !self.form.skipped.contains(n);
                if ui.checkbox(&mut on, format!("export {n}")).changed() {
                    if on {
                        self.form.skipped.retain(|s| s != n);
                    } else {
                        self.form.skipped.push(n.clone());
                    }
                }
            }
            ui.checkbox(&mut self.form.instrumental, "export instrumental")
                .on_hover_text("everything but the vocals, mixed");
        });
        let ready = !names.is_empty() && !busy;
        if ui
            .add_enabled(ready, egui::Button::new("Export stems"))
            .clicked()
        {
            commands.push(Command::Export { overwrite: false });
        }
        if let Some(s) = &self.status {
            ui.label(s);
        }
    }

    /// The overwrite question, when one is pending.
    pub fn show_confirm(&self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let Some(files) = &self.confirm else { return };
        egui::Window::new("Replace existing files?")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                ui.label(format!("{} file(s) already exist:", files.len()));
                for f in files.iter().take(8) {
                    ui.monospace(f.display().to_string());
                }
                ui.horizontal(|ui| {
                    if ui.button("Overwrite").clicked() {
                        commands.push(Command::Export { overwrite: true });
                    }
                    if ui.button("Keep them").clicked() {
                        commands.push(Command::CancelOverwrite);
                    }
                });
            });
    }
}
