//! Mutation fuzzing on the stable toolchain for everything that parses untrusted input: audio
//! decoding, checkpoints (`.pth` through the restricted unpickler, safetensors) and configs
//! (TOML, reference JSON, fork YAML).
//!
//! Each target starts from the seed corpus in `tests/fuzz/corpus/` (valid small files; see
//! `make_seeds.py`) and runs mutated inputs (bit flips, interesting bytes, chunk deletion,
//! duplication and insertion, truncation, splicing of two seeds) for a bounded time:
//! `LOCOSEP_FUZZ_SECONDS` per target (default 8 s in `make test`; `make fuzz` runs long). An
//! input passes when it ends in `Ok` or an error: a panic, a case slower than 10 s, or any
//! single allocation above 1 GiB (a size taken from a header without a cap) fails the target,
//! and the failing input is written to `target/fuzz-failures/` for replay.
//!
//! The RNG is seeded (`LOCOSEP_FUZZ_SEED`, default 1), so a run is reproducible.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

thread_local! {
    /// Largest single allocation of this thread since the last reset. Per thread, so that
    /// targets fuzzed in parallel (the test harness runs two at a time) do not see each
    /// other's allocations. Const-initialised without a destructor: reading it never
    /// allocates, so it is safe inside the allocator.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Bytes this thread has allocated since the last reset (frees not subtracted).
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread is running fuzz cases (their expected panics are not printed).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let _ = TOTAL.try_with(|l| l.set(l.get().saturating_add(size)));
}

/// The system allocator, recording the largest request per thread.
struct Recording;

// SAFETY: forwards to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// One process-wide panic hook, installed once: silent on threads that are fuzzing, the
/// default report everywhere else (other tests of this binary keep their messages).
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

#[global_allocator]
static ALLOC: Recording = Recording;

const MAX_ALLOC: usize = 1 << 30;
const MAX_CASE: Duration = Duration::from_secs(10);

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    assert!(!seeds.is_empty(), "empty seed corpus {}", dir.display());
    seeds
}

/// One random edit of `data` (`other` is a second seed for splicing).
fn mutate(data: &mut Vec<u8>, other: &[u8], rng: &mut ChaCha8Rng) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20];
    if data.is_empty() {
        data.push(rng.random());
        return;
    }
    let n = data.len();
    match rng.random_range(0..8) {
        0 => {
            let i = rng.random_range(0..n);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = rng.random_range(0..n);
            data[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        2 => {
            // A 4-byte field set to an extreme (lengths, counts, offsets).
            let i = rng.random_range(0..n);
            let v: u32 = [0, u32::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff][rng.random_range(0..5)];
            for (k, b) in v.to_le_bytes().iter().enumerate() {
                if i + k < n {
                    data[i + k] = *b;
                }
            }
        }
        3 => {
            let a = rng.random_range(0..n);
            let b = (a + rng.random_range(1..=64)).min(n);
            data.drain(a..b);
        }
        4 => {
            let a = rng.random_range(0..n);
            let b = (a + rng.random_range(1..=64)).min(n);
            let chunk = data[a..b].to_vec();
            let at = rng.random_range(0..=data.len());
            data.splice(at..at, chunk);
        }
        5 => data.truncate(rng.random_range(0..n)),
        6 => {
            let at = rng.random_range(0..=n);
            let len = rng.random_range(1..=32);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        _ => {
            if !other.is_empty() {
                let cut = rng.random_range(0..n);
                let from = rng.random_range(0..other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
}

/// Runs `target` on mutants of the `kind` corpus for the configured time; panics on failures.
fn fuzz(kind: &str, target: impl Fn(&[u8], &str)) {
    let seconds: f64 = std::env::var("LOCOSEP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8.0);
    let seed: u64 = std::env::var("LOCOSEP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seeds = corpus(kind);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut cases = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    // Seeds themselves first, unmutated.
    let mut first = seeds.iter().map(|(n, d)| (n.clone(), d.clone()));
    install_quiet_hook();
    QUIET.with(|q| q.set(true));
    while start.elapsed().as_secs_f64() < seconds || cases < seeds.len() {
        let (name, input) = match first.next() {
            Some(s) => s,
            None => {
                let (name, base) = &seeds[rng.random_range(0..seeds.len())];
                let other = &seeds[rng.random_range(0..seeds.len())].1;
                let mut data = base.clone();
                for _ in 0..rng.random_range(1..=8) {
                    mutate(&mut data, other, &mut rng);
                }
                (name.clone(), data)
            }
        };
        cases += 1;
        LARGEST.with(|l| l.set(0));
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input, &name)));
        let took = t0.elapsed();
        let largest = LARGEST.with(Cell::get);
        let problem = match outcome {
            Err(_) => Some("panicked".to_string()),
            Ok(()) if took > MAX_CASE => Some(format!("took {:.1} s", took.as_secs_f64())),
            Ok(()) if largest > MAX_ALLOC => Some(format!("allocated {largest} bytes at once")),
            Ok(()) => None,
        };
        if let Some(p) = problem {
            std::fs::create_dir_all(&out).ok();
            let file = out.join(format!("{kind}-{cases}-{name}"));
            std::fs::write(&file, &input).ok();
            failures.push(format!("{p} (input saved as {})", file.display()));
        }
    }
    QUIET.with(|q| q.set(false));
    eprintln!(
        "fuzz {kind}: {cases} cases in {:.1} s, {} failure(s)",
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "fuzz {kind}: {failures:#?}");
}

#[test]
fn fuzz_audio_decoding() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("audio", |data, name| {
        // The decoder takes paths: the extension picks the format hint, as for user files.
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let _ = locosep::audio::probe_info(&path);
        let _ = locosep::audio::decode_file(&path, &locosep::audio::DecodeOptions::default());
    });
}

#[test]
fn fuzz_checkpoints() {
    fuzz("checkpoint", |data, name| {
        let _ = locosep::model::state_dict::load_state_dict_bytes(data, name);
    });
}

#[test]
fn fuzz_configs() {
    fuzz("config", |data, name| {
        let text = String::from_utf8_lossy(data);
        use locosep::model::config::ModelConfig;
        let _ = if name.ends_with(".toml") {
            ModelConfig::from_toml_str(&text, name)
        } else if name.ends_with(".json") {
            ModelConfig::from_json_str(&text, name)
        } else {
            ModelConfig::from_yaml_str(&text, name)
        };
    });
}

/// The hostile-input report's 731-byte "DAG bomb" (a list of two references to the previous
/// list, 60 times over) in a torch.save zip: refused for the memory its expansion would take,
/// having allocated almost nothing (it cost 1.33 GB before being refused by a node count).
#[test]
fn the_pickle_dag_bomb_is_refused_before_it_takes_memory() {
    use std::io::Write as _;
    let mut pickle = b"\x80\x02]q\x00".to_vec();
    for _ in 0..60 {
        pickle.extend(b"(h\x00h\x00lq\x00");
    }
    pickle.push(b'.');
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zw.start_file("archive/data.pkl", opts).unwrap();
    zw.write_all(&pickle).unwrap();
    let bytes = zw.finish().unwrap().into_inner();
    TOTAL.with(|t| t.set(0));
    let t0 = Instant::now();
    let e = locosep::model::state_dict::load_state_dict_bytes(&bytes, "dag_bomb.pth").unwrap_err();
    let (took, total) = (t0.elapsed(), TOTAL.with(Cell::get));
    let msg = e.to_string();
    assert!(
        msg.contains("dag_bomb.pth") && msg.contains("memory"),
        "{msg}"
    );
    assert!(
        total < 4 << 20,
        "{total} bytes allocated before the refusal"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    eprintln!("dag bomb: refused after {total} bytes allocated, {took:?}: {msg}");
}
