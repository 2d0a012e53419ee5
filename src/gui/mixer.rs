//! The mixer: one strip per stem plus the original mix, each with mute, solo and gain.

use eframe::egui;
use egui::Ui;

use super::command::Command;
use super::player::MAX_TRACKS;

/// One channel strip.
#[derive(Debug, Clone, PartialEq)]
pub struct Strip {
    /// Shown name (`original mix`, `vocals`, …).
    pub name: String,
    /// Gain in dB.
    pub gain_db: f32,
    /// Muted.
    pub mute: bool,
    /// Soloed.
    pub solo: bool,
}

impl Strip {
    fn new(name: &str, mute: bool) -> Self {
        Self {
            name: name.to_string(),
            gain_db: 0.0,
            mute,
            solo: false,
        }
    }
}

/// Mixer state; strip 0 is the original mix, the others follow the stems' order.
#[derive(Debug, Clone, PartialEq)]
pub struct MixerState {
    /// The strips.
    pub strips: Vec<Strip>,
}

impl Default for MixerState {
    fn default() -> Self {
        Self {
            strips: vec![Strip::new("original mix", false)],
        }
    }
}

impl MixerState {
    /// Strips for the original and these stems; the original starts muted so the stems play.
    pub fn with_stems(names: &[String]) -> Self {
        let mut strips = vec![Strip::new("original mix", !names.is_empty())];
        strips.extend(
            names
                .iter()
                .take(MAX_TRACKS - 1)
                .map(|n| Strip::new(n, false)),
        );
        Self { strips }
    }

    /// Linear gain per track as the audio thread wants it: solo wins over mute.
    pub fn gains(&self) -> [f32; MAX_TRACKS] {
        let any_solo = self.strips.iter().any(|s| s.solo);
        let mut g = [0.0; MAX_TRACKS];
        for (slot, s) in g.iter_mut().zip(&self.strips) {
            let audible = if any_solo { s.solo } else { !s.mute };
            *slot = if audible {
                10f32.powf(s.gain_db / 20.0)
            } else {
                0.0
            };
        }
        g
    }

    /// Draws the strips; changes become commands.
    pub fn show(&self, ui: &mut Ui, commands: &mut Vec<Command>) {
        // A value box wide enough for "-40.0 dB", so the panel does not jump while dragging.
        ui.spacing_mut().interact_size.x = 64.0;
        egui::Grid::new("mixer")
            .num_columns(4)
            .spacing([6.0, 4.0])
            .show(ui, |ui| {
                for (i, s) in self.strips.iter().enumerate() {
                    ui.label(&s.name);
                    let mut mute = s.mute;
                    if ui
                        .toggle_value(&mut mute, "M")
                        .on_hover_text(format!("Mute {}", s.name))
                        .changed()
                    {
                        commands.push(Command::SetMute(i, mute));
                    }
                    let mut solo = s.solo;
                    if ui
                        .toggle_value(&mut solo, "S")
                        .on_hover_text(format!("Solo {}", s.name))
                        .changed()
                    {
                        commands.push(Command::SetSolo(i, solo));
                    }
                    let mut gain = s.gain_db;
                    let slider = egui::Slider::new(&mut gain, -40.0..=12.0)
                        .fixed_decimals(1)
                        .suffix(" dB")
                        .show_value(true);
                    if ui
                        .add(slider)
                        .on_hover_text(format!("{} gain", s.name))
                        .changed()
                    {
                        commands.push(Command::SetGain(i, gain));
                    }
                    ui.end_row();
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solo_beats_mute() {
        let mut m = MixerState::with_stems(&["vocals".into(), "drums".into()]);
        assert_eq!(&m.gains()[..3], &[0.0, 1.0, 1.0]);
        m.strips[2].mute = true;
        assert_eq!(&m.gains()[..3], &[0.0, 1.0, 0.0]);
        m.strips[2].solo = true;
        assert_eq!(&m.gains()[..3], &[0.0, 0.0, 1.0]);
    }
}
