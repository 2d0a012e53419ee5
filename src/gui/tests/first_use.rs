//! Issue 19, the app as a new user meets it: errors that wrap and go, weights checked when
//! picked, the wheel over the lanes, what Compare runs on, Play's reason, keyboard shortcuts,
//! the Fine-tune folder; and the walk-through snapshots `issue19_*`.

use super::*;

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
    fn pop(&self) -> crate::gui::dialogs::Picked<PathBuf> {
        Ok(self.files.lock().unwrap().pop_front())
    }
}

impl crate::gui::dialogs::Picker for ScriptedPicker {
    fn audio_file(&mut self) -> crate::gui::dialogs::Picked<PathBuf> {
        self.pop()
    }
    fn audio_files(&mut self) -> crate::gui::dialogs::Picked<Vec<PathBuf>> {
        Ok(self.pop()?.map(|p| vec![p]))
    }
    fn folder(&mut self, _title: &str) -> crate::gui::dialogs::Picked<PathBuf> {
        self.pop()
    }
    fn checkpoint(&mut self) -> crate::gui::dialogs::Picked<PathBuf> {
        self.pop()
    }
    fn config(&mut self) -> crate::gui::dialogs::Picked<PathBuf> {
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

/// Drops `file` on the window and answers its `LoadSong` with a 2 s song and `warnings`.
fn drop_and_open(
    h: &mut Harness<'_, LocosepApp>,
    fake: &FakeEngine,
    file: &Path,
    warnings: Vec<String>,
) {
    let f: egui::DroppedFileHandle = Arc::new(Dropped(file.to_path_buf()));
    h.input_mut().dropped_files.push(f);
    h.step();
    let EngineCommand::LoadSong { job, path } = fake.next() else {
        panic!("expected LoadSong")
    };
    fake.reply(EngineEvent::SongLoaded {
        job,
        path,
        audio: song(2.0),
        warnings,
    });
    settle(h);
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
    drop_and_open(&mut h, &fake, Path::new("/music/other.wav"), vec![]);
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
    drop_and_open(&mut h, &fake, Path::new("/music/other.wav"), vec![]);
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
        warnings: vec![],
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
        Path::new(&crate::gui::finetune::FineTuneForm::default().out).is_absolute(),
        "the default output folder depends on where the app was started"
    );
    let FineTuneRig {
        mut h,
        train_rx,
        up_tx,
        _keep,
    } = fine_tune_rig();
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

/// A song whose decode zeroed non-finite samples opens, and the engine's warning about it is
/// shown (and can be dismissed) instead of being lost.
#[test]
fn decode_warnings_are_shown_when_a_song_opens() {
    let (mut h, fake, _) = opened(Path::new("/music/song.wav"), AppOptions::default());
    let warning = "warning: /music/nan.wav: 45 sample(s) were not finite numbers (NaN or \
                   infinity) and were separated as silence (0)";
    drop_and_open(
        &mut h,
        &fake,
        Path::new("/music/nan.wav"),
        vec![warning.into()],
    );
    assert_eq!(h.state().errors(), vec![warning.to_string()]);
    h.get_by_label_contains("45 sample(s) were not finite");
    h.get_by_label("dismiss").click();
    h.run_ok();
    assert!(h.state().errors().is_empty());
}
