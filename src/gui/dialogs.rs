//! File dialogs. rfd asks the desktop portal over D-Bus and falls back to zenity; where neither
//! exists (a bare X server, a minimal install) it returns "nothing picked" without a word, so
//! every dialog here checks first and says what is missing instead.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::audio::AUDIO_EXTENSIONS;

/// What a dialog returns: the pick (`None`: the user closed it), or why no dialog can open.
pub type Picked<T> = Result<Option<T>, String>;

/// Whether a file dialog can open here; the error says why not and what to do instead.
pub fn available() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    availability(
        std::env::var_os("PATH"),
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )
}

/// [`available`] for given values of `PATH`, `DBUS_SESSION_BUS_ADDRESS` and
/// `XDG_RUNTIME_DIR`: zenity on the path, or a D-Bus session bus (where the desktop portal
/// lives).
fn availability(
    path: Option<OsString>,
    bus_address: Option<OsString>,
    runtime_dir: Option<OsString>,
) -> Result<(), String> {
    let zenity = path
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("zenity").is_file()));
    let bus = bus_address.is_some_and(|v| !v.is_empty())
        || runtime_dir.is_some_and(|d| Path::new(&d).join("bus").exists());
    if zenity || bus {
        return Ok(());
    }
    Err(
        "No file dialog is available: it needs a desktop session (xdg-desktop-portal) or \
         zenity (`apt-get install zenity`). Drag files onto the window, or pass them on the \
         command line: `locosep song.flac`."
            .into(),
    )
}

fn dialog(title: &str) -> Result<rfd::FileDialog, String> {
    available()?;
    Ok(rfd::FileDialog::new().set_title(title))
}

/// One song.
pub fn audio_file() -> Picked<PathBuf> {
    Ok(dialog("Open a song")?
        .add_filter("audio", &AUDIO_EXTENSIONS)
        .pick_file())
}

/// Songs for the queue.
pub fn audio_files() -> Picked<Vec<PathBuf>> {
    Ok(dialog("Add songs to the queue")?
        .add_filter("audio", &AUDIO_EXTENSIONS)
        .pick_files())
}

/// A folder.
pub fn folder(title: &str) -> Picked<PathBuf> {
    Ok(dialog(title)?.pick_folder())
}

/// A checkpoint file.
pub fn checkpoint() -> Picked<PathBuf> {
    Ok(dialog("Choose a checkpoint")?
        .add_filter("checkpoint", &["safetensors", "pth", "pt", "ckpt"])
        .pick_file())
}

/// A model config file.
pub fn config() -> Picked<PathBuf> {
    Ok(dialog("Choose a model config")?
        .add_filter("config", &["toml", "json", "yaml", "yml"])
        .pick_file())
}

/// Where the app's file and folder choices come from: the desktop's dialogs
/// ([`SystemDialogs`]), or a stand-in that answers without a desktop (the GUI tests).
pub trait Picker {
    /// One song.
    fn audio_file(&mut self) -> Picked<PathBuf>;
    /// Songs for the queue.
    fn audio_files(&mut self) -> Picked<Vec<PathBuf>>;
    /// A folder, with the dialog's title.
    fn folder(&mut self, title: &str) -> Picked<PathBuf>;
    /// A checkpoint file.
    fn checkpoint(&mut self) -> Picked<PathBuf>;
    /// A model config file.
    fn config(&mut self) -> Picked<PathBuf>;
}

/// The desktop's file dialogs (the functions above).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemDialogs;

impl Picker for SystemDialogs {
    fn audio_file(&mut self) -> Picked<PathBuf> {
        audio_file()
    }
    fn audio_files(&mut self) -> Picked<Vec<PathBuf>> {
        audio_files()
    }
    fn folder(&mut self, title: &str) -> Picked<PathBuf> {
        folder(title)
    }
    fn checkpoint(&mut self) -> Picked<PathBuf> {
        checkpoint()
    }
    fn config(&mut self) -> Picked<PathBuf> {
        config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_portal_and_no_zenity_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let d = || Some(dir.path().as_os_str().to_owned());
        let err = availability(d(), None, d()).unwrap_err();
        assert!(err.contains("zenity") && err.contains("Drag"), "{err}");
        assert!(availability(d(), Some("unix:path=/x".into()), d()).is_ok());
        std::fs::write(dir.path().join("bus"), b"").unwrap();
        assert!(
            availability(None, None, d()).is_ok(),
            "a session bus socket"
        );
        std::fs::write(dir.path().join("zenity"), b"#!/bin/sh\n").unwrap();
        assert!(availability(d(), None, None).is_ok(), "zenity on the path");
    }
}
