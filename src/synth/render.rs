//! Rendering a MIDI song to four stems, one rustysynth [`Synthesizer`] per stem.
//!
//! Invariants:
//! - every stem has the same length; [`Stems::mixture`] is their sample-wise f32 sum in the
//!   fixed order `((vocals + drums) + bass) + other`, so the mixture is exactly Σ stems;
//! - a note-off reaches exactly the synth(s) that got the note-on for that channel and key,
//!   even if the channel's program changed in between;
//! - controllers, program changes, pitch bend and aftertouch reach all four synths, so every
//!   synth's channel state is identical and a note sounds the same in whichever stem it lands.

use std::path::Path;
use std::sync::Arc;

use midly::{MidiMessage, Smf};
use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use super::error::{Result, SynthError};
use super::route::{Stem, route_note};
use super::schedule::{TimedEvent, Timeline, timeline};

/// Output sample rate of the renderer (Hz).
pub const SAMPLE_RATE: u32 = 44_100;

/// Longest release/reverb tail rendered after the last event in [`RenderLength::Natural`].
pub const MAX_TAIL_SECONDS: f64 = 2.0;

/// A tail block whose peak over all stems is below this counts as silence.
const SILENCE: f32 = 1e-4;

/// Block size used while rendering the tail.
const TAIL_BLOCK: usize = 2048;

/// Length of the linear fade applied when [`RenderLength::Exact`] cuts a song (10 ms).
const FADE_OUT: usize = 441;

/// Four stereo stems at [`SAMPLE_RATE`], each `[left, right]`, all of the same length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stems {
    /// The lead line.
    pub vocals: [Vec<f32>; 2],
    /// Channel 10.
    pub drums: [Vec<f32>; 2],
    /// GM bass family.
    pub bass: [Vec<f32>; 2],
    /// Everything else.
    pub other: [Vec<f32>; 2],
}

impl Stems {
    /// Silent stems of `len` samples.
    pub fn silent(len: usize) -> Self {
        let z = || [vec![0.0; len], vec![0.0; len]];
        Stems {
            vocals: z(),
            drums: z(),
            bass: z(),
            other: z(),
        }
    }

    /// The stem `stem`.
    pub fn get(&self, stem: Stem) -> &[Vec<f32>; 2] {
        match stem {
            Stem::Vocals => &self.vocals,
            Stem::Drums => &self.drums,
            Stem::Bass => &self.bass,
            Stem::Other => &self.other,
        }
    }

    /// The stem `stem`, mutably.
    pub fn get_mut(&mut self, stem: Stem) -> &mut [Vec<f32>; 2] {
        match stem {
            Stem::Vocals => &mut self.vocals,
            Stem::Drums => &mut self.drums,
            Stem::Bass => &mut self.bass,
            Stem::Other => &mut self.other,
        }
    }

    /// Number of samples per channel.
    pub fn len(&self) -> usize {
        self.vocals[0].len()
    }

    /// True when the stems hold no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mixture: per sample `((vocals + drums) + bass) + other` in f32. This exact
    /// expression is the definition of "mixture = Σ stems" throughout the crate.
    pub fn mixture(&self) -> [Vec<f32>; 2] {
        std::array::from_fn(|c| {
            (0..self.len())
                .map(|i| {
                    sum_stems(
                        self.vocals[c][i],
                        self.drums[c][i],
                        self.bass[c][i],
                        self.other[c][i],
                    )
                })
                .collect()
        })
    }

    /// Largest absolute sample of the mixture.
    fn mixture_peak(&self) -> f32 {
        self.mixture()
            .iter()
            .flatten()
            .fold(0.0f32, |m, x| m.max(x.abs()))
    }

    /// Multiplies every stem by `gain` (the mixture, being their sum, follows).
    pub fn scale(&mut self, gain: f32) {
        for stem in Stem::ALL {
            for ch in self.get_mut(stem) {
                ch.iter_mut().for_each(|x| *x *= gain);
            }
        }
    }

    /// RMS energy of one stem over both channels (0 for empty stems).
    pub fn rms(&self, stem: Stem) -> f32 {
        let [l, r] = self.get(stem);
        let n = (l.len() + r.len()).max(1) as f64;
        let sum: f64 = l
            .iter()
            .chain(r)
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        (sum / n).sqrt() as f32
    }
}

/// The canonical f32 sum of four stem samples (see [`Stems::mixture`]).
#[inline]
pub fn sum_stems(vocals: f32, drums: f32, bass: f32, other: f32) -> f32 {
    ((vocals + drums) + bass) + other
}

/// How long the rendered stems are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RenderLength {
    /// Until the last event, then until all stems are silent (peak < 1e-4) or
    /// [`MAX_TAIL_SECONDS`] have passed.
    Natural,
    /// Exactly `samples` samples. A longer song is cut (with a 10 ms fade-out); a shorter one
    /// is looped at its end (the latest event of any track) when `loop_song`, or padded with
    /// its tail and then silence otherwise.
    Exact {
        /// Output length in samples.
        samples: usize,
        /// Repeat the song's events until `samples` is filled.
        loop_song: bool,
    },
}

/// Options for [`render_smf`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderOptions {
    /// Output length.
    pub length: RenderLength,
    /// If set, all stems are scaled by one gain so that the mixture peak is at most this.
    pub max_peak: Option<f32>,
    /// Enable rustysynth's reverb and chorus (per stem synth, so Σ stems stays exact).
    pub effects: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            length: RenderLength::Natural,
            max_peak: Some(0.95),
            effects: true,
        }
    }
}

/// Parses and renders a `.mid` file. Errors name the file.
pub fn render_midi_file(
    path: &Path,
    soundfont: &Arc<SoundFont>,
    opts: &RenderOptions,
) -> Result<Stems> {
    let bytes = std::fs::read(path).map_err(|e| SynthError::io(path, e))?;
    let smf = Smf::parse(&bytes).map_err(|e| SynthError::BadMidi {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tl = timeline(&smf, SAMPLE_RATE);
    if tl.note_count == 0 {
        return Err(SynthError::EmptyMidi {
            path: path.to_path_buf(),
        });
    }
    render_timeline(&tl, soundfont, opts)
}

/// Renders a parsed song to stems (see the module invariants).
pub fn render_smf(smf: &Smf, soundfont: &Arc<SoundFont>, opts: &RenderOptions) -> Result<Stems> {
    render_timeline(&timeline(smf, SAMPLE_RATE), soundfont, opts)
}

/// Renders a [`Timeline`] built at [`SAMPLE_RATE`].
fn render_timeline(
    tl: &Timeline,
    soundfont: &Arc<SoundFont>,
    opts: &RenderOptions,
) -> Result<Stems> {
    let mut r = StemRenderer::new(soundfont, opts.effects)?;
    match opts.length {
        RenderLength::Natural => {
            for group in tl.events.chunk_by(|a, b| a.sample == b.sample) {
                r.render_to(group[0].sample as usize);
                group.iter().for_each(|e| r.apply(e, tl));
            }
            r.render_tail();
        }
        RenderLength::Exact { samples, loop_song } => {
            let period = tl.end_sample.max(1);
            let repeats = if loop_song && tl.end_sample > 0 {
                u64::MAX
            } else {
                1
            };
            'outer: for rep in 0..repeats {
                let offset = rep.saturating_mul(period);
                if offset >= samples as u64 {
                    break;
                }
                for group in tl.events.chunk_by(|a, b| a.sample == b.sample) {
                    let at = group[0].sample + offset;
                    if at >= samples as u64 {
                        break 'outer;
                    }
                    r.render_to(at as usize);
                    group.iter().for_each(|e| r.apply(e, tl));
                }
            }
            r.render_to(samples);
            r.fade_out(FADE_OUT);
        }
    }
    let mut stems = r.into_stems();
    if let Some(max_peak) = opts.max_peak {
        let peak = stems.mixture_peak();
        if peak > max_peak {
            stems.scale(max_peak / peak);
        }
    }
    Ok(stems)
}

/// Four synths plus the channel state needed to route notes between them.
struct StemRenderer {
    synths: Vec<Synthesizer>,
    stems: Stems,
    /// Current program of each channel (0-based).
    program: [u8; 16],
    /// Per channel and key: how many note-ons each stem has received without a note-off.
    sounding: Box<[[[u16; 4]; 128]; 16]>,
}

impl StemRenderer {
    fn new(soundfont: &Arc<SoundFont>, effects: bool) -> Result<Self> {
        let mut settings = SynthesizerSettings::new(SAMPLE_RATE as i32);
        settings.enable_reverb_and_chorus = effects;
        settings.maximum_polyphony = 128;
        let synths = (0..Stem::ALL.len())
            .map(|_| Synthesizer::new(soundfont, &settings))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SynthError::Synthesizer(e.to_string()))?;
        Ok(StemRenderer {
            synths,
            stems: Stems::default(),
            program: [0; 16],
            sounding: Box::new([[[0; 4]; 128]; 16]),
        })
    }

    /// Renders every synth from the current position up to sample `end` (no-op if behind).
    fn render_to(&mut self, end: usize) {
        let start = self.stems.len();
        if end <= start {
            return;
        }
        for (synth, stem) in self.synths.iter_mut().zip(Stem::ALL) {
            let [l, r] = self.stems.get_mut(stem);
            l.resize(end, 0.0);
            r.resize(end, 0.0);
            synth.render(&mut l[start..], &mut r[start..]);
        }
    }

    /// Renders blocks until a block is silent in every stem or the tail limit is reached.
    fn render_tail(&mut self) {
        let limit = self.stems.len() + (MAX_TAIL_SECONDS * f64::from(SAMPLE_RATE)) as usize;
        while self.stems.len() < limit {
            let start = self.stems.len();
            self.render_to((start + TAIL_BLOCK).min(limit));
            let loud = Stem::ALL.iter().any(|&s| {
                self.stems
                    .get(s)
                    .iter()
                    .any(|ch| ch[start..].iter().any(|x| x.abs() >= SILENCE))
            });
            if !loud {
                break;
            }
        }
    }

    fn fade_out(&mut self, len: usize) {
        let n = self.stems.len();
        let len = len.min(n);
        for stem in Stem::ALL {
            for ch in self.stems.get_mut(stem) {
                for (k, x) in ch[n - len..].iter_mut().enumerate() {
                    *x *= (len - k) as f32 / len as f32;
                }
            }
        }
    }

    fn send(synth: &mut Synthesizer, channel: u8, message: MidiMessage) {
        let ch = i32::from(channel);
        match message {
            MidiMessage::NoteOff { key, .. } => synth.note_off(ch, i32::from(key.as_int())),
            MidiMessage::NoteOn { key, vel } => {
                synth.note_on(ch, i32::from(key.as_int()), i32::from(vel.as_int()))
            }
            MidiMessage::Controller { controller, value } => synth.process_midi_message(
                ch,
                0xB0,
                i32::from(controller.as_int()),
                i32::from(value.as_int()),
            ),
            MidiMessage::ProgramChange { program } => {
                synth.process_midi_message(ch, 0xC0, i32::from(program.as_int()), 0)
            }
            MidiMessage::PitchBend { bend } => {
                let v = i32::from(bend.0.as_int());
                synth.process_midi_message(ch, 0xE0, v & 0x7F, v >> 7)
            }
            MidiMessage::Aftertouch { key, vel } => synth.process_midi_message(
                ch,
                0xA0,
                i32::from(key.as_int()),
                i32::from(vel.as_int()),
            ),
            MidiMessage::ChannelAftertouch { vel } => {
                synth.process_midi_message(ch, 0xD0, i32::from(vel.as_int()), 0)
            }
        }
    }

    fn apply(&mut self, e: &TimedEvent, tl: &Timeline) {
        let ch = usize::from(e.channel & 0x0F);
        match e.message {
            MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                let melody = tl.melody_tracks.get(e.track).copied().unwrap_or(false);
                let stem = route_note(e.channel, self.program[ch], melody);
                self.sounding[ch][usize::from(key.as_int())][stem.index()] += 1;
                Self::send(&mut self.synths[stem.index()], e.channel, e.message);
            }
            MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                // One note-off ends every voice of this key on this channel (as in a single
                // synth), so it goes to each stem that has the key sounding.
                let counts = &mut self.sounding[ch][usize::from(key.as_int())];
                for (synth, count) in self.synths.iter_mut().zip(counts.iter_mut()) {
                    if *count > 0 {
                        *count = 0;
                        Self::send(synth, e.channel, e.message);
                    }
                }
            }
            message => {
                if let MidiMessage::ProgramChange { program } = message {
                    self.program[ch] = program.as_int();
                }
                if let MidiMessage::Controller { controller, .. } = message {
                    // All Sound Off (120) and All Notes Off (123) end every note of the
                    // channel in rustysynth; nothing else does.
                    if matches!(controller.as_int(), 120 | 123) {
                        self.sounding[ch] = [[0; 4]; 128];
                    }
                }
                for synth in &mut self.synths {
                    Self::send(synth, e.channel, message);
                }
            }
        }
    }

    fn into_stems(self) -> Stems {
        self.stems
    }
}
