//! Audio playback through cpal: the GUI sends [`ToAudio`] and reads [`FromAudio`] over bounded
//! lock-free channels; the callback only copies, mixes and fills silence.
//!
//! Real-time rules of the callback: it never allocates, locks or frees. Messages travel over
//! `std::sync::mpsc::sync_channel` (a preallocated array queue: `try_send`/`try_recv` take no
//! lock while nobody blocks on the other end, and the GUI never blocks). Track sets arrive as
//! `Box`es built on the GUI thread and go back in [`FromAudio::Retired`] to be dropped there.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::audio::AudioBuffer;

/// Most tracks mixed at once (original + stems).
pub const MAX_TRACKS: usize = 16;

/// The tracks to mix, all at one sample rate and length.
#[derive(Debug)]
pub struct TrackSet {
    /// Sample rate of every track.
    pub sample_rate: u32,
    /// Track 0 is the original mix, then the stems.
    pub tracks: Vec<Arc<AudioBuffer>>,
}

/// GUI → audio thread.
#[derive(Debug)]
pub enum ToAudio {
    /// Replace the tracks (the old set comes back in `Retired`).
    SetTracks(Box<TrackSet>),
    /// Linear gain per track (0 = silent).
    Gains([f32; MAX_TRACKS]),
    /// Start playing.
    Play,
    /// Stop playing, keep the position.
    Pause,
    /// Jump to this frame.
    Seek(u64),
    /// Loop between these frames, or not.
    Loop(Option<(u64, u64)>),
}

/// Audio thread → GUI.
#[derive(Debug)]
pub enum FromAudio {
    /// Current position, frames of the song.
    Position(u64),
    /// The end of the song was reached; playback stopped.
    Ended,
    /// A track set no longer used, to be dropped off the audio thread.
    Retired(Box<TrackSet>),
}

/// State owned by the callback.
struct Mixer {
    set: Option<Box<TrackSet>>,
    gains: [f32; MAX_TRACKS],
    playing: bool,
    pos: f64,
    looping: Option<(u64, u64)>,
    out_channels: usize,
    out_rate: u32,
    to_gui: SyncSender<FromAudio>,
    from_gui: Receiver<ToAudio>,
    /// A retired set that did not fit in the channel; sent on a later callback.
    held: Option<Box<TrackSet>>,
}

impl Mixer {
    fn handle_messages(&mut self) {
        if let Some(set) = self.held.take() {
            self.retire(set);
        }
        while let Ok(msg) = self.from_gui.try_recv() {
            match msg {
                ToAudio::SetTracks(set) => {
                    if let Some(old) = self.set.replace(set) {
                        self.retire(old);
                    }
                }
                ToAudio::Gains(g) => self.gains = g,
                ToAudio::Play => self.playing = true,
                ToAudio::Pause => self.playing = false,
                ToAudio::Seek(f) => self.pos = f as f64,
                ToAudio::Loop(l) => self.looping = l,
            }
        }
    }

    fn retire(&mut self, set: Box<TrackSet>) {
        match self.to_gui.try_send(FromAudio::Retired(set)) {
            Ok(()) => {}
            Err(
                TrySendError::Full(FromAudio::Retired(set))
                | TrySendError::Disconnected(FromAudio::Retired(set)),
            ) => {
                if let Some(older) = self.held.replace(set) {
                    // Both slots full: leak rather than free on the audio thread.
                    std::mem::forget(older);
                }
            }
            Err(_) => {}
        }
    }

    fn fill<T: SizedSample + FromSample<f32>>(&mut self, out: &mut [T]) {
        self.handle_messages();
        let silence = T::from_sample(0.0f32);
        let Some(set) = self.set.as_deref().filter(|_| self.playing) else {
            out.iter_mut().for_each(|s| *s = silence);
            return;
        };
        let len = set.tracks.first().map_or(0, |t| t.len());
        let step = f64::from(set.sample_rate) / f64::from(self.out_rate.max(1));
        let oc = self.out_channels.max(1);
        let mut ended = false;
        for frame in out.chunks_mut(oc) {
            if let Some((a, b)) = self.looping {
                if self.pos >= b as f64 || self.pos < a as f64 {
                    self.pos = a as f64;
                }
            }
            let i = self.pos as usize;
            if i + 1 >= len {
                ended = true;
                frame.iter_mut().for_each(|s| *s = silence);
                continue;
            }
            let frac = (self.pos - i as f64) as f32;
            for (c, s) in frame.iter_mut().enumerate() {
                let mut acc = 0.0f32;
                for (t, g) in set.tracks.iter().zip(self.gains.iter()) {
                    if *g != 0.0 {
                        let ch = &t.channels[c.min(t.channels.len().saturating_sub(1))];
                        acc += g * (ch[i] + frac * (ch[i + 1] - ch[i]));
                    }
                }
                *s = T::from_sample(acc.clamp(-1.0, 1.0));
            }
            self.pos += step;
        }
        if ended {
            self.playing = false;
            self.pos = 0.0;
            let _ = self.to_gui.try_send(FromAudio::Ended);
        }
        let _ = self.to_gui.try_send(FromAudio::Position(self.pos as u64));
    }
}

/// The open output stream and its channels.
struct Link {
    tx: SyncSender<ToAudio>,
    rx: Receiver<FromAudio>,
    _stream: cpal::Stream,
}

/// The transport: play/pause/seek/loop over the current tracks.
pub struct Player {
    link: Option<Link>,
    status: String,
    playing: bool,
    position: u64,
    sample_rate: u32,
    len: u64,
}

impl Player {
    /// Opens the default output device; without one the player is disabled with a message.
    pub fn open() -> Self {
        match open_stream() {
            Ok((link, name)) => Self {
                link: Some(link),
                status: format!("Output: {name}"),
                ..Self::disabled("")
            },
            Err(e) => Self::disabled(&e),
        }
    }

    /// A player that never plays (no device, or tests).
    pub fn disabled(reason: &str) -> Self {
        Self {
            link: None,
            status: reason.to_string(),
            playing: false,
            position: 0,
            sample_rate: 44100,
            len: 0,
        }
    }

    /// Whether an output stream is open.
    pub fn available(&self) -> bool {
        self.link.is_some()
    }

    /// The device name, or why playback is disabled.
    pub fn status(&self) -> &str {
        &self.status
    }

    fn send(&mut self, msg: ToAudio) {
        if let Some(link) = &self.link {
            if let Err(TrySendError::Disconnected(_)) = link.tx.try_send(msg) {
                self.link = None;
                self.status = "Playback stopped: the audio device went away".into();
            }
        }
    }

    /// Replaces the tracks (original first, then stems).
    pub fn set_tracks(&mut self, sample_rate: u32, tracks: Vec<Arc<AudioBuffer>>) {
        self.sample_rate = sample_rate.max(1);
        self.len = tracks.first().map_or(0, |t| t.len() as u64);
        self.position = self.position.min(self.len);
        self.send(ToAudio::SetTracks(Box::new(TrackSet {
            sample_rate,
            tracks,
        })));
    }

    /// Sets the linear gain of each track.
    pub fn set_gains(&mut self, gains: [f32; MAX_TRACKS]) {
        self.send(ToAudio::Gains(gains));
    }

    /// Starts playback.
    pub fn play(&mut self) {
        if self.link.is_some() && self.len > 0 {
            self.playing = true;
            self.send(ToAudio::Play);
        }
    }

    /// Pauses playback.
    pub fn pause(&mut self) {
        self.playing = false;
        self.send(ToAudio::Pause);
    }

    /// Moves the playhead to `seconds`.
    pub fn seek(&mut self, seconds: f64) {
        let f = ((seconds.max(0.0) * f64::from(self.sample_rate)) as u64).min(self.len);
        self.position = f;
        self.send(ToAudio::Seek(f));
    }

    /// Loops `(start, end)` seconds, or stops looping.
    pub fn set_loop(&mut self, region: Option<(f64, f64)>) {
        let sr = f64::from(self.sample_rate);
        self.send(ToAudio::Loop(
            region.map(|(a, b)| ((a * sr) as u64, (b * sr) as u64)),
        ));
    }

    /// Reads the audio thread's messages; drops retired track sets here.
    pub fn poll(&mut self) {
        let Some(link) = &self.link else { return };
        while let Ok(msg) = link.rx.try_recv() {
            match msg {
                FromAudio::Position(p) => self.position = p,
                FromAudio::Ended => self.playing = false,
                FromAudio::Retired(set) => drop(set),
            }
        }
    }

    /// Whether it is playing.
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// The playhead, seconds.
    pub fn position_secs(&self) -> f64 {
        self.position as f64 / f64::from(self.sample_rate)
    }
}

/// Why Play is off on a machine without sound output.
pub const NO_OUTPUT: &str =
    "No sound output device found, so playback is off (separating and exporting still work).";

fn open_stream() -> Result<(Link, String), String> {
    let host = cpal::default_host();
    // No device, or one that cannot say how it plays (ALSA's "default" on a machine without
    // a sound card): both are "no sound output" to the user.
    let no_device = || NO_OUTPUT.to_string();
    let device = host.default_output_device().ok_or_else(no_device)?;
    let name = device
        .description()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|_| "default output".into());
    let supported = device.default_output_config().map_err(|_| no_device())?;
    let config = supported.config();
    let (to_audio, from_gui) = sync_channel::<ToAudio>(64);
    let (to_gui, from_audio) = sync_channel::<FromAudio>(256);
    let mixer = Mixer {
        set: None,
        gains: [1.0; MAX_TRACKS],
        playing: false,
        pos: 0.0,
        looping: None,
        out_channels: usize::from(config.channels),
        out_rate: config.sample_rate,
        to_gui,
        from_gui,
        held: None,
    };
    let stream = match supported.sample_format() {
        cpal::SampleFormat::F32 => build::<f32>(&device, config, mixer),
        cpal::SampleFormat::I16 => build::<i16>(&device, config, mixer),
        cpal::SampleFormat::I32 => build::<i32>(&device, config, mixer),
        cpal::SampleFormat::U16 => build::<u16>(&device, config, mixer),
        other => Err(format!(
            "Playback is off: the sound output wants samples as {other:?}, which locosep cannot \
             write."
        )),
    }?;
    stream
        .play()
        .map_err(|e| format!("Playback is off: the sound output would not start ({e})."))?;
    Ok((
        Link {
            tx: to_audio,
            rx: from_audio,
            _stream: stream,
        },
        name,
    ))
}

fn build<T: SizedSample + FromSample<f32> + 'static>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut mixer: Mixer,
) -> Result<cpal::Stream, String> {
    device
        .build_output_stream::<T, _, _>(
            config,
            move |out: &mut [T], _| mixer.fill(out),
            // Stream errors (xruns, device loss) are not actionable in the callback.
            |_err| {},
            None,
        )
        .map_err(|e| format!("Playback is off: the sound output would not open ({e})."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixer_mixes_gains_loops_and_retires_off_thread() {
        let (to_audio, from_gui) = sync_channel(8);
        let (to_gui, from_audio) = sync_channel(8);
        let mut m = Mixer {
            set: None,
            gains: [0.0; MAX_TRACKS],
            playing: false,
            pos: 0.0,
            looping: None,
            out_channels: 2,
            out_rate: 10,
            to_gui,
            from_gui,
            held: None,
        };
        let a = Arc::new(AudioBuffer {
            sample_rate: 10,
            channels: vec![vec![0.1; 100]],
        });
        let b = Arc::new(AudioBuffer {
            sample_rate: 10,
            channels: vec![vec![0.2; 100]],
        });
        let mut g = [0.0; MAX_TRACKS];
        g[1] = 1.0;
        for msg in [
            ToAudio::SetTracks(Box::new(TrackSet {
                sample_rate: 10,
                tracks: vec![a.clone(), b.clone()],
            })),
            ToAudio::Gains(g),
            ToAudio::Loop(Some((10, 12))),
            ToAudio::Seek(10),
            ToAudio::Play,
        ] {
            to_audio.try_send(msg).expect("send");
        }
        let mut out = [0f32; 8];
        m.fill(&mut out);
        assert!(out.iter().all(|&x| (x - 0.2).abs() < 1e-6), "{out:?}");
        assert!(m.pos >= 10.0 && m.pos <= 12.0, "{}", m.pos);
        to_audio
            .try_send(ToAudio::SetTracks(Box::new(TrackSet {
                sample_rate: 10,
                tracks: vec![a],
            })))
            .expect("send");
        m.fill(&mut out);
        assert!(
            from_audio
                .try_iter()
                .any(|m| matches!(m, FromAudio::Retired(_)))
        );
    }
}
