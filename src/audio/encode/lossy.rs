//! Lossy outputs: MP3 (LAME 3.100 through `mp3lame-encoder`) and Ogg Vorbis (libvorbis with
//! the aoTuV tuning, through `vorbis_rs`), both encoded block by block straight into the
//! writer's temporary file.
//!
//! * MP3 holds 8–48 kHz only (MPEG-1/2/2.5 rates). Other rates are converted with
//!   [`StreamResampler`] to [`mp3_rate`]`(rate)` — 88.2/176.4 kHz to 44.1 kHz, everything else
//!   above 48 kHz to 48 kHz — so such a file plays at a different rate than its source.
//! * LAME writes a blank frame first and, once everything is encoded, the "LAME/Info" tag that
//!   records the encoder delay and padding; [`Mp3Writer::finish`] writes it over that blank
//!   frame, so gapless decoders (symphonia among them) return exactly the source's length.
//! * Vorbis takes any rate; the bit rate is a VBR target (libvorbis refuses targets outside
//!   what its tuning covers for the rate and channel count, and the error says so).
//! * Both clip to [-1, 1] like the integer formats; MP3 is mono or stereo only.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::num::{NonZeroU8, NonZeroU32};

use mp3lame_encoder::{Bitrate, DualPcm, FlushGap, MonoPcm};
use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoder, VorbisEncoderBuilder};

use crate::audio::resample::StreamResampler;

/// Why a lossy block or file could not be written.
pub(super) enum LossyError {
    /// Writing the temporary file failed.
    Io(io::Error),
    /// The encoder refused (message for the user).
    Encode(String),
}

/// Rates LAME writes (MPEG-1, MPEG-2, MPEG-2.5).
const MP3_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// Frames handed to an encoder per call (bounds its output buffer).
const CHUNK: usize = 4096;

/// The rate an MP3 of `rate` Hz audio is written at: `rate` itself when MP3 has it; else
/// 44.1 kHz for multiples of it, 48 kHz above 48 kHz, and the next MP3 rate up below that.
pub fn mp3_rate(rate: u32) -> u32 {
    if MP3_RATES.contains(&rate) {
        rate
    } else if rate % 44_100 == 0 {
        44_100
    } else if rate > 48_000 {
        48_000
    } else {
        MP3_RATES
            .iter()
            .copied()
            .find(|&r| r >= rate)
            .unwrap_or(48_000)
    }
}

fn lame_bitrate(kbps: u16) -> Option<Bitrate> {
    Some(match kbps {
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        _ => return None,
    })
}

/// MP3, constant bit rate, LAME quality 2 ("near best", LAME's recommended `-h`).
pub(super) struct Mp3Writer {
    file: BufWriter<File>,
    enc: mp3lame_encoder::Encoder,
    channels: usize,
    /// Present when the source rate is not an MP3 rate.
    resampler: Option<StreamResampler>,
    /// Resampled frames waiting to be encoded.
    resampled: Vec<Vec<f32>>,
    /// Clipped copy of one chunk, per channel.
    clipped: Vec<Vec<f32>>,
    out: Vec<u8>,
}

impl Mp3Writer {
    pub(super) fn new(
        file: BufWriter<File>,
        rate: u32,
        channels: usize,
        kbps: u16,
    ) -> Result<Self, String> {
        if !(1..=2).contains(&channels) {
            return Err(format!(
                "MP3 holds mono or stereo audio, this audio has {channels} channels; \
                 write FLAC or WAV instead"
            ));
        }
        let brate = lame_bitrate(kbps).ok_or_else(|| {
            format!("MP3 bit rate {kbps} kbit/s is not one LAME writes at constant rate")
        })?;
        let out_rate = mp3_rate(rate);
        let build = |e: mp3lame_encoder::BuildError| format!("LAME refused the settings: {e}");
        let mut b = mp3lame_encoder::Builder::new()
            .ok_or_else(|| "LAME could not be initialised (out of memory?)".to_string())?;
        b.set_num_channels(channels as u8).map_err(build)?;
        b.set_sample_rate(out_rate).map_err(build)?;
        b.set_output_sample_rate(NonZeroU32::new(out_rate))
            .map_err(build)?;
        b.set_brate(brate).map_err(build)?;
        b.set_mode(if channels == 1 {
            mp3lame_encoder::Mode::Mono
        } else {
            mp3lame_encoder::Mode::JointStereo
        })
        .map_err(build)?;
        b.set_quality(mp3lame_encoder::Quality::NearBest)
            .map_err(build)?;
        b.set_to_write_vbr_tag(true).map_err(build)?;
        let enc = b.build().map_err(build)?;
        let resampler = if out_rate == rate {
            None
        } else {
            Some(StreamResampler::new(rate, out_rate, channels).map_err(|e| e.to_string())?)
        };
        Ok(Self {
            file,
            enc,
            channels,
            resampler,
            resampled: vec![Vec::new(); channels],
            clipped: vec![Vec::with_capacity(CHUNK); channels],
            out: Vec::new(),
        })
    }

    pub(super) fn write<S: AsRef<[f32]>>(&mut self, block: &[S]) -> Result<(), LossyError> {
        if let Some(r) = self.resampler.as_mut() {
            r.push(block, &mut self.resampled)
                .map_err(|e| LossyError::Encode(e.to_string()))?;
            let planes = std::mem::take(&mut self.resampled);
            self.encode(&planes)?;
            self.resampled = planes
                .into_iter()
                .map(|mut p| {
                    p.clear();
                    p
                })
                .collect();
            Ok(())
        } else {
            self.encode(block)
        }
    }

    fn encode<S: AsRef<[f32]>>(&mut self, planes: &[S]) -> Result<(), LossyError> {
        let n = planes.first().map_or(0, |p| p.as_ref().len());
        let mut at = 0;
        while at < n {
            let end = (at + CHUNK).min(n);
            for (dst, src) in self.clipped.iter_mut().zip(planes) {
                dst.clear();
                dst.extend(src.as_ref()[at..end].iter().map(|x| x.clamp(-1.0, 1.0)));
            }
            self.out.clear();
            self.out
                .reserve(mp3lame_encoder::max_required_buffer_size(end - at));
            let r = if self.channels == 1 {
                self.enc
                    .encode_to_vec(MonoPcm(&self.clipped[0][..]), &mut self.out)
            } else {
                let input = DualPcm {
                    left: &self.clipped[0][..],
                    right: &self.clipped[1][..],
                };
                self.enc.encode_to_vec(input, &mut self.out)
            };
            r.map_err(|e| LossyError::Encode(format!("MP3 encoding failed: {e}")))?;
            self.file.write_all(&self.out).map_err(LossyError::Io)?;
            at = end;
        }
        Ok(())
    }

    /// Flushes the encoder, writes the LAME tag over the first (blank) frame and returns the
    /// file.
    pub(super) fn finish(mut self) -> Result<File, LossyError> {
        if let Some(mut r) = self.resampler.take() {
            let mut rest = vec![Vec::new(); self.channels];
            r.finish(&mut rest)
                .map_err(|e| LossyError::Encode(e.to_string()))?;
            self.encode(&rest)?;
        }
        self.out.clear();
        self.out.reserve(7200 * 2);
        self.enc
            .flush_to_vec::<FlushGap>(&mut self.out)
            .map_err(|e| LossyError::Encode(format!("MP3 encoding failed: {e}")))?;
        self.file.write_all(&self.out).map_err(LossyError::Io)?;
        let mut tag = Vec::with_capacity(self.enc.lame_tag_size());
        let tag_len = self.enc.lame_tag_encode_to_vec(&mut tag);
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| LossyError::Io(e.into_error()))?;
        if tag_len.is_some() {
            file.seek(SeekFrom::Start(0)).map_err(LossyError::Io)?;
            file.write_all(&tag).map_err(LossyError::Io)?;
        }
        Ok(file)
    }
}

/// Ogg Vorbis, VBR aimed at a bit rate.
///
/// libvorbis's output depends on how the samples are split into calls, so the writer hands it
/// blocks of exactly [`CHUNK`] frames (the last one shorter) whatever blocks it is given: a file
/// written block by block is the one written whole.
pub(super) struct VorbisWriter {
    enc: VorbisEncoder<BufWriter<File>>,
    /// Clipped frames not yet encoded (fewer than `CHUNK` between calls), per channel.
    pending: Vec<Vec<f32>>,
}

impl VorbisWriter {
    pub(super) fn new(
        file: BufWriter<File>,
        rate: u32,
        channels: usize,
        kbps: u16,
    ) -> Result<Self, String> {
        let (Some(r), Some(c), Some(b)) = (
            NonZeroU32::new(rate),
            u8::try_from(channels).ok().and_then(NonZeroU8::new),
            NonZeroU32::new(u32::from(kbps) * 1000),
        ) else {
            return Err(format!(
                "Ogg Vorbis cannot hold {channels} channels at {rate} Hz and {kbps} kbit/s"
            ));
        };
        // The Ogg spec asks for a random stream serial; the clock's nanoseconds serve.
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x1c05_e9, |d| {
                d.subsec_nanos() as i32 ^ std::process::id() as i32
            });
        let enc = VorbisEncoderBuilder::new_with_serial(r, c, file, serial)
            .bitrate_management_strategy(VorbisBitrateManagementStrategy::Vbr { target_bitrate: b })
            .build()
            .map_err(|e| {
                format!(
                    "libvorbis cannot encode {channels} channel(s) at {rate} Hz aiming at \
                     {kbps} kbit/s ({e}); choose another bit rate"
                )
            })?;
        Ok(Self {
            enc,
            pending: vec![Vec::with_capacity(CHUNK); channels],
        })
    }

    pub(super) fn write<S: AsRef<[f32]>>(&mut self, block: &[S]) -> Result<(), LossyError> {
        let n = block.first().map_or(0, |p| p.as_ref().len());
        let mut at = 0;
        while at < n {
            let have = self.pending.first().map_or(0, Vec::len);
            let end = (at + CHUNK - have).min(n);
            for (dst, src) in self.pending.iter_mut().zip(block) {
                dst.extend(src.as_ref()[at..end].iter().map(|x| x.clamp(-1.0, 1.0)));
            }
            if have + end - at == CHUNK {
                self.flush_pending()?;
            }
            at = end;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), LossyError> {
        if self.pending.first().is_some_and(|p| !p.is_empty()) {
            self.enc
                .encode_audio_block(&self.pending)
                .map_err(vorbis_err)?;
            self.pending.iter_mut().for_each(Vec::clear);
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<File, LossyError> {
        self.flush_pending()?;
        let w = self.enc.finish().map_err(vorbis_err)?;
        w.into_inner().map_err(|e| LossyError::Io(e.into_error()))
    }
}

fn vorbis_err(e: vorbis_rs::VorbisError) -> LossyError {
    match e {
        vorbis_rs::VorbisError::Io(io) => LossyError::Io(io),
        other => LossyError::Encode(format!("Vorbis encoding failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp3_rates() {
        assert_eq!(mp3_rate(44_100), 44_100);
        assert_eq!(mp3_rate(8_000), 8_000);
        assert_eq!(mp3_rate(88_200), 44_100);
        assert_eq!(mp3_rate(176_400), 44_100);
        assert_eq!(mp3_rate(96_000), 48_000);
        assert_eq!(mp3_rate(50_000), 48_000);
        assert_eq!(mp3_rate(4_000), 8_000);
        assert_eq!(mp3_rate(30_000), 32_000);
        for r in MP3_RATES {
            assert_eq!(mp3_rate(r), r);
        }
    }

    #[test]
    fn lame_takes_the_listed_bit_rates() {
        for k in super::super::MP3_BITRATES {
            assert!(lame_bitrate(k).is_some(), "{k}");
        }
        assert!(lame_bitrate(300).is_none());
    }
}
