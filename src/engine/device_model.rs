//! [`DeviceModel`]: a network on a device with its STFT, waveforms in, waveforms out (the
//! wrapper's forward). It knows nothing of songs, chunks or fallbacks: the separator's
//! pipelines (`separator.rs`, `chunk_stream.rs`, `css.rs`) share it.
//!
//! The fast form of the network for the device is chosen here, once: on the CPU the blocks
//! are built as host kernels ([`HostNetwork`]) when the model is loaded, so a forward copies no
//! weight; on wgpu attention runs as the fused kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Tensor, TensorData};

use crate::dsp::stft::Stft;
use crate::model::config::{ModelConfig, Pipeline};
use crate::model::loader::from_state_dict;
use crate::model::network::{AttentionImpl, ForwardOptions, HostNetwork, TfLocoformer};
use crate::model::state_dict::StateDict;

use super::EngineError;
use super::device::ResolvedDevice;

/// The smallest per-intermediate cap a GPU retry uses (16 MiB).
pub(super) const MIN_RETRY_CHUNK_BYTES: usize = 16 << 20;

/// A network on a device, ready to map batches of waveforms to stems.
#[derive(Debug)]
pub struct DeviceModel {
    cfg: ModelConfig,
    net: TfLocoformer,
    /// The blocks as host kernels, built once at load time on the CPU inference device
    /// (`None` elsewhere); shared by the copies a retry makes.
    host: Option<Arc<HostNetwork>>,
    device: ResolvedDevice,
    stft: Stft,
    /// Cap on any one path intermediate of the burn-ops blocks (see [`ForwardOptions`]).
    max_chunk_bytes: Option<usize>,
    /// GPU failures still to simulate (see [`Separator::with_simulated_gpu_failures`]), shared
    /// by the copies a retry makes. 0 in normal use.
    ///
    /// [`Separator::with_simulated_gpu_failures`]: super::Separator::with_simulated_gpu_failures
    simulated_failures: Arc<AtomicUsize>,
}

impl DeviceModel {
    /// Builds the network from reference-named weights on `device` (and, on the CPU, its host
    /// blocks).
    pub fn new(
        cfg: ModelConfig,
        sd: &StateDict,
        device: ResolvedDevice,
    ) -> Result<Self, EngineError> {
        let net = from_state_dict(&cfg, sd, &device.device)?;
        let stft = Stft::new(cfg.n_fft, cfg.hop_length)?;
        // Default cap: 256 MiB per path intermediate, and at most half the device's largest
        // allocation (lavapipe takes no buffer over 128 MiB); the planner may lower it.
        let device_cap = crate::kernels::device::max_allocation_bytes(&device.device)
            .map_or(usize::MAX, |b| (b / 2) as usize);
        let host = net.host_network().map(Arc::new);
        Ok(Self {
            cfg,
            net,
            host,
            device,
            stft,
            max_chunk_bytes: Some((256usize << 20).min(device_cap).max(MIN_RETRY_CHUNK_BYTES)),
            simulated_failures: Arc::default(),
        })
    }

    /// The same model (same network, shared host blocks and failure counter) with another
    /// per-intermediate cap.
    pub fn with_max_chunk_bytes(&self, bytes: Option<usize>) -> Result<Self, EngineError> {
        Ok(Self {
            cfg: self.cfg.clone(),
            net: self.net.clone(),
            host: self.host.clone(),
            device: self.device.clone(),
            stft: Stft::new(self.cfg.n_fft, self.cfg.hop_length)?,
            max_chunk_bytes: bytes,
            simulated_failures: self.simulated_failures.clone(),
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The STFT the model runs on.
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// The device it runs on.
    pub fn device(&self) -> &ResolvedDevice {
        &self.device
    }

    /// The network.
    pub fn network(&self) -> &TfLocoformer {
        &self.net
    }

    /// The per-intermediate memory cap (bytes) of the burn-ops blocks.
    pub fn max_chunk_bytes(&self) -> Option<usize> {
        self.max_chunk_bytes
    }

    /// Overrides the per-intermediate memory cap (bytes) — the planner's knob.
    pub fn set_max_chunk_bytes(&mut self, bytes: Option<usize>) {
        self.max_chunk_bytes = bytes;
    }

    /// The options every forward of this model uses: the host blocks on the CPU, the fused
    /// kernel elsewhere, under the memory cap.
    pub fn forward_options(&self) -> ForwardOptions<'_> {
        ForwardOptions {
            max_chunk_bytes: self.max_chunk_bytes,
            attention: AttentionImpl::kernels(self.host.as_deref()),
        }
    }

    /// Makes the next `n` forward passes on a wgpu device panic as the GPU backend does on an
    /// allocation failure (see [`Separator::with_simulated_gpu_failures`]).
    ///
    /// [`Separator::with_simulated_gpu_failures`]: super::Separator::with_simulated_gpu_failures
    pub fn simulate_gpu_failures(&self, n: usize) {
        self.simulated_failures.store(n, Ordering::SeqCst);
    }

    /// Simulated GPU failures not yet consumed.
    pub fn simulated_gpu_failures_left(&self) -> usize {
        self.simulated_failures.load(Ordering::SeqCst)
    }

    /// Runs STFT → network → iSTFT on a batch of equal-length items.
    ///
    /// For a model with mixit-mss's pipeline this is their wrapper's forward: each channel is
    /// divided by its STFT-power scale (`scaling`), only the first `N // hop` frames reach the
    /// network, and the outputs are multiplied back.
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
        let css = match self.cfg.pipeline {
            Pipeline::Css(css) => Some(css),
            Pipeline::OverlapAdd => None,
        };
        let full_frames = self.stft.num_frames(n);
        // mixit-mss keeps `N // hop` frames (the last centred frame is dropped).
        let t = match css {
            Some(_) => (n / self.cfg.hop_length).clamp(1, full_frames),
            None => full_frames,
        };
        let f = self.stft.num_bins();
        let plane = t * f;
        let scaling = css.is_some_and(|c| c.scaling);
        let mut scales = vec![1f32; b * ac];
        // Input layout [B, 2·ac, T, F]: real parts of every channel, then imaginary parts.
        let mut input = vec![0f32; b * 2 * ac * plane];
        let (mut re, mut im) = (Vec::new(), Vec::new());
        for (bi, item) in items.iter().enumerate() {
            debug_assert_eq!(item.len(), ac);
            for (ch, x) in item.iter().enumerate() {
                debug_assert_eq!(x.len(), n, "items must have equal length");
                self.stft.forward(x, &mut re, &mut im)?;
                if scaling {
                    // The scale of the whole (uncropped) spectrum; STFT is linear, so dividing
                    // the spectrum equals the reference's STFT of the divided waveform.
                    let sc = power_scale_of(&re, &im);
                    scales[bi * ac + ch] = sc;
                    re.iter_mut().chain(im.iter_mut()).for_each(|v| *v /= sc);
                }
                let base = bi * 2 * ac * plane;
                input[base + ch * plane..base + (ch + 1) * plane].copy_from_slice(&re[..plane]);
                input[base + (ac + ch) * plane..base + (ac + ch + 1) * plane]
                    .copy_from_slice(&im[..plane]);
            }
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(input, [b, 2 * ac, t, f]),
            &self.device.device,
        );
        if self.device.is_wgpu
            && self
                .simulated_failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("simulated GPU failure: out of device memory");
        }
        let y = self.net.forward(x, self.forward_options());
        let y: Vec<f32> = y
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| EngineError::Device(format!("cannot read the result back: {e}")))?;
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
                    if scaling {
                        let sc = scales[bi * ac + ch];
                        wave.iter_mut().for_each(|v| *v *= sc);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `sqrt(mean over frames and bins of max(|X|², 1e-15))` of one channel's STFT: mixit-mss's
/// normalisation scale.
pub fn power_scale(stft: &Stft, x: &[f32]) -> Result<f32, EngineError> {
    let (mut re, mut im) = (Vec::new(), Vec::new());
    stft.forward(x, &mut re, &mut im)?;
    Ok(power_scale_of(&re, &im))
}

/// [`power_scale`] of a spectrum given as real and imaginary parts.
pub fn power_scale_of(re: &[f32], im: &[f32]) -> f32 {
    let sum: f64 = re
        .iter()
        .zip(im)
        .map(|(a, b)| f64::from((a * a + b * b).max(1e-15)))
        .sum();
    (sum / re.len().max(1) as f64).sqrt() as f32
}
