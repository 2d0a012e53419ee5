//! [`RunShapes`]: the sizes of one run (segment, spectrogram, residual stream, STFT buffers,
//! encoder/decoder scratch) that `plan` and every phase are built from.

use super::model::PlanModel;
use super::request::PlanRequest;
use super::units::F32;

/// The sizes of one run that every phase is built from (all in bytes unless named otherwise).
pub(super) struct RunShapes {
    /// Activation element bytes.
    pub(super) e: u64,
    /// Samples per segment `N`.
    pub(super) n: u64,
    /// STFT frames `T`.
    pub(super) t: u64,
    /// STFT bins `F` (also for a band-split model: the spectra have F bins).
    pub(super) f: u64,
    /// Network items `B`.
    pub(super) items: u64,
    /// Embedding width `C`.
    pub(super) c: u64,
    /// One copy of the residual stream `[B, C, T, F]` (`[B, C, T, nb]` band-split).
    pub(super) x_full: u64,
    /// f32 waveform and spectrum buffers around the network.
    pub(super) stft: StftBytes,
    /// Encoder scratch (im2col, or the band-split permute).
    pub(super) enc_workspace: u64,
    /// Decoder scratch (column buffer, or the band-split concatenation and one band's MLP).
    pub(super) dec_workspace: u64,
}

/// The f32 waveform and spectrum buffers of one run. Waveform channels after the network:
/// `B·ac`.
pub(super) struct StftBytes {
    /// The chunk's waveform in `[B·ac, N]`.
    pub(super) wave_in: u64,
    /// The input spectrogram `[B, 2ac, T, F]`.
    pub(super) spec_in: u64,
    /// The output spectra `[B, 2·S·ac, T, F]`.
    pub(super) spec_out: u64,
    /// The separated waveforms `[B·ac, S, N]`.
    pub(super) waves_out: u64,
    /// The device iSTFT's frames `[B·ac·S, T, n_fft]` (training loss).
    pub(super) istft_frames: u64,
}

impl StftBytes {
    /// Inference: the chunk's waveform in and the separated waveforms out (host-side on wgpu,
    /// counted conservatively for the whole run). The spectrogram in lives until the encoder
    /// consumes it, the output spectra from the decoder on; callers add those.
    pub(super) fn inference_host(&self) -> u64 {
        self.wave_in + self.waves_out
    }

    /// Training: the loss (SI-SDR + L1 + spectral) is differentiated through a device iSTFT,
    /// so everything from the input spectrogram to the loss is alive at the backward: input
    /// waveform + spectrogram, output spectra, iSTFT frames, estimated and target waveforms,
    /// estimated and target spectra for the spectral loss.
    pub(super) fn training(&self) -> u64 {
        self.wave_in
            + self.spec_in
            + self.spec_out
            + self.istft_frames
            + 2 * self.waves_out
            + 2 * self.spec_out
    }
}

impl RunShapes {
    /// The sizes of `req` on `model`.
    pub(super) fn new(model: &PlanModel, req: &PlanRequest) -> RunShapes {
        let e = req.precision.activation_bytes();
        let n = req.segment_samples as u64;
        let t = model.frames(req.segment_samples) as u64;
        let f = model.bins() as u64;
        // The frequency path's length: F bins, or nb bands (band-split).
        let lf = model.freq_len() as u64;
        let items = model.items(req.batch.max(1), req.song_channels) as u64;
        let ac = model.audio_channels.max(1) as u64;
        let sources = model.n_sources as u64;
        let c = model.emb_dim as u64;
        let wave_channels = items * ac;
        let stft = StftBytes {
            wave_in: wave_channels * n * F32,
            spec_in: items * 2 * ac * t * f * F32,
            spec_out: items * 2 * sources * ac * t * f * F32,
            waves_out: wave_channels * sources * n * F32,
            istft_frames: wave_channels * sources * t * model.n_fft as u64 * F32,
        };
        // Encoder/decoder scratch. Conv: im2col buffers [B, 2ac·9, T·F] / [B, 2·S·ac·9, T·F].
        // Band-split: the spectrum permuted to [B, T, F, 2ac]; the bands' outputs concatenated
        // [B, T, 2, S, ac, F] and permuted, plus one band's 4C hidden activations.
        let (enc_workspace, dec_workspace) = if !model.bands.is_empty() {
            (
                items * 2 * ac * t * f * e,
                2 * items * 2 * sources * ac * t * f * e + 2 * items * t * 4 * c * e,
            )
        } else {
            (
                items * 2 * ac * 9 * t * f * e,
                items * 2 * sources * ac * 9 * t * f * e,
            )
        };
        RunShapes {
            e,
            n,
            t,
            f,
            items,
            c,
            x_full: items * c * t * lf * e,
            stft,
            enc_workspace,
            dec_workspace,
        }
    }
}
