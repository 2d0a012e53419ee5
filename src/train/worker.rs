//! Training behind channels, for front ends that must not block (the GUI's Fine-tune tab): a
//! worker thread takes [`TrainCommand`]s and answers with [`TrainUpdate`]s, one run at a time.
//! It never names a GUI type; it calls `notify` after each update (the GUI passes
//! `ctx.request_repaint`).

use crate::cancel::CancelToken;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::trainer::{TrainConfig, TrainEvent, train};
use crate::memory::sampler::{MemorySample, MemorySampler};
use crate::model::config::{ModelConfig, preset};

/// Which architecture a run trains.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// A built-in preset by name.
    Preset(String),
    /// A config file (TOML, reference JSON, fork YAML).
    Config(PathBuf),
}

impl ModelSpec {
    fn resolve(&self) -> Result<ModelConfig, String> {
        match self {
            ModelSpec::Preset(name) => preset(name).map(|p| p.config),
            ModelSpec::Config(path) => ModelConfig::from_file(path),
        }
        .map_err(|e| e.to_string())
    }
}

/// A request to the training worker.
#[derive(Debug, Clone)]
pub enum TrainCommand {
    /// Start a run (refused while one is running).
    Start {
        /// Architecture.
        model: ModelSpec,
        /// Data, output folder, steps, optimiser settings.
        config: Box<TrainConfig>,
        /// Continue the run in `config.out` from its `last/` checkpoint.
        resume: bool,
    },
    /// Stop the running run after its current step; it saves a checkpoint first.
    Stop,
    /// Stop any run and end the worker.
    Shutdown,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum TrainUpdate {
    /// A run started.
    Started {
        /// Its output folder.
        out: PathBuf,
        /// Its step target.
        steps: usize,
    },
    /// Progress of the run (steps, validations, checkpoints, messages).
    Event(TrainEvent),
    /// Memory while training, sampled every 500 ms: on a GPU the device allocator's in-use
    /// and reserved bytes, and always the process's resident set.
    Memory(MemorySample),
    /// The run ended (all steps done, or stopped) with its checkpoint written.
    Finished {
        /// Steps done.
        steps: usize,
        /// `config.json` of the checkpoint to use (`best/` when validation ran, else `last/`).
        config: PathBuf,
        /// Its `model.safetensors`.
        checkpoint: PathBuf,
        /// Whether it ended early on a Stop.
        stopped: bool,
    },
    /// The run could not start or failed; the message says why.
    Failed(String),
}

/// Starts the worker thread; returns its command and update channels.
pub fn spawn(
    notify: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<(Sender<TrainCommand>, Receiver<TrainUpdate>)> {
    let (cmd_tx, cmd_rx) = channel::<TrainCommand>();
    let (up_tx, up_rx) = channel::<TrainUpdate>();
    let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(notify);
    std::thread::Builder::new()
        .name("locosep-train".into())
        .spawn(move || worker(cmd_rx, up_tx, notify))?;
    Ok((cmd_tx, up_rx))
}

fn worker(
    commands: Receiver<TrainCommand>,
    updates: Sender<TrainUpdate>,
    notify: Arc<dyn Fn() + Send + Sync>,
) {
    let mut running: Option<(CancelToken, JoinHandle<()>)> = None;
    let send = {
        let updates = updates.clone();
        let notify = notify.clone();
        move |u: TrainUpdate| {
            let _ = updates.send(u);
            notify();
        }
    };
    while let Ok(cmd) = commands.recv() {
        if running.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            running = None;
        }
        match cmd {
            TrainCommand::Start {
                model,
                config,
                resume,
            } => {
                if running.is_some() {
                    send(TrainUpdate::Failed(
                        "a training run is already in progress: stop it first".into(),
                    ));
                    continue;
                }
                let model_cfg = match model.resolve() {
                    Ok(c) => c,
                    Err(e) => {
                        send(TrainUpdate::Failed(e));
                        continue;
                    }
                };
                let stop = CancelToken::new();
                let flag = stop.clone();
                let send_run = send.clone();
                let handle = std::thread::Builder::new()
                    .name("locosep-train-run".into())
                    .spawn(move || run(model_cfg, *config, resume, flag, send_run));
                match handle {
                    Ok(h) => running = Some((stop, h)),
                    Err(e) => send(TrainUpdate::Failed(format!(
                        "cannot start the training thread: {e}"
                    ))),
                }
            }
            TrainCommand::Stop => {
                if let Some((stop, _)) = &running {
                    stop.cancel();
                }
            }
            TrainCommand::Shutdown => break,
        }
    }
    if let Some((stop, h)) = running {
        stop.cancel();
        let _ = h.join();
    }
}

fn run(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    resume: bool,
    stop: CancelToken,
    send: impl Fn(TrainUpdate) + Clone + Send + 'static,
) {
    send(TrainUpdate::Started {
        out: cfg.out.clone(),
        steps: cfg.steps,
    });
    let (mem_tx, mem_rx) = MemorySampler::channel();
    // The device the trainer picks for the same choice (one device per adapter: its allocator
    // is the one training uses). Where none resolves the trainer says why; the process is
    // sampled meanwhile.
    let device = crate::engine::device::resolve(cfg.device)
        .map(|d| d.device)
        .unwrap_or_else(|_| burn::tensor::Device::flex());
    let sampler = MemorySampler::start(device, Duration::from_millis(500), Some(mem_tx));
    let forward = {
        let send = send.clone();
        std::thread::spawn(move || {
            for sample in mem_rx {
                send(TrainUpdate::Memory(sample));
            }
        })
    };
    let mut on_event = |e: TrainEvent| send(TrainUpdate::Event(e));
    let result = train(&model_cfg, &cfg, resume, stop.clone(), &mut on_event);
    drop(sampler.stop());
    let _ = forward.join();
    match result {
        Ok(state) => {
            let best = cfg.out.join("best");
            let dir = if best.join("model.safetensors").exists() {
                best
            } else {
                cfg.out.join("last")
            };
            send(TrainUpdate::Finished {
                steps: state.step,
                config: dir.join("config.json"),
                checkpoint: dir.join("model.safetensors"),
                stopped: stop.is_cancelled(),
            });
        }
        Err(e) => send(TrainUpdate::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_fail_with_a_message_and_the_worker_stays_usable() {
        let (tx, rx) = spawn(|| {}).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let config = TrainConfig {
            data: tmp.path().join("no such folder"),
            out: tmp.path().join("out"),
            steps: 1,
            ..Default::default()
        };
        tx.send(TrainCommand::Start {
            model: ModelSpec::Preset("no-such-preset".into()),
            config: Box::new(config.clone()),
            resume: false,
        })
        .unwrap();
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            TrainUpdate::Failed(msg) => assert!(msg.contains("no-such-preset"), "{msg}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        // A valid preset with a missing data folder: starts, then fails naming the folder.
        tx.send(TrainCommand::Start {
            model: ModelSpec::Preset("demo".into()),
            config: Box::new(config),
            resume: false,
        })
        .unwrap();
        let mut failure = None;
        for _ in 0..20 {
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                TrainUpdate::Failed(msg) => {
                    failure = Some(msg);
                    break;
                }
                _ => continue,
            }
        }
        let msg = failure.expect("the run should fail");
        assert!(msg.contains("no such folder"), "{msg}");
        tx.send(TrainCommand::Shutdown).unwrap();
    }
}
