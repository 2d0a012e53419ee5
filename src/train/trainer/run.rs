//! The training loop and validation.

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsAccumulator};
use rand::Rng;

use super::layout::plan_run;
use super::sample::{Sampler, step_rng};
use super::save::save_checkpoint;
use super::{StepLog, TrainConfig, TrainError, TrainEvent, TrainState, ValidLog, io};
use crate::cancel::CancelToken;
use crate::engine::device::ResolvedDevice;
use crate::model::config::ModelConfig;
use crate::model::loader::{from_state_dict, init_state_dict, to_state_dict};
use crate::model::network::TfLocoformer;
use crate::model::state_dict::{StateDict, load_state_dict};
use crate::train::dataset::{Track, check_for_training, scan, split_by_track};
use crate::train::run_dir;
use crate::train::step::{MicroStep, StepKit};

/// Trains; returns the final state. `stop` ends the run after the current step (with a save).
pub fn train(
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    resume: bool,
    stop: CancelToken,
    events: &mut dyn FnMut(TrainEvent),
) -> Result<TrainState, TrainError> {
    cfg.validate(model_cfg)?;
    if model_cfg.n_sources() != 4 {
        return Err(TrainError::Invalid(
            "training needs a 4-source model (vocals, drums, bass, other)".into(),
        ));
    }
    // The output folder: refused before any work if it is not ours to write into.
    let folder = run_dir::check_out(&cfg.out, resume, cfg.overwrite)?;
    let rate = model_cfg.sample_rate;
    let tracks = scan(&cfg.data)?;
    let (train_tracks, valid_tracks) = match &cfg.valid {
        Some(v) => (tracks, scan(v)?),
        None => split_by_track(tracks, 0.2),
    };
    check_for_training(&train_tracks)?;
    check_for_training(&valid_tracks)?;
    events(TrainEvent::Message(format!(
        "{} training tracks, {} validation tracks",
        train_tracks.len(),
        valid_tracks.len()
    )));
    let resolved = crate::engine::device::resolve(cfg.device)?;
    events(TrainEvent::Message(format!(
        "training on {}",
        resolved.description
    )));
    for w in &resolved.warnings {
        events(TrainEvent::Message(w.clone()));
    }
    // The device's limits (and the budget), before any work: a step that cannot fit is
    // refused here.
    let layout = plan_run(model_cfg, cfg, &resolved.device)?;
    for m in &layout.messages {
        events(TrainEvent::Message(m.clone()));
    }
    let sampler = Sampler {
        tracks: train_tracks,
        rate,
        len: layout.segment_samples,
        augment: cfg.augment.clone(),
    };
    let device = resolved.device.clone().autodiff();
    // Weights: resume > --from > fresh (check_out made sure a resume has a checkpoint).
    let last = cfg.out.join("last");
    let (sd, mut state): (StateDict, TrainState) = if resume {
        let st: TrainState = serde_json::from_str(
            &std::fs::read_to_string(last.join("state.json")).map_err(io("reading state.json"))?,
        )
        .map_err(|e| TrainError::Invalid(format!("state.json: {e}")))?;
        (load_state_dict(last.join("model.safetensors"))?, st)
    } else if let Some(from) = &cfg.from {
        (
            load_state_dict(from)?,
            TrainState {
                lr: cfg.lr,
                ..Default::default()
            },
        )
    } else {
        (
            init_state_dict(model_cfg, cfg.seed),
            TrainState {
                lr: cfg.lr,
                ..Default::default()
            },
        )
    };
    let mut model = from_state_dict(model_cfg, &sd, &device)?;
    // Clipping is global-norm (`train::clip`, as the reference trainers), applied before the
    // step; burn's own clipping would clip each tensor by its own norm.
    let mut optim = AdamWConfig::new()
        .with_beta_1(cfg.betas.0)
        .with_beta_2(cfg.betas.1)
        .with_epsilon(cfg.adam_eps)
        .with_weight_decay(cfg.weight_decay)
        .init();
    if resume {
        let opt_path = last.join("optimizer.bin");
        optim = optim.load(&opt_path).map_err(|e| {
            TrainError::Invalid(format!(
                "loading optimizer state {}: {e}",
                opt_path.display()
            ))
        })?;
        events(TrainEvent::Message(format!(
            "resumed at step {}",
            state.step
        )));
    }
    // Everything is checked: claim the folder (marker), clear what a killed run left.
    run_dir::claim_out(&cfg.out).map_err(io(format!("preparing {}", cfg.out.display())))?;
    let removed = run_dir::clean_leftovers(&cfg.out);
    if removed > 0 {
        events(TrainEvent::Message(format!(
            "removed {removed} temporary folder(s) of an interrupted run in {}",
            cfg.out.display()
        )));
    }
    if folder.is_run && !resume {
        events(TrainEvent::Message(format!(
            "{} holds an earlier run: its last/ and step checkpoints are replaced as this run \
             saves; best/ is kept unless this run validates better{}",
            cfg.out.display(),
            folder
                .best_to_beat
                .map(|b| format!(" than its {b:.2} dB"))
                .unwrap_or_default()
        )));
    }
    // The score an existing best/ must be beaten by (from the file, not this run's state).
    let mut best_on_disk = folder.best_to_beat;
    let js = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Invalid(e.to_string()))?;
    crate::audio::encode::write_atomic(&cfg.out.join("train.json"), true, |f| {
        std::io::Write::write_all(f, js.as_bytes())
    })?;
    let kit = StepKit::new(model_cfg, cfg.loss.clone(), layout.checkpoint, &device)?
        .with_path_chunk_bytes(layout.path_chunk_bytes);
    let t0 = Instant::now();
    while state.step < cfg.steps {
        let step = state.step;
        let mut acc = GradientsAccumulator::<TfLocoformer>::new();
        let (mut loss_sum, mut sdr_sum) = (0f32, vec![0f32; 4]);
        for micro in 0..cfg.accumulate {
            let mut rng = step_rng(cfg.seed, step, micro);
            device.seed(rng.random());
            let examples = (0..cfg.batch)
                .map(|_| sampler.example(&mut rng))
                .collect::<Result<Vec<_>, _>>()?;
            let batch = kit.host_batch(&examples, model_cfg)?;
            let MicroStep {
                loss: total,
                si_sdr,
                grads,
            } = kit.gradients_in_pieces(&model, &batch, layout.items_per_piece, &device);
            loss_sum += total
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default()
                .first()
                .copied()
                .unwrap_or(f32::NAN);
            for (a, b) in sdr_sum.iter_mut().zip(&si_sdr) {
                *a += b;
            }
            acc.accumulate(&model, grads);
        }
        let k = cfg.accumulate as f32;
        if !(loss_sum / k).is_finite() {
            // NaN weights would follow: stop before they are applied or saved.
            return Err(TrainError::Diverged {
                step: step + 1,
                loss: loss_sum / k,
            });
        }
        let mut grads = acc.grads();
        if cfg.grad_clip > 0.0 {
            crate::train::clip::clip_global_norm(&model, &mut grads, f64::from(cfg.grad_clip));
        }
        model = optim.step(state.lr, model, grads);
        state.step += 1;
        let log = StepLog {
            step: state.step,
            loss: loss_sum / k,
            si_sdr: sdr_sum.iter().map(|v| v / k).collect(),
            lr: state.lr,
        };
        state.steps.push(log.clone());
        events(TrainEvent::Step(log));
        let stopping = stop.is_cancelled();
        let end = state.step == cfg.steps || stopping;
        if !valid_tracks.is_empty()
            && ((cfg.valid_every > 0 && state.step % cfg.valid_every == 0) || end)
        {
            let v = validate(
                model_cfg,
                &model,
                &valid_tracks,
                cfg.valid_seconds,
                state.step,
                &resolved,
            )?;
            let improved = v.mean_sdr.is_finite() && state.best_sdr.is_none_or(|b| v.mean_sdr > b);
            if improved {
                state.best_sdr = Some(v.mean_sdr);
                state.since_best = 0;
            } else {
                state.since_best += 1;
                if state.since_best >= cfg.plateau_patience {
                    state.lr *= cfg.plateau_factor;
                    state.since_best = 0;
                    events(TrainEvent::Message(format!(
                        "validation plateau: learning rate → {:.2e}",
                        state.lr
                    )));
                }
            }
            let score = v.mean_sdr;
            state.valid.push(v.clone());
            events(TrainEvent::Valid(v));
            if improved {
                match best_on_disk {
                    Some(b) if score <= b => events(TrainEvent::Message(format!(
                        "validation mean SDR {score:.2} dB does not beat best/ ({b:.2} dB): best/ kept"
                    ))),
                    _ => {
                        save_checkpoint(&cfg.out.join("best"), model_cfg, &model, &optim, &state)?;
                        best_on_disk = Some(score);
                    }
                }
            }
        }
        if end || (cfg.save_every > 0 && state.step % cfg.save_every == 0) {
            let dir = cfg.out.join(run_dir::step_dir_name(state.step));
            save_checkpoint(&dir, model_cfg, &model, &optim, &state)?;
            save_checkpoint(&last, model_cfg, &model, &optim, &state)?;
            run_dir::prune(&cfg.out, cfg.keep_last, state.step);
            events(TrainEvent::Saved(dir));
        }
        if stopping {
            events(TrainEvent::Message(
                "stopped on request; checkpoint saved".into(),
            ));
            break;
        }
    }
    events(TrainEvent::Message(format!(
        "{} steps in {:.1} s",
        state.step,
        t0.elapsed().as_secs_f64()
    )));
    Ok(state)
}

/// Validation: separate the middle `seconds` of each track with the current weights on
/// `device` (the training device, without autodiff) and take museval SDR; median over tracks
/// per stem.
pub fn validate(
    cfg: &ModelConfig,
    model: &TfLocoformer,
    tracks: &[Track],
    seconds: f64,
    step: usize,
    device: &ResolvedDevice,
) -> Result<ValidLog, TrainError> {
    let sd = to_state_dict(cfg, model);
    let sep = crate::engine::Separator::new(cfg.clone(), &sd, device.clone())?;
    let scores = crate::train::eval::score_tracks(&sep, tracks, seconds)?;
    let sdr: Vec<f64> = (0..4)
        .map(|s| {
            crate::dsp::metrics::nan_median(&scores.iter().map(|t| t[s]).collect::<Vec<_>>())
                .unwrap_or(f64::NAN)
        })
        .collect();
    // NaN when no stem has a finite score (never a made-up 0 dB that could win best/).
    let finite = sdr.iter().filter(|v| v.is_finite()).count();
    let mean_sdr = if finite == 0 {
        f64::NAN
    } else {
        sdr.iter().filter(|v| v.is_finite()).sum::<f64>() / finite as f64
    };
    Ok(ValidLog {
        step,
        sdr,
        mean_sdr,
    })
}
