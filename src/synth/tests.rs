//! End-to-end checks of the synth module against the real SoundFont.

use std::sync::{Arc, OnceLock};

use midly::num::u7;
use midly::{
    Format, Header, MetaMessage, MidiMessage, PitchBend, Smf, Timing, TrackEvent, TrackEventKind,
};
use rustysynth::SoundFont;

use super::musdb::{TRACK_FILES, is_exact_sum, read_wav_f32};
use super::*;

const SR: usize = SAMPLE_RATE as usize;

fn soundfont() -> Arc<SoundFont> {
    static SF: OnceLock<Arc<SoundFont>> = OnceLock::new();
    SF.get_or_init(|| {
        load_default_soundfont(None, &[]).expect("sf_GMbank.sf2 (csound-soundfont) is needed")
    })
    .clone()
}

/// A tiny song builder: one track per call to `track`, events at absolute ticks
/// (480 ticks per beat at 120 BPM, so 960 ticks = 1 s).
struct Song(Smf<'static>);

impl Song {
    fn new() -> Self {
        Song(Smf::new(Header::new(
            Format::Parallel,
            Timing::Metrical(480.into()),
        )))
    }

    fn track(mut self, name: &'static str, events: Vec<(u32, u8, MidiMessage)>) -> Self {
        let mut out = vec![TrackEvent {
            delta: 0.into(),
            kind: TrackEventKind::Meta(MetaMessage::TrackName(name.as_bytes())),
        }];
        let mut last = 0;
        for (tick, channel, message) in events {
            out.push(TrackEvent {
                delta: (tick - last).into(),
                kind: TrackEventKind::Midi {
                    channel: channel.into(),
                    message,
                },
            });
            last = tick;
        }
        out.push(TrackEvent {
            delta: 0.into(),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        });
        self.0.tracks.push(out);
        self
    }

    /// Round-trips through the midly writer, as a user's file would arrive.
    fn bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.0.write_std(&mut v).unwrap();
        v
    }
}

fn on(key: u8) -> MidiMessage {
    MidiMessage::NoteOn {
        key: key.into(),
        vel: 100.into(),
    }
}
fn off(key: u8) -> MidiMessage {
    MidiMessage::NoteOff {
        key: key.into(),
        vel: 0.into(),
    }
}
fn prog(p: u8) -> MidiMessage {
    MidiMessage::ProgramChange { program: p.into() }
}
fn cc(c: u8, v: u8) -> MidiMessage {
    MidiMessage::Controller {
        controller: c.into(),
        value: u7::from(v),
    }
}

fn render_bytes(bytes: &[u8], seconds: f64, effects: bool) -> Stems {
    let smf = Smf::parse(bytes).unwrap();
    let opts = RenderOptions {
        length: RenderLength::Exact {
            samples: (seconds * SR as f64) as usize,
            loop_song: false,
        },
        max_peak: None,
        effects,
    };
    render_smf(&smf, &soundfont(), &opts).unwrap()
}

/// RMS of one stem over the sample range `[from_s, to_s)` seconds.
fn rms_in(stems: &Stems, stem: Stem, from_s: f64, to_s: f64) -> f32 {
    let [l, r] = stems.get(stem);
    let (a, b) = (
        (from_s * SR as f64) as usize,
        ((to_s * SR as f64) as usize).min(l.len()),
    );
    let sum: f64 = l[a..b]
        .iter()
        .chain(&r[a..b])
        .map(|&x| f64::from(x).powi(2))
        .sum();
    (sum / (2 * (b - a)).max(1) as f64).sqrt() as f32
}

#[test]
fn each_program_family_lands_in_its_stem_only() {
    // (channel, program, key, expected stem): ch10 drums, GM 34 bass, GM 54 voice, GM 1 piano.
    let cases = [
        (9, 0, 38, Stem::Drums),
        (1, 33, 40, Stem::Bass),
        (2, 53, 67, Stem::Vocals),
        (3, 0, 60, Stem::Other),
    ];
    // All four in one song, half a second apart, so each window holds one note.
    let mut events = Vec::new();
    for (i, &(ch, p, key, _)) in cases.iter().enumerate() {
        let t = 480 * i as u32;
        events.extend([(t, ch, prog(p)), (t, ch, on(key)), (t + 240, ch, off(key))]);
    }
    let stems = render_bytes(&Song::new().track("band", events).bytes(), 2.5, false);
    for (i, &(_, _, _, want)) in cases.iter().enumerate() {
        let start = 0.5 * i as f64;
        assert!(
            rms_in(&stems, want, start, start + 0.25) > 1e-3,
            "{want:?} silent in its window"
        );
        // Stems whose note comes later have received nothing yet: exactly zero.
        for &(_, _, _, later) in &cases[i + 1..] {
            assert_eq!(
                rms_in(&stems, later, 0.0, start + 0.5),
                0.0,
                "{later:?} sounds during the {want:?} note"
            );
        }
    }
}

#[test]
fn one_note_per_route_gives_energy_in_exactly_one_stem() {
    let cases = [
        (9u8, 0u8, 38u8, Stem::Drums),
        (1, 33, 40, Stem::Bass),
        (2, 53, 67, Stem::Vocals),
        (3, 0, 60, Stem::Other),
    ];
    for (ch, p, key, want) in cases {
        let song = Song::new().track(
            "t",
            vec![(0, ch, prog(p)), (0, ch, on(key)), (480, ch, off(key))],
        );
        let stems = render_bytes(&song.bytes(), 1.0, true);
        for s in Stem::ALL {
            if s == want {
                assert!(stems.rms(s) > 1e-3, "{want:?} silent");
            } else {
                assert_eq!(
                    stems.rms(s),
                    0.0,
                    "program {p} on ch {ch} leaked into {s:?}"
                );
            }
        }
    }
}

#[test]
fn melody_named_track_goes_to_vocals() {
    // A flute (GM 74) is "other" unless its track is marked as the melody.
    let notes = vec![(0, 5, prog(73)), (0, 5, on(72)), (480, 5, off(72))];
    let conductor = Song::new().track("Song title", vec![]);
    let marked = conductor.track("Melody", notes.clone());
    let stems = render_bytes(&marked.bytes(), 0.8, false);
    assert!(stems.rms(Stem::Vocals) > 1e-3 && stems.rms(Stem::Other) == 0.0);
    let unmarked = Song::new()
        .track("Song title", vec![])
        .track("Flute", notes);
    let stems = render_bytes(&unmarked.bytes(), 0.8, false);
    assert!(stems.rms(Stem::Other) > 1e-3 && stems.rms(Stem::Vocals) == 0.0);
}

#[test]
fn program_change_moves_later_notes_and_note_off_follows_the_note() {
    // Organ (GM 17, sustains while held) on, switch the channel to a bass, organ note off,
    // then a bass note. The organ must stop (its note-off reaches the "other" synth) and the
    // second note must land in "bass".
    let events = vec![
        (0, 0, prog(16)),
        (0, 0, on(60)),
        (192, 0, prog(33)),
        (384, 0, off(60)),
        (960, 0, on(45)),
        (1440, 0, off(45)),
    ];
    let stems = render_bytes(&Song::new().track("t", events).bytes(), 3.0, false);
    assert!(rms_in(&stems, Stem::Other, 0.0, 0.4) > 1e-3, "organ silent");
    assert_eq!(
        rms_in(&stems, Stem::Bass, 0.0, 1.0),
        0.0,
        "bass sounded before its note"
    );
    assert!(
        rms_in(&stems, Stem::Bass, 1.0, 1.5) > 1e-3,
        "bass note missing"
    );
    assert!(
        rms_in(&stems, Stem::Other, 1.5, 3.0) < 1e-5,
        "organ kept sounding: note-off lost"
    );
}

#[test]
fn controllers_and_pitch_bend_reach_every_synth() {
    // For each routed program: CC7 = 0 before the note silences it, and a pitch bend changes
    // it, whichever synth the note lands in.
    for (p, stem) in [(33u8, Stem::Bass), (53, Stem::Vocals), (0, Stem::Other)] {
        let base = vec![(0, 0, prog(p)), (0, 0, on(52)), (480, 0, off(52))];
        let plain = render_bytes(&Song::new().track("t", base.clone()).bytes(), 0.6, false);
        assert!(plain.rms(stem) > 1e-3);

        let mut muted = vec![(0, 0, cc(7, 0))];
        muted.extend(base.iter().copied());
        let muted = render_bytes(&Song::new().track("t", muted).bytes(), 0.6, false);
        assert!(
            muted.rms(stem) < 1e-6,
            "CC7 did not reach the {stem:?} synth"
        );

        let mut bent = vec![(
            0,
            0,
            MidiMessage::PitchBend {
                bend: PitchBend::from_f32(1.0),
            },
        )];
        bent.extend(base.iter().copied());
        let bent = render_bytes(&Song::new().track("t", bent).bytes(), 0.6, false);
        assert!(bent.rms(stem) > 1e-3);
        assert_ne!(
            bent.get(stem),
            plain.get(stem),
            "pitch bend did not reach the {stem:?} synth"
        );
    }
}

#[test]
fn procedural_songs_are_deterministic_and_distinct() {
    let bytes = |seed| {
        let mut v = Vec::new();
        generate_song(seed, 4.0).smf.write_std(&mut v).unwrap();
        v
    };
    assert_eq!(bytes(7), bytes(7));
    let distinct: std::collections::HashSet<Vec<u8>> = (0..16).map(bytes).collect();
    assert_eq!(distinct.len(), 16);

    let opts = RenderOptions {
        length: RenderLength::Exact {
            samples: 2 * SR,
            loop_song: true,
        },
        ..Default::default()
    };
    let a = render_smf(&generate_song(3, 2.0).smf, &soundfont(), &opts).unwrap();
    let b = render_smf(&generate_song(3, 2.0).smf, &soundfont(), &opts).unwrap();
    let c = render_smf(&generate_song(4, 2.0).smf, &soundfont(), &opts).unwrap();
    assert_eq!(a, b, "same seed, different samples");
    assert_ne!(a.mixture(), c.mixture(), "different seeds, same samples");
    assert_eq!(a.len(), 2 * SR);
}

#[test]
fn procedural_song_has_every_role_and_routes_it() {
    // Over a few seeds, a 20 s song's notes: the lead is on a voice program and the stems all
    // get notes (checked on the event list, without rendering).
    for seed in 0..8 {
        let song = generate_song(seed, 20.0);
        let tl = schedule::timeline(&song.smf, SAMPLE_RATE);
        let mut program = [0u8; 16];
        let mut per_stem = [0usize; 4];
        for e in &tl.events {
            match e.message {
                MidiMessage::ProgramChange { program: p } => {
                    program[usize::from(e.channel)] = p.as_int()
                }
                MidiMessage::NoteOn { vel, .. } if vel > 0 => {
                    let melody = tl.melody_tracks[e.track];
                    per_stem
                        [route_note(e.channel, program[usize::from(e.channel)], melody).index()] +=
                        1;
                }
                _ => {}
            }
        }
        assert!(
            per_stem.iter().all(|&n| n > 0),
            "seed {seed}: notes per stem {per_stem:?}"
        );
        assert!(route::is_voice_program(song.info.programs[5]));
        assert!(route::is_bass_program(song.info.programs[1]));
        assert!((80..=140).contains(&song.info.bpm));
    }
}

#[test]
fn mixture_is_exact_sum_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        tracks: 2,
        seconds: 2.0,
        seed: 11,
        threads: 2,
        ..SynthOptions::new(dir.path())
    };
    let calls = std::cell::RefCell::new(Vec::new());
    let tracks =
        synth_dataset(&opts, &|done, total| calls.borrow_mut().push((done, total))).unwrap();
    assert_eq!(*calls.borrow(), [(0, 2), (1, 2), (2, 2)]);
    assert_eq!(
        tracks,
        [dir.path().join("synth_11"), dir.path().join("synth_12")]
    );
    for track in &tracks {
        let mut names: Vec<String> = std::fs::read_dir(track)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "bass.wav",
                "drums.wav",
                "mixture.wav",
                "other.wav",
                "vocals.wav"
            ],
            "no temp files left"
        );
        let [mix, v, d, b, o] = TRACK_FILES.map(|f| read_wav_f32(&track.join(f)).unwrap());
        let spec = hound::WavReader::open(track.join("mixture.wav"))
            .unwrap()
            .spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 44_100, 32)
        );
        assert_eq!(mix[0].len(), 2 * SR);
        assert!(
            is_exact_sum(&mix, [&v, &d, &b, &o]),
            "{}: mixture != Σ stems",
            track.display()
        );
        assert!(mix[0].iter().any(|&x| x != 0.0));
        assert!(mix.iter().flatten().all(|x| x.abs() <= 0.95 + 1e-6));
    }
    // Same song in memory: the rendered stems are what was written.
    let song = generate_song(11, 2.0);
    let ropts = RenderOptions {
        length: RenderLength::Exact {
            samples: 2 * SR,
            loop_song: true,
        },
        ..Default::default()
    };
    let stems = render_smf(&song.smf, &soundfont(), &ropts).unwrap();
    assert_eq!(
        read_wav_f32(&tracks[0].join("vocals.wav")).unwrap(),
        stems.vocals
    );
    let mix = stems.mixture();
    assert!(is_exact_sum(
        &mix,
        [&stems.vocals, &stems.drums, &stems.bass, &stems.other]
    ));

    // A second run refuses to overwrite, names the folder, and overwrites when asked.
    let err = synth_dataset(&opts, &|_, _| {}).unwrap_err();
    assert!(
        matches!(err, SynthError::TrackExists { .. }) && err.to_string().contains("synth_11"),
        "{err}"
    );
    synth_dataset(
        &SynthOptions {
            overwrite: true,
            ..opts
        },
        &|_, _| {},
    )
    .unwrap();
}

#[test]
fn midi_folder_tracks_are_looped_to_length_and_named_after_files() {
    let dir = tempfile::tempdir().unwrap();
    let midi = dir.path().join("midi");
    std::fs::create_dir(&midi).unwrap();
    // A half-second song, looped to 1.5 s: the note comes back at 0.5 s and 1.0 s.
    let song = Song::new().track(
        "t",
        vec![
            (0, 0, prog(0)),
            (0, 0, on(60)),
            (120, 0, off(60)),
            (480, 0, cc(7, 100)),
        ],
    );
    std::fs::write(midi.join("My Song.mid"), song.bytes()).unwrap();
    std::fs::write(midi.join("notes.txt"), b"ignored").unwrap();
    let out = dir.path().join("out");
    let opts = SynthOptions {
        seconds: 1.5,
        midi_dir: Some(midi.clone()),
        threads: 1,
        ..SynthOptions::new(&out)
    };
    let tracks = synth_dataset(&opts, &|_, _| {}).unwrap();
    assert_eq!(tracks, [out.join("My_Song")]);
    let other = read_wav_f32(&out.join("My_Song/other.wav")).unwrap();
    assert_eq!(other[0].len(), 3 * SR / 2);
    let stems = Stems {
        other,
        ..Stems::silent(3 * SR / 2)
    };
    for start in [0.5, 1.0] {
        assert!(
            rms_in(&stems, Stem::Other, start, start + 0.1)
                > 10.0 * rms_in(&stems, Stem::Other, start - 0.1, start)
        );
    }

    // Broken MIDI: the error names the file.
    std::fs::write(midi.join("broken.mid"), b"MThd nonsense").unwrap();
    let opts = SynthOptions {
        overwrite: true,
        ..opts
    };
    let err = synth_dataset(&opts, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("broken.mid"), "{err}");
}

#[test]
fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zero = SynthOptions {
        seconds: 0.0,
        ..SynthOptions::new(dir.path())
    };
    assert!(matches!(
        synth_dataset(&zero, &|_, _| {}),
        Err(SynthError::InvalidOptions(_))
    ));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let no_midi = SynthOptions {
        midi_dir: Some(empty),
        ..SynthOptions::new(dir.path())
    };
    let err = synth_dataset(&no_midi, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("no .mid"), "{err}");
    let missing_sf = SynthOptions {
        soundfont: Some(dir.path().join("nope.sf2")),
        ..SynthOptions::new(dir.path().join("o"))
    };
    let err = synth_dataset(&missing_sf, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("nope.sf2"), "{err}");
}

#[test]
fn natural_length_ends_after_the_tail() {
    let song = Song::new().track(
        "t",
        vec![(0, 0, prog(0)), (0, 0, on(60)), (480, 0, off(60))],
    );
    let smf = Smf::parse(&song.bytes()).unwrap().make_static();
    let stems = render_smf(&smf, &soundfont(), &RenderOptions::default()).unwrap();
    // Note ends at 0.5 s; the tail stops when silent, at most 2 s later.
    assert!(
        stems.len() > SR / 2 && stems.len() <= SR / 2 + 2 * SR + 2048,
        "{}",
        stems.len()
    );
}
