//! The audio codecs locosep decodes: symphonia's own (`all-codecs`) plus Opus, which symphonia
//! 0.6.1 demuxes (Ogg, Matroska/WebM) but has no decoder for, through
//! `symphonia-adapter-libopus` (the system libopus, Debian `libopus-dev`).
//!
//! Also names codecs for messages: a file whose codec is not decoded here is refused with the
//! codec's name ("AC-3", "DTS", ...), not an opaque id.

use std::sync::LazyLock;

use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters};
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

/// Frames the decoder for `params` drops from the start of the stream by itself: the Opus
/// pre-skip (at 48 kHz), which the libopus decoder trims from the first packet. A container
/// edit list (MP4 `elst`) counts it too, so it is subtracted there. Expects the extra data as
/// [`fix_opus_head`] leaves it.
pub fn decoder_start_trim(params: &AudioCodecParameters) -> u64 {
    if params.codec != CODEC_ID_OPUS {
        return 0;
    }
    match params.extra_data.as_deref() {
        Some(head) if head.starts_with(b"OpusHead") && head.len() >= 19 => {
            let pre = u64::from(u16::from_le_bytes([head[10], head[11]]));
            let rate = u64::from(params.sample_rate.unwrap_or(48_000));
            pre * rate / 48_000
        }
        _ => 0,
    }
}

/// Makes an MP4 Opus track's extra data a real `OpusHead`. symphonia 0.6.1's MP4 reader passes
/// the `dOps` box on behind an `OpusHead` magic, but `dOps` (the ISO BMFF Opus mapping) is
/// version 0 with big-endian fields, while an `OpusHead` (RFC 7845) is version 1 and
/// little-endian; read as-is, the pre-skip 312 (`01 38`) becomes 14 337 and the decoder drops
/// a whole first packet (648 frames too many). Rewrites version, pre-skip, input rate and
/// output gain; anything else is left alone.
pub fn fix_opus_head(params: &mut AudioCodecParameters) {
    if params.codec != CODEC_ID_OPUS {
        return;
    }
    let Some(head) = params.extra_data.as_deref() else {
        return;
    };
    if !(head.starts_with(b"OpusHead") && head.len() >= 19 && head[8] == 0) {
        return;
    }
    let mut h = head.to_vec();
    h[8] = 1;
    h[10..12].reverse(); // pre-skip, u16
    h[12..16].reverse(); // input sample rate, u32
    h[16..18].reverse(); // output gain, i16
    params.with_extra_data(h.into_boxed_slice());
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

    #[test]
    fn opus_pre_skip_is_read_from_opus_head_and_dops() {
        // RFC 7845 OpusHead: version 1, 1 channel, pre-skip 312 LE, 48 kHz LE, gain 0, family 0.
        let ogg = b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0".to_vec();
        let mut p = AudioCodecParameters::new();
        p.for_codec(CODEC_ID_OPUS)
            .with_sample_rate(48_000)
            .with_extra_data(ogg.clone().into_boxed_slice());
        fix_opus_head(&mut p);
        assert_eq!(p.extra_data.as_deref(), Some(&ogg[..]), "an OpusHead stays");
        assert_eq!(decoder_start_trim(&p), 312);
        // What symphonia's MP4 reader hands on: the dOps box (version 0, big-endian).
        let dops = b"OpusHead\x00\x01\x01\x38\x00\x00\xbb\x80\x00\x00\x00".to_vec();
        p.with_extra_data(dops.into_boxed_slice());
        fix_opus_head(&mut p);
        assert_eq!(
            p.extra_data.as_deref(),
            Some(&ogg[..]),
            "dOps becomes an OpusHead"
        );
        assert_eq!(decoder_start_trim(&p), 312);
        let mut other = ogg.clone();
        other[0] = b'X';
        p.with_extra_data(other.into_boxed_slice());
        assert_eq!(decoder_start_trim(&p), 0, "not an OpusHead");
        p.for_codec(CODEC_ID_VORBIS);
        assert_eq!(decoder_start_trim(&p), 0);
    }
}
