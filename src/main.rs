//! `locosep` binary: the GUI without a subcommand, the headless engine with one.

use clap::Parser;

fn main() {
    quiet_vulkan_device_select();
    let cli = locosep::cli::Cli::parse();
    if let Err(e) = locosep::cli::run(cli) {
        eprintln!("error: {}", locosep::cli::error_text(&e));
        std::process::exit(1);
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` connects to a Wayland display
/// to rank the GPUs whenever a Vulkan instance is created; with no Wayland session that
/// connection fails and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" —
/// up to ten times per run, for nothing the user did wrong. Without a Wayland display the
/// layer has nothing to rank by, so it is switched off (its own `NODEVICE_SELECT` switch;
/// wgpu still picks the adapter). A value the user set is kept.
fn quiet_vulkan_device_select() {
    if std::env::var_os("WAYLAND_DISPLAY").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        // SAFETY: called first thing in `main`, before any thread exists, so no other thread
        // can read the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
