//! The audio codecs locosep decodes: symphonia's own (`all-codecs`) plus Opus, which symphonia
//! 0.6.1 demuxes (Ogg, Matroska/WebM) but has no decoder for, through
//! `symphonia-adapter-libopus` (the system libopus, Debian `libopus-dev`).
//!
//! Also names codecs for messages: a file whose codec is not decoded here is refused with the
//! codec's name ("AC-3", "DTS", ...), not an opaque id.

use std::sync::LazyLock;

use symphonia::core::codecs::audio::AudioCodecId;
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia_adapter_libopus::OpusDecoder;

static REGISTRY: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut r = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut r);
    r.register_audio_decoder::<OpusDecoder>();
    r
});

/// The codec registry every decode goes through (symphonia's codecs and Opus).
pub fn registry() -> &'static CodecRegistry {
    &REGISTRY
}

/// Whether audio of codec `id` can be decoded here.
pub fn is_supported(id: AudioCodecId) -> bool {
    registry().get_audio_decoder(id).is_some()
}

/// A human name for codec `id`: the registered decoder's long name, a name from symphonia's
/// list of well-known codecs, or the raw id (`codec 0x…`) for anything else.
pub fn codec_name(id: AudioCodecId) -> String {
    if let Some(name) = well_known_name(id) {
        return name.to_string();
    }
    match registry().get_audio_decoder(id) {
        Some(d) => d.codec.info.long_name.to_string(),
        None => format!("codec {id}"),
    }
}

/// Names of the well-known codecs people meet in files (PCM variants are left to the
/// registry, which decodes all of them).
fn well_known_name(id: AudioCodecId) -> Option<&'static str> {
    Some(match id {
        CODEC_ID_OPUS => "Opus",
        CODEC_ID_VORBIS => "Vorbis",
        CODEC_ID_SPEEX => "Speex",
        CODEC_ID_MUSEPACK => "Musepack",
        CODEC_ID_MP1 => "MPEG-1 Layer I",
        CODEC_ID_MP2 => "MPEG-1 Layer II (MP2)",
        CODEC_ID_MP3 => "MP3",
        CODEC_ID_AAC => "AAC",
        CODEC_ID_AC3 => "AC-3 (Dolby Digital)",
        CODEC_ID_EAC3 => "E-AC-3 (Dolby Digital Plus)",
        CODEC_ID_AC4 => "AC-4",
        CODEC_ID_DCA => "DTS",
        CODEC_ID_ATRAC1 | CODEC_ID_ATRAC3 | CODEC_ID_ATRAC3PLUS | CODEC_ID_ATRAC9 => "ATRAC",
        CODEC_ID_WMA => "Windows Media Audio (WMA)",
        CODEC_ID_RA10 | CODEC_ID_RA20 | CODEC_ID_SIPR | CODEC_ID_COOK => "RealAudio",
        CODEC_ID_SBC => "SBC",
        CODEC_ID_APTX | CODEC_ID_APTX_HD => "aptX",
        CODEC_ID_LDAC => "LDAC",
        CODEC_ID_FLAC => "FLAC",
        CODEC_ID_WAVPACK => "WavPack",
        CODEC_ID_MONKEYS_AUDIO => "Monkey's Audio (APE)",
        CODEC_ID_ALAC => "ALAC",
        CODEC_ID_TTA => "TTA",
        CODEC_ID_TRUEHD => "Dolby TrueHD",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_is_registered_and_named() {
        assert!(is_supported(CODEC_ID_OPUS));
        assert!(is_supported(CODEC_ID_VORBIS) && is_supported(CODEC_ID_AAC));
        assert_eq!(codec_name(CODEC_ID_OPUS), "Opus");
        assert!(!is_supported(CODEC_ID_AC3));
        assert_eq!(codec_name(CODEC_ID_AC3), "AC-3 (Dolby Digital)");
        assert!(!codec_name(CODEC_ID_PCM_S16LE).starts_with("codec "));
    }
}
