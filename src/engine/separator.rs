//! `Separator`: load → resample → normalise → chunk → batched forward → overlap-add.
//!
//! The model knows nothing of chunking; chunking lives in [`ChunkPlan`]/[`OverlapAdd`], and
//! this file only glues them to the network (as demucs' `apply_model` does, made explicit).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::{Tensor, TensorData};

use crate::audio::AudioBuffer;
use crate::dsp::chunk::ChunkPlan;
use crate::dsp::ola::OverlapAdd;
use crate::dsp::stft::Stft;
use crate::model::config::{InputNorm, ModelConfig};
use crate::model::loader::from_state_dict;
use crate::model::network::{ForwardOptions, TfLocoformer};
use crate::model::state_dict::StateDict;

use super::EngineError;
use super::device::ResolvedDevice;

/// Shared cancel flag, checked between chunks.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requests cancellation; the job stops before its next chunk.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Progress of one separation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Chunks finished.
    pub done: usize,
    /// Chunks in all.
    pub total: usize,
    /// Time since the job started.
    pub elapsed: Duration,
}

impl Progress {
    /// Fraction done in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
    /// Estimated time left, from the rate so far.
    pub fn eta(&self) -> Option<Duration> {
        (self.done > 0).then(|| {
            self.elapsed
                .mul_f64((self.total - self.done) as f64 / self.done as f64)
        })
    }
}

/// How a song is cut and batched.
#[derive(Debug, Clone, PartialEq)]
pub struct SeparateParams {
    /// Segment length in seconds (`None`: the preset's); ignored with `no_split`.
    pub segment_seconds: Option<f64>,
    /// Overlap fraction in [0, 0.95).
    pub overlap: f32,
    /// Exponent of the triangle window.
    pub transition_power: f32,
    /// Whole file as one segment, no context, no window (exactly the reference's forward).
    pub no_split: bool,
    /// Chunks per forward pass.
    pub batch: usize,
}

impl Default for SeparateParams {
    fn default() -> Self {
        Self {
            segment_seconds: None,
            overlap: 0.25,
            transition_power: 1.0,
            no_split: false,
            batch: 1,
        }
    }
}

impl SeparateParams {
    /// Checks ranges, with messages that say what is allowed.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::BadParameter(m));
        if !(0.0..0.95).contains(&self.overlap) {
            return bad(format!(
                "--overlap must be in [0, 0.95), got {}",
                self.overlap
            ));
        }
        if let Some(s) = self.segment_seconds {
            let min = (cfg.n_fft as f64) / cfg.sample_rate as f64;
            if !(s.is_finite() && s >= min) {
                return bad(format!(
                    "--segment must be at least {min:.3} s (one STFT window of {} samples) for \
                     this model, got {s}",
                    cfg.n_fft
                ));
            }
        }
        if !(self.transition_power.is_finite() && self.transition_power > 0.0) {
            return bad(format!(
                "transition power must be > 0, got {}",
                self.transition_power
            ));
        }
        if self.batch == 0 {
            return bad("batch must be ≥ 1".into());
        }
        Ok(())
    }
}

/// Separated stems at the input's sample rate and channel count.
#[derive(Debug, Clone)]
pub struct Stems {
    /// Source names in model order.
    pub names: Vec<String>,
    /// One buffer per source, same rate/channels/length as the input.
    pub audio: Vec<AudioBuffer>,
}

/// Test hook: when set, the next forward pass on a wgpu device panics as the GPU backend does
/// on an allocation failure or a lost adapter (cleared when it fires). Lets tests exercise
/// [`Separator::separate_or_cpu`] without a faulty GPU.
#[doc(hidden)]
pub static INJECT_GPU_FAILURE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A loaded model on a device, ready to separate songs.
#[derive(Debug)]
pub struct Separator {
    cfg: ModelConfig,
    net: TfLocoformer,
    device: ResolvedDevice,
    stft: Stft,
    opts: ForwardOptions,
}

impl Separator {
    /// Builds the network from reference-named weights on `device`.
    pub fn new(
        cfg: ModelConfig,
        sd: &StateDict,
        device: ResolvedDevice,
    ) -> Result<Self, EngineError> {
        let net = from_state_dict(&cfg, sd, &device.device)?;
        let stft = Stft::new(cfg.n_fft, cfg.hop_length)?;
        let opts = ForwardOptions {
            // Default cap: 256 MiB per path intermediate; the planner may lower it.
            max_chunk_bytes: Some(256 << 20),
            fused_attention: device.is_wgpu
                && crate::kernels::attention::fused_available(&device.device),
            burn_ops_only: false,
            reference_attention: false,
        };
        Ok(Self {
            cfg,
            net,
            device,
            stft,
            opts,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device it runs on.
    pub fn device(&self) -> &ResolvedDevice {
        &self.device
    }

    /// Overrides the per-intermediate memory cap (bytes) — the planner's knob.
    pub fn set_max_chunk_bytes(&mut self, bytes: Option<usize>) {
        self.opts.max_chunk_bytes = bytes;
    }

    /// The network, for golden tests and export.
    pub fn network(&self) -> &TfLocoformer {
        &self.net
    }

    /// Runs STFT → network → iSTFT on a batch of equal-length items.
    ///
    /// # Shapes
    /// - items: `[B][ac][N]` (ac = the model's `audio_channels`)
    /// - output: `[B][S][ac][N]`
    pub fn forward_waveforms(
        &self,
        items: &[Vec<Vec<f32>>],
    ) -> Result<Vec<Vec<Vec<Vec<f32>>>>, EngineError> {
        let ac = self.cfg.audio_channels;
        let b = items.len();
        let n = items.first().and_then(|i| i.first()).map_or(0, Vec::len);
        let (t, f) = (self.stft.num_frames(n), self.stft.num_bins());
        let plane = t * f;
        // Input layout [B, 2·ac, T, F]: real parts of every channel, then imaginary parts.
        let mut input = vec![0f32; b * 2 * ac * plane];
        let (mut re, mut im) = (Vec::new(), Vec::new());
        for (bi, item) in items.iter().enumerate() {
            debug_assert_eq!(item.len(), ac);
            for (ch, x) in item.iter().enumerate() {
                debug_assert_eq!(x.len(), n, "items must have equal length");
                self.stft.forward(x, &mut re, &mut im)?;
                let base = bi * 2 * ac * plane;
                input[base + ch * plane..base + (ch + 1) * plane].copy_from_slice(&re);
                input[base + (ac + ch) * plane..base + (ac + ch + 1) * plane].copy_from_slice(&im);
            }
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(input, [b, 2 * ac, t, f]),
            &self.device.device,
        );
        if self.device.is_wgpu
            && INJECT_GPU_FAILURE.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected GPU failure: out of device memory (test hook)");
        }
        let y = self.net.forward(x, self.opts);
        let y: Vec<f32> = y
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| EngineError::Device(format!("cannot read the result back: {e:?}")))?;
        let s = self.cfg.n_sources();
        let mut out = vec![vec![vec![Vec::new(); ac]; s]; b];
        for (bi, item) in out.iter_mut().enumerate() {
            for (si, src) in item.iter_mut().enumerate() {
                for (ch, wave) in src.iter_mut().enumerate() {
                    // Output channel 2·(s·ac + ch) + part.
                    let c = 2 * (si * ac + ch);
                    let base = (bi * 2 * s * ac + c) * plane;
                    self.stft.inverse(
                        &y[base..base + plane],
                        &y[base + plane..base + 2 * plane],
                        t,
                        n,
                        wave,
                    )?;
                }
            }
        }
        Ok(out)
    }

    /// The same model on the CPU (flex), weights copied.
    pub fn to_cpu(&self) -> Result<Separator, EngineError> {
        let sd = crate::model::loader::to_state_dict(&self.cfg, &self.net);
        Separator::new(
            self.cfg.clone(),
            &sd,
            crate::engine::device::resolve(crate::engine::device::DeviceChoice::Cpu)?,
        )
    }

    /// [`separate`](Self::separate), and when it fails on a GPU — an error from the device or
    /// a panic inside the GPU backend (allocation failure, lost adapter) — once more on the
    /// CPU with the same weights. `warn` receives a message saying so. Errors that are the
    /// input's or the parameters' fault, and cancellation, are returned as they are.
    pub fn separate_or_cpu(
        &self,
        audio: &AudioBuffer,
        params: &SeparateParams,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress),
        warn: &mut dyn FnMut(String),
    ) -> Result<Stems, EngineError> {
        if !self.device.is_wgpu {
            return self.separate(audio, params, cancel, progress);
        }
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.separate(audio, params, cancel, &mut *progress)
        }));
        let failure = match attempt {
            Ok(Ok(stems)) => return Ok(stems),
            Ok(Err(e)) if cancel.is_cancelled() => return Err(e),
            Ok(Err(e @ (EngineError::BadParameter(_) | EngineError::Audio(_)))) => return Err(e),
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the GPU backend stopped".into()),
        };
        warn(format!(
            "the GPU failed ({failure}); separating on the CPU instead (slower, same result)"
        ));
        self.to_cpu()?.separate(audio, params, cancel, progress)
    }

    /// Separates a whole song. The result has the input's rate, channel count and length.
    pub fn separate(
        &self,
        audio: &AudioBuffer,
        params: &SeparateParams,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Stems, EngineError> {
        params.validate(&self.cfg)?;
        let start = Instant::now();
        let in_rate = audio.sample_rate;
        let in_channels = audio.channels.len();
        let model_rate = self.cfg.sample_rate;
        let resampled;
        let audio_m = if in_rate != model_rate {
            resampled = crate::audio::resample::resample(audio, model_rate)?;
            &resampled
        } else {
            audio
        };
        let len = audio_m.channels.first().map_or(0, Vec::len);
        let min_len = self.stft.min_len();
        if len < min_len {
            return Err(EngineError::BadParameter(format!(
                "the audio is too short for this model: {len} samples at {model_rate} Hz, at least \
                 {min_len} are needed"
            )));
        }
        // Signals the network sees: ac = 1 → each channel alone; ac = 2 → a stereo pair (mono
        // input duplicated, outputs averaged back).
        let ac = self.cfg.audio_channels;
        let mut signals: Vec<Vec<f32>> = audio_m.channels.clone();
        if ac == 2 && signals.len() == 1 {
            signals.push(signals[0].clone());
        }
        let scale = match self.cfg.input_norm {
            InputNorm::None => 1.0,
            InputNorm::Std => {
                // ESPnet divides by torch.std (unbiased) of the mixture; we use the whole song.
                let all = signals.iter().flatten().copied();
                let count = (signals.len() * len) as f64;
                let mean = all.clone().map(f64::from).sum::<f64>() / count;
                let var =
                    all.map(|v| (v as f64 - mean).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
                (var.sqrt() + 1e-8) as f32
            }
        };
        if scale != 1.0 {
            signals.iter_mut().flatten().for_each(|v| *v /= scale);
        }
        let groups: Vec<Vec<&Vec<f32>>> = if ac == 1 {
            signals.iter().map(|s| vec![s]).collect()
        } else {
            vec![signals.iter().collect()]
        };
        let (segment, context, overlap) = if params.no_split {
            (len, 0, 0.0)
        } else {
            let seg = (params.segment_seconds.unwrap_or(self.cfg.segment_seconds)
                * model_rate as f64)
                .round() as usize;
            (seg.max(min_len), self.cfg.n_fft, params.overlap)
        };
        let plan = ChunkPlan::new(len, segment, overlap, context)?;
        let s = self.cfg.n_sources();
        // One accumulator per group: outputs are (source, channel-in-group) planar.
        let mut olas = groups
            .iter()
            .map(|_| OverlapAdd::new(&plan, s * ac, params.transition_power))
            .collect::<Result<Vec<_>, _>>()?;
        let total = plan.num_chunks();
        let chunk_len = plan.chunk_len();
        let mut done = 0;
        progress(Progress {
            done,
            total,
            elapsed: start.elapsed(),
        });
        let mut flat = Vec::with_capacity(s * ac * chunk_len);
        let chunk_ids: Vec<usize> = (0..total).collect();
        for batch in chunk_ids.chunks(params.batch) {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            // Items of this forward: every chunk of the batch × every group.
            let mut items = Vec::with_capacity(batch.len() * groups.len());
            for &ci in batch {
                for group in &groups {
                    let mut item = Vec::with_capacity(ac);
                    for sig in group {
                        let mut buf = vec![0f32; chunk_len];
                        plan.fill_chunk(ci, sig, &mut buf)?;
                        item.push(buf);
                    }
                    items.push(item);
                }
            }
            let outs = self.forward_waveforms(&items)?;
            let mut outs = outs.into_iter();
            for &ci in batch {
                for ola in olas.iter_mut() {
                    let out = outs
                        .next()
                        .ok_or_else(|| EngineError::Device("missing batch output".into()))?;
                    flat.clear();
                    for src in &out {
                        for wave in src {
                            flat.extend_from_slice(wave);
                        }
                    }
                    ola.add_chunk(ci, &flat)?;
                }
            }
            done += batch.len();
            progress(Progress {
                done,
                total,
                elapsed: start.elapsed(),
            });
        }
        // Collect: per source, the input's channels.
        let mut per_source: Vec<Vec<Vec<f32>>> = vec![Vec::new(); s];
        for ola in olas {
            let outs = ola.finish()?;
            for (k, wave) in outs.into_iter().enumerate() {
                per_source[k / ac].push(wave);
            }
        }
        let mut stems = Vec::with_capacity(s);
        for mut chans in per_source {
            if scale != 1.0 {
                chans.iter_mut().flatten().for_each(|v| *v *= scale);
            }
            if chans.len() == 2 && in_channels == 1 {
                // Joint-stereo model on a mono song: average back to mono.
                let (l, r) = (&chans[0], &chans[1]);
                chans = vec![l.iter().zip(r).map(|(a, b)| 0.5 * (a + b)).collect()];
            }
            let buf = AudioBuffer::new(model_rate, chans)?;
            let buf = if in_rate != model_rate {
                resample_to_length(&buf, in_rate, audio.channels[0].len())?
            } else {
                buf
            };
            stems.push(buf);
        }
        Ok(Stems {
            names: self.cfg.sources.clone(),
            audio: stems,
        })
    }
}

/// Resamples back to the input rate and fixes the length to the input's exactly.
fn resample_to_length(
    buf: &AudioBuffer,
    rate: u32,
    len: usize,
) -> Result<AudioBuffer, EngineError> {
    let mut out = crate::audio::resample::resample(buf, rate)?;
    for ch in out.channels.iter_mut() {
        ch.resize(len, 0.0);
    }
    Ok(out)
}
