//! GUI behaviour through egui_kittest, against a fake engine: the test holds the engine's ends
//! of the two channels, reads the [`EngineCommand`]s the app sends and answers with
//! [`EngineEvent`]s. Image snapshots land in `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites
//! them).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use super::settings::Settings;
use super::{AppOptions, LocosepApp};
use crate::audio::AudioBuffer;
use crate::engine::messages::{EngineCommand, EngineEvent, JobId, ModelChoice};
use crate::engine::separator::Stems;
use crate::memory::sampler::MemorySample;

/// The engine's side of the channels.
struct FakeEngine {
    commands: Receiver<EngineCommand>,
    events: Sender<EngineEvent>,
}

impl FakeEngine {
    /// The next command the app sent (device listing skipped).
    fn next(&self) -> EngineCommand {
        loop {
            match self.commands.recv_timeout(Duration::from_secs(2)) {
                Ok(EngineCommand::ListDevices) => continue,
                Ok(cmd) => return cmd,
                Err(e) => panic!("the app sent no command: {e}"),
            }
        }
    }

    /// No command is waiting (device listing skipped).
    fn idle(&self) -> bool {
        self.commands
            .try_iter()
            .all(|c| matches!(c, EngineCommand::ListDevices))
    }

    fn reply(&self, event: EngineEvent) {
        self.events
            .send(event)
            .expect("the app dropped its receiver");
    }
}

/// A 4 s stereo test song: a chord with a decaying pulse and a little noise.
fn song(seconds: f32) -> Arc<AudioBuffer> {
    let sr = 22050u32;
    let n = (seconds * sr as f32) as usize;
    let mut seed = 1u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
    };
    let l: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / sr as f32;
            let env = (-(t % 0.5) * 8.0).exp();
            0.25 * (t * 220.0 * std::f32::consts::TAU).sin()
                + 0.15 * (t * 330.0 * std::f32::consts::TAU).sin() * (t * 0.5).sin().abs()
                + 0.3 * env * (t * (60.0 + 40.0 * env) * std::f32::consts::TAU).sin()
                + 0.05 * noise()
        })
        .collect();
    let r = l
        .iter()
        .enumerate()
        .map(|(i, x)| x * (0.8 + 0.2 * (i as f32 / n as f32)))
        .collect();
    Arc::new(AudioBuffer {
        sample_rate: sr,
        channels: vec![l, r],
    })
}

/// Four "stems" of `mix` with different spectra (band-limited by simple filters).
fn stems_of(mix: &AudioBuffer, flavour: f32) -> Arc<Stems> {
    let names: Vec<String> = ["vocals", "drums", "bass", "other"]
        .map(String::from)
        .to_vec();
    let audio = (0..4)
        .map(|k| {
            let a = 0.05 + 0.2 * k as f32 + 0.1 * flavour;
            AudioBuffer {
                sample_rate: mix.sample_rate,
                channels: mix
                    .channels
                    .iter()
                    .map(|c| {
                        let mut y = 0.0f32;
                        c.iter()
                            .map(|x| {
                                y += a.min(0.95) * (x - y);
                                if k % 2 == 0 { y * 0.8 } else { (x - y) * 0.8 }
                            })
                            .collect()
                    })
                    .collect(),
            }
        })
        .collect();
    Arc::new(Stems { names, audio })
}

fn harness(mut options: AppOptions) -> (Harness<'static, LocosepApp>, FakeEngine) {
    if options.settings_path.is_none() {
        // Settings with the machine-independent defaults of `settings_file` (snapshots).
        let dir = tempfile::tempdir().unwrap().keep();
        options.settings_path = Some(settings_file(&dir, |_| {}));
    }
    let (cmd_tx, cmd_rx) = channel();
    let (ev_tx, ev_rx) = channel();
    let harness = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .build_eframe(move |cc| LocosepApp::new(&cc.egui_ctx, None, cmd_tx, ev_rx, options));
    (
        harness,
        FakeEngine {
            commands: cmd_rx,
            events: ev_tx,
        },
    )
}

/// Steps until the background spectrograms are uploaded.
fn settle(h: &mut Harness<'_, LocosepApp>) {
    for _ in 0..400 {
        h.step();
        if h.state().pending_spectrograms() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        h.state().pending_spectrograms(),
        0,
        "spectrograms never arrived"
    );
    h.run_ok();
}

/// Opens `path` through the app's path argument and answers the decode.
fn opened(
    path: &Path,
    options: AppOptions,
) -> (Harness<'static, LocosepApp>, FakeEngine, Arc<AudioBuffer>) {
    let (mut h, fake) = harness(AppOptions {
        open: Some(path.to_path_buf()),
        ..options
    });
    let audio = song(4.0);
    match fake.next() {
        EngineCommand::LoadSong { job, path: p } => {
            assert_eq!(p, path);
            h.run_steps(2);
            h.get_by_label_contains("Decoding");
            fake.reply(EngineEvent::SongLoaded {
                job,
                path: p,
                audio: audio.clone(),
                warnings: vec![],
            });
        }
        other => panic!("expected LoadSong, got {other:?}"),
    }
    settle(&mut h);
    (h, fake, audio)
}

/// Clicks Separate and answers with progress and stems.
fn separated(h: &mut Harness<'_, LocosepApp>, fake: &FakeEngine, audio: &AudioBuffer) -> JobId {
    h.get_by_label("Separate").click();
    h.run_ok();
    let job = match fake.next() {
        EngineCommand::Separate {
            job, song, model, ..
        } => {
            assert_eq!(song.len(), audio.len());
            assert_eq!(model, ModelChoice::Bundled);
            job
        }
        other => panic!("expected Separate, got {other:?}"),
    };
    fake.reply(EngineEvent::Started {
        job,
        model: "bundled model (1.39 M parameters)".into(),
        device: "CPU (fake)".into(),
        warnings: vec![],
    });
    for i in 0..=10u64 {
        let mb = 1u64 << 20;
        let sample = MemorySample {
            t: i as f64 * 0.1,
            in_use: Some((120 + 30 * (i % 4)) * mb),
            reserved: Some(256 * mb),
            rss: None,
        };
        fake.reply(EngineEvent::Memory { job, sample });
    }
    fake.reply(EngineEvent::Progress {
        job,
        done: 1,
        total: 4,
        elapsed: Duration::from_secs(2),
    });
    h.run_ok();
    assert!(h.state().is_running());
    h.get_by_label_contains("1/4 chunks");
    fake.reply(EngineEvent::Separated {
        job,
        stems: stems_of(audio, 0.0),
        seconds: 8.0,
        peak_bytes: Some(210 << 20),
    });
    settle(h);
    job
}

fn settings_file(dir: &Path, f: impl FnOnce(&mut Settings)) -> PathBuf {
    let mut s = Settings::default();
    // The default export folder is under the user's home: fixed here so snapshots do not
    // depend on the machine.
    s.export.out_dir = PathBuf::from("stems");
    f(&mut s);
    let path = dir.join("settings.json");
    s.store(&path).expect("write settings");
    path
}

#[test]
fn empty_window() {
    let (mut h, fake) = harness(AppOptions::default());
    h.run();
    h.get_by_label_contains("Drop a song here");
    assert!(fake.idle());
    h.snapshot("empty");
}

#[test]
fn open_via_path_shows_waveform() {
    let (mut h, _fake, _) = opened(Path::new("/music/song.wav"), AppOptions::default());
    h.get_by_label("mix waveform");
    h.get_by_label("mix spectrogram");
    assert!(h.state().has_song());
    assert_eq!(
        h.state().settings().recent,
        vec![PathBuf::from("/music/song.wav")]
    );
    h.snapshot("loaded_song");
}

#[test]
fn decode_error_is_shown_and_app_keeps_running() {
    let (mut h, fake) = harness(AppOptions {
        open: Some("/music/broken.mp3".into()),
        ..Default::default()
    });
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("expected LoadSong")
    };
    fake.reply(EngineEvent::LoadFailed {
        job,
        path,
        error: "'broken.mp3' is not a supported audio file".into(),
    });
    h.run();
    h.get_by_label_contains("Could not open /music/broken.mp3");
    h.get_by_label_contains("Drop a song here");
    assert!(!h.state().has_song());
}

#[test]
fn separate_shows_progress_then_stems() {
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), AppOptions::default());
    separated(&mut h, &fake, &audio);
    assert!(!h.state().is_running());
    assert_eq!(h.state().stem_names(), ["vocals", "drums", "bass", "other"]);
    for stem in ["vocals", "drums", "bass", "other"] {
        h.get_by_label(&format!("{stem} waveform"));
    }
    h.get_by_label_contains("Separated in 8.0 s");
    h.snapshot("separated_stems");
}

#[test]
fn cancel_sends_cancel_and_clears_the_job() {
    let (mut h, fake, _) = opened(Path::new("/music/song.wav"), AppOptions::default());
    h.get_by_label("Separate").click();
    h.run_ok();
    let EngineCommand::Separate { job, .. } = fake.next() else {
        panic!("expected Separate")
    };
    fake.reply(EngineEvent::Progress {
        job,
        done: 2,
        total: 8,
        elapsed: Duration::from_secs(1),
    });
    h.run_ok();
    h.get_by_label("Cancel").click();
    h.run_ok();
    match fake.next() {
        EngineCommand::Cancel { job: j } => assert_eq!(j, job),
        other => panic!("expected Cancel, got {other:?}"),
    }
    h.get_by_label("Cancelling…");
    fake.reply(EngineEvent::Cancelled { job });
    h.run_ok();
    assert!(!h.state().is_running());
    h.get_by_label("Separation cancelled");
}

#[test]
fn mute_and_solo_change_the_mixer() {
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), AppOptions::default());
    separated(&mut h, &fake, &audio);
    // Strip 0 is the original mix (muted once stems exist), then vocals, drums, bass, other.
    assert_eq!(&h.state().mixer().gains()[..5], &[0.0, 1.0, 1.0, 1.0, 1.0]);
    h.get_all_by_label("M").nth(1).expect("vocals mute").click();
    h.run_ok();
    assert!(h.state().mixer().strips[1].mute);
    assert_eq!(&h.state().mixer().gains()[..5], &[0.0, 0.0, 1.0, 1.0, 1.0]);
    h.get_all_by_label("S").nth(2).expect("drums solo").click();
    h.run_ok();
    assert_eq!(&h.state().mixer().gains()[..5], &[0.0, 0.0, 1.0, 0.0, 0.0]);
    h.get_all_by_label("S").nth(2).expect("drums solo").click();
    h.run_ok();
    assert_eq!(&h.state().mixer().gains()[..5], &[0.0, 0.0, 1.0, 1.0, 1.0]);
}

#[test]
fn export_sends_the_right_command_and_asks_before_overwriting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let settings_path = settings_file(dir.path(), |s| {
        s.export.out_dir = out.clone();
        s.export.format = "flac".into();
        s.export.instrumental = true;
        s.export.skipped = vec!["other".into()];
    });
    let options = AppOptions {
        settings_path: Some(settings_path.clone()),
        ..Default::default()
    };
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), options);
    separated(&mut h, &fake, &audio);

    h.get_by_label("Export stems").click();
    h.run_ok();
    let expected_stems: Vec<String> = ["vocals", "drums", "bass", "instrumental"]
        .map(String::from)
        .to_vec();
    match fake.next() {
        EngineCommand::Export {
            job,
            stems,
            track,
            options,
        } => {
            fake.reply(EngineEvent::Exported {
                job,
                paths: vec![out.join("song/vocals.flac")],
            });
            assert_eq!(stems.names.len(), 4);
            assert_eq!(track, "song");
            assert_eq!(options.out_dir, out);
            assert_eq!(options.format.name(), "flac");
            assert_eq!(options.stems.as_ref(), Some(&expected_stems));
            assert!(!options.overwrite);
        }
        other => panic!("expected Export, got {other:?}"),
    }
    h.run_ok();
    h.get_by_label_contains("Wrote 1 file(s)");
    // The settings file remembers the export choices and the recent file.
    let saved = Settings::load(&settings_path).expect("settings saved");
    assert_eq!(saved.export.out_dir, out);
    assert_eq!(saved.recent, vec![PathBuf::from("/music/song.wav")]);

    // A file that exists is not replaced silently.
    std::fs::create_dir_all(out.join("song")).expect("mkdir");
    std::fs::write(out.join("song/vocals.flac"), b"x").expect("write");
    h.get_by_label("Export stems").click();
    h.run_ok();
    assert!(
        fake.idle(),
        "nothing may be exported before the user confirms"
    );
    h.get_by_label_contains("already exist");
    h.get_by_label("Overwrite").click();
    h.run_ok();
    match fake.next() {
        EngineCommand::Export { options, .. } => assert!(options.overwrite),
        other => panic!("expected Export, got {other:?}"),
    }
}

#[test]
fn compare_two_models_side_by_side() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = dir.path().join("small.safetensors");
    let settings_path = settings_file(dir.path(), |s| {
        s.checkpoints.insert("small".into(), ck.clone());
        s.compare = vec![
            ModelChoice::Bundled,
            ModelChoice::Preset {
                name: "small".into(),
                checkpoint: ck.clone(),
            },
        ];
    });
    let options = AppOptions {
        settings_path: Some(settings_path),
        ..Default::default()
    };
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), options);
    h.get_by_label("Compare").click();
    h.run_ok();
    h.get_by_label("Run comparison").click();
    h.run_ok();
    let mut jobs = Vec::new();
    for want in ["bundled model", "small"] {
        match fake.next() {
            EngineCommand::Separate {
                job, model, song, ..
            } => {
                assert_eq!(model.label(), want);
                assert_eq!(song.len(), audio.len());
                jobs.push(job);
            }
            other => panic!("expected Separate, got {other:?}"),
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        fake.reply(EngineEvent::Separated {
            job: *job,
            stems: stems_of(&audio, i as f32 * 3.0),
            seconds: 3.0 + i as f64 * 4.5,
            peak_bytes: Some((150 + 300 * i as u64) << 20),
        });
    }
    settle(&mut h);
    h.get_by_label("vocals difference spectrogram");
    h.get_by_label("small drums spectrogram");
    h.get_by_label("7.50 s");
    h.snapshot("compare_view");
}

/// A file dropped on the window with a path, as winit reports drops.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        Err("not read in tests".into())
    }
}

#[test]
fn dropping_files_opens_the_first_and_queues_the_rest() {
    let (mut h, fake) = harness(AppOptions::default());
    h.run();
    for p in ["/music/a.flac", "/music/b.wav", "/music/c.mp3"] {
        let f: egui::DroppedFileHandle = Arc::new(Dropped(PathBuf::from(p)));
        h.input_mut().dropped_files.push(f);
    }
    h.step();
    match fake.next() {
        EngineCommand::LoadSong { path, .. } => assert_eq!(path, PathBuf::from("/music/a.flac")),
        other => panic!("expected LoadSong, got {other:?}"),
    }
    h.run_ok();
    h.get_by_label_contains("b.wav");
    h.get_by_label_contains("c.mp3");
}

/// The app with a Get-models window whose worker is the test (it holds the other channel ends).
fn with_models_window(
    offer: bool,
) -> (
    Harness<'static, LocosepApp>,
    Receiver<super::models_window::ModelsRequest>,
    Sender<super::models_window::ModelsEvent>,
) {
    use super::models_window::{ModelRow, ModelsWindow, RowState};
    let dir = tempfile::tempdir().unwrap().keep();
    let options = AppOptions {
        settings_path: Some(settings_file(&dir, |_| {})),
        ..Default::default()
    };
    let (cmd_tx, _cmd_rx) = channel();
    let (_ev_tx, ev_rx) = channel();
    let (req_tx, req_rx) = channel();
    let (mev_tx, mev_rx) = channel();
    let rows = vec![ModelRow {
        name: "sup.musdb18hq.bslocoformer-small".into(),
        description: "BS-Locoformer small".into(),
        license: "MIT".into(),
        size: None,
        state: RowState::Available { partial: 0 },
    }];
    let window = ModelsWindow::new(rows, req_tx, mev_rx);
    let h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .build_eframe(move |cc| {
            LocosepApp::new(&cc.egui_ctx, None, cmd_tx, ev_rx, options).with_models(window, offer)
        });
    (h, req_rx, mev_tx)
}

#[test]
fn first_start_offers_real_models_and_installed_ones_join_the_model_list() {
    use super::models_window::{ModelsEvent, ModelsRequest};
    let (mut h, req, ev) = with_models_window(true);
    h.run();
    // Opened by itself on a first start, saying what the demo model is for.
    h.get_by_label_contains("demo model is trained on synthetic songs");
    h.snapshot("get_models");
    h.get_by_label("Download").click();
    h.run();
    let name = match req.try_recv().expect("a download request") {
        ModelsRequest::Download { name, .. } => name,
        other => panic!("unexpected {other:?}"),
    };
    // A finished model (here a TF-Locoformer folder) joins the model list.
    let dir = tempfile::tempdir().unwrap().keep().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflocoformer/mss-tiny");
    for f in ["config.json", "weights.safetensors"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    ev.send(ModelsEvent::Installed {
        name: name.clone(),
        dir: dir.clone(),
    })
    .unwrap();
    h.run();
    assert_eq!(
        h.state().settings().custom,
        vec![(dir.join("config.json"), dir.join("weights.safetensors"))]
    );
    h.get_by_label("Remove").click();
    h.run();
    assert!(matches!(req.try_recv(), Ok(ModelsRequest::Remove { .. })));
    ev.send(ModelsEvent::Removed { name }).unwrap();
    h.run();
    assert!(h.state().settings().custom.is_empty());
}

#[test]
fn get_models_is_in_the_file_menu() {
    let (mut h, _req, _ev) = with_models_window(false);
    h.run();
    assert!(
        h.query_by_label_contains("demo model is trained on synthetic songs")
            .is_none()
    );
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Get models…").click();
    h.run();
    h.get_by_label_contains("demo model is trained on synthetic songs");
}

/// The app with a fake trainer, showing the Fine-tune tab.
struct FineTuneRig {
    h: Harness<'static, LocosepApp>,
    /// What the app asks the trainer.
    train_rx: Receiver<crate::train::worker::TrainCommand>,
    /// The trainer's updates to the app.
    up_tx: Sender<crate::train::worker::TrainUpdate>,
    /// Kept alive for the test: the settings folder and the engine's ends of its channels.
    _keep: (
        tempfile::TempDir,
        Receiver<EngineCommand>,
        Sender<EngineEvent>,
    ),
}

/// A [`FineTuneRig`] with default settings in a fresh settings file, one frame after the
/// Fine-tune tab was clicked.
fn fine_tune_rig() -> FineTuneRig {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AppOptions {
        settings_path: Some(settings_file(dir.path(), |_| {})),
        ..Default::default()
    };
    let (cmd_tx, cmd_rx) = channel();
    let (ev_tx, ev_rx) = channel();
    let (train_tx, train_rx) = channel();
    let (up_tx, up_rx) = channel();
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .build_eframe(move |cc| {
            LocosepApp::new(&cc.egui_ctx, None, cmd_tx, ev_rx, options)
                .with_trainer(train_tx, up_rx)
        });
    h.get_by_label("Fine-tune").click();
    h.run_ok();
    FineTuneRig {
        h,
        train_rx,
        up_tx,
        _keep: (dir, cmd_rx, ev_tx),
    }
}

mod fine_tune;
mod first_use;
