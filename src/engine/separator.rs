//! `Separator`: load → resample → normalise → chunk → batched forward → overlap-add.
//!
//! The model knows nothing of chunking; chunking lives in [`ChunkPlan`]/[`OverlapAdd`], and
//! this file only glues them to the network on its device ([`DeviceModel`]), as demucs'
//! `apply_model` does, made explicit.

use std::time::Instant;

use crate::audio::{AudioBuffer, StreamResampler};
use crate::dsp::stft::Stft;
use crate::model::config::{CssParams, ModelConfig, Pipeline};
use crate::model::network::{ForwardOptions, TfLocoformer};
use crate::model::state_dict::StateDict;

use super::EngineError;
use super::chunk_stream::ChunkStream;
use super::device::ResolvedDevice;
use super::device_model::{DeviceModel, MIN_RETRY_CHUNK_BYTES};
pub use super::params::{CancelToken, InputScale, Progress, SeparateParams, Stems, StreamInput};

/// A loaded model on a device, ready to separate songs.
#[derive(Debug)]
pub struct Separator {
    model: DeviceModel,
}

impl Separator {
    /// Builds the network from reference-named weights on `device`.
    pub fn new(
        cfg: ModelConfig,
        sd: &StateDict,
        device: ResolvedDevice,
    ) -> Result<Self, EngineError> {
        Ok(Self {
            model: DeviceModel::new(cfg, sd, device)?,
        })
    }

    /// This separator, made to fail its next `n` forward passes on a wgpu device the way the
    /// GPU backend does on an allocation failure or a lost adapter (a panic), so that
    /// [`with_fallback`](Self::with_fallback) can be exercised without a faulty GPU (1: the
    /// smaller-plan GPU retry succeeds; 2: the CPU takes over). The count belongs to this
    /// separator alone.
    pub fn with_simulated_gpu_failures(self, n: usize) -> Self {
        self.model.simulate_gpu_failures(n);
        self
    }

    /// Simulated GPU failures not yet consumed.
    pub fn simulated_gpu_failures_left(&self) -> usize {
        self.model.simulated_gpu_failures_left()
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// The STFT the model runs on.
    pub fn stft(&self) -> &Stft {
        self.model.stft()
    }

    /// The CSS settings when a song is separated with mixit-mss's pipeline under `params`.
    fn css_pipeline(&self, params: &SeparateParams) -> Option<CssParams> {
        match self.config().pipeline {
            Pipeline::Css(css) if !params.overlap_add && !params.no_split => Some(css),
            _ => None,
        }
    }

    /// The device it runs on.
    pub fn device(&self) -> &ResolvedDevice {
        self.model.device()
    }

    /// Overrides the per-intermediate memory cap (bytes) — the planner's knob.
    pub fn set_max_chunk_bytes(&mut self, bytes: Option<usize>) {
        self.model.set_max_chunk_bytes(bytes);
    }

    /// The network, for golden tests and export.
    pub fn network(&self) -> &TfLocoformer {
        self.model.network()
    }

    /// The options its forwards use (host blocks on the CPU, the fused kernel on wgpu), for
    /// running [`network`](Self::network) directly as a separation would.
    pub fn forward_options(&self) -> ForwardOptions<'_> {
        self.model.forward_options()
    }

    /// Runs STFT → network → iSTFT on a batch of equal-length items (see
    /// [`DeviceModel::forward_waveforms`]).
    ///
    /// # Shapes
    /// - items: `[B][ac][N]` (ac = the model's `audio_channels`)
    /// - output: `[B][S][ac][N]`
    pub fn forward_waveforms(
        &self,
        items: &[Vec<Vec<f32>>],
    ) -> Result<Vec<Vec<Vec<Vec<f32>>>>, EngineError> {
        self.model.forward_waveforms(items)
    }

    /// The same model on the CPU (flex), weights copied.
    fn to_cpu(&self) -> Result<Separator, EngineError> {
        let sd = crate::model::loader::to_state_dict(self.config(), self.network());
        Separator::new(
            self.config().clone(),
            &sd,
            crate::engine::device::resolve(crate::engine::device::DeviceChoice::Cpu)?,
        )
    }

    /// [`separate`](Self::separate) through [`with_fallback`](Self::with_fallback).
    pub fn separate_or_cpu(
        &self,
        audio: &AudioBuffer,
        params: &SeparateParams,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress),
        warn: &mut dyn FnMut(&str, String),
    ) -> Result<Stems, EngineError> {
        self.with_fallback(cancel, warn, &mut |sep| {
            sep.separate(audio, params, cancel, &mut *progress)
        })
    }

    /// Runs `job` on this separator; when it fails on a GPU — an error from the device or a
    /// panic inside the GPU backend (allocation failure, lost adapter) — runs it again on the
    /// GPU with a smaller plan (a quarter of the per-intermediate memory cap), and if that
    /// fails too, on the CPU with the same weights. `warn(device, message)` is told each time:
    /// which device runs the job now and why. Errors that are the input's or the parameters'
    /// fault, and cancellation, are returned as they are. A job that writes files must leave
    /// nothing behind when it fails (the writers here remove their temp files on drop).
    pub fn with_fallback<T>(
        &self,
        cancel: &CancelToken,
        warn: &mut dyn FnMut(&str, String),
        job: &mut dyn FnMut(&Separator) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if !self.device().is_wgpu {
            return job(self);
        }
        let failure = match gpu_attempt(self, cancel, job) {
            Ok(out) => return out,
            Err(failure) => failure,
        };
        let cap = self.model.max_chunk_bytes().unwrap_or(256 << 20);
        let smaller = (cap / 4).max(MIN_RETRY_CHUNK_BYTES);
        if smaller < cap {
            warn(
                "GPU (smaller plan)",
                format!(
                    "the GPU failed ({failure}); retrying on the GPU with a smaller plan ({} MiB \
                     per intermediate instead of {} MiB)",
                    smaller >> 20,
                    cap >> 20
                ),
            );
            let retry = Separator {
                model: self.model.with_max_chunk_bytes(Some(smaller))?,
            };
            match gpu_attempt(&retry, cancel, job) {
                Ok(out) => return out,
                Err(again) => warn(
                    "CPU (after a GPU failure)",
                    format!(
                        "the GPU failed again ({again}); separating on the CPU instead (slower, \
                         same result)"
                    ),
                ),
            }
        } else {
            warn(
                "CPU (after a GPU failure)",
                format!(
                    "the GPU failed ({failure}); separating on the CPU instead (slower, same \
                     result)"
                ),
            );
        }
        job(&self.to_cpu()?)
    }

    /// Separates a whole song. The result has the input's rate, channel count and length.
    ///
    /// This is [`separate_stream`](Self::separate_stream) fed from memory: a song separated
    /// in memory and the same song streamed from a file give bit-identical stems.
    pub fn separate(
        &self,
        audio: &AudioBuffer,
        params: &SeparateParams,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Stems, EngineError> {
        audio.validate()?;
        let len = audio.len();
        let nch = audio.num_channels();
        let scale = InputScale::of(&audio.channels).scale(self.config().input_norm);
        let s = self.config().n_sources();
        let mut out: Vec<Vec<Vec<f32>>> = (0..s)
            .map(|_| (0..nch).map(|_| Vec::with_capacity(len)).collect())
            .collect();
        // Fed in 1-second blocks: the streamed code path, exercised with its real block logic.
        let step = audio.sample_rate.max(1) as usize;
        let mut pos = 0;
        self.separate_stream(
            &StreamInput {
                sample_rate: audio.sample_rate,
                channels: nch,
                frames: len,
                scale,
            },
            params,
            &mut |block| {
                block.clear();
                if pos >= len {
                    return Ok(false);
                }
                let end = (pos + step).min(len);
                block.extend(audio.channels.iter().map(|c| c[pos..end].to_vec()));
                pos = end;
                Ok(true)
            },
            &mut |blk| {
                for (o, b) in out.iter_mut().zip(blk) {
                    for (oc, bc) in o.iter_mut().zip(b) {
                        oc.extend_from_slice(bc);
                    }
                }
                Ok(())
            },
            cancel,
            progress,
        )?;
        let stems = out
            .into_iter()
            .map(|chans| AudioBuffer::new(audio.sample_rate, chans))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Stems {
            names: self.config().sources.clone(),
            audio: stems,
        })
    }

    /// Separates a song that arrives in blocks and hands the stems on in blocks, holding only
    /// a few chunks of audio at any time (hour-long files in bounded memory).
    ///
    /// `next_block` replaces its argument with the next input block (`input.channels` planar
    /// channels at `input.sample_rate`) and returns `false` at the end; exactly
    /// `input.frames` frames must arrive. `emit` receives the stems of consecutive frame
    /// ranges, `[source][channel][frames]` at the input's rate and channel count; in all it
    /// receives exactly `input.frames` frames per source.
    ///
    /// Pipeline: resample to the model rate (streamed) → ÷ `input.scale` → chunks as the
    /// [`ChunkPlan`] needs them (batches of `params.batch`, in order) → network → overlap-add,
    /// drained as soon as no later chunk touches a sample → × scale → resample back (streamed).
    /// Every stage's output depends only on its input, not on the block sizes.
    pub fn separate_stream(
        &self,
        input: &StreamInput,
        params: &SeparateParams,
        next_block: &mut dyn FnMut(&mut Vec<Vec<f32>>) -> Result<bool, EngineError>,
        emit: &mut dyn FnMut(&[Vec<Vec<f32>>]) -> Result<(), EngineError>,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), EngineError> {
        params.validate(self.config())?;
        let (in_rate, nch, frames) = (input.sample_rate, input.channels, input.frames);
        let model_rate = self.config().sample_rate;
        if nch == 0 || nch > 2 {
            return Err(EngineError::BadParameter(format!(
                "the audio has {nch} channels; locosep separates mono or stereo (decode with downmix for more)"
            )));
        }
        let mut to_model = StreamResampler::new(in_rate, model_rate, nch)?;
        let len = to_model.total_output(frames);
        let min_len = self.stft().min_len();
        if len < min_len {
            return Err(EngineError::BadParameter(format!(
                "the audio is too short for this model: {len} samples at {model_rate} Hz, at least {min_len} are needed"
            )));
        }
        if let Some(css) = self.css_pipeline(params) {
            return self.separate_css(
                &css, input, len, to_model, next_block, emit, cancel, progress,
            );
        }
        let mut core = ChunkStream::new(&self.model, params, len, nch, input.scale)?;
        let s = self.config().n_sources();
        let mut back = (0..s)
            .map(|_| StreamResampler::new(model_rate, in_rate, nch))
            .collect::<Result<Vec<_>, _>>()?;
        // Output at the input rate, per source, before it is handed on; `sent` frames so far.
        let mut pending: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); nch]; s];
        let mut sent = 0usize;
        // Hands on everything resampled so far, cut at the input's length.
        let mut flush = |pending: &mut Vec<Vec<Vec<f32>>>, sent: &mut usize, last: bool| {
            let avail = pending[0][0].len();
            let take = avail.min(frames - *sent);
            for src in pending.iter_mut() {
                for ch in src.iter_mut() {
                    ch.truncate(take);
                    if last {
                        // round(frames·r·r⁻¹) may fall one short of the input's length.
                        ch.resize(frames - *sent, 0.0);
                    }
                }
            }
            let n = pending[0][0].len();
            if n > 0 {
                emit(pending)?;
                *sent += n;
            }
            for src in pending.iter_mut() {
                src.iter_mut().for_each(Vec::clear);
            }
            Ok::<(), EngineError>(())
        };
        let start = Instant::now();
        let mut on_stems = |stems: &[Vec<Vec<f32>>], pending: &mut Vec<Vec<Vec<f32>>>| {
            for ((b, st), p) in back.iter_mut().zip(stems).zip(pending.iter_mut()) {
                b.push(st, p)?;
            }
            Ok::<(), EngineError>(())
        };
        progress(Progress {
            done: 0,
            total: core.total_chunks(),
            elapsed: start.elapsed(),
        });
        let mut block = Vec::new();
        let mut model_block: Vec<Vec<f32>> = vec![Vec::new(); nch];
        let mut received = 0usize;
        loop {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let more = next_block(&mut block)?;
            if more {
                if block.len() != nch {
                    return Err(EngineError::Audio(crate::audio::AudioError::InvalidBuffer(
                        format!("a block has {} channels, expected {nch}", block.len()),
                    )));
                }
                received += block[0].len();
                if received > frames {
                    return Err(EngineError::BadParameter(format!(
                        "the input grew while reading: more than the {frames} frames counted before"
                    )));
                }
                to_model.push(&block, &mut model_block)?;
            } else {
                if received != frames {
                    return Err(EngineError::BadParameter(format!(
                        "the input changed while reading: {received} frames instead of the {frames} counted before"
                    )));
                }
                to_model.finish(&mut model_block)?;
            }
            core.push(
                &model_block,
                !more,
                cancel,
                &mut |stems| on_stems(stems, &mut pending),
                &mut |done, total| {
                    progress(Progress {
                        done,
                        total,
                        elapsed: start.elapsed(),
                    })
                },
            )?;
            model_block.iter_mut().for_each(Vec::clear);
            if !more {
                break;
            }
            flush(&mut pending, &mut sent, false)?;
        }
        for (b, p) in back.iter_mut().zip(pending.iter_mut()) {
            b.finish(p)?;
        }
        flush(&mut pending, &mut sent, true)?;
        debug_assert_eq!(sent, frames);
        Ok(())
    }
}

impl Separator {
    /// [`separate_stream`](Self::separate_stream) with mixit-mss's CSS pipeline
    /// ([`super::css`]): it needs the whole song at the model rate (its normalisation is a
    /// statistic of the whole mixture), so the song is held in memory.
    #[allow(clippy::too_many_arguments)]
    fn separate_css(
        &self,
        css: &CssParams,
        input: &StreamInput,
        len: usize,
        mut to_model: StreamResampler,
        next_block: &mut dyn FnMut(&mut Vec<Vec<f32>>) -> Result<bool, EngineError>,
        emit: &mut dyn FnMut(&[Vec<Vec<f32>>]) -> Result<(), EngineError>,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), EngineError> {
        let (nch, frames) = (input.channels, input.frames);
        let start = Instant::now();
        let mut song: Vec<Vec<f32>> = vec![Vec::with_capacity(len); nch];
        let mut block = Vec::new();
        let mut received = 0usize;
        loop {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let more = next_block(&mut block)?;
            if !more {
                break;
            }
            if block.len() != nch {
                return Err(EngineError::Audio(crate::audio::AudioError::InvalidBuffer(
                    format!("a block has {} channels, expected {nch}", block.len()),
                )));
            }
            received += block[0].len();
            to_model.push(&block, &mut song)?;
        }
        if received != frames {
            return Err(EngineError::BadParameter(format!(
                "the input changed while reading: {received} frames instead of the {frames} counted before"
            )));
        }
        to_model.finish(&mut song)?;
        let ac = self.config().audio_channels;
        // Items: a joint-stereo model sees both channels (a mono song twice); a mono model
        // each channel alone.
        // The song's buffers are moved into the items; only a mono song for a stereo model is
        // copied (it is both channels).
        let items: Vec<Vec<Vec<f32>>> = if ac == 2 {
            let mut chans = song.into_iter();
            let left = chans.next().unwrap_or_default();
            let right = chans.next().unwrap_or_else(|| left.clone());
            vec![vec![left, right]]
        } else {
            song.into_iter().map(|c| vec![c]).collect()
        };
        let plan = super::css::CssPlan::new(len, css, self.config().sample_rate)?;
        let total = plan.starts.len() * items.len();
        let mut done = 0;
        progress(Progress {
            done,
            total,
            elapsed: start.elapsed(),
        });
        let s = self.config().n_sources();
        let mut stems: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(nch); s];
        for item in &items {
            let out = super::css::separate_item(&self.model, css, item, cancel, &mut || {
                done += 1;
                progress(Progress {
                    done,
                    total,
                    elapsed: start.elapsed(),
                });
            })?;
            for (st, chans) in stems.iter_mut().zip(out) {
                st.extend(chans);
            }
        }
        if ac == 2 && nch == 1 {
            for st in stems.iter_mut() {
                let mono: Vec<f32> = st[0]
                    .iter()
                    .zip(&st[1])
                    .map(|(a, b)| 0.5 * (a + b))
                    .collect();
                *st = vec![mono];
            }
        }
        // Back to the input's rate, cut to its length.
        let mut out: Vec<Vec<Vec<f32>>> = Vec::with_capacity(s);
        for st in &stems {
            let mut back = StreamResampler::new(self.config().sample_rate, input.sample_rate, nch)?;
            let mut chans = vec![Vec::new(); nch];
            back.push(st, &mut chans)?;
            back.finish(&mut chans)?;
            for c in chans.iter_mut() {
                c.resize(frames, 0.0);
            }
            out.push(chans);
        }
        emit(&out)
    }
}

/// One GPU attempt of a job: `Ok(result)` when the result is final (success, cancellation, or
/// an error that is not the device's), `Err(description)` when the GPU failed.
fn gpu_attempt<T>(
    sep: &Separator,
    cancel: &CancelToken,
    job: &mut dyn FnMut(&Separator) -> Result<T, EngineError>,
) -> Result<Result<T, EngineError>, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(sep))) {
        Ok(Ok(v)) => Ok(Ok(v)),
        Ok(Err(e)) if cancel.is_cancelled() => Ok(Err(e)),
        // Only the device's failures are retried: errors of the input, the parameters, the
        // model files or the chunking would fail the same way again.
        Ok(Err(
            e @ (EngineError::BadParameter(_)
            | EngineError::Audio(_)
            | EngineError::Dsp(_)
            | EngineError::Config(_)
            | EngineError::Checkpoint(_)
            | EngineError::Keys(_)
            | EngineError::Cancelled),
        )) => Ok(Err(e)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the GPU backend stopped".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::device::{DeviceChoice, resolve};
    use crate::model::config::limits::MAX_SEGMENT_SECONDS;
    use crate::model::config::preset;
    use crate::model::loader::init_state_dict;

    /// A segment longer than the song is capped to it: an hour-long `--segment` on a short song
    /// costs what a song-long one does, and gives the same stems.
    #[test]
    fn a_segment_longer_than_the_song_is_capped_to_it() {
        let mut cfg = preset("demo").unwrap().config;
        cfg.n_layers = 1;
        let sd = init_state_dict(&cfg, 1);
        let sep = Separator::new(cfg, &sd, resolve(DeviceChoice::Cpu).unwrap()).unwrap();
        let n = 11_025;
        let tone: Vec<f32> = (0..n).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
        let audio = AudioBuffer::new(44_100, vec![tone]).unwrap();
        let run = |seconds: f64| {
            let params = SeparateParams {
                segment_seconds: Some(seconds),
                ..Default::default()
            };
            let mut chunks = 0;
            let stems = sep
                .separate(&audio, &params, &CancelToken::new(), &mut |p| {
                    chunks = p.total
                })
                .unwrap();
            (stems, chunks)
        };
        let (hour, chunks) = run(MAX_SEGMENT_SECONDS);
        assert_eq!(chunks, 1, "one chunk: the whole song");
        let (song, _) = run(n as f64 / 44_100.0);
        for (a, b) in hour.audio.iter().zip(&song.audio) {
            assert_eq!(a.channels, b.channels);
        }
    }
}
