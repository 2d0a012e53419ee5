//! Weighted overlap-add of per-chunk model outputs (demucs `apply_model`
//! style), usable in one shot or as a stream.
//!
//! For every chunk of a [`ChunkPlan`] and every output channel, the central
//! `segment` samples of the model output (context trimmed off) are
//! accumulated as `Σ w·y` together with `Σ w`, where `w` is the triangle
//! window raised to `transition_power`. Emitted samples are `Σ w·y / Σ w`.
//!
//! Invariants: `Σw > 0` at every emitted sample (every window value is > 0
//! and the chunks cover `[0, length)`); the total number of samples emitted
//! per output equals the plan's `length`; streaming ([`OverlapAdd::drain_ready`]
//! after each chunk) and one-shot ([`OverlapAdd::finish`]) give bit-identical
//! results because every sample sees the same operations in the same order.

use super::DspError;
use super::chunk::ChunkPlan;

/// Demucs chunk weighting:
/// `w = cat(arange(1, seg//2 + 1), arange(seg - seg//2, 0, -1)); w = (w / w.max()) ** p`.
///
/// All values are in `(0, 1]`.
fn transition_window(segment: usize, transition_power: f32) -> Vec<f32> {
    let half = segment / 2;
    let peak = half.max(segment - half).max(1) as f32;
    (1..=half)
        .chain((1..=segment - half).rev())
        .map(|v| (v as f32 / peak).powf(transition_power))
        .collect()
}

/// Overlap-add accumulator for `n_outputs` planar outputs (e.g. stems × channels).
///
/// Chunks must be added in plan order `0, 1, 2, …`. Only a window of about
/// `segment + stride` samples is kept when [`drain_ready`](Self::drain_ready)
/// is called after every chunk.
#[derive(Debug, Clone)]
pub struct OverlapAdd {
    plan: ChunkPlan,
    n_outputs: usize,
    weight: Vec<f32>,
    /// Per output: `Σ w·y` for samples `[base, base + wsum.len())`.
    acc: Vec<Vec<f32>>,
    /// `Σ w` for samples `[base, base + wsum.len())` (shared by all outputs).
    wsum: Vec<f32>,
    /// First sample not yet emitted.
    base: usize,
    /// Next chunk index expected by `add_chunk`.
    next_chunk: usize,
}

impl OverlapAdd {
    /// Creates an accumulator for `plan` with `n_outputs` outputs and the
    /// demucs window exponent `transition_power` (finite, > 0).
    pub fn new(
        plan: &ChunkPlan,
        n_outputs: usize,
        transition_power: f32,
    ) -> Result<Self, DspError> {
        if !(transition_power.is_finite() && transition_power > 0.0) {
            return Err(DspError::InvalidTransitionPower(transition_power));
        }
        let cap = plan
            .segment()
            .saturating_add(plan.stride())
            .min(plan.length());
        Ok(Self {
            plan: *plan,
            n_outputs,
            weight: transition_window(plan.segment(), transition_power),
            acc: (0..n_outputs).map(|_| Vec::with_capacity(cap)).collect(),
            wsum: Vec::with_capacity(cap),
            base: 0,
            next_chunk: 0,
        })
    }

    /// The chunk plan this accumulator follows.
    pub fn plan(&self) -> &ChunkPlan {
        &self.plan
    }

    /// The per-chunk weights (`segment` values in `(0, 1]`).
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Number of samples (per output) already emitted by `drain_ready`.
    pub fn emitted(&self) -> usize {
        self.base
    }

    /// Index of the next chunk `add_chunk` expects.
    pub fn next_chunk(&self) -> usize {
        self.next_chunk
    }

    /// Whether every chunk of the plan has been added.
    fn is_complete(&self) -> bool {
        self.next_chunk == self.plan.num_chunks()
    }

    /// Adds the model output of chunk `i` (must equal [`next_chunk`](Self::next_chunk)).
    ///
    /// `data` holds the `n_outputs` outputs back to back, each
    /// `plan.chunk_len() = segment + 2·context` samples (the same read window
    /// as [`ChunkPlan::fill_chunk`]); the `context` samples on each side and
    /// everything past the signal end are discarded.
    pub fn add_chunk(&mut self, i: usize, data: &[f32]) -> Result<(), DspError> {
        if i != self.next_chunk {
            return Err(DspError::ChunkOrder {
                expected: self.next_chunk,
                got: i,
            });
        }
        let chunk = self.plan.chunk(i).ok_or(DspError::ChunkIndex {
            index: i,
            num_chunks: self.plan.num_chunks(),
        })?;
        let cl = self.plan.chunk_len();
        if data.len() != self.n_outputs * cl {
            return Err(DspError::ShapeMismatch {
                what: "overlap-add chunk",
                expected: self.n_outputs * cl,
                got: data.len(),
            });
        }
        // base <= start of the next chunk at all times, so chunk.start >= base.
        let off = chunk.start - self.base;
        let end = off + chunk.valid;
        if self.wsum.len() < end {
            self.wsum.resize(end, 0.0);
            for a in &mut self.acc {
                a.resize(end, 0.0);
            }
        }
        let w = &self.weight[..chunk.valid];
        for (ws, &wv) in self.wsum[off..end].iter_mut().zip(w) {
            *ws += wv;
        }
        let ctx = self.plan.context();
        for (k, a) in self.acc.iter_mut().enumerate() {
            let y = &data[k * cl + ctx..k * cl + ctx + chunk.valid];
            for ((av, &wv), &yv) in a[off..end].iter_mut().zip(w).zip(y) {
                *av += wv * yv;
            }
        }
        self.next_chunk += 1;
        Ok(())
    }

    /// End (exclusive) of the samples whose contributions are all in.
    fn ready_end(&self) -> usize {
        if self.is_complete() {
            self.plan.length()
        } else if self.next_chunk == 0 {
            0
        } else {
            let next_start = self.next_chunk * self.plan.stride();
            next_start.min(self.plan.length())
        }
    }

    /// Appends to `out[k]` (one `Vec` per output) every sample that no later
    /// chunk will touch, normalised by `Σw`, and frees it from the internal
    /// window. Returns the number of samples appended per output.
    pub fn drain_ready(&mut self, out: &mut [Vec<f32>]) -> Result<usize, DspError> {
        if out.len() != self.n_outputs {
            return Err(DspError::ShapeMismatch {
                what: "overlap-add outputs",
                expected: self.n_outputs,
                got: out.len(),
            });
        }
        let n = self.ready_end() - self.base;
        if n == 0 {
            return Ok(0);
        }
        let ws = &self.wsum[..n];
        // Invariant: Σw > 0 everywhere (all weights > 0, chunks cover the signal).
        debug_assert!(
            ws.iter().all(|&w| w > 0.0),
            "overlap-add weight sum must be > 0"
        );
        for (a, o) in self.acc.iter_mut().zip(out.iter_mut()) {
            o.extend(a[..n].iter().zip(ws).map(|(&av, &wv)| av / wv));
            a.drain(..n);
        }
        self.wsum.drain(..n);
        self.base += n;
        Ok(n)
    }

    /// Completes the overlap-add and returns the not-yet-drained samples of
    /// each output. Without prior `drain_ready` calls every returned `Vec`
    /// has exactly the plan's `length` samples (output length equals input
    /// length). Errors if some chunk was not added.
    pub fn finish(mut self) -> Result<Vec<Vec<f32>>, DspError> {
        if !self.is_complete() {
            return Err(DspError::IncompleteOverlapAdd {
                added: self.next_chunk,
                expected: self.plan.num_chunks(),
            });
        }
        let remaining = self.plan.length() - self.base;
        let mut out: Vec<Vec<f32>> = (0..self.n_outputs)
            .map(|_| Vec::with_capacity(remaining))
            .collect();
        self.drain_ready(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_matches_demucs() {
        assert_eq!(transition_window(4, 1.0), vec![0.5, 1.0, 1.0, 0.5]);
        assert_eq!(
            transition_window(5, 1.0),
            vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 3.0]
        );
        assert_eq!(transition_window(1, 2.0), vec![1.0]);
        assert_eq!(transition_window(4, 2.0), vec![0.25, 1.0, 1.0, 0.25]);
    }

    #[test]
    fn errors() {
        let plan = ChunkPlan::new(100, 10, 0.5, 2).unwrap();
        assert!(OverlapAdd::new(&plan, 1, 0.0).is_err());
        let mut ola = OverlapAdd::new(&plan, 1, 1.0).unwrap();
        let buf = vec![0.0; plan.chunk_len()];
        assert!(matches!(
            ola.add_chunk(1, &buf),
            Err(DspError::ChunkOrder {
                expected: 0,
                got: 1
            })
        ));
        assert!(ola.add_chunk(0, &buf[1..]).is_err());
        ola.add_chunk(0, &buf).unwrap();
        assert!(matches!(
            ola.finish(),
            Err(DspError::IncompleteOverlapAdd { added: 1, .. })
        ));
    }

    /// Runs the identity model; returns (one-shot output, streamed output, min Σw).
    fn run_identity(
        sig: &[Vec<f32>],
        plan: &ChunkPlan,
        p: f32,
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, f32) {
        let n = sig.len();
        let cl = plan.chunk_len();
        let mut batch = OverlapAdd::new(plan, n, p).unwrap();
        let mut stream = OverlapAdd::new(plan, n, p).unwrap();
        let mut streamed: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut buf = vec![0.0; n * cl];
        let mut max_window = 0;
        for c in plan.iter() {
            for (k, s) in sig.iter().enumerate() {
                plan.fill_chunk(c.index, s, &mut buf[k * cl..(k + 1) * cl])
                    .unwrap();
            }
            batch.add_chunk(c.index, &buf).unwrap();
            stream.add_chunk(c.index, &buf).unwrap();
            max_window = max_window.max(stream.wsum.len());
            stream.drain_ready(&mut streamed).unwrap();
        }
        assert!(
            max_window <= plan.segment() + plan.stride(),
            "streaming window stays bounded"
        );
        let min_w = batch.wsum.iter().fold(f32::INFINITY, |m, &w| m.min(w));
        assert_eq!(batch.wsum.len(), plan.length());
        let rest = stream.finish().unwrap();
        for (s, r) in streamed.iter_mut().zip(rest) {
            s.extend(r);
        }
        (batch.finish().unwrap(), streamed, min_w)
    }

    #[test]
    fn empty_signal() {
        let plan = ChunkPlan::new(0, 16, 0.25, 4).unwrap();
        let (a, b, _) = run_identity(&[vec![]], &plan, 1.0);
        assert!(a[0].is_empty() && b[0].is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn identity_model_reconstructs(
            length in 1usize..50000,
            segment in 16usize..4096,
            overlap in 0.0f32..0.95,
            power in prop_oneof![Just(1.0f32), Just(2.0f32)],
            context in 0usize..300,
            seed in any::<u64>(),
        ) {
            let plan = ChunkPlan::new(length, segment, overlap, context).unwrap();
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            };
            let sig: Vec<Vec<f32>> = (0..2).map(|_| (0..length).map(|_| next()).collect()).collect();
            let (batch, streamed, min_w) = run_identity(&sig, &plan, power);
            prop_assert!(min_w > 0.0, "sum of weights must be > 0 everywhere");
            for k in 0..2 {
                prop_assert_eq!(batch[k].len(), length);
                prop_assert_eq!(streamed[k].len(), length);
                // Streaming and one-shot are bit-identical.
                prop_assert!(batch[k].iter().zip(&streamed[k]).all(|(a, b)| a.to_bits() == b.to_bits()));
                let d = batch[k].iter().zip(&sig[k]).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                prop_assert!(d <= 1e-6, "identity reconstruction error {}", d);
            }
        }
    }
}
