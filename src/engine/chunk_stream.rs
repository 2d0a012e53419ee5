//! [`ChunkStream`]: the chunk-level core of a streamed separation (chunk plan, batches,
//! network, overlap-add, draining), fed at the model's rate by
//! [`Separator::separate_stream`](super::Separator::separate_stream).

use crate::dsp::chunk::ChunkPlan;
use crate::dsp::ola::OverlapAdd;

use super::EngineError;
use super::device_model::DeviceModel;
use super::params::{CancelToken, SeparateParams};

/// The chunk-level part of a streamed separation at the model's rate: collects input until a
/// batch of chunks is complete, runs it, overlap-adds, and emits every sample no later chunk
/// will touch.
///
/// Invariants: `window` holds model-input samples `[base, base + window[0].len())` (already
/// divided by the scale), and `base` never passes the first sample the next chunk reads, so
/// memory is a batch of chunks plus one stride, whatever the song's length. Batches are the
/// same fixed groups `[k·batch, (k+1)·batch)` as a one-shot run, so results do not depend on
/// how the input was split.
pub(super) struct ChunkStream<'a> {
    sep: &'a DeviceModel,
    plan: ChunkPlan,
    batch: usize,
    in_channels: usize,
    scale: f32,
    window: Vec<Vec<f32>>,
    base: usize,
    /// One accumulator per group: outputs are (source, channel-in-group) planar.
    olas: Vec<OverlapAdd>,
    next_chunk: usize,
    drained: Vec<Vec<Vec<f32>>>,
}

impl<'a> ChunkStream<'a> {
    pub(super) fn new(
        sep: &'a DeviceModel,
        params: &SeparateParams,
        len: usize,
        in_channels: usize,
        scale: f32,
    ) -> Result<Self, EngineError> {
        let cfg = sep.config();
        let ac = cfg.audio_channels;
        let (segment, context, overlap) = if params.no_split {
            (len, 0, 0.0)
        } else {
            let seg = (params.segment_seconds.unwrap_or(cfg.segment_seconds)
                * cfg.sample_rate as f64)
                .round() as usize;
            // Never longer than the song: a longer segment only adds padding (and memory).
            (
                seg.min(len).max(sep.stft().min_len()),
                cfg.n_fft,
                params.overlap,
            )
        };
        let plan = ChunkPlan::new(len, segment, overlap, context)?;
        // Signals the network sees: ac = 1 → each channel alone; ac = 2 → a stereo pair (mono
        // input duplicated, outputs averaged back).
        let signals = if ac == 2 { 2 } else { in_channels };
        let groups = if ac == 1 { signals } else { 1 };
        let s = cfg.n_sources();
        let olas = (0..groups)
            .map(|_| OverlapAdd::new(&plan, s * ac, params.transition_power))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            sep,
            plan,
            batch: params.batch,
            in_channels,
            scale,
            window: vec![Vec::new(); signals],
            base: 0,
            olas,
            next_chunk: 0,
            drained: vec![vec![Vec::new(); s * ac]; groups],
        })
    }

    pub(super) fn total_chunks(&self) -> usize {
        self.plan.num_chunks()
    }

    /// Appends model-rate input (`in_channels` planar slices; `last`: nothing follows) and runs
    /// every batch whose chunks are complete. `emit` gets `[source][in_channel][n]` blocks.
    pub(super) fn push(
        &mut self,
        block: &[Vec<f32>],
        last: bool,
        cancel: &CancelToken,
        emit: &mut dyn FnMut(&[Vec<Vec<f32>>]) -> Result<(), EngineError>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(), EngineError> {
        for (k, w) in self.window.iter_mut().enumerate() {
            let src = &block[k.min(self.in_channels - 1)];
            if self.scale == 1.0 {
                w.extend_from_slice(src);
            } else {
                w.extend(src.iter().map(|v| v / self.scale));
            }
        }
        let received = self.base + self.window[0].len();
        let total = self.plan.num_chunks();
        let ac = self.sep.config().audio_channels;
        let chunk_len = self.plan.chunk_len();
        let mut flat = Vec::new();
        while self.next_chunk < total {
            let batch = self.next_chunk..(self.next_chunk + self.batch).min(total);
            let (_, need) = self
                .plan
                .source_range(batch.end - 1)
                .expect("chunk index in range");
            if received < need && !last {
                break;
            }
            if received != self.plan.length() && last {
                return Err(EngineError::BadParameter(format!(
                    "the stream ended after {received} of {} samples",
                    self.plan.length()
                )));
            }
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            // Items of this forward: every chunk of the batch × every group.
            let groups = self.olas.len();
            let mut items = Vec::with_capacity(batch.len() * groups);
            for ci in batch.clone() {
                for g in 0..groups {
                    let sigs = if ac == 1 { g..g + 1 } else { 0..2 };
                    let mut item = Vec::with_capacity(ac);
                    for k in sigs {
                        let mut buf = vec![0f32; chunk_len];
                        self.plan
                            .fill_chunk_from(ci, &self.window[k], self.base, &mut buf)?;
                        item.push(buf);
                    }
                    items.push(item);
                }
            }
            let outs = self.sep.forward_waveforms(&items)?;
            let mut outs = outs.into_iter();
            for ci in batch.clone() {
                for ola in self.olas.iter_mut() {
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
            self.next_chunk = batch.end;
            progress(self.next_chunk, total);
            self.drain(emit)?;
            // Drop input no later chunk reads.
            let keep_from = match self.plan.source_range(self.next_chunk) {
                Some((lo, _)) => lo,
                None => received,
            }
            .max(self.base);
            let n = (keep_from - self.base).min(self.window[0].len());
            for w in self.window.iter_mut() {
                w.drain(..n);
            }
            self.base += n;
        }
        Ok(())
    }

    /// Emits what the accumulators have finished: × scale, mono models' channels side by side,
    /// a joint-stereo model's output averaged back to mono for a mono song.
    fn drain(
        &mut self,
        emit: &mut dyn FnMut(&[Vec<Vec<f32>>]) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let mut n = 0;
        for (ola, d) in self.olas.iter_mut().zip(self.drained.iter_mut()) {
            d.iter_mut().for_each(Vec::clear);
            n = ola.drain_ready(d)?;
        }
        if n == 0 {
            return Ok(());
        }
        let ac = self.sep.config().audio_channels;
        let s = self.sep.config().n_sources();
        let mut stems: Vec<Vec<Vec<f32>>> = Vec::with_capacity(s);
        for si in 0..s {
            let mut chans: Vec<Vec<f32>> = if ac == 1 {
                // Moved out: `drained` is cleared before the next drain anyway.
                self.drained
                    .iter_mut()
                    .map(|d| std::mem::take(&mut d[si]))
                    .collect()
            } else {
                (0..2)
                    .map(|c| std::mem::take(&mut self.drained[0][si * 2 + c]))
                    .collect()
            };
            if self.scale != 1.0 {
                chans.iter_mut().flatten().for_each(|v| *v *= self.scale);
            }
            if chans.len() == 2 && self.in_channels == 1 {
                let (l, r) = (&chans[0], &chans[1]);
                chans = vec![l.iter().zip(r).map(|(a, b)| 0.5 * (a + b)).collect()];
            }
            stems.push(chans);
        }
        emit(&stems)
    }
}
