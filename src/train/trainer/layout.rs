//! How each training step runs on the device: the planner's answer applied.
//!
//! Always: no single buffer may exceed the device's largest (cubecl's `max_page_size`, 128 MiB
//! on lavapipe); when the step as asked would need one, its paths run in sub-batches and, if
//! whole-batch tensors are still too large, its micro-batch runs in pieces whose gradients are
//! accumulated ([`StepKit::gradients_in_pieces`](crate::train::step::StepKit::gradients_in_pieces)):
//! the same step, in more device calls. A run whose single item (one segment of one channel)
//! cannot fit is refused before any work, with the longest segment that would.
//!
//! With [`TrainConfig::budget`]: the planner's [`fit_with`] also chooses the segment,
//! checkpointing and offload for the budget, and the pieces keep the peak under it.

use burn::tensor::Device;

use super::{TrainConfig, TrainError};
use crate::memory::planner::{
    AttentionStrategy, BackendKind, Calibration, FitError, FitOptions, GIB, Mode, PlanRequest,
    Precision, StepLayout, fit_step, fit_with, format_bytes,
};
use crate::model::config::ModelConfig;
use crate::train::checkpoint::CheckpointOptions;

/// The settings a run's steps use, as planned.
#[derive(Debug, Clone)]
pub(super) struct AppliedLayout {
    /// Samples per training segment.
    pub(super) segment_samples: usize,
    /// Activation checkpointing with its path sub-batches and offload, or `None`.
    pub(super) checkpoint: Option<CheckpointOptions>,
    /// Cap on a path's intermediates ([`StepKit::with_path_chunk_bytes`](crate::train::step::StepKit::with_path_chunk_bytes)).
    pub(super) path_chunk_bytes: Option<usize>,
    /// Items of a micro-batch that go through the network together.
    pub(super) items_per_piece: usize,
    /// What was decided and why, for [`super::TrainEvent::Message`]; empty when the run goes as
    /// asked.
    pub(super) messages: Vec<String>,
}

/// Samples of a training segment of `seconds` for `model` (at least one STFT window).
pub(super) fn segment_samples(model: &ModelConfig, seconds: f64) -> usize {
    ((seconds * f64::from(model.sample_rate)).round() as usize).max(model.n_fft)
}

/// Plans the run `cfg` of `model` on `device` (plain or autodiff): see the module docs.
pub(super) fn plan_run(
    model: &ModelConfig,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<AppliedLayout, TrainError> {
    // Attention without a score tensor: the WGSL kernel on wgpu, the host kernel (forward and
    // backward, log-sum-exp saved) on flex — `StepKit` runs `AttentionImpl::Fused` on both.
    let wgpu = crate::kernels::attention::fused_available(device);
    let fused = wgpu || crate::kernels::attention::cpu_kernel_available(device);
    let limit = crate::kernels::device::max_allocation_bytes(device);
    let calibration = if wgpu {
        Calibration::WGPU
    } else {
        Calibration::FLEX
    };
    let mut pm = crate::engine::plan::plan_model(model);
    let mut segment = segment_samples(model, cfg.segment_seconds);
    let mut mode = if cfg.checkpointing {
        Mode::TrainingCheckpointed
    } else {
        Mode::Training
    };
    let mut offload = cfg.checkpointing && cfg.offload;
    let mut messages = Vec::new();
    let mut target = None;
    if let Some(budget) = cfg.budget {
        pm.segment_samples = segment;
        let min = segment_samples(model, cfg.min_segment_seconds(model))
            .max(model.sample_rate as usize)
            .min(segment);
        let options = FitOptions {
            calibration,
            min_segment_samples: Some(min),
            max_allocation_bytes: limit,
            ..FitOptions::default()
        };
        // Song channels 2: training segments are stereo, like the step planned below (two mono
        // items per segment, or one joint item for stereo models).
        let backend = if fused {
            BackendKind::Fused
        } else {
            BackendKind::NonFused
        };
        let fit = fit_with(&pm, budget, 2, mode, backend, &options).map_err(|e| {
            TrainError::Invalid(format!(
                "the memory budget (--budget) of {} cannot be kept: {e}",
                format_bytes(budget)
            ))
        })?;
        messages.extend(fit.explanation.iter().map(|l| format!("plan: {l}")));
        segment = fit.request.segment_samples;
        mode = fit.request.mode;
        offload = fit.request.offload_checkpoints;
        target = Some(fit.target_bytes);
        messages.push(format!(
            "plan applied: segment {:.2} s, {}{}",
            segment as f64 / f64::from(model.sample_rate),
            if mode == Mode::TrainingCheckpointed {
                "activation checkpointing"
            } else {
                "no checkpointing"
            },
            if offload {
                ", block inputs in host memory"
            } else {
                ""
            }
        ));
    }
    let step = PlanRequest {
        segment_samples: segment,
        batch: cfg.batch,
        song_channels: 2,
        mode,
        attention: if fused {
            AttentionStrategy::Fused
        } else {
            AttentionStrategy::Chunked {
                max_score_bytes: GIB,
            }
        },
        precision: Precision::F32,
        path_chunk_bytes: None,
        offload_checkpoints: offload,
        calibration,
    };
    let layout = fit_step(&pm, &step, limit, target).map_err(|e| refusal(model, segment, &e))?;
    if layout.is_split() || cfg.budget.is_some() {
        messages.extend(layout.explanation.iter().cloned());
    }
    Ok(applied(&layout, mode, offload, messages))
}

/// The trainer's settings from the planner's layout.
fn applied(layout: &StepLayout, mode: Mode, offload: bool, messages: Vec<String>) -> AppliedLayout {
    AppliedLayout {
        segment_samples: layout.request.segment_samples,
        checkpoint: (mode == Mode::TrainingCheckpointed).then_some(CheckpointOptions {
            frequency_rows: layout.frequency_rows,
            time_rows: layout.time_rows,
            offload,
        }),
        path_chunk_bytes: layout
            .request
            .path_chunk_bytes
            .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
        items_per_piece: layout.items_per_piece,
        messages,
    }
}

/// The error of a step that cannot be laid out, naming the segment and, for a buffer, what to
/// do about it.
fn refusal(model: &ModelConfig, segment: usize, e: &FitError) -> TrainError {
    let seconds = segment as f64 / f64::from(model.sample_rate);
    match e {
        FitError::BufferTooLarge { .. } => TrainError::Invalid(format!(
            "a training segment of {seconds:.2} s cannot run on this device: {e}; give a \
             shorter training segment (--segment)"
        )),
        FitError::NothingFits { .. } => TrainError::Invalid(format!(
            "a training step of {seconds:.2} s segments does not fit the memory budget even \
             one item at a time: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::planner::{MIB, with_items};
    use crate::model::loader::{from_state_dict, init_state_dict};
    use crate::train::dataset::Example;
    use crate::train::loss::LossConfig;
    use crate::train::step::{StepKit, compare_gradients, named_gradients};

    /// One layer, 8 channels, 2 heads, hidden 16, n_fft 256: the demo preset made tiny.
    fn tiny() -> ModelConfig {
        let mut cfg = crate::model::config::preset("demo")
            .expect("demo preset")
            .config;
        cfg.n_fft = 256;
        cfg.hop_length = 128;
        cfg.n_layers = 1;
        cfg.emb_dim = 8;
        cfg.n_heads = 2;
        cfg.attention_dim = 8;
        cfg.ffn_hidden_dim = vec![16, 16];
        cfg.num_groups = 2;
        cfg.segment_seconds = 0.5;
        cfg
    }

    /// `count` stereo examples of `n` samples, tones and noise; in every other example the
    /// bass is silent and in the first the vocals' right channel, so the pieces of a batch
    /// hold different numbers of active (non-silent) rows.
    fn examples(count: usize, n: usize) -> Vec<Example> {
        (0..count)
            .map(|e| {
                let mut stems: [[Vec<f32>; 2]; 4] = Default::default();
                for (s, stem) in stems.iter_mut().enumerate() {
                    for (c, ch) in stem.iter_mut().enumerate() {
                        let silent = (s == 2 && e % 2 == 1) || (s == 0 && e == 0 && c == 1);
                        let f = 110.0 * (s + 1) as f32 + 30.0 * (e + c) as f32;
                        *ch = (0..n)
                            .map(|i| {
                                let t = i as f32 / 44_100.0;
                                let noise = ((i * 7919 + e * 104_729 + s * 31) % 1000) as f32;
                                if silent {
                                    0.0
                                } else {
                                    0.2 * (std::f32::consts::TAU * f * t).sin()
                                        + 1e-5 * (noise - 500.0)
                                }
                            })
                            .collect();
                    }
                }
                Example { stems }
            })
            .collect()
    }

    /// The planner's request for a step of `batch` examples of `segment` samples on flex.
    fn step_request(segment: usize, batch: usize, mode: Mode) -> PlanRequest {
        PlanRequest {
            segment_samples: segment,
            batch,
            song_channels: 2,
            mode,
            attention: AttentionStrategy::Chunked {
                max_score_bytes: GIB,
            },
            precision: Precision::F32,
            path_chunk_bytes: None,
            offload_checkpoints: false,
            calibration: Calibration::FLEX,
        }
    }

    /// A step laid out under a device limit (paths in sub-batches, the batch in pieces) has the
    /// gradient of the unsplit step: forced on flex, which has no limit, through the layout the
    /// trainer applies; plain and checkpointed, and with uneven pieces.
    #[test]
    fn a_split_step_has_the_gradient_of_the_unsplit_one() {
        let model = tiny();
        let pm = crate::engine::plan::plan_model(&model);
        let device = Device::flex().autodiff();
        let net = from_state_dict(&model, &init_state_dict(&model, 5), &device).unwrap();
        let n = 22_050;
        let ex = examples(3, n);
        let loss = LossConfig::default();
        for mode in [Mode::Training, Mode::TrainingCheckpointed] {
            let step = step_request(n, 3, mode);
            // Under the whole batch's residual stream: pieces and path sub-batches.
            let whole = crate::memory::planner::plan(
                &pm,
                &PlanRequest {
                    path_chunk_bytes: Some(4 * MIB),
                    ..with_items(&pm, &step, 6)
                },
            );
            let limit = whole.largest_allocation_bytes - 1;
            let layout = fit_step(&pm, &step, Some(limit), None).expect("fits split");
            assert!(layout.pieces() > 1, "{:?}", layout.explanation);
            assert!(layout.request.path_chunk_bytes.is_some());
            let a = applied(&layout, mode, false, vec![]);
            assert_eq!(a.checkpoint.is_some(), mode == Mode::TrainingCheckpointed);
            if let Some(c) = a.checkpoint {
                assert!(c.frequency_rows.is_some() && c.time_rows.is_some());
            }

            let checkpoint = (mode == Mode::TrainingCheckpointed).then(CheckpointOptions::default);
            let plain = StepKit::new(&model, loss.clone(), checkpoint, &device).unwrap();
            let host = plain.host_batch(&ex, &model).unwrap();
            assert_eq!(host.items(), 6);
            let reference = plain.gradients_in_pieces(&net, &host, usize::MAX, &device);
            let want = named_gradients(&net, &reference.grads);
            let want_loss = reference.loss.into_scalar::<f32>();

            let split = StepKit::new(&model, loss.clone(), a.checkpoint, &device)
                .unwrap()
                .with_path_chunk_bytes(a.path_chunk_bytes);
            for pieces in [a.items_per_piece, 4] {
                let got = split.gradients_in_pieces(&net, &host, pieces, &device);
                let l = got.loss.into_scalar::<f32>();
                assert!(
                    (l - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
                    "{mode}, pieces of {pieces}: loss {l} vs {want_loss}"
                );
                for (g, w) in got.si_sdr.iter().zip(&reference.si_sdr) {
                    assert!(
                        (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                        "SI-SDR {g} vs {w}"
                    );
                }
                let cmp = compare_gradients(&named_gradients(&net, &got.grads), &want);
                assert_eq!(cmp.missing, 0);
                assert!(cmp.compared >= 20);
                assert!(
                    cmp.max_relative <= 1e-4,
                    "{mode}, pieces of {pieces}: {} differs by {:.3e}",
                    cmp.worst,
                    cmp.max_relative
                );
            }
        }
    }

    /// A step whose single item needs a buffer above the device's largest is refused with the
    /// tensor, its size, the limit, the longest segment that fits and the setting to change.
    #[test]
    fn refusal_names_the_buffer_the_limit_and_the_longest_segment() {
        let model = tiny();
        let pm = crate::engine::plan::plan_model(&model);
        let segment = 10 * 44_100;
        let step = step_request(segment, 1, Mode::Training);
        let limit = 8 * MIB;
        let e = fit_step(&pm, &step, Some(limit), None).expect_err("too large");
        let FitError::BufferTooLarge {
            what,
            bytes,
            longest_segment_seconds,
            ..
        } = &e
        else {
            panic!("{e}");
        };
        let longest = longest_segment_seconds.expect("a shorter segment fits");
        assert!(longest > 0.5 && longest < 10.0, "{longest}");
        let msg = refusal(&model, segment, &e).to_string();
        for needle in [
            "a training segment of 10.00 s cannot run on this device",
            what.as_str(),
            &format_bytes(*bytes),
            "8.00 MiB",
            &format!("the longest segment that fits is {longest:.3} s"),
            "--segment",
        ] {
            assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
        }
    }
}
