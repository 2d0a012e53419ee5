//! The panels, drawn from state; what the user does becomes [`Command`]s, nothing changes
//! while drawing.

use eframe::egui;
use std::path::PathBuf;

use egui::{Color32, RichText, Ui};

use super::{LocosepApp, file_name};
use crate::gui::command::Command;
use crate::gui::notices;
use crate::gui::settings::Tab;
use crate::gui::time_view::TimeView;
use crate::gui::waveform::{self, WaveAction, format_time};

impl LocosepApp {
    pub(super) fn menu_bar(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add(egui::Button::new("Open…").shortcut_text("Ctrl+O"))
                    .clicked()
                {
                    cmds.push(Command::OpenDialog);
                }
                if ui.button("Add to queue…").clicked() {
                    cmds.push(Command::EnqueueDialog);
                }
                if self.models_window.is_some() && ui.button("Get models…").clicked() {
                    cmds.push(Command::ShowModels);
                }
                ui.menu_button("Recent", |ui| {
                    if self.settings.recent.is_empty() {
                        ui.label("nothing yet");
                    }
                    for p in &self.settings.recent {
                        if ui.button(p.display().to_string()).clicked() {
                            cmds.push(Command::Open(p.clone()));
                        }
                    }
                });
                ui.separator();
                if ui
                    .add(egui::Button::new("Quit").shortcut_text("Ctrl+Q"))
                    .clicked()
                {
                    cmds.push(Command::Quit);
                }
            });
            ui.separator();
            let tab = self.settings.layout.tab;
            for (t, name) in [
                (Tab::Separate, "Song"),
                (Tab::Compare, "Compare"),
                (Tab::FineTune, "Fine-tune"),
            ] {
                if ui.selectable_label(tab == t, name).clicked() {
                    cmds.push(Command::SetTab(t));
                }
            }
        });
    }

    pub(super) fn errors_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        notices::show(ui, &self.errors, cmds);
    }

    pub(super) fn progress_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let can = self.song.is_some() && self.job.is_none();
            if ui.add_enabled(can, egui::Button::new("Separate")).clicked() {
                cmds.push(Command::Separate);
            }
            ui.label(format!("with {}", self.settings.model.label()));
            if let Some(j) = &self.job {
                let frac = if j.total == 0 {
                    0.0
                } else {
                    j.done as f32 / j.total as f32
                };
                let eta = (j.done > 0 && j.total >= j.done)
                    .then(|| j.elapsed.mul_f64((j.total - j.done) as f64 / j.done as f64))
                    .map_or_else(
                        || "ETA –".into(),
                        |d| format!("ETA {}", format_time(d.as_secs_f64(), false)),
                    );
                let text = format!("{}/{} chunks · {eta}", j.done, j.total);
                ui.add(egui::ProgressBar::new(frac).desired_width(220.0).text(text));
                let label = if j.cancelling {
                    "Cancelling…"
                } else {
                    "Cancel"
                };
                if ui
                    .add_enabled(!j.cancelling, egui::Button::new(label))
                    .clicked()
                {
                    cmds.push(Command::Cancel(j.job));
                }
                if !j.device.is_empty() {
                    let what = format!("{} on {}", j.model, j.device);
                    ui.add(egui::Label::new(RichText::new(&what).small()).truncate())
                        .on_hover_text(what);
                }
            } else if let Some(r) = &self.last_result {
                ui.add(egui::Label::new(r.as_str()).truncate())
                    .on_hover_text(r.as_str());
            }
        });
    }

    pub(super) fn transport_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let playing = self.player.is_playing();
            let enabled = self.player.available();
            let (label, cmd) = if playing {
                ("Pause", Command::Pause)
            } else {
                ("Play", Command::Play)
            };
            if ui
                .add_enabled(enabled, egui::Button::new(label))
                .on_hover_text("Space")
                .clicked()
            {
                cmds.push(cmd);
            }
            let duration = self.song.as_ref().map_or(0.0, |s| s.audio.duration_secs());
            ui.monospace(format!(
                "{} / {}",
                format_time(self.player.position_secs(), true),
                format_time(duration, true)
            ));
            if let Some((a, b)) = self.selection {
                ui.label(format!(
                    "loop {}–{}",
                    format_time(a, true),
                    format_time(b, true)
                ));
                if ui.small_button("clear loop").clicked() {
                    cmds.push(Command::SetLoop(None));
                }
            }
            ui.separator();
            let mut v = self.view;
            if ui.small_button("zoom in").clicked() {
                v.zoom(0.5, v.start + v.span / 2.0);
            }
            if ui.small_button("zoom out").clicked() {
                v.zoom(2.0, v.start + v.span / 2.0);
            }
            if ui.small_button("fit").clicked() {
                v = TimeView::fit(v.duration);
            }
            if v != self.view {
                cmds.push(Command::SetView(v));
            }
        });
        if !self.player.available() {
            // Why Play is off, once, on its own wrapped line (a long message must not widen
            // the central panel, or the lanes would run under the side panel).
            ui.add(egui::Label::new(self.player.status()).wrap());
        }
        // Horizontal scroll through the song when zoomed in.
        if self.view.span < self.view.duration {
            let mut start = self.view.start;
            let max = (self.view.duration - self.view.span).max(0.0);
            let slider = egui::Slider::new(&mut start, 0.0..=max)
                .show_value(false)
                .text("scroll");
            if ui.add(slider).changed() {
                let mut v = self.view;
                v.start = start;
                v.clamp();
                cmds.push(Command::SetView(v));
            }
        }
    }

    pub(super) fn lanes_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        let Some(song) = &self.song else { return };
        let layout = &self.settings.layout;
        waveform::ruler(ui, &self.view);
        egui::ScrollArea::vertical()
            .id_salt("lanes")
            .show(ui, |ui| {
                let colors = [
                    Color32::from_rgb(150, 200, 255),
                    Color32::from_rgb(255, 140, 160),
                    Color32::from_rgb(255, 200, 90),
                    Color32::from_rgb(140, 230, 140),
                    Color32::from_rgb(200, 160, 255),
                ];
                let lanes = std::iter::once(&song.lane).chain(&self.stem_lanes);
                // Lane i is mixer strip i: a lane that is not heard (muted, or another is
                // soloed) is drawn dimmed.
                let gains = self.mixer.gains();
                for (i, lane) in lanes.enumerate() {
                    let heard = gains.get(i).is_none_or(|&g| g > 0.0);
                    let color = if heard {
                        colors[i % colors.len()]
                    } else {
                        colors[i % colors.len()].gamma_multiply(0.3)
                    };
                    let playhead = self.player.position_secs();
                    if let Some(a) = waveform::show(
                        ui,
                        &lane.name,
                        &lane.peaks,
                        &self.view,
                        playhead,
                        self.selection,
                        layout.lane_height,
                        color,
                    ) {
                        cmds.push(match a {
                            WaveAction::Seek(t) => Command::Seek(t),
                            WaveAction::Select(a, b) => Command::SetLoop(Some((a, b))),
                            WaveAction::View(v) => Command::SetView(v),
                        });
                    }
                    if layout.spectrograms {
                        self.specs.show(
                            ui,
                            lane.spec,
                            &lane.name,
                            Some(&self.view),
                            layout.lane_height * 1.2,
                        );
                    }
                    ui.add_space(4.0);
                }
            });
    }

    pub(super) fn separate_tab(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        if let Some((_, path)) = &self.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Decoding {}…", file_name(path)));
            });
        }
        let Some(song) = &self.song else {
            if self.loading.is_none() {
                ui.vertical_centered(|ui| {
                    ui.add_space(60.0);
                    ui.heading("Drop a song here, or use File > Open…");
                    ui.label("WAV, FLAC, MP3, OGG, M4A/AAC, ALAC");
                    if !self.settings.recent.is_empty() {
                        ui.add_space(12.0);
                        ui.label("Recent:");
                        for p in self.settings.recent.iter().take(5) {
                            if ui.link(p.display().to_string()).clicked() {
                                cmds.push(Command::Open(p.clone()));
                            }
                        }
                    }
                });
            }
            return;
        };
        let a = &song.audio;
        ui.label(
            RichText::new(format!(
                "{} · {} Hz · {} ch · {}",
                file_name(&song.path),
                a.sample_rate,
                a.channels.len(),
                format_time(a.duration_secs(), true)
            ))
            .strong(),
        );
        self.progress_ui(ui, cmds);
        self.transport_ui(ui, cmds);
        self.lanes_ui(ui, cmds);
    }

    pub(super) fn bottom_ui(&self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            ui.horizontal(|ui| {
                ui.strong("Queue");
                if ui.small_button("add…").clicked() {
                    cmds.push(Command::EnqueueDialog);
                }
                let waiting = self.queue.iter().any(|q| q.job.is_none());
                if ui.add_enabled(waiting, egui::Button::new("Separate + export queue").small()).clicked() {
                    cmds.push(Command::RunQueue);
                }
            });
            if self.queue.is_empty() {
                ui.label(RichText::new("Drop several songs to queue them; each is separated and exported with the export settings.").small());
            }
            for (i, q) in self.queue.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.label(file_name(&q.path));
                    ui.label(RichText::new(&q.status).small());
                    if ui.small_button("remove").clicked() {
                        cmds.push(Command::Dequeue(i));
                    }
                });
            }
            self.memory.show(&mut cols[1], 110.0);
        });
    }

    pub(super) fn side_ui(&mut self, ui: &mut Ui, cmds: &mut Vec<Command>) {
        ui.heading("Mixer");
        self.mixer.show(ui, cmds);
        ui.separator();
        let names = self.stem_names();
        let busy = self.export_job.is_some();
        self.export.show(ui, &names, busy, cmds);
    }

    /// Space plays or pauses (unless a text field has the keyboard), Ctrl+O opens, Ctrl+E
    /// exports, Ctrl+Q quits, Esc closes the open question or window.
    pub(super) fn shortcuts(&self, ctx: &egui::Context, cmds: &mut Vec<Command>) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let typing = ctx.egui_wants_keyboard_input();
        ctx.input_mut(|i| {
            let mut pressed = |m, k| i.consume_shortcut(&KeyboardShortcut::new(m, k));
            if pressed(Modifiers::COMMAND, Key::O) {
                cmds.push(Command::OpenDialog);
            }
            if pressed(Modifiers::COMMAND, Key::E) && self.stems.is_some() {
                cmds.push(Command::Export { overwrite: false });
            }
            if pressed(Modifiers::COMMAND, Key::Q) {
                cmds.push(Command::Quit);
            }
            if !typing && pressed(Modifiers::NONE, Key::Escape) {
                cmds.push(Command::CloseDialog);
            }
            if !typing && pressed(Modifiers::NONE, Key::Space) {
                cmds.push(Command::TogglePlay);
            }
        });
    }

    pub(super) fn handle_drops(&self, ctx: &egui::Context, cmds: &mut Vec<Command>) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        let mut files = dropped.into_iter();
        if let Some(first) = files.next() {
            cmds.push(Command::Open(first));
            let rest: Vec<PathBuf> = files.collect();
            if !rest.is_empty() {
                cmds.push(Command::Enqueue(rest));
            }
        }
        if ctx.input(|i| !i.raw.hovered_files.is_empty()) {
            let painter = ctx.layer_painter(egui::LayerId::new(
                egui::Order::Foreground,
                egui::Id::unique("locosep-drop-overlay"),
            ));
            let rect = ctx.content_rect();
            painter.rect_filled(rect, 0.0, Color32::from_black_alpha(160));
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Drop to open (more files go to the queue)",
                egui::FontId::proportional(22.0),
                Color32::WHITE,
            );
        }
    }
}
