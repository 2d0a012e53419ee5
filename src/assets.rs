//! Finding the bundled assets (presets, demo model, demo song, SoundFont) both in a source
//! checkout and in an installed package.

use std::path::PathBuf;

/// Candidate asset roots, most specific first: `$LOCOSEP_ASSETS`, next to the executable
/// (`<exe dir>/assets`, AppImage/portable layout), the install prefix
/// (`<exe dir>/../share/locosep/assets`, the .deb layout), then the source tree this binary was
/// built from.
pub fn asset_roots() -> Vec<PathBuf> {
    let mut roots = vec![];
    if let Some(p) = std::env::var_os("LOCOSEP_ASSETS") {
        roots.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            roots.push(dir.join("assets"));
            roots.push(dir.join("../share/locosep/assets"));
        }
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets"));
    roots
}

/// The first existing `<root>/<rel>`.
pub fn find(rel: &str) -> Option<PathBuf> {
    asset_roots()
        .into_iter()
        .map(|r| r.join(rel))
        .find(|p| p.exists())
}

/// The bundled default model: `(config file, weights file, description)`. The demo model
/// trained on synthetic songs when present, else the tiny untrained reference fixture.
pub fn default_model() -> Option<(PathBuf, PathBuf, &'static str)> {
    if let (Some(c), Some(w)) = (
        find("models/demo/config.toml"),
        find("models/demo/model.safetensors"),
    ) {
        return Some((
            c,
            w,
            "bundled demo model (trained on synthetic General-MIDI songs)",
        ));
    }
    if let (Some(c), Some(w)) = (
        find("models/mss-tiny/config.json"),
        find("models/mss-tiny/model.safetensors"),
    ) {
        return Some((
            c,
            w,
            "bundled mss-tiny test model (random untrained weights from the reference fixtures: \
             its stems are NOT a real separation)",
        ));
    }
    None
}
