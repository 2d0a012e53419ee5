//! A seeded generator of General MIDI pop arrangements, one distinct song per seed.
//!
//! A song is: a tempo (80–140 BPM), a key (major or natural minor), a four-chord progression
//! for verses and one for choruses (I–V–vi–IV and relatives), a form of sections
//! (intro, verse, chorus, bridge, outro) in which parts enter and leave, and six parts:
//!
//! | part    | channel | stem   | programs (0-based GM)                                    |
//! |---------|---------|--------|----------------------------------------------------------|
//! | drums   | 9       | drums  | kits 0, 8, 16, 24, 25, 32, 40                            |
//! | bass    | 1       | bass   | 32–39 (bass family)                                      |
//! | comp    | 2       | other  | pianos, organs, guitars, mallets, plucked strings        |
//! | pad     | 3       | other  | strings, pads, organs, brass                             |
//! | counter | 4       | other  | flutes, reeds, brass, synth leads (a melodic decoy)      |
//! | lead    | 0       | vocals | 52 Choir Aahs, 53 Voice Oohs, 54 Synth Voice, 85 Voice Lead |
//!
//! with random volume (CC7), pan (CC10), reverb (CC91) and chorus (CC93) per part and
//! vibrato (CC1) on the lead. Everything is drawn from one `ChaCha8Rng` seeded with the seed,
//! so a seed gives the same song on every platform.
//!
//! Not done: a sung-syllable vocal through espeak-ng; the vocal stem uses voice-like GM
//! programs only.

use midly::num::{u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::route::DRUM_CHANNEL;

/// Ticks per quarter note of generated songs.
pub const TICKS_PER_BEAT: u32 = 480;
const BAR: u32 = 4 * TICKS_PER_BEAT;
const STEP: u32 = TICKS_PER_BEAT / 4;

const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];

/// Progressions as scale degrees (0-based), one chord per bar.
const MAJOR_PROGRESSIONS: [[usize; 4]; 8] = [
    [0, 4, 5, 3], // I–V–vi–IV
    [5, 3, 0, 4], // vi–IV–I–V
    [0, 5, 3, 4], // I–vi–IV–V
    [0, 3, 4, 3], // I–IV–V–IV
    [0, 3, 0, 4], // I–IV–I–V
    [1, 4, 0, 0], // ii–V–I–I
    [0, 2, 3, 4], // I–iii–IV–V
    [3, 4, 2, 5], // IV–V–iii–vi
];
const MINOR_PROGRESSIONS: [[usize; 4]; 6] = [
    [0, 5, 2, 6], // i–VI–III–VII
    [0, 3, 6, 2], // i–iv–VII–III
    [0, 6, 5, 6], // i–VII–VI–VII
    [0, 3, 4, 0], // i–iv–v–i
    [0, 5, 3, 4], // i–VI–iv–v
    [5, 6, 0, 0], // VI–VII–i–i
];

const LEAD_PROGRAMS: [u8; 4] = [52, 53, 54, 85];
const COMP_PROGRAMS: [u8; 26] = [
    0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 16, 17, 18, 21, 24, 25, 26, 27, 28, 29, 30, 45, 46, 104, 105,
    107,
];
const PAD_PROGRAMS: [u8; 16] = [
    48, 49, 50, 51, 44, 19, 20, 61, 89, 90, 91, 92, 94, 95, 88, 60,
];
const COUNTER_PROGRAMS: [u8; 14] = [56, 57, 64, 65, 66, 68, 71, 72, 73, 75, 80, 81, 82, 22];
const DRUM_KITS: [u8; 9] = [0, 0, 0, 8, 16, 24, 25, 32, 40];

/// Channels of the parts (see the module table).
const LEAD_CH: u8 = 0;
const BASS_CH: u8 = 1;
const COMP_CH: u8 = 2;
const PAD_CH: u8 = 3;
const COUNTER_CH: u8 = 4;

/// Kind of a song section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// Opening: no vocals, a sparse band.
    Intro,
    /// Vocals over the verse progression.
    Verse,
    /// Full band, higher vocals, the chorus progression.
    Chorus,
    /// A breakdown: drums mostly out.
    Bridge,
    /// Closing: like the intro.
    Outro,
}

/// One section of the form and which parts play in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// What the section is.
    pub kind: SectionKind,
    /// First bar.
    pub start_bar: u32,
    /// Length in bars (a multiple of 2).
    pub bars: u32,
    /// Parts playing: drums, bass, comp, pad, counter, lead.
    pub playing: [bool; 6],
}

/// Human-readable facts about a generated song (for logs and model cards).
#[derive(Clone, Debug, PartialEq)]
pub struct SongInfo {
    /// The seed the song came from.
    pub seed: u64,
    /// Tempo in beats per minute.
    pub bpm: u32,
    /// Tonic pitch class (0 = C).
    pub key: u8,
    /// Natural minor instead of major.
    pub minor: bool,
    /// Verse and chorus progressions as scale degrees (0-based).
    pub progressions: [[usize; 4]; 2],
    /// Eighth-note swing.
    pub swing: bool,
    /// GM programs (0-based) of drums (kit), bass, comp, pad, counter, lead.
    pub programs: [u8; 6],
    /// The form.
    pub sections: Vec<Section>,
}

/// A generated song: the MIDI file and what went into it.
#[derive(Clone, Debug)]
pub struct ProceduralSong {
    /// Format-1 SMF: a conductor track, then one named track per part.
    pub smf: Smf<'static>,
    /// The drawn parameters.
    pub info: SongInfo,
}

/// Generates the song for `seed`, long enough to fill at least `seconds` (at least 2 bars).
pub fn generate_song(seed: u64, seconds: f64) -> ProceduralSong {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        swing: false,
    };
    let rng = &mut g.rng;
    let bpm = rng.random_range(80..=140u32);
    let key = rng.random_range(0..12u8);
    let minor = rng.random_bool(0.35);
    let progs: &[[usize; 4]] = if minor {
        &MINOR_PROGRESSIONS
    } else {
        &MAJOR_PROGRESSIONS
    };
    let verse_prog = pick(rng, progs);
    let chorus_prog = if rng.random_bool(0.5) {
        verse_prog
    } else {
        pick(rng, progs)
    };
    g.swing = g.rng.random_bool(0.2);
    let rng = &mut g.rng;
    let programs = [
        pick(rng, &DRUM_KITS),
        rng.random_range(32..=39u8),
        pick(rng, &COMP_PROGRAMS),
        pick(rng, &PAD_PROGRAMS),
        pick(rng, &COUNTER_PROGRAMS),
        pick(rng, &LEAD_PROGRAMS),
    ];
    let bar_seconds = 240.0 / f64::from(bpm);
    let bars_needed = ((seconds.max(0.0) + 0.5) / bar_seconds).ceil().max(2.0) as u32;
    let sections = form(rng, bars_needed);

    let scale = if minor { MINOR } else { MAJOR };
    let song = SongCtx {
        key: i32::from(key),
        scale,
        progs: [verse_prog, chorus_prog],
    };
    let mut parts: [Part; 6] = [
        ("Drums", DRUM_CHANNEL),
        ("Bass", BASS_CH),
        ("Comp", COMP_CH),
        ("Pad", PAD_CH),
        ("Counter", COUNTER_CH),
        ("Lead Vocal", LEAD_CH),
    ]
    .map(|(name, channel)| Part {
        name,
        channel,
        events: Vec::new(),
    });

    // Channel setup: bank, program, mix.
    let mix = [
        (90, 120, 6),
        (85, 115, 6),
        (70, 110, 44),
        (55, 95, 30),
        (65, 100, 40),
        (95, 122, 8),
    ];
    for (i, part) in parts.iter_mut().enumerate() {
        let (vmin, vmax, spread) = mix[i];
        let rng = &mut g.rng;
        let pan = 64 + rng.random_range(-spread..=spread);
        part.cc(0, 0, 0);
        part.program(0, programs[i]);
        part.cc(0, 7, rng.random_range(vmin..=vmax));
        part.cc(0, 10, pan.clamp(0, 127));
        part.cc(0, 91, rng.random_range(10..=60));
        part.cc(0, 93, rng.random_range(0..=35));
        part.cc(0, 11, 127);
    }
    let vibrato = g.rng.random_range(0..=45);
    parts[5].cc(0, 1, vibrato);

    // Per-song pattern choices.
    let drum_style = DrumStyle::draw(&mut g.rng);
    let bass_style = g.rng.random_range(0..6u8);
    let comp_style = g.rng.random_range(0..6u8);
    let comp_octave = g.rng.random_range(0..2i32);

    for (si, sec) in sections.iter().enumerate() {
        let next_differs = sections.get(si + 1).is_some_and(|n| n.kind != sec.kind);
        let prog = song.progs[usize::from(sec.kind == SectionKind::Chorus)];
        let [drums, bass, comp, pad, counter, lead] = &mut parts;
        if sec.playing[0] {
            g.drums(drums, sec, &drum_style, next_differs);
        }
        for b in 0..sec.bars {
            let bar = sec.start_bar + b;
            let chord = song.chord(prog[(b % 4) as usize]);
            let next_root = song.chord(prog[((b + 1) % 4) as usize])[0];
            if sec.playing[1] {
                g.bass_bar(bass, bar, &chord, next_root, bass_style);
            }
            if sec.playing[2] {
                g.comp_bar(comp, bar, &chord, comp_style, comp_octave);
            }
            if sec.playing[3] {
                g.pad_bar(pad, bar, &chord);
            }
        }
        if sec.playing[4] {
            g.melody(counter, sec, &song, prog, (72, 88), true);
        }
        if sec.playing[5] {
            let range = if sec.kind == SectionKind::Chorus {
                (64, 79)
            } else {
                (59, 74)
            };
            g.melody(lead, sec, &song, prog, range, false);
        }
    }

    let end_tick = sections.last().map_or(0, |s| (s.start_bar + s.bars) * BAR);
    let mut smf = Smf::new(Header::new(
        Format::Parallel,
        Timing::Metrical((TICKS_PER_BEAT as u16).into()),
    ));
    let conductor = vec![
        meta(0, MetaMessage::TrackName(b"locosep procedural song")),
        meta(0, MetaMessage::Tempo((60_000_000 / bpm).into())),
        meta(0, MetaMessage::TimeSignature(4, 2, 24, 8)),
    ];
    smf.tracks.push(to_track(conductor, end_tick));
    for part in parts {
        smf.tracks.push(part.into_track(end_tick));
    }
    let info = SongInfo {
        seed,
        bpm,
        key,
        minor,
        progressions: [verse_prog, chorus_prog],
        swing: g.swing,
        programs,
        sections,
    };
    ProceduralSong { smf, info }
}

/// Draws the form: sections of 2–8 bars until `bars_needed` bars are covered.
fn form(rng: &mut ChaCha8Rng, bars_needed: u32) -> Vec<Section> {
    use SectionKind::*;
    let mut kinds = Vec::new();
    if rng.random_bool(0.6) {
        kinds.push(Intro);
    }
    let body = [Verse, Chorus, Verse, Chorus, Bridge, Chorus, Chorus];
    let mut sections = Vec::new();
    let mut bar = 0;
    let mut i = 0;
    while bar < bars_needed {
        let kind = if i < kinds.len() {
            kinds[i]
        } else {
            body[(i - kinds.len()) % body.len()]
        };
        let bars = match kind {
            Intro | Outro => pick(rng, &[2, 4]),
            Bridge => 4,
            Verse | Chorus => pick(rng, &[4, 8, 8]),
        };
        // Parts: drums, bass, comp, pad, counter, lead.
        let p = |rng: &mut ChaCha8Rng, x: f64| rng.random_bool(x);
        let playing = match kind {
            Intro | Outro => [
                p(rng, 0.5),
                p(rng, 0.5),
                true,
                p(rng, 0.5),
                p(rng, 0.4),
                false,
            ],
            Verse => [p(rng, 0.9), true, true, p(rng, 0.3), p(rng, 0.15), true],
            Chorus => [true, true, p(rng, 0.9), p(rng, 0.8), p(rng, 0.4), true],
            Bridge => [
                p(rng, 0.3),
                p(rng, 0.6),
                true,
                true,
                p(rng, 0.5),
                p(rng, 0.5),
            ],
        };
        sections.push(Section {
            kind,
            start_bar: bar,
            bars,
            playing,
        });
        bar += bars;
        i += 1;
    }
    sections
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len() as u32) as usize]
}

fn meta(tick: u32, m: MetaMessage<'static>) -> (u32, u8, TrackEventKind<'static>) {
    (tick, 1, TrackEventKind::Meta(m))
}

/// Key, scale and progressions of one song.
struct SongCtx {
    key: i32,
    scale: [i32; 7],
    progs: [[usize; 4]; 2],
}

impl SongCtx {
    /// Pitch classes (relative to C, may exceed 11) of the triad on `degree`, root first.
    fn chord(&self, degree: usize) -> [i32; 3] {
        let tone = |d: usize| self.key + self.scale[d % 7] + 12 * (d / 7) as i32;
        [tone(degree), tone(degree + 2), tone(degree + 4)]
    }

    /// True when pitch `p` is in the song's scale.
    fn in_scale(&self, p: i32) -> bool {
        self.scale.contains(&(p - self.key).rem_euclid(12))
    }
}

/// Events of one part, before they are sorted into a track.
struct Part {
    name: &'static str,
    channel: u8,
    /// (tick, order at equal ticks: note-off 0, meta/control 1, note-on 2, event).
    events: Vec<(u32, u8, TrackEventKind<'static>)>,
}

impl Part {
    fn midi(&mut self, tick: u32, order: u8, message: MidiMessage) {
        let channel = u4::from(self.channel);
        self.events
            .push((tick, order, TrackEventKind::Midi { channel, message }));
    }

    fn cc(&mut self, tick: u32, controller: u8, value: i32) {
        let value = u7::from(value.clamp(0, 127) as u8);
        self.midi(
            tick,
            1,
            MidiMessage::Controller {
                controller: controller.into(),
                value,
            },
        );
    }

    fn program(&mut self, tick: u32, program: u8) {
        self.midi(
            tick,
            1,
            MidiMessage::ProgramChange {
                program: program.into(),
            },
        );
    }

    fn note(&mut self, tick: u32, dur: u32, key: i32, vel: i32) {
        let key = u7::from(key.clamp(0, 127) as u8);
        let vel = u7::from(vel.clamp(1, 127) as u8);
        self.midi(tick, 2, MidiMessage::NoteOn { key, vel });
        self.midi(
            tick + dur.max(1),
            0,
            MidiMessage::NoteOff {
                key,
                vel: 64.into(),
            },
        );
    }

    fn into_track(mut self, end_tick: u32) -> Vec<TrackEvent<'static>> {
        self.events
            .push(meta(0, MetaMessage::TrackName(self.name.as_bytes())));
        to_track(self.events, end_tick)
    }
}

/// Sorts timed events (by tick, then note-off < control < note-on), clamps them to `end_tick`
/// so the loop length stays the form, and converts them to a delta-timed track.
fn to_track(
    mut events: Vec<(u32, u8, TrackEventKind<'static>)>,
    end_tick: u32,
) -> Vec<TrackEvent<'static>> {
    for e in &mut events {
        e.0 = e.0.min(end_tick);
    }
    events.sort_by_key(|e| (e.0, e.1));
    events.push(meta(end_tick, MetaMessage::EndOfTrack));
    let mut last = 0;
    events
        .into_iter()
        .map(|(tick, _, kind)| {
            let delta = tick - last;
            last = tick;
            TrackEvent {
                delta: delta.into(),
                kind,
            }
        })
        .collect()
}

/// Drum pattern choices for one song.
struct DrumStyle {
    kick: &'static [u32],
    snare: &'static [u32],
    hats: &'static [u32],
    hat_key: i32,
    chorus_ride: bool,
    ghosts: bool,
}

impl DrumStyle {
    fn draw(rng: &mut ChaCha8Rng) -> Self {
        const KICKS: [&[u32]; 6] = [
            &[0, 4, 8, 12],
            &[0, 8, 10],
            &[0, 6, 8],
            &[0, 3, 8, 11],
            &[0, 7, 10],
            &[0, 10],
        ];
        const SNARES: [&[u32]; 3] = [&[4, 12], &[4, 12], &[8]];
        const HATS: [&[u32]; 4] = [
            &[0, 2, 4, 6, 8, 10, 12, 14],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            &[0, 4, 8, 12],
            &[2, 6, 10, 14],
        ];
        let hats = pick(rng, &HATS);
        DrumStyle {
            kick: pick(rng, &KICKS),
            snare: pick(rng, &SNARES),
            hats,
            // Offbeat-only hats are open hats.
            hat_key: if hats.len() == 4 && hats[0] == 2 {
                46
            } else {
                pick(rng, &[42, 42, 44])
            },
            chorus_ride: rng.random_bool(0.4),
            ghosts: rng.random_bool(0.3),
        }
    }
}

/// The generator state: the RNG and the swing flag.
struct Gen {
    rng: ChaCha8Rng,
    swing: bool,
}

impl Gen {
    /// Tick of a 16th `step` (may exceed 15) in `bar`, with swing and a little jitter.
    fn at(&mut self, bar: u32, step: u32, jitter: bool) -> u32 {
        let mut t = bar * BAR + step * STEP;
        if self.swing && step % 4 == 2 {
            t += STEP / 3;
        }
        if jitter && t > 0 {
            t = (t as i32 + self.rng.random_range(-6..=6)).max(0) as u32;
        }
        t
    }

    fn vel(&mut self, base: i32) -> i32 {
        base + self.rng.random_range(-8..=8)
    }

    fn drums(&mut self, part: &mut Part, sec: &Section, style: &DrumStyle, fill_at_end: bool) {
        let chorus = sec.kind == SectionKind::Chorus;
        let sparse = matches!(
            sec.kind,
            SectionKind::Intro | SectionKind::Outro | SectionKind::Bridge
        );
        for b in 0..sec.bars {
            let bar = sec.start_bar + b;
            let fill = fill_at_end && b + 1 == sec.bars && self.rng.random_bool(0.6);
            let fill_from = if fill {
                pick(&mut self.rng, &[8, 12])
            } else {
                16
            };
            if b == 0 && (chorus || self.rng.random_bool(0.3)) {
                let t = self.at(bar, 0, false);
                let v = self.vel(110);
                part.note(t, STEP * 8, 49, v);
            }
            for &s in style.kick {
                if s < fill_from {
                    let t = self.at(bar, s, true);
                    let v = self.vel(if s == 0 { 115 } else { 100 });
                    part.note(t, STEP / 2, 36, v);
                }
            }
            if !(sparse && self.rng.random_bool(0.5)) {
                for &s in style.snare {
                    if s < fill_from {
                        let t = self.at(bar, s, true);
                        let v = self.vel(108);
                        part.note(t, STEP / 2, 38, v);
                    }
                }
                if style.ghosts {
                    for s in [7, 15] {
                        if s < fill_from && self.rng.random_bool(0.5) {
                            let t = self.at(bar, s, true);
                            let v = self.vel(45);
                            part.note(t, STEP / 2, 38, v);
                        }
                    }
                }
            }
            let (hats, key): (&[u32], i32) = if chorus && style.chorus_ride {
                (&[0, 2, 4, 6, 8, 10, 12, 14], 51)
            } else {
                (style.hats, style.hat_key)
            };
            for &s in hats {
                if s < fill_from {
                    let t = self.at(bar, s, true);
                    let accent = if s % 4 == 0 { 88 } else { 70 };
                    let v = self.vel(accent);
                    part.note(t, STEP / 2, key, v);
                }
            }
            if fill {
                const TOMS: [i32; 6] = [50, 48, 47, 45, 43, 41];
                let mut tom = 0usize;
                let eighths = self.rng.random_bool(0.4);
                let mut s = fill_from;
                while s < 16 {
                    let snare = self.rng.random_bool(0.35);
                    let key = if snare { 38 } else { TOMS[tom.min(5)] };
                    if !snare && self.rng.random_bool(0.6) {
                        tom += 1;
                    }
                    let t = self.at(bar, s, true);
                    let v = self.vel(95 + 2 * s as i32 / 2);
                    part.note(t, STEP / 2, key, v);
                    s += if eighths { 2 } else { 1 };
                }
            }
        }
    }

    fn bass_bar(&mut self, part: &mut Part, bar: u32, chord: &[i32; 3], next_root: i32, style: u8) {
        // Roots in E1..D#2 (MIDI 28..=39), shifted up an octave: 40..=51 sits better in GM banks.
        let root = 40 + (chord[0] - 40).rem_euclid(12);
        let fifth = root + (chord[2] - chord[0]);
        let (steps, keys): (&[u32], Vec<i32>) = match style {
            0 => (&[0], vec![root]),
            1 => (&[0, 4, 8, 12], vec![root; 4]),
            2 => (&[0, 2, 4, 6, 8, 10, 12, 14], vec![root; 8]),
            3 => (&[0, 4, 8, 12], vec![root, root, fifth, root]),
            4 => (
                &[0, 2, 4, 6, 8, 10, 12, 14],
                (0..8).map(|i| root + 12 * (i % 2)).collect(),
            ),
            _ => (&[0, 3, 6, 10, 12], vec![root, root, fifth, root + 12, root]),
        };
        for (i, (&s, &k)) in steps.iter().zip(&keys).enumerate() {
            let end = steps.get(i + 1).copied().unwrap_or(16);
            let mut k = k;
            // Approach the next root on the last eighth now and then.
            if i + 1 == steps.len() && s >= 12 && self.rng.random_bool(0.3) {
                let target = 40 + (next_root - 40).rem_euclid(12);
                k = target + if self.rng.random_bool(0.5) { -1 } else { 2 };
            }
            let t = self.at(bar, s, true);
            let v = self.vel(if s % 4 == 0 { 105 } else { 90 });
            part.note(t, (end - s) * STEP * 9 / 10, k, v);
        }
    }

    fn voicing(chord: &[i32; 3], low: i32) -> Vec<i32> {
        let mut notes: Vec<i32> = chord
            .iter()
            .map(|&p| low + (p - low).rem_euclid(12))
            .collect();
        notes.sort_unstable();
        notes
    }

    fn comp_bar(&mut self, part: &mut Part, bar: u32, chord: &[i32; 3], style: u8, octave: i32) {
        let notes = Self::voicing(chord, 52 + 12 * octave);
        let hits: Vec<(u32, u32)> = match style {
            0 => vec![(0, 16)],
            1 => (0..4).map(|b| (4 * b, 3)).collect(),
            2 => (0..8).map(|e| (2 * e, 1)).collect(),
            3 => vec![(2, 2), (6, 2), (10, 2), (14, 2)],
            4 => vec![(0, 3), (3, 3), (6, 4), (10, 2), (12, 4)],
            _ => {
                // Arpeggio: one chord tone per eighth, up and down.
                for e in 0..8u32 {
                    let idx = [0, 1, 2, 3, 2, 1, 0, 1][e as usize];
                    let key = if idx == 3 { notes[0] + 12 } else { notes[idx] };
                    let t = self.at(bar, 2 * e, true);
                    let v = self.vel(80);
                    part.note(t, STEP * 2, key, v);
                }
                return;
            }
        };
        for (s, len) in hits {
            let t = self.at(bar, s, true);
            let v = self.vel(if s % 4 == 0 { 88 } else { 76 });
            for &k in &notes {
                part.note(t, len * STEP * 9 / 10, k, v);
            }
        }
    }

    fn pad_bar(&mut self, part: &mut Part, bar: u32, chord: &[i32; 3]) {
        let notes = Self::voicing(chord, 48);
        let t = self.at(bar, 0, false);
        let v = self.vel(72);
        for k in notes {
            part.note(t, BAR - STEP / 2, k, v);
        }
    }

    /// A melody over `sec`: two-bar phrases in the pattern A B A C, each a rhythm of eighths,
    /// quarters and longer notes followed by a rest, moving mostly by step, landing on chord
    /// tones on strong beats. `dense` makes a busier, riff-like line (the counter melody).
    fn melody(
        &mut self,
        part: &mut Part,
        sec: &Section,
        song: &SongCtx,
        prog: [usize; 4],
        range: (i32, i32),
        dense: bool,
    ) {
        let phrases = sec.bars.div_ceil(2);
        let a = self.phrase(song, prog, range, dense, 0);
        let b = self.phrase(song, prog, range, dense, 1);
        for p in 0..phrases {
            let notes = match p % 4 {
                0 | 2 => a.clone(),
                1 => b.clone(),
                _ => self.phrase(song, prog, range, dense, 1),
            };
            let bar0 = sec.start_bar + 2 * p;
            for (start8, len8, key, vel) in notes {
                let bar = bar0 + start8 / 8;
                if bar >= sec.start_bar + sec.bars {
                    break;
                }
                let t = self.at(bar, 2 * (start8 % 8), true);
                part.note(t, (len8 * 2 * STEP).saturating_sub(STEP / 3), key, vel);
            }
        }
    }

    /// One two-bar phrase as (start eighth, length in eighths, key, velocity); the chords are
    /// those of bars `2 * half` and `2 * half + 1` of the progression.
    fn phrase(
        &mut self,
        song: &SongCtx,
        prog: [usize; 4],
        range: (i32, i32),
        dense: bool,
        half: u32,
    ) -> Vec<(u32, u32, i32, i32)> {
        let rng = &mut self.rng;
        let lengths: &[u32] = if dense {
            &[1, 1, 1, 2]
        } else {
            &[1, 1, 2, 2, 2, 3, 4]
        };
        let target = if dense {
            rng.random_range(8..=14)
        } else {
            rng.random_range(9..=14)
        };
        let mut pos = if rng.random_bool(0.3) { 1 } else { 0 };
        let (lo, hi) = range;
        let mut key = (lo + hi) / 2;
        let mut out = Vec::new();
        while pos < target {
            let len = pick(rng, lengths).min(16 - pos);
            let chord = song.chord(prog[((2 * half + pos / 8) % 4) as usize]);
            let strong = pos % 2 == 0;
            let step_dir = if rng.random_bool(0.5) { 1 } else { -1 };
            let r: f64 = rng.random();
            key = if out.is_empty() || (strong && r < 0.4) || r < 0.1 {
                // Nearest chord tone to where we are.
                nearest_chord_tone(&chord, key + step_dir * rng.random_range(0..=4))
            } else {
                let jump = if r < 0.8 { 1 } else { 2 };
                scale_step(song, key, step_dir * jump)
            };
            if key < lo {
                key = scale_step(song, key, 2);
            }
            if key > hi {
                key = scale_step(song, key, -2);
            }
            let vel = if strong { 100 } else { 88 } + rng.random_range(-8..=8);
            out.push((pos, len, key, vel));
            pos += len;
        }
        // End on a chord tone.
        if let Some(last) = out.last_mut() {
            let chord = song.chord(prog[((2 * half + last.0 / 8) % 4) as usize]);
            last.2 = nearest_chord_tone(&chord, last.2);
        }
        out
    }
}

/// The chord tone (any octave) closest to `key`.
fn nearest_chord_tone(chord: &[i32; 3], key: i32) -> i32 {
    (key - 6..=key + 6)
        .filter(|k| chord.iter().any(|p| (k - p).rem_euclid(12) == 0))
        .min_by_key(|k| (k - key).abs())
        .unwrap_or(key)
}

/// Moves `steps` scale steps from `key` (which is moved into the scale first).
fn scale_step(song: &SongCtx, key: i32, steps: i32) -> i32 {
    let mut k = key;
    while !song.in_scale(k) {
        k -= 1;
    }
    let dir = steps.signum();
    for _ in 0..steps.abs() {
        k += dir;
        while !song.in_scale(k) {
            k += dir;
        }
    }
    k
}
