//! The real binary's window under Xvfb (installed by `make deps`): `locosep --screenshot` opens
//! the app on the bundled demo song, waits until its waveform and spectrogram are on screen,
//! saves the window as PNG and exits. Proves the app starts, decodes, renders through wgpu
//! (lavapipe here) and shuts down cleanly on a machine with no GPU and no sound card.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An Xvfb server on a free display, stopped on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        for n in (200 + std::process::id() % 400)..1000 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let child = Command::new("Xvfb")
                .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb runs (`make deps` installs xvfb)");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return Xvfb { child, display };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("Xvfb {display} did not start");
        }
        panic!("no free X display");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn app_opens_a_song_renders_and_exits_under_xvfb() {
    let x = Xvfb::start();
    let home = tempfile::tempdir().unwrap();
    let shot: PathBuf = home.path().join("window.png");
    let song = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/synth_424244/mixture.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_locosep"))
        .arg("--screenshot")
        .arg(&shot)
        .arg(&song)
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        // Settings and recent files go to a scratch home, not the user's.
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_DATA_HOME", home.path().join(".local/share"))
        .output()
        .expect("binary runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the app failed:\n{log}");
    assert!(log.contains("screenshot written"), "{log}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 800), "window size");
    // Not a blank frame: the waveform and spectrogram give many distinct colours.
    let mut colours: Vec<[u8; 4]> = buf[..info.buffer_size()]
        .chunks_exact(4)
        .map(|p| [p[0], p[1], p[2], p[3]])
        .collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 200,
        "only {} colours: blank window?",
        colours.len()
    );
}
