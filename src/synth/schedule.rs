//! Flattening a Standard MIDI File into one time-ordered list of channel events, in samples.

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

use super::route::is_melody_name;

/// One channel message at an absolute sample position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimedEvent {
    /// Sample index (at the timeline's sample rate) at which the message takes effect.
    pub sample: u64,
    /// Index of the SMF track the message came from.
    pub track: usize,
    /// MIDI channel, 0-based.
    pub channel: u8,
    /// The message.
    pub message: MidiMessage,
}

/// All channel events of a song, merged over tracks and converted from ticks to samples.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Events sorted by sample; events at the same tick keep track order, then file order.
    pub events: Vec<TimedEvent>,
    /// Per track: whether its track/instrument name marks it as the melody line
    /// (only in multi-track files; see [`super::route::is_melody_name`]).
    pub melody_tracks: Vec<bool>,
    /// The song's end in samples: the latest event of any kind (`EndOfTrack` included),
    /// used as the loop length.
    pub end_sample: u64,
    /// Number of note-on events (velocity > 0).
    pub note_count: usize,
}

/// Builds the [`Timeline`] of `smf` at `sample_rate`.
///
/// Metrical timing follows the tempo map (`Tempo` meta events from any track, 120 BPM until
/// the first); SMPTE timing uses its fixed ticks per second. Format 2 (sequential) files are
/// played as if parallel. Tick → sample is `round(seconds × rate)` of the exact accumulated
/// time, so tempo changes never accumulate rounding drift.
pub fn timeline(smf: &Smf, sample_rate: u32) -> Timeline {
    struct Raw<'a> {
        tick: u64,
        track: usize,
        kind: TrackEventKind<'a>,
    }
    let multi_track = smf.tracks.len() > 1;
    let mut melody_tracks = vec![false; smf.tracks.len()];
    let mut raw = Vec::new();
    for (track, events) in smf.tracks.iter().enumerate() {
        let mut tick = 0u64;
        for event in events {
            tick += u64::from(event.delta.as_int());
            if let TrackEventKind::Meta(
                MetaMessage::TrackName(name) | MetaMessage::InstrumentName(name),
            ) = event.kind
                && multi_track
                && is_melody_name(&String::from_utf8_lossy(name))
            {
                melody_tracks[track] = true;
            }
            raw.push(Raw {
                tick,
                track,
                kind: event.kind,
            });
        }
    }
    // Stable: same tick keeps track order, then order within the track.
    raw.sort_by_key(|r| (r.tick, r.track));

    // Seconds per tick (metrical: tempo / ppq; timecode: fixed).
    let (ppq, ticks_per_second) = match smf.header.timing {
        Timing::Metrical(ppq) => (f64::from(ppq.as_int().max(1)), None),
        Timing::Timecode(fps, sub) => (1.0, Some(f64::from(fps.as_f32()) * f64::from(sub.max(1)))),
    };
    let mut us_per_beat = 500_000.0f64;
    let mut seconds = 0.0f64;
    let mut last_tick = 0u64;
    let mut out = Timeline {
        melody_tracks,
        ..Timeline::default()
    };
    for r in raw {
        let dt = (r.tick - last_tick) as f64;
        seconds += match ticks_per_second {
            Some(tps) => dt / tps,
            None => dt * us_per_beat / ppq / 1e6,
        };
        last_tick = r.tick;
        let sample = (seconds * f64::from(sample_rate)).round() as u64;
        out.end_sample = out.end_sample.max(sample);
        match r.kind {
            TrackEventKind::Meta(MetaMessage::Tempo(t)) => {
                us_per_beat = f64::from(t.as_int().max(1));
            }
            TrackEventKind::Midi { channel, message } => {
                if matches!(message, MidiMessage::NoteOn { vel, .. } if vel.as_int() > 0) {
                    out.note_count += 1;
                }
                out.events.push(TimedEvent {
                    sample,
                    track: r.track,
                    channel: channel.as_int(),
                    message,
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use midly::{Format, Header, TrackEvent};

    fn ev(delta: u32, kind: TrackEventKind<'static>) -> TrackEvent<'static> {
        TrackEvent {
            delta: delta.into(),
            kind,
        }
    }

    #[test]
    fn tempo_map_converts_ticks_to_samples() {
        let mut smf = Smf::new(Header::new(Format::Parallel, Timing::Metrical(480.into())));
        let note = |key: u8| TrackEventKind::Midi {
            channel: 0.into(),
            message: MidiMessage::NoteOn {
                key: key.into(),
                vel: 100.into(),
            },
        };
        // 120 BPM for one beat (0.5 s), then 60 BPM for one beat (1 s).
        smf.tracks.push(vec![
            ev(
                480,
                TrackEventKind::Meta(MetaMessage::Tempo(1_000_000.into())),
            ),
            ev(480, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
        ]);
        smf.tracks.push(vec![
            ev(0, TrackEventKind::Meta(MetaMessage::TrackName(b"Melody"))),
            ev(480, note(60)),
            ev(480, note(62)),
        ]);
        let t = timeline(&smf, 44_100);
        let samples: Vec<u64> = t.events.iter().map(|e| e.sample).collect();
        assert_eq!(samples, [22_050, 66_150]);
        assert_eq!(t.end_sample, 66_150);
        assert_eq!(t.melody_tracks, [false, true]);
        assert_eq!(t.note_count, 2);
    }
}
