//! The phases of a whole run, one list per [`Mode`](super::Mode): what is alive around each
//! stage of each path (static memory is added by `plan`). The peak of the run is the largest
//! phase.

use super::category::Category;
use super::geometry::{Geom, Parts, Stage, stage};
use super::model::PlanModel;
use super::request::{AttentionStrategy, PlanRequest};
use super::run::RunShapes;
use super::stages::{path_backward_stages, path_inference_stages, saved_per_sequence};

/// One forward without autograd: encoder, both paths of one block (every block is alike and
/// frees its input), decoder. The host waveforms are counted throughout.
///
/// `subs[i]` is the sub-batch of `paths[i]`; a chunked path (`sub < sequences`) writes into a
/// preallocated output beside its input.
pub(super) fn inference_phases(
    run: &RunShapes,
    paths: &[Geom; 2],
    subs: &[u64; 2],
    attention: AttentionStrategy,
) -> Vec<Stage> {
    let x_full = run.x_full;
    let host = run.stft.inference_host();
    let mut phases = Vec::new();
    // Encoder Conv2d: spectrogram in, output [B, C, T, F], and an im2col buffer
    // [B, 2ac·9, T·F] where the backend lowers the conv to a matmul.
    phases.push(stage(
        "encoder conv",
        Parts::default()
            .with(Category::StftBuffers, host + run.stft.spec_in)
            .with(Category::ResidentActivations, x_full)
            .with(Category::Workspace, run.enc_workspace),
    ));
    // GroupNorm(1 group): the centred tensor (in place on the moved conv output) and
    // its square for the variance.
    phases.push(stage(
        "encoder GroupNorm",
        Parts::default()
            .with(Category::StftBuffers, host)
            .with(Category::ResidentActivations, x_full)
            .with(Category::Workspace, x_full),
    ));
    for (g, &s) in paths.iter().zip(subs) {
        let chunked = s < g.b;
        // Path input (and, chunked, the preallocated path output).
        let resident = if chunked { 2 * x_full } else { x_full };
        phases.push(stage(
            format!("{} path boundary: residual + permuted copy", g.name()),
            Parts::default()
                .with(Category::StftBuffers, host)
                .with(Category::ResidentActivations, 2 * x_full),
        ));
        for st in path_inference_stages(g, s, attention, chunked) {
            let mut parts = Parts::default()
                .with(Category::StftBuffers, host)
                .with(Category::ResidentActivations, resident);
            parts.extend(&st.parts);
            phases.push(stage(st.name, parts));
        }
    }
    // Decoder ConvTranspose2d: input, output spectra, and a column buffer
    // [B, 2·S·ac·9, T·F] where the backend lowers it to a matmul.
    phases.push(stage(
        "decoder",
        Parts::default()
            .with(Category::StftBuffers, host + run.stft.spec_out)
            .with(Category::ResidentActivations, x_full)
            .with(Category::Workspace, run.dec_workspace),
    ));
    phases
}

/// One training step without checkpointing: the backward of each path with every block's
/// saved activations, the loss buffers and the encoder/decoder's saved tensors alive.
pub(super) fn training_phases(
    model: &PlanModel,
    run: &RunShapes,
    paths: &[Geom; 2],
    subs: &[u64; 2],
    attention: AttentionStrategy,
) -> Vec<Stage> {
    let x_full = run.x_full;
    let mut saved = Parts::default()
        .with(Category::StftBuffers, run.stft.training())
        // Encoder GroupNorm keeps its input and normalised input; the decoder its input.
        .with(Category::SavedEncoderDecoder, 3 * x_full);
    let block: u64 = paths
        .iter()
        .map(|g| g.b * saved_per_sequence(g, attention).0)
        .sum();
    for i in 0..model.n_layers {
        saved.add(Category::SavedActivations { block: i }, block);
    }
    let mut phases = Vec::new();
    for (g, &s) in paths.iter().zip(subs) {
        let chunk = if s < g.b { 2 * g.x(s) } else { 0 };
        for st in path_backward_stages(g, s, attention, chunk) {
            let mut parts = saved.clone();
            // Gradient of the residual stream flowing in and out of the stage.
            parts.add(Category::Workspace, 2 * x_full).extend(&st.parts);
            phases.push(stage(format!("backward, {}", st.name), parts));
        }
    }
    phases
}

/// One checkpointed training step: the phases of `train::checkpoint` (see its module docs),
/// at the last block, where the most block inputs are kept. Block inputs stay on the device
/// unless offloaded (then only the one being worked on is).
pub(super) fn checkpointed_phases(
    model: &PlanModel,
    req: &PlanRequest,
    run: &RunShapes,
    paths: &[Geom; 2],
    subs: &[u64; 2],
) -> Vec<Stage> {
    let x_full = run.x_full;
    let attention = req.attention;
    let n_layers = model.n_layers as u64;
    let kept = |blocks: u64| {
        let mut parts = Parts::default();
        if !req.offload_checkpoints {
            for i in 0..blocks.min(n_layers) {
                parts.add(Category::SavedActivations { block: i as usize }, x_full);
            }
        }
        parts
    };
    let mut phases = Vec::new();
    // 1. Forward without autograd, last block: the earlier inputs kept, this block's
    //    input alive, and a path's inference stages on its sub-batches.
    for (g, &s) in paths.iter().zip(subs) {
        let chunked = s < g.b;
        let resident = if chunked { 2 * x_full } else { x_full };
        let mut boundary = kept(n_layers - 1);
        boundary.add(Category::ResidentActivations, 3 * x_full);
        phases.push(stage(
            format!("no-grad forward, {} path boundary", g.name()),
            boundary,
        ));
        for st in path_inference_stages(g, s, attention, chunked) {
            let mut parts = kept(n_layers - 1);
            parts
                .add(Category::ResidentActivations, x_full + resident)
                .extend(&st.parts);
            phases.push(stage(format!("no-grad forward, {}", st.name), parts));
        }
    }
    // 2. Decoder and loss with autograd: every block input kept, the last block's
    //    output (the leaf), the loss buffers, and its gradient with the decoder's
    //    transients.
    let mut head = kept(n_layers);
    head.add(Category::StftBuffers, run.stft.training())
        .add(Category::SavedEncoderDecoder, x_full)
        .add(Category::Workspace, 2 * x_full);
    phases.push(stage("decoder and loss backward", head));
    // 3. The last block's backward, second path first: the earlier inputs kept; this
    //    block's input, the second path's input and the output gradient as rows, the
    //    input gradient being assembled; one sub-batch recomputed with autograd and its
    //    backward.
    for (g, &s) in paths.iter().zip(subs).rev() {
        let chunk = if s < g.b { 2 * g.x(s) } else { 0 };
        let saved_sub = s * saved_per_sequence(g, attention).0;
        for st in path_backward_stages(g, s, attention, chunk) {
            let mut parts = kept(n_layers - 1);
            parts
                .add(Category::ResidentActivations, 4 * x_full)
                .add(Category::RecomputedBlock, saved_sub)
                .extend(&st.parts);
            phases.push(stage(
                format!("recomputed sub-batch backward, {}", st.name),
                parts,
            ));
        }
    }
    // 4. Encoder with autograd: the gradient, the spectrogram, the conv output and the
    //    GroupNorm's kept tensors, and the backward's transients.
    phases.push(stage(
        "encoder backward",
        Parts::default()
            .with(Category::StftBuffers, run.stft.spec_in)
            .with(Category::ResidentActivations, x_full)
            .with(Category::SavedEncoderDecoder, 3 * x_full)
            .with(Category::Workspace, 2 * x_full),
    ));
    phases
}
