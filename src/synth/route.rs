//! Which stem a note belongs to: the routing rule, as pure functions.

/// One of the four MUSDB18 stems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stem {
    /// The lead line (voice-like programs or a track marked as melody).
    Vocals,
    /// Everything on MIDI channel 10.
    Drums,
    /// The General MIDI bass family.
    Bass,
    /// Everything else.
    Other,
}

impl Stem {
    /// All stems in the fixed order used for storage and for summing the mixture.
    pub const ALL: [Stem; 4] = [Stem::Vocals, Stem::Drums, Stem::Bass, Stem::Other];

    /// Position in [`Stem::ALL`].
    pub fn index(self) -> usize {
        match self {
            Stem::Vocals => 0,
            Stem::Drums => 1,
            Stem::Bass => 2,
            Stem::Other => 3,
        }
    }

    /// The MUSDB18 file stem (`vocals`, `drums`, `bass`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            Stem::Vocals => "vocals",
            Stem::Drums => "drums",
            Stem::Bass => "bass",
            Stem::Other => "other",
        }
    }
}

/// MIDI channel 10, counted from 0.
pub const DRUM_CHANNEL: u8 = 9;

/// GM programs (0-based) routed to the vocal stem: 52 Choir Aahs, 53 Voice Oohs,
/// 54 Synth Voice, 85 Lead 6 (voice) — 53–55 and 86 counted from 1.
pub const VOICE_PROGRAMS: [u8; 4] = [52, 53, 54, 85];

/// GM bass family, 0-based (33–40 counted from 1): Acoustic Bass … Synth Bass 2.
pub const BASS_PROGRAMS: std::ops::RangeInclusive<u8> = 32..=39;

/// Words that mark a track (by its track or instrument name, case-insensitively) as the melody
/// line that goes to the vocal stem.
pub const MELODY_NAME_WORDS: [&str; 6] = ["vocal", "voice", "vox", "melody", "lead", "singer"];

/// True for the voice-like GM programs in [`VOICE_PROGRAMS`].
pub fn is_voice_program(program: u8) -> bool {
    VOICE_PROGRAMS.contains(&program)
}

/// True for the GM bass family [`BASS_PROGRAMS`].
pub fn is_bass_program(program: u8) -> bool {
    BASS_PROGRAMS.contains(&program)
}

/// True when a track or instrument name marks the melody (see [`MELODY_NAME_WORDS`]).
pub fn is_melody_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    MELODY_NAME_WORDS.iter().any(|w| lower.contains(w))
}

/// The routing rule. First match wins:
///
/// 1. channel 10 (`channel == 9`) → [`Stem::Drums`], whatever its program;
/// 2. the channel's current program is in the GM bass family → [`Stem::Bass`];
/// 3. a voice-like program, or a note from a melody-marked track → [`Stem::Vocals`];
/// 4. anything else → [`Stem::Other`].
///
/// `program` is 0-based; `melody_track` says whether the event's track is melody-marked.
pub fn route_note(channel: u8, program: u8, melody_track: bool) -> Stem {
    if channel == DRUM_CHANNEL {
        Stem::Drums
    } else if is_bass_program(program) {
        Stem::Bass
    } else if is_voice_program(program) || melody_track {
        Stem::Vocals
    } else {
        Stem::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matches_the_documented_table() {
        assert_eq!(route_note(9, 33, true), Stem::Drums);
        assert_eq!(route_note(0, 32, false), Stem::Bass);
        assert_eq!(route_note(0, 39, true), Stem::Bass);
        assert_eq!(route_note(0, 40, false), Stem::Other);
        for p in [52, 53, 54, 85] {
            assert_eq!(route_note(3, p, false), Stem::Vocals);
        }
        assert_eq!(route_note(3, 55, false), Stem::Other);
        assert_eq!(route_note(3, 73, true), Stem::Vocals);
        assert_eq!(route_note(3, 0, false), Stem::Other);
    }

    #[test]
    fn melody_names() {
        assert!(is_melody_name("Lead Vocal"));
        assert!(is_melody_name("MELODY"));
        assert!(!is_melody_name("Rhythm Guitar"));
        assert!(!is_melody_name("Rising Pad"));
    }
}
