//! Shapes of one path of a block ([`Geom`]) and the byte lists stages are written in
//! ([`Parts`], [`Stage`]).

use super::category::Category;
use super::model::PlanModel;
use super::request::AttentionStrategy;
use super::units::F32;

/// A list of (category, bytes), merged by category.
#[derive(Debug, Clone, Default)]
pub(super) struct Parts(pub(super) Vec<(Category, u64)>);

impl Parts {
    /// Adds `bytes` to `category` (a new entry the first time; zero bytes add nothing).
    pub(super) fn add(&mut self, category: Category, bytes: u64) -> &mut Self {
        if bytes == 0 {
            return self;
        }
        if let Some(entry) = self.0.iter_mut().find(|(c, _)| *c == category) {
            entry.1 += bytes;
        } else {
            self.0.push((category, bytes));
        }
        self
    }

    /// [`Parts::add`] by value, for building a list in one expression.
    pub(super) fn with(mut self, category: Category, bytes: u64) -> Self {
        self.add(category, bytes);
        self
    }

    /// Adds every entry of `other`.
    pub(super) fn extend(&mut self, other: &Parts) -> &mut Self {
        for &(c, b) in &other.0 {
            self.add(c, b);
        }
        self
    }

    /// Sum of all entries, bytes.
    pub(super) fn total(&self) -> u64 {
        self.0.iter().map(|(_, b)| b).sum()
    }
}

/// A named moment of the run and what is alive then.
#[derive(Debug, Clone)]
pub(super) struct Stage {
    /// Phase and step, as the plan reports it (`peak during: …`).
    pub(super) name: String,
    /// Everything alive at this moment.
    pub(super) parts: Parts,
}

/// A [`Stage`] from a name and its parts.
pub(super) fn stage(name: impl Into<String>, parts: Parts) -> Stage {
    Stage {
        name: name.into(),
        parts,
    }
}

/// Which of the two paths of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathKind {
    /// Attention over the F bins (or nb bands), one sequence per frame.
    Frequency,
    /// Attention over the T frames, one sequence per bin (or band).
    Time,
}

/// Shapes of one path: `b` sequences of length `l`, everything else from the model.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    pub(super) kind: PathKind,
    /// Sequences: `B·T` (frequency) or `B·F` (time).
    pub(super) b: u64,
    /// Attended length: `F` (frequency) or `T` (time).
    pub(super) l: u64,
    /// Network items `B`.
    pub(super) items: u64,
    /// Embedding width `C`.
    pub(super) c: u64,
    /// Attention width `A`.
    pub(super) a: u64,
    /// Attention heads (≥ 1).
    pub(super) heads: u64,
    /// RMSGroupNorm groups (≥ 1).
    pub(super) groups: u64,
    /// FFN kernel `K` (≥ 1).
    pub(super) k: u64,
    /// FFN hidden widths `H` of FFN₀ and FFN₁.
    pub(super) hidden: [u64; 2],
    /// Activation element bytes.
    pub(super) e: u64,
}

impl Geom {
    /// The geometry of path `kind` for `items` network items of `t` frames with activation
    /// elements of `e` bytes. Heads, groups and kernel are clamped to ≥ 1 so that no divisor
    /// or `K − 1` below is zero.
    pub(super) fn new(kind: PathKind, model: &PlanModel, items: u64, t: u64, e: u64) -> Geom {
        // The frequency path's length: F bins, or nb bands (band-split).
        let lf = model.freq_len() as u64;
        let (b, l) = match kind {
            PathKind::Frequency => (items * t, lf),
            PathKind::Time => (items * lf, t),
        };
        Geom {
            kind,
            b,
            l,
            items,
            c: model.emb_dim as u64,
            a: model.attention_dim as u64,
            heads: model.n_heads.max(1) as u64,
            groups: model.num_groups.max(1) as u64,
            k: model.kernel.max(1) as u64,
            hidden: [model.ffn_hidden[0] as u64, model.ffn_hidden[1] as u64],
            e,
        }
    }

    /// "frequency" or "time".
    pub(super) fn name(&self) -> &'static str {
        match self.kind {
            PathKind::Frequency => "frequency",
            PathKind::Time => "time",
        }
    }

    /// What one sequence is: "frames" on the frequency path, "bins" on the time path.
    pub(super) fn unit(&self) -> &'static str {
        match self.kind {
            PathKind::Frequency => "frames",
            PathKind::Time => "bins",
        }
    }

    /// Padded FFN input length `L + 2(K−1)` (pad K−1 both sides).
    pub(super) fn l_pad(&self) -> u64 {
        self.l + 2 * (self.k - 1)
    }

    /// Conv1d output length `L + 2(K−1) − K + 1 = L + K − 1`.
    pub(super) fn l_conv(&self) -> u64 {
        self.l + self.k - 1
    }

    /// `[s, L, C]` activation bytes.
    pub(super) fn x(&self, s: u64) -> u64 {
        s * self.l * self.c * self.e
    }

    /// `[s, C, L+2(K−1)]` padded FFN input (also the deconv output before the crop).
    pub(super) fn pad(&self, s: u64) -> u64 {
        s * self.l_pad() * self.c * self.e
    }

    /// `[s, H, L+K−1]`: one H-wide slab of the FFN hidden.
    pub(super) fn hid(&self, s: u64, h: u64) -> u64 {
        s * self.l_conv() * h * self.e
    }

    /// `[s, heads, L, d]` = `[s, L, A]`: one of q, k, v or the attention output.
    pub(super) fn q(&self, s: u64) -> u64 {
        s * self.l * self.a * self.e
    }

    /// `[s·heads, L, L]` score tensor.
    pub(super) fn scores(&self, s: u64) -> u64 {
        s * self.heads * self.l * self.l * self.e
    }

    /// `[s, heads, L]` f32 log-sum-exp of the fused kernel.
    pub(super) fn lse(&self, s: u64) -> u64 {
        s * self.heads * self.l * F32
    }

    /// RMSGroupNorm statistics `[s, L, groups]`, f32.
    pub(super) fn stats(&self, s: u64) -> u64 {
        s * self.l * self.groups * F32
    }

    /// Sequences per attention call for a stage sub-batch of `s`.
    pub(super) fn attention_sub_batch(&self, s: u64, attention: AttentionStrategy) -> u64 {
        match attention {
            AttentionStrategy::Chunked { max_score_bytes } => {
                (max_score_bytes / self.scores(1).max(1)).clamp(1, s.max(1))
            }
            AttentionStrategy::Materialized | AttentionStrategy::Fused => s,
        }
    }

    /// "431 frames × 1 item" style description of the sequences.
    pub(super) fn batch_words(&self) -> String {
        let per_item = self.b / self.items.max(1);
        let item = if self.items == 1 { "item" } else { "items" };
        format!("{per_item} {} × {} {item}", self.unit(), self.items)
    }

    /// Names the score tensor of an attention call on `s_att` sequences, with its shape.
    pub(super) fn score_description(&self, s_att: u64) -> String {
        let who = if s_att == self.b {
            format!("batch = {}", self.batch_words())
        } else {
            format!(
                "sub-batch of {s_att} of {} sequences = {}",
                self.b,
                self.batch_words()
            )
        };
        format!(
            "{}-path attention scores [{}·{}, {}, {}] ({who})",
            self.name(),
            s_att,
            self.heads,
            self.l,
            self.l
        )
    }
}
