//! The engine worker: named threads that own the models and run jobs for a front end.
//!
//! ```text
//! front end ──EngineCommand──▶ inbox thread ──┬─ LoadSong ─▶ decode thread (one per file)
//!                                              ├─ Cancel ───▶ sets the job's CancelToken now
//!                                              └─ jobs ─────▶ engine thread (a FIFO queue)
//! front end ◀──EngineEvent─── every thread, each send followed by `notify()`
//! ```
//!
//! The inbox never blocks on work, so a `Cancel` reaches a running separation at once (it
//! stops before its next chunk). The engine thread keeps the last loaded model and device, so
//! separating several songs with one preset loads it once. While a separation runs, a
//! [`MemorySampler`] reads the device's allocator every 100 ms and each reading is forwarded as
//! [`EngineEvent::Memory`].

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::audio::AudioBuffer;
use crate::audio::decode::{DecodeOptions, decode_file, decode_file_with_stats, decode_warnings};
use crate::engine::EngineError;
use crate::engine::device::{DeviceChoice, resolve, wgpu_adapters};
use crate::engine::export::{ExportOptions, track_name};
use crate::engine::load::{human_count, load_model};
use crate::engine::messages::{DeviceInfo, EngineCommand, EngineEvent, JobId, ModelChoice};
use crate::engine::separator::{CancelToken, SeparateParams, Separator, Stems};
use crate::memory::sampler::{MemorySample, MemorySampler};

/// How often the memory sampler reads the allocator while a separation runs.
const MEMORY_INTERVAL: Duration = Duration::from_millis(100);

/// Starts the engine threads.
pub struct EngineHandle;

impl EngineHandle {
    /// Spawns the worker threads and returns the command sender and the event receiver.
    ///
    /// `notify` is called after every event is sent (the GUI passes `ctx.request_repaint`).
    /// Dropping the sender (or sending [`EngineCommand::Shutdown`]) stops the threads after the
    /// running job (which `Shutdown` cancels).
    pub fn spawn(
        notify: impl Fn() + Send + Sync + 'static,
    ) -> io::Result<(Sender<EngineCommand>, Receiver<EngineEvent>)> {
        let (cmd_tx, cmd_rx) = channel::<EngineCommand>();
        let (ev_tx, ev_rx) = channel::<EngineEvent>();
        let out = Outbox {
            tx: ev_tx,
            notify: Arc::new(notify),
        };
        let tokens: Tokens = Arc::new(Mutex::new(HashMap::new()));
        let (job_tx, job_rx) = channel::<Job>();

        let worker_out = out.clone();
        let worker_tokens = tokens.clone();
        std::thread::Builder::new()
            .name("locosep-engine".into())
            .spawn(move || run_jobs(&job_rx, &worker_out, &worker_tokens))?;
        std::thread::Builder::new()
            .name("locosep-engine-inbox".into())
            .spawn(move || run_inbox(&cmd_rx, &job_tx, &out, &tokens))?;
        Ok((cmd_tx, ev_rx))
    }
}

/// Cancel tokens of queued and running jobs.
type Tokens = Arc<Mutex<HashMap<JobId, CancelToken>>>;

/// Sends events and wakes the front end.
#[derive(Clone)]
struct Outbox {
    tx: Sender<EngineEvent>,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    fn send(&self, event: EngineEvent) {
        // A closed receiver means the front end is gone; nothing left to tell.
        if self.tx.send(event).is_ok() {
            (self.notify)();
        }
    }
}

/// Work for the engine thread.
enum Job {
    Separate {
        job: JobId,
        song: Arc<AudioBuffer>,
        model: ModelChoice,
        device: DeviceChoice,
        params: SeparateParams,
    },
    SeparateFile {
        job: JobId,
        path: std::path::PathBuf,
        model: ModelChoice,
        device: DeviceChoice,
        params: SeparateParams,
        export: ExportOptions,
    },
    Export {
        job: JobId,
        stems: Arc<Stems>,
        track: String,
        options: ExportOptions,
    },
    ListDevices,
}

fn lock(tokens: &Tokens) -> std::sync::MutexGuard<'_, HashMap<JobId, CancelToken>> {
    // The map holds plain tokens; a panic elsewhere cannot leave it inconsistent.
    tokens.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register(tokens: &Tokens, job: JobId) -> CancelToken {
    let token = CancelToken::new();
    lock(tokens).insert(job, token.clone());
    token
}

fn run_inbox(
    commands: &Receiver<EngineCommand>,
    jobs: &Sender<Job>,
    out: &Outbox,
    tokens: &Tokens,
) {
    while let Ok(cmd) = commands.recv() {
        let queued = match cmd {
            EngineCommand::LoadSong { job, path } => {
                let thread_out = out.clone();
                let thread_path = path.clone();
                let spawned = std::thread::Builder::new()
                    .name("locosep-decode".into())
                    .spawn(move || decode_job(job, &thread_path, &thread_out));
                if let Err(e) = spawned {
                    out.send(EngineEvent::LoadFailed {
                        job,
                        path,
                        error: format!("cannot start a decode thread: {e}"),
                    });
                }
                continue;
            }
            EngineCommand::Cancel { job } => {
                if let Some(token) = lock(tokens).get(&job) {
                    token.cancel();
                }
                continue;
            }
            EngineCommand::Shutdown => {
                for token in lock(tokens).values() {
                    token.cancel();
                }
                return;
            }
            EngineCommand::Separate {
                job,
                song,
                model,
                device,
                params,
            } => {
                register(tokens, job);
                Job::Separate {
                    job,
                    song,
                    model,
                    device,
                    params,
                }
            }
            EngineCommand::SeparateFile {
                job,
                path,
                model,
                device,
                params,
                export,
            } => {
                register(tokens, job);
                Job::SeparateFile {
                    job,
                    path,
                    model,
                    device,
                    params,
                    export,
                }
            }
            EngineCommand::Export {
                job,
                stems,
                track,
                options,
            } => {
                register(tokens, job);
                Job::Export {
                    job,
                    stems,
                    track,
                    options,
                }
            }
            EngineCommand::ListDevices => Job::ListDevices,
        };
        if jobs.send(queued).is_err() {
            return;
        }
    }
    // The front end dropped its sender: stop whatever runs.
    for token in lock(tokens).values() {
        token.cancel();
    }
}

fn decode_job(job: JobId, path: &Path, out: &Outbox) {
    let result = decode_file_with_stats(
        path,
        &DecodeOptions {
            downmix: true,
            ..Default::default()
        },
    );
    out.send(match result {
        Ok((audio, stats)) => EngineEvent::SongLoaded {
            job,
            path: path.to_path_buf(),
            audio: Arc::new(audio),
            warnings: decode_warnings(path, stats.skipped_packets, stats.nonfinite_samples),
        },
        Err(e) => EngineEvent::LoadFailed {
            job,
            path: path.to_path_buf(),
            error: e.to_string(),
        },
    });
}

/// The model kept between jobs.
struct Loaded {
    model: ModelChoice,
    device: DeviceChoice,
    separator: Separator,
    description: String,
}

fn run_jobs(jobs: &Receiver<Job>, out: &Outbox, tokens: &Tokens) {
    let mut cache: Option<Loaded> = None;
    while let Ok(job) = jobs.recv() {
        match job {
            Job::ListDevices => out.send(EngineEvent::Devices(list_devices())),
            Job::Separate {
                job,
                song,
                model,
                device,
                params,
            } => {
                let token = token_of(tokens, job);
                match separate(job, &song, &model, device, &params, &token, &mut cache, out) {
                    Ok((stems, seconds, peak_bytes)) => out.send(EngineEvent::Separated {
                        job,
                        stems: Arc::new(stems),
                        seconds,
                        peak_bytes,
                    }),
                    Err(e) => report(job, e, out),
                }
                lock(tokens).remove(&job);
            }
            Job::SeparateFile {
                job,
                path,
                model,
                device,
                params,
                export,
            } => {
                let token = token_of(tokens, job);
                let result = decode_file(
                    &path,
                    &DecodeOptions {
                        downmix: true,
                        ..Default::default()
                    },
                )
                .map_err(EngineError::from)
                .and_then(|song| {
                    separate(job, &song, &model, device, &params, &token, &mut cache, out)
                });
                match result {
                    Ok((stems, seconds, peak_bytes)) => {
                        let stems = Arc::new(stems);
                        out.send(EngineEvent::Separated {
                            job,
                            stems: stems.clone(),
                            seconds,
                            peak_bytes,
                        });
                        match export.write(&track_name(&path), &stems) {
                            Ok(paths) => out.send(EngineEvent::Exported { job, paths }),
                            Err(e) => report(job, e, out),
                        }
                    }
                    Err(e) => report(job, e, out),
                }
                lock(tokens).remove(&job);
            }
            Job::Export {
                job,
                stems,
                track,
                options,
            } => {
                let token = token_of(tokens, job);
                if token.is_cancelled() {
                    out.send(EngineEvent::Cancelled { job });
                } else {
                    match options.write(&track, &stems) {
                        Ok(paths) => out.send(EngineEvent::Exported { job, paths }),
                        Err(e) => report(job, e, out),
                    }
                }
                lock(tokens).remove(&job);
            }
        }
    }
}

fn token_of(tokens: &Tokens, job: JobId) -> CancelToken {
    lock(tokens).get(&job).cloned().unwrap_or_default()
}

fn report(job: JobId, error: EngineError, out: &Outbox) {
    out.send(match error {
        EngineError::Cancelled => EngineEvent::Cancelled { job },
        other => EngineEvent::Failed {
            job,
            error: other.to_string(),
        },
    });
}

/// Loads (or reuses) the model, runs the separation with live memory sampling.
#[allow(clippy::too_many_arguments)]
fn separate(
    job: JobId,
    song: &AudioBuffer,
    model: &ModelChoice,
    device: DeviceChoice,
    params: &SeparateParams,
    token: &CancelToken,
    cache: &mut Option<Loaded>,
    out: &Outbox,
) -> Result<(Stems, f64, Option<u64>), EngineError> {
    if token.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    let reuse = cache
        .as_ref()
        .is_some_and(|l| &l.model == model && l.device == device);
    if !reuse {
        // Free the old model before loading the next one: both may not fit at once.
        *cache = None;
        let loaded = load_model(model)?;
        let resolved = resolve(device)?;
        let description = format!(
            "{} ({} parameters)",
            loaded.description,
            human_count(loaded.config.param_count())
        );
        let separator = Separator::new(loaded.config, &loaded.weights, resolved)?;
        *cache = Some(Loaded {
            model: model.clone(),
            device,
            separator,
            description,
        });
    }
    let loaded = cache
        .as_ref()
        .ok_or_else(|| EngineError::BadParameter("the model could not be kept loaded".into()))?;
    let separator = &loaded.separator;
    out.send(EngineEvent::Started {
        job,
        model: loaded.description.clone(),
        device: separator.device().description.clone(),
        warnings: separator.device().warnings.clone(),
    });

    let (mem_tx, mem_rx) = channel::<MemorySample>();
    let forward_out = out.clone();
    // The forwarder ends when the sampler drops its sender (on `stop`).
    let forwarder = std::thread::Builder::new()
        .name("locosep-memory-forward".into())
        .spawn(move || {
            while let Ok(sample) = mem_rx.recv() {
                forward_out.send(EngineEvent::Memory { job, sample });
            }
        })
        .ok();
    let sampler = MemorySampler::start(
        separator.device().device.clone(),
        MEMORY_INTERVAL,
        Some(mem_tx),
    );
    let start = Instant::now();
    let result = separator.separate_or_cpu(
        song,
        params,
        token,
        &mut |p| {
            out.send(EngineEvent::Progress {
                job,
                done: p.done,
                total: p.total,
                elapsed: p.elapsed,
            });
        },
        // A GPU failure: the job goes on with a smaller plan or on the CPU; the front end is
        // told which device runs it now and why.
        &mut |device, warning| {
            out.send(EngineEvent::Started {
                job,
                model: loaded.description.clone(),
                device: device.into(),
                warnings: vec![warning],
            })
        },
    );
    let seconds = start.elapsed().as_secs_f64();
    let trace = sampler.stop();
    if let Some(handle) = forwarder {
        // The forwarder only sends; it cannot panic in a way we could act on.
        let _ = handle.join();
    }
    let peak = trace.peak_in_use.or(trace.peak_reserved).or(trace.peak_rss);
    result.map(|stems| (stems, seconds, peak))
}

/// The CPU plus every wgpu adapter.
fn list_devices() -> Vec<DeviceInfo> {
    let mut list: Vec<DeviceInfo> = wgpu_adapters()
        .into_iter()
        .map(|(_, info)| DeviceInfo {
            choice: DeviceChoice::Gpu,
            name: format!("GPU: {}", info.name),
            hardware: info.hardware,
            total_bytes: None,
        })
        .collect();
    list.push(DeviceInfo {
        choice: DeviceChoice::Cpu,
        name: "CPU".into(),
        hardware: true,
        total_bytes: system_ram(),
    });
    list
}

/// `MemTotal` from `/proc/meminfo`, bytes.
fn system_ram() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_failure_is_reported_and_devices_listed() {
        let (tx, rx) = EngineHandle::spawn(|| {}).expect("spawn");
        let missing = std::path::PathBuf::from("/nonexistent/song.flac");
        tx.send(EngineCommand::LoadSong {
            job: JobId(1),
            path: missing.clone(),
        })
        .expect("send");
        match rx.recv_timeout(Duration::from_secs(10)).expect("event") {
            EngineEvent::LoadFailed { job, path, error } => {
                assert_eq!((job, path), (JobId(1), missing));
                assert!(!error.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        tx.send(EngineCommand::ListDevices).expect("send");
        match rx.recv_timeout(Duration::from_secs(30)).expect("event") {
            EngineEvent::Devices(list) => {
                assert!(list.iter().any(|d| d.choice == DeviceChoice::Cpu))
            }
            other => panic!("unexpected {other:?}"),
        }
        tx.send(EngineCommand::Shutdown).expect("send");
    }

    /// A 2 s stereo WAV of two tones.
    fn song(dir: &std::path::Path, seconds: f32) -> std::path::PathBuf {
        let rate = 44_100u32;
        let n = (seconds * rate as f32) as usize;
        let ch = |f: f32| -> Vec<f32> {
            (0..n)
                .map(|i| 0.3 * (std::f32::consts::TAU * f * i as f32 / rate as f32).sin())
                .collect()
        };
        let buf = AudioBuffer::new(rate, vec![ch(220.0), ch(330.0)]).unwrap();
        let path = dir.join("tones.wav");
        crate::audio::write_audio(&path, &buf, crate::audio::SampleFormat::Wav16, false).unwrap();
        path
    }

    fn file_job(job: u64, path: &std::path::Path, out: &std::path::Path) -> EngineCommand {
        EngineCommand::SeparateFile {
            job: JobId(job),
            path: path.to_path_buf(),
            model: ModelChoice::Bundled,
            device: DeviceChoice::Cpu,
            params: SeparateParams::default(),
            export: crate::engine::export::ExportOptions {
                out_dir: out.to_path_buf(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn file_job_reports_progress_separates_and_exports() {
        let dir = tempfile::tempdir().unwrap();
        let path = song(dir.path(), 2.0);
        let out = dir.path().join("stems");
        let (tx, rx) = EngineHandle::spawn(|| {}).expect("spawn");
        tx.send(file_job(7, &path, &out)).unwrap();
        let (mut started, mut progress, mut separated) = (false, 0, false);
        let exported = loop {
            match rx.recv_timeout(Duration::from_secs(120)).expect("event") {
                EngineEvent::Started { job, .. } => started = job == JobId(7),
                EngineEvent::Progress { done, total, .. } => {
                    assert!(done <= total);
                    progress += 1;
                }
                EngineEvent::Memory { .. } => {}
                EngineEvent::Separated { stems, .. } => {
                    assert_eq!(stems.names, ["vocals", "drums", "bass", "other"]);
                    assert!(stems.audio.iter().all(|a| a.len() == 88_200));
                    separated = true;
                }
                EngineEvent::Exported { job, paths } => {
                    assert_eq!(job, JobId(7));
                    break paths;
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        assert!(started && progress > 0 && separated);
        assert_eq!(exported.len(), 4);
        assert!(exported.iter().all(|p| p.starts_with(&out) && p.exists()));
        tx.send(EngineCommand::Shutdown).unwrap();
    }

    #[test]
    fn cancel_stops_a_job_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = song(dir.path(), 12.0);
        let out = dir.path().join("stems");
        let (tx, rx) = EngineHandle::spawn(|| {}).expect("spawn");
        tx.send(file_job(3, &path, &out)).unwrap();
        let mut sent = false;
        loop {
            match rx.recv_timeout(Duration::from_secs(120)).expect("event") {
                EngineEvent::Progress { .. } | EngineEvent::Started { .. } if !sent => {
                    tx.send(EngineCommand::Cancel { job: JobId(3) }).unwrap();
                    sent = true;
                }
                EngineEvent::Cancelled { job } => {
                    assert_eq!(job, JobId(3));
                    break;
                }
                EngineEvent::Exported { .. } | EngineEvent::Separated { .. } => {
                    panic!("the job ran to the end despite Cancel")
                }
                _ => {}
            }
        }
        let written = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "nothing written after a cancel");
        tx.send(EngineCommand::Shutdown).unwrap();
    }
}
