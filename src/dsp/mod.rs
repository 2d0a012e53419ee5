//! Signal-processing building blocks for locosep.
//!
//! * [`stft`]: STFT / iSTFT bit-compatible (to float rounding) with
//!   `torch.stft` / `torch.istft` (periodic Hann, `center=True`, reflect pad).
//! * [`chunk`]: how a long signal is cut into overlapping model-sized chunks.
//! * [`ola`]: weighted overlap-add of per-chunk model outputs, batch or streaming.
//! * [`metrics`]: separation metrics (SI-SDR, MDX "uSDR", museval v4 SDR).

pub mod chunk;
pub mod metrics;
pub mod ola;
pub mod stft;

/// Errors produced by the DSP module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    /// STFT parameters are unusable.
    #[error("invalid STFT parameters: n_fft = {n_fft}, hop = {hop} (need n_fft >= 2 and 1 <= hop)")]
    InvalidStftParams {
        /// FFT size requested.
        n_fft: usize,
        /// Hop size requested.
        hop: usize,
    },
    /// Signal too short for `center=True` reflect padding (torch refuses it too).
    #[error("signal too short for STFT reflect padding: {len} samples, need at least {min}")]
    TooShort {
        /// Length of the offending signal.
        len: usize,
        /// Minimum accepted length (`n_fft/2 + 1`).
        min: usize,
    },
    /// A buffer did not have the expected size.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which argument was wrong.
        what: &'static str,
        /// Expected number of elements.
        expected: usize,
        /// Actual number of elements.
        got: usize,
    },
    /// Chunk overlap outside `[0, 1)`.
    #[error("invalid chunk overlap {0}: must be in the range [0, 1)")]
    InvalidOverlap(f32),
    /// Chunk segment length of zero.
    #[error("invalid chunk segment length {0}: must be >= 1")]
    InvalidSegment(usize),
    /// Transition power must be finite and > 0.
    #[error("invalid transition power {0}: must be finite and > 0")]
    InvalidTransitionPower(f32),
    /// Chunk index out of range.
    #[error("chunk index {index} out of range (plan has {num_chunks} chunks)")]
    ChunkIndex {
        /// Requested index.
        index: usize,
        /// Number of chunks in the plan.
        num_chunks: usize,
    },
    /// Chunks must be added to the overlap-add in increasing order, exactly once.
    #[error("chunk {got} added out of order to overlap-add (expected chunk {expected})")]
    ChunkOrder {
        /// Next chunk index the accumulator expected.
        expected: usize,
        /// Chunk index that was supplied.
        got: usize,
    },
    /// `finish` was called before all chunks were added.
    #[error("overlap-add incomplete: {added} of {expected} chunks were added")]
    IncompleteOverlapAdd {
        /// Chunks added so far.
        added: usize,
        /// Chunks in the plan.
        expected: usize,
    },
    /// A metric input was invalid (e.g. museval's "silent source" rule).
    #[error("invalid metric input: {0}")]
    InvalidMetricInput(String),
}
