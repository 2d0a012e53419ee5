//! Export: folder (chosen, typed or pasted), format and bit rate, which stems (and the
//! instrumental), name template; existing files are never replaced without asking.

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
    /// The folder field's text: typed, pasted, or the folder last chosen.
    pub dir_text: String,
    /// Why the typed folder cannot be used (shown under the field; exporting waits for a fix).
    pub dir_error: Option<String>,
    /// `form.out_dir` as last shown in the field (a folder chosen with the button replaces
    /// the text).
    dir_seen: PathBuf,
}

impl ExportPanel {
    /// Starts from saved settings.
    pub fn new(form: ExportSettings) -> Self {
        Self {
            dir_text: form.out_dir.display().to_string(),
            dir_seen: form.out_dir.clone(),
            form,
            confirm: None,
            status: None,
            dir_error: None,
        }
    }

    /// The chosen format at the chosen bit rate (lossy formats only take one).
    pub fn format(&self) -> Result<SampleFormat, String> {
        let format: SampleFormat = self.form.format.parse()?;
        match self.form.bitrate {
            Some(kbps) if format.bitrate().is_some() => format.with_bitrate(kbps),
            _ => Ok(format),
        }
    }

    /// The engine's options for stems named `names`.
    pub fn options(&self, names: &[String], overwrite: bool) -> Result<ExportOptions, String> {
        if let Some(e) = &self.dir_error {
            return Err(format!("the export folder cannot be used: {e}"));
        }
        let format = self.format()?;
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
        if self.form.out_dir != self.dir_seen {
            // A folder was chosen with the button (or the settings changed): show it.
            self.dir_text = self.form.out_dir.display().to_string();
            self.dir_seen = self.form.out_dir.clone();
            self.dir_error = None;
        }
        ui.horizontal(|ui| {
            let label = ui.label("Folder:");
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut self.dir_text)
                        .hint_text("type or paste a folder")
                        .desired_width(220.0),
                )
                .labelled_by(label.id);
            if field.changed() {
                match validate_export_dir(&self.dir_text) {
                    Ok(dir) => {
                        self.form.out_dir = dir.clone();
                        self.dir_seen = dir;
                        self.dir_error = None;
                    }
                    Err(e) => self.dir_error = Some(e),
                }
            }
            if ui.button("Choose…").clicked() {
                commands.push(Command::PickExportDir);
            }
        });
        if let Some(e) = &self.dir_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("format")
                .selected_text(self.form.format.clone())
                .show_ui(ui, |ui| {
                    for f in SampleFormat::NAMES {
                        ui.selectable_value(&mut self.form.format, f.to_string(), f);
                    }
                });
            if let Ok(f) = self.form.format.parse::<SampleFormat>()
                && let Some(default) = f.bitrate()
            {
                let current = self.form.bitrate.unwrap_or(default);
                egui::ComboBox::from_label("kbit/s")
                    .selected_text(current.to_string())
                    .show_ui(ui, |ui| {
                        for &k in f.bitrate_choices() {
                            if ui.selectable_label(k == current, k.to_string()).clicked() {
                                self.form.bitrate = Some(k);
                            }
                        }
                    });
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
        let ready = !names.is_empty() && !busy && self.dir_error.is_none();
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

/// The folder typed or pasted into the export field, checked: surrounding spaces and quotes and
/// a `file://` prefix are dropped, `~` is the home folder. It must be a full path; an existing
/// path must be a folder; a missing one is created at export, so its nearest existing parent
/// must be a folder. The error says what is wrong, naming the path.
fn validate_export_dir(text: &str) -> Result<PathBuf, String> {
    let t = text.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| t.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(t);
    let t = t.strip_prefix("file://").unwrap_or(t);
    if t.is_empty() {
        return Err("type or paste the folder to export into".into());
    }
    let home = || directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    let path = match t.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with(['/', '\\']) => match home() {
            Some(h) => h.join(rest.trim_start_matches(['/', '\\'])),
            None => return Err("there is no home folder to put '~' for".into()),
        },
        _ => PathBuf::from(t),
    };
    if !path.is_absolute() {
        return Err(format!(
            "'{t}' is not a full path; give the whole path, e.g. /home/you/Music/stems"
        ));
    }
    if path.exists() {
        return if path.is_dir() {
            Ok(path)
        } else {
            Err(format!("'{}' is a file, not a folder", path.display()))
        };
    }
    let parent = path.ancestors().skip(1).find(|a| a.exists());
    match parent {
        Some(p) if !p.is_dir() => Err(format!(
            "'{}' cannot be created: '{}' is a file, not a folder",
            path.display(),
            p.display()
        )),
        _ => Ok(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;
    use std::path::Path;

    struct State {
        panel: ExportPanel,
        commands: Vec<Command>,
    }

    fn names() -> Vec<String> {
        ["vocals", "drums", "bass", "other"]
            .map(String::from)
            .to_vec()
    }

    fn harness(form: ExportSettings) -> Harness<'static, State> {
        let state = State {
            panel: ExportPanel::new(form),
            commands: Vec::new(),
        };
        Harness::new_ui_state(
            |ui, s: &mut State| s.panel.show(ui, &names(), false, &mut s.commands),
            state,
        )
    }

    fn form_in(dir: &Path) -> ExportSettings {
        ExportSettings {
            out_dir: dir.to_path_buf(),
            ..ExportSettings::default()
        }
    }

    /// Types `text` into the (emptied) folder field.
    fn type_folder(h: &mut Harness<'static, State>, text: &str) {
        h.state_mut().panel.dir_text.clear();
        h.run();
        let field = h.get_by_label("Folder:");
        field.focus();
        field.type_text(text);
        h.run();
    }

    #[test]
    fn a_typed_folder_is_checked_and_used() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("song.wav");
        std::fs::write(&file, b"x").expect("write");

        let mut h = harness(form_in(tmp.path()));
        h.run();
        type_folder(&mut h, "relative/stems");
        h.get_by_label_contains("is not a full path");
        let e = h.state().panel.options(&names(), false).unwrap_err();
        assert!(e.contains("relative/stems"), "{e}");
        assert_eq!(h.state().panel.form.out_dir, tmp.path(), "kept until fixed");

        type_folder(&mut h, file.to_str().expect("utf-8"));
        h.get_by_label_contains("is a file, not a folder");
        let e = validate_export_dir(&format!("{}/sub", file.display())).unwrap_err();
        assert!(e.contains("cannot be created"), "{e}");

        let new = tmp.path().join("new/stems");
        type_folder(&mut h, &format!("  '{}' ", new.display()));
        assert!(h.state().panel.dir_error.is_none());
        assert!(h.query_by_label_contains("not a folder").is_none());
        let options = h.state().panel.options(&names(), false).expect("options");
        assert_eq!(options.out_dir, new);
        assert!(!new.exists(), "created only when exporting");

        // A folder chosen with the button replaces the text.
        h.state_mut().panel.form.out_dir = tmp.path().to_path_buf();
        h.run();
        assert_eq!(h.state().panel.dir_text, tmp.path().display().to_string());
        assert!(validate_export_dir("").is_err());
        assert!(validate_export_dir("~").is_ok_and(|p| p.is_absolute()));
    }

    #[test]
    fn mp3_and_ogg_offer_a_bit_rate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut form = form_in(tmp.path());
        form.format = "flac".into();
        let mut h = harness(form);
        h.run();
        assert!(h.query_by_label("kbit/s").is_none(), "FLAC has no bit rate");
        h.state_mut().panel.form.format = "mp3".into();
        h.run();
        h.get_by_label("kbit/s");
        let f = h
            .state()
            .panel
            .options(&names(), false)
            .expect("options")
            .format;
        assert_eq!(f, SampleFormat::Mp3 { kbps: 320 });
        h.state_mut().panel.form.bitrate = Some(192);
        let f = h.state().panel.format().expect("format");
        assert_eq!(f, SampleFormat::Mp3 { kbps: 192 });
        assert_eq!(f.extension(), "mp3");
        h.state_mut().panel.form.bitrate = Some(300);
        let e = h.state().panel.options(&names(), false).unwrap_err();
        assert!(e.contains("320"), "{e}");
        h.state_mut().panel.form.format = "ogg".into();
        h.state_mut().panel.form.bitrate = Some(160);
        h.run();
        h.get_by_label("kbit/s");
        assert_eq!(
            h.state().panel.format(),
            Ok(SampleFormat::Vorbis { kbps: 160 })
        );
    }
}
