//! Error messages at the top of the central panel: a one-line summary that wraps inside the
//! panel, a "details" expander for long lists, and a dismiss button that is always on screen.

use eframe::egui;
use egui::{RichText, Ui};

use super::command::Command;

/// One error shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What went wrong, in one sentence.
    pub summary: String,
    /// The long part (e.g. every mismatched tensor), behind an expander.
    pub details: Option<String>,
}

impl Notice {
    /// A notice with a summary and optional details.
    pub fn new(summary: impl Into<String>, details: Option<String>) -> Self {
        Self {
            summary: summary.into(),
            details: details.filter(|d| !d.trim().is_empty()),
        }
    }

    /// Splits an error text: its first line is the summary, the other lines the details.
    pub fn from_text(text: &str) -> Self {
        match text.split_once('\n') {
            Some((first, rest)) => Self::new(first.trim_end_matches(':'), Some(rest.to_string())),
            None => Self::new(text, None),
        }
    }
}

/// Draws the notices; "dismiss" pushes [`Command::DismissError`].
pub fn show(ui: &mut Ui, notices: &[Notice], commands: &mut Vec<Command>) {
    for (i, n) in notices.iter().enumerate() {
        let color = ui.visuals().error_fg_color;
        egui::Frame::group(ui.style())
            .stroke(egui::Stroke::new(1.0, color.gamma_multiply(0.5)))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                // The button first, so it is on screen however long the text is; the text
                // wraps in what is left of the row.
                ui.horizontal(|ui| {
                    if ui
                        .small_button("dismiss")
                        .on_hover_text("Hide this message")
                        .clicked()
                    {
                        commands.push(Command::DismissError(i));
                    }
                    ui.add(
                        egui::Label::new(
                            RichText::new(format!("Error: {}", n.summary)).color(color),
                        )
                        .wrap(),
                    );
                });
                if let Some(details) = &n.details {
                    egui::CollapsingHeader::new("details")
                        .id_salt(("error details", i))
                        .show(ui, |ui| {
                            egui::ScrollArea::vertical()
                                .id_salt(("error details scroll", i))
                                .max_height(160.0)
                                .show(ui, |ui| {
                                    ui.add(
                                        egui::Label::new(
                                            RichText::new(details).small().monospace(),
                                        )
                                        .wrap(),
                                    );
                                });
                        });
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_the_summary() {
        let n = Notice::from_text("checkpoint does not match:\n  missing keys: a\n  b");
        assert_eq!(n.summary, "checkpoint does not match");
        assert_eq!(n.details.as_deref(), Some("  missing keys: a\n  b"));
        assert_eq!(Notice::from_text("plain").details, None);
    }
}
