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

#[test]
fn fine_tune_tab_starts_stops_and_offers_the_model_without_switching() {
    use crate::train::trainer::{StepLog, TrainEvent, ValidLog};
    use crate::train::worker::{ModelSpec, TrainCommand, TrainUpdate};
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AppOptions {
        settings_path: Some(settings_file(dir.path(), |_| {})),
        ..Default::default()
    };
    let (cmd_tx, _cmd_rx) = channel();
    let (_ev_tx, ev_rx) = channel();
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
    {
        let form = h.state_mut().finetune_form_mut();
        form.data = "/data/my-stems".into();
        form.out = "/runs/mine".into();
        form.steps = 3;
    }
    h.run_ok();
    h.get_by_label("Start training").click();
    h.run_ok();
    match train_rx
        .recv_timeout(Duration::from_secs(2))
        .expect("a command")
    {
        TrainCommand::Start {
            model,
            config,
            resume,
        } => {
            assert_eq!(model, ModelSpec::Preset("demo".into()));
            assert_eq!(config.data, PathBuf::from("/data/my-stems"));
            assert_eq!(config.out, PathBuf::from("/runs/mine"));
            assert_eq!(config.steps, 3);
            // The SDR loss is on by default in the tab: the output level is trained.
            assert_eq!(
                (config.loss.sdr_weight, config.loss.si_sdr_weight),
                (1.0, 0.0)
            );
            assert!(!resume);
        }
        other => panic!("expected Start, got {other:?}"),
    }
    let send = |u: TrainUpdate| up_tx.send(u).expect("app alive");
    send(TrainUpdate::Started {
        out: "/runs/mine".into(),
        steps: 3,
    });
    for (step, loss) in [(1, 14.0), (2, 9.5)] {
        send(TrainUpdate::Event(TrainEvent::Step(StepLog {
            step,
            loss,
            si_sdr: vec![0.0; 4],
            lr: 1e-3,
        })));
        send(TrainUpdate::Memory(MemorySample {
            t: step as f64,
            in_use: None,
            reserved: None,
            rss: Some((300 + 40 * step as u64) << 20),
        }));
    }
    send(TrainUpdate::Event(TrainEvent::Valid(ValidLog {
        step: 2,
        sdr: vec![1.0, 2.0, 3.0, 0.5],
        mean_sdr: 1.625,
    })));
    h.run_ok();
    assert_eq!(h.state().finetune_steps(), 2);
    h.get_by_label_contains("step 2 / 3");
    h.get_by_label_contains("last 1.62 dB");
    h.get_by_label("Stop").click();
    h.run_ok();
    assert!(matches!(
        train_rx.recv_timeout(Duration::from_secs(2)),
        Ok(TrainCommand::Stop)
    ));
    let (config, checkpoint) = (
        PathBuf::from("/runs/mine/best/config.json"),
        PathBuf::from("/runs/mine/best/model.safetensors"),
    );
    send(TrainUpdate::Finished {
        steps: 2,
        config: config.clone(),
        checkpoint: checkpoint.clone(),
        stopped: true,
    });
    h.run_ok();
    h.get_by_label_contains("Run stopped after 2 steps");
    let before = h.state().settings().model.clone();
    assert_ne!(
        before,
        ModelChoice::Config {
            config: config.clone(),
            checkpoint: checkpoint.clone()
        }
    );
    let s = h.state().settings();
    assert!(s.custom.contains(&(config.clone(), checkpoint.clone())));
    // Finishing offers the run; the Separate model is unchanged until the user accepts.
    h.get_by_label_contains("Use mine/best for separating?");
    h.snapshot("finetune_tab");
    h.get_by_label("Use it").click();
    h.run_ok();
    assert_eq!(
        h.state().settings().model,
        ModelChoice::Config { config, checkpoint }
    );
    assert!(
        h.query_by_label_contains("for separating?").is_none(),
        "offer gone once taken"
    );
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

/// Drags across `node`'s middle from 25 % to 50 % of its width (a loop selection on a lane).
fn drag_across(h: &mut Harness<'_, LocosepApp>, label: &str) {
    let r = h.get_by_label(label).rect();
    let (a, b) = (
        egui::pos2(r.left() + r.width() * 0.25, r.center().y),
        egui::pos2(r.left() + r.width() * 0.5, r.center().y),
    );
    h.hover_at(a);
    h.run_ok();
    h.drag_at(a);
    h.run_ok();
    for k in 1..=4 {
        h.hover_at(a + (b - a) * (k as f32 / 4.0));
        h.run_ok();
    }
    h.drop_at(b);
    h.run_ok();
}

/// The walk-through of issue 19 as a new user meets it: a long error, Compare with a loop, the
/// Fine-tune tab. Snapshots `issue19_*`.
#[test]
fn issue19_walkthrough() {
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), AppOptions::default());
    separated(&mut h, &fake, &audio);
    // A dropped PNG: the decoder's long error.
    let png = PathBuf::from(
        "/home/someone/Pictures/Screenshots/Screenshot from 2026-11-30 21-14-07 of the mixer.png",
    );
    let f: egui::DroppedFileHandle = Arc::new(Dropped(png.clone()));
    h.input_mut().dropped_files.push(f);
    h.step();
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("expected LoadSong")
    };
    fake.reply(EngineEvent::LoadFailed {
        job,
        path,
        error: format!(
            "'{}' is not a supported audio file: no demuxer recognised the data (probe failed \
             on a PNG image header); supported: WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC, ALAC",
            png.display()
        ),
    });
    h.run_ok();
    h.snapshot("issue19_long_error");
    drag_across(&mut h, "mix waveform");
    h.get_by_label("Compare").click();
    h.run_ok();
    h.snapshot("issue19_compare_loop");
}

/// Answers the app's file dialogs from queues the test fills (nothing queued: "closed").
#[derive(Clone, Default)]
struct ScriptedPicker {
    files: Arc<std::sync::Mutex<std::collections::VecDeque<PathBuf>>>,
}

impl ScriptedPicker {
    fn push(&self, p: impl Into<PathBuf>) {
        self.files.lock().unwrap().push_back(p.into());
    }
    fn pop(&self) -> super::dialogs::Picked<PathBuf> {
        Ok(self.files.lock().unwrap().pop_front())
    }
}

impl super::dialogs::Picker for ScriptedPicker {
    fn audio_file(&mut self) -> super::dialogs::Picked<PathBuf> {
        self.pop()
    }
    fn audio_files(&mut self) -> super::dialogs::Picked<Vec<PathBuf>> {
        Ok(self.pop()?.map(|p| vec![p]))
    }
    fn folder(&mut self, _title: &str) -> super::dialogs::Picked<PathBuf> {
        self.pop()
    }
    fn checkpoint(&mut self) -> super::dialogs::Picked<PathBuf> {
        self.pop()
    }
    fn config(&mut self) -> super::dialogs::Picked<PathBuf> {
        self.pop()
    }
}

/// The app on `settings_path` with dialogs answered by `picker`.
fn harness_with_picker(
    settings_path: PathBuf,
    picker: &ScriptedPicker,
) -> (Harness<'static, LocosepApp>, FakeEngine) {
    let (cmd_tx, cmd_rx) = channel();
    let (ev_tx, ev_rx) = channel();
    let picker = picker.clone();
    let options = AppOptions {
        settings_path: Some(settings_path),
        ..Default::default()
    };
    let harness = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .build_eframe(move |cc| {
            LocosepApp::new(&cc.egui_ctx, None, cmd_tx, ev_rx, options)
                .with_picker(Box::new(picker))
        });
    (
        harness,
        FakeEngine {
            commands: cmd_rx,
            events: ev_tx,
        },
    )
}

/// A dropped file's decode fails with `error`.
fn drop_and_fail(h: &mut Harness<'_, LocosepApp>, fake: &FakeEngine, file: &Path, error: &str) {
    let f: egui::DroppedFileHandle = Arc::new(Dropped(file.to_path_buf()));
    h.input_mut().dropped_files.push(f);
    h.step();
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("expected LoadSong")
    };
    fake.reply(EngineEvent::LoadFailed {
        job,
        path,
        error: error.into(),
    });
    h.run_ok();
}

const LONG_PNG_ERROR: &str = "'/home/someone/Pictures/Screenshots/Screenshot from 2026-11-30 \
    21-14-07 of the mixer.png' is not a supported audio file: no demuxer recognised the data \
    (probe failed on a PNG image header); supported: WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC, ALAC";

#[test]
fn a_long_error_wraps_inside_its_panel_can_be_dismissed_and_goes_with_the_next_success() {
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), AppOptions::default());
    separated(&mut h, &fake, &audio);
    let png = Path::new("/home/someone/Pictures/shot.png");
    drop_and_fail(&mut h, &fake, png, LONG_PNG_ERROR);
    let mixer_left = h.get_by_label("Mixer").rect().left();
    let error = h
        .get_by_label_contains("is not a supported audio file")
        .rect();
    assert!(
        error.right() <= mixer_left && error.height() > 20.0,
        "the error must wrap left of the mixer ({mixer_left}): {error:?}"
    );
    let lane = h.get_by_label("mix waveform").rect();
    assert!(
        lane.right() <= mixer_left,
        "the lanes run under the mixer: {lane:?}"
    );
    let dismiss = h.get_by_label("dismiss").rect();
    assert!(dismiss.right() <= mixer_left && dismiss.top() >= 0.0);
    h.get_by_label("dismiss").click();
    h.run_ok();
    assert!(h.state().errors().is_empty());
    assert!(h.query_by_label_contains("not a supported").is_none());

    // A long multi-line error: its first line on screen, the rest behind "details"; the next
    // song that opens clears it.
    drop_and_fail(
        &mut h,
        &fake,
        png,
        "checkpoint does not match:\n  wrong shape for a: expected [48], found [32]",
    );
    h.get_by_label("details");
    assert!(h.query_by_label_contains("wrong shape for a").is_none());
    h.get_by_label("details").click();
    h.run_ok();
    h.get_by_label_contains("wrong shape for a");
    let f: egui::DroppedFileHandle = Arc::new(Dropped("/music/other.wav".into()));
    h.input_mut().dropped_files.push(f);
    h.step();
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("expected LoadSong")
    };
    fake.reply(EngineEvent::SongLoaded {
        job,
        path,
        audio: song(2.0),
    });
    settle(&mut h);
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
}

#[test]
fn opening_another_song_clears_the_last_songs_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let options = AppOptions {
        settings_path: Some(settings_file(dir.path(), |s| {
            s.export.out_dir = out.clone()
        })),
        ..Default::default()
    };
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), options);
    separated(&mut h, &fake, &audio);
    h.get_by_label_contains("Separated in 8.0 s");
    h.get_by_label("Export stems").click();
    h.run_ok();
    let EngineCommand::Export { job, .. } = fake.next() else {
        panic!("expected Export")
    };
    fake.reply(EngineEvent::Exported {
        job,
        paths: vec![out.join("song/vocals.wav")],
    });
    h.run_ok();
    h.get_by_label_contains("Wrote 1 file(s)");
    let f: egui::DroppedFileHandle = Arc::new(Dropped("/music/other.wav".into()));
    h.input_mut().dropped_files.push(f);
    h.step();
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("expected LoadSong")
    };
    fake.reply(EngineEvent::SongLoaded {
        job,
        path,
        audio: song(2.0),
    });
    settle(&mut h);
    assert!(h.query_by_label_contains("Separated in").is_none());
    assert!(h.query_by_label_contains("Wrote 1 file(s)").is_none());
    assert!(h.state().stem_names().is_empty());
}

/// Steps until the weights check of a pick has answered.
fn checked(h: &mut Harness<'_, LocosepApp>) {
    h.step();
    for _ in 0..500 {
        if !h.state().checking_weights() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    assert!(
        !h.state().checking_weights(),
        "the weights check never answered"
    );
    h.run_ok();
}

#[test]
fn weights_that_do_not_fit_the_preset_are_refused_when_picked_and_the_selection_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings_path = settings_file(dir.path(), |_| {});
    let picker = ScriptedPicker::default();
    let (mut h, _fake) = harness_with_picker(settings_path.clone(), &picker);
    h.run_ok();
    // The demo checkpoint for `small` (the preset after `demo` in the list).
    let (_, demo, _) = crate::assets::default_model().expect("bundled model");
    picker.push(&demo);
    h.get_all_by_label("weights…")
        .nth(1)
        .expect("small")
        .click();
    checked(&mut h);
    let errors = h.state().errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("these weights are for a model with 32 channels")
            && errors[0].contains("the preset has 48 channels")
            && errors[0].contains("`small`"),
        "{errors:?}"
    );
    h.get_by_label("details");
    let s = h.state().settings();
    assert!(!s.checkpoints.contains_key("small"));
    assert_eq!(s.model, ModelChoice::Bundled);
    let saved = Settings::load(&settings_path).expect("settings");
    assert!(!saved.checkpoints.contains_key("small"));
    assert_eq!(saved.model, ModelChoice::Bundled);

    // Weights that fit are kept for the preset; the selected model still does not change.
    let small = crate::model::config::preset("small").unwrap().config;
    let good = dir.path().join("small.safetensors");
    crate::model::state_dict::write_safetensors(
        &good,
        &crate::model::loader::init_state_dict(&small, 7),
        None,
        false,
    )
    .unwrap();
    picker.push(&good);
    h.get_all_by_label("weights…")
        .nth(1)
        .expect("small")
        .click();
    checked(&mut h);
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    let s = h.state().settings();
    assert_eq!(s.checkpoints.get("small"), Some(&good));
    assert_eq!(s.model, ModelChoice::Bundled);
    h.get_by_label_contains("Weights for small set");
    let saved = Settings::load(&settings_path).expect("settings");
    assert_eq!(saved.model, ModelChoice::Bundled);
}

fn wheel(h: &mut Harness<'_, LocosepApp>, at: egui::Pos2, dy: f32, modifiers: egui::Modifiers) {
    h.hover_at(at);
    h.run_ok();
    // The modifier is held until the smoothed scroll has run out, as a hand holds it.
    h.event(egui::Event::ModifiersChanged(modifiers));
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: egui::vec2(0.0, dy),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers,
    });
    // Two seconds of frames: the smoothed wheel and the list's bounce at its end run out.
    h.run_steps(120);
    h.event(egui::Event::ModifiersChanged(egui::Modifiers::NONE));
    h.run_ok();
}

#[test]
fn wheel_scrolls_the_lanes_ctrl_wheel_zooms_and_shift_wheel_pans() {
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), AppOptions::default());
    separated(&mut h, &fake, &audio);
    // Zoomed in first, so the scroll slider above the lanes is there throughout.
    h.get_by_label("zoom in").click();
    h.run_ok();
    let view = h.state().view();
    let mix_top = h.get_by_label("mix waveform").rect().top();
    let over = h.get_by_label("vocals waveform").rect().center();
    wheel(&mut h, over, -3.0, egui::Modifiers::NONE);
    assert_eq!(h.state().view(), view, "the plain wheel must not zoom");
    let moved = h.get_by_label("mix waveform").rect().top();
    assert!(
        moved < mix_top - 10.0,
        "lanes not scrolled: {mix_top} → {moved}"
    );

    let over = h.get_by_label("vocals waveform").rect().center();
    let ctrl = egui::Modifiers {
        ctrl: true,
        command: true,
        ..Default::default()
    };
    wheel(&mut h, over, 3.0, ctrl);
    let zoomed = h.state().view();
    assert!(
        zoomed.span < view.span * 0.9,
        "Ctrl+wheel did not zoom: {zoomed:?}"
    );
    let top = h.get_by_label("mix waveform").rect().top();
    assert_eq!(top, moved, "Ctrl+wheel must not scroll the lanes");

    let over = h.get_by_label("vocals waveform").rect().center();
    wheel(&mut h, over, -3.0, egui::Modifiers::SHIFT);
    let panned = h.state().view();
    assert!(
        (panned.span - zoomed.span).abs() < 1e-9,
        "Shift+wheel zoomed"
    );
    assert!(panned.start != zoomed.start, "Shift+wheel did not pan");
}

#[test]
fn compare_says_it_runs_on_the_loop_and_play_says_once_why_it_is_off() {
    let (mut h, fake, audio) = opened(Path::new("/music/song.wav"), AppOptions::default());
    separated(&mut h, &fake, &audio);
    assert_eq!(
        h.query_all_by_label_contains("Playback is off").count(),
        1,
        "the reason Play is off, once"
    );
    let reason = h.get_by_label_contains("Playback is off").rect();
    assert!(reason.right() <= h.get_by_label("Mixer").rect().left());
    drag_across(&mut h, "mix waveform");
    h.get_by_label_contains("loop 0:01");
    h.get_by_label("Compare").click();
    h.run_ok();
    h.get_by_label_contains("on the loop 0:01");
    assert!(h.query_by_label_contains("whole song").is_none());
}

#[test]
fn keyboard_shortcuts_open_export_close_the_question_and_quit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let settings_path = settings_file(dir.path(), |s| s.export.out_dir = out.clone());
    let picker = ScriptedPicker::default();
    let (mut h, fake) = harness_with_picker(settings_path, &picker);
    h.run_ok();
    picker.push("/music/song.wav");
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::O);
    h.run_ok();
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("Ctrl+O opens a song")
    };
    assert_eq!(path, PathBuf::from("/music/song.wav"));
    let audio = song(4.0);
    fake.reply(EngineEvent::SongLoaded {
        job,
        path,
        audio: audio.clone(),
    });
    settle(&mut h);
    separated(&mut h, &fake, &audio);
    std::fs::create_dir_all(out.join("song")).unwrap();
    std::fs::write(out.join("song/vocals.wav"), b"x").unwrap();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::E);
    h.run_ok();
    h.get_by_label_contains("already exist");
    h.key_press(egui::Key::Escape);
    h.run_ok();
    assert!(h.query_by_label_contains("already exist").is_none());
    assert!(fake.idle(), "Esc exports nothing");
    std::fs::remove_dir_all(out.join("song")).unwrap();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::E);
    h.run_ok();
    assert!(matches!(fake.next(), EngineCommand::Export { .. }));
    // One event, so the frame that sees it is the last one stepped.
    h.event(egui::Event::Key {
        key: egui::Key::Q,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::COMMAND,
    });
    h.step();
    let closes = h.output().viewport_output.values().any(|v| {
        v.commands
            .iter()
            .any(|c| matches!(c, egui::ViewportCommand::Close))
    });
    assert!(closes, "Ctrl+Q closes the window");
}

#[test]
fn fine_tune_defaults_to_an_absolute_folder_and_offers_overwrite() {
    use crate::train::worker::TrainCommand;
    assert!(
        Path::new(&super::finetune::FineTuneForm::default().out).is_absolute(),
        "the default output folder depends on where the app was started"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AppOptions {
        settings_path: Some(settings_file(dir.path(), |_| {})),
        ..Default::default()
    };
    let (cmd_tx, _cmd_rx) = channel();
    let (_ev_tx, ev_rx) = channel();
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
    h.state_mut().finetune_form_mut().data = "/data/my-stems".into();
    h.run_ok();
    h.get_by_label_contains("replace what the output folder holds")
        .click();
    h.run_ok();
    h.get_by_label("Start training").click();
    h.run_ok();
    match train_rx.recv_timeout(Duration::from_secs(2)) {
        Ok(TrainCommand::Start { config, .. }) => {
            assert!(config.overwrite);
            assert!(config.out.is_absolute());
        }
        other => panic!("expected Start, got {other:?}"),
    }
    assert!(
        !h.state_mut().finetune_form_mut().overwrite,
        "asked for again on the next start"
    );
    // The run says it has no validation songs: the empty chart says so (snapshot).
    use crate::train::trainer::TrainEvent;
    use crate::train::worker::TrainUpdate;
    h.state_mut().finetune_form_mut().out = "/home/me/.local/share/locosep/runs/finetune".into();
    for u in [
        TrainUpdate::Started {
            out: "/home/me/.local/share/locosep/runs/finetune".into(),
            steps: 500,
        },
        TrainUpdate::Event(TrainEvent::Message(
            "4 training tracks, 0 validation tracks".into(),
        )),
    ] {
        up_tx.send(u).expect("app alive");
    }
    h.run_ok();
    h.get_by_label_contains("4 training tracks");
    h.snapshot("issue19_finetune");
}
