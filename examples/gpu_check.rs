//! The GPU check: everything a lent GPU machine must confirm, in one run of a few minutes, with nothing but
//! this binary and the files `scripts/gpu-check.sh --prepare` lays out (that machine has no network, no
//! Rust toolchain, and may have no Node.js). Run through `scripts/gpu-check.sh`, not directly.
//!
//!   gpu_check run --device cuda|cpu --data DIR --out DIR   the checks; exit status 1 if any fails
//!   gpu_check half SRC DST                                 copies a model folder with its weights in f16
//!
//! `run` prints one line per check and writes DIR/gpu-check.json with every figure. The checks:
//! the device named in status(); parity with sentence-transformers' golden vectors (f32 >= 0.99999 on the
//! tiny fixtures, f16 and bf16 >= 0.999 on all-MiniLM-L6-v2 from its f16 file); throughput on the
//! 500-chunk corpus in f32 and bf16; the device's memory before load, loaded and after unload (nvidia-smi);
//! the keep-alive race (a 1 ms keep-alive under concurrent requests: nothing fails, no unload while work
//! runs); the stall watchdog (a stuck worker is failed with ERR_STALLED and replaced).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedding_service::model::Dtype;
use embedding_service::progress::{Outgoing, ProgressEvent, Sink, Status};
use embedding_service::{DeviceChoice, EmbedOptions, ErrorCode, PromptChoice, Service, ServiceOptions};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("half") if args.len() == 3 => half(Path::new(&args[1]), Path::new(&args[2])),
        _ => {
            eprintln!("usage: gpu_check run --device cuda|cpu --data DIR --out DIR | gpu_check half SRC DST");
            2
        }
    };
    std::process::exit(code);
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Every check's outcome so far: passed or not, and the figures behind it. Saved after each check, so a run
/// cut short by its time limit still leaves what it measured.
struct Report {
    checks: BTreeMap<String, Value>,
    failed: Vec<String>,
    device: DeviceChoice,
    started: Instant,
    file: PathBuf,
}

impl Report {
    /// A check that does not apply to this device (the CPU dry run): listed, never counted as passed.
    fn skip(&mut self, name: &str, why: &str) {
        println!("SKIP {name}: {why}");
        self.checks.insert(name.into(), json!({ "skipped": why }));
        self.save();
    }

    fn skipped(&self) -> usize {
        self.checks.values().filter(|c| c.get("skipped").is_some()).count()
    }

    fn save(&self) {
        let summary = json!({
            "device": format!("{:?}", self.device),
            "passed": self.failed.is_empty(),
            "failed": self.failed,
            "seconds": self.started.elapsed().as_secs_f64(),
            "checks": self.checks,
        });
        if let Err(e) = std::fs::write(&self.file, serde_json::to_string_pretty(&summary).unwrap()) {
            eprintln!("could not write {}: {e}", self.file.display());
        }
    }

    fn record(&mut self, name: &str, outcome: std::result::Result<Value, String>) {
        match outcome {
            Ok(figures) => {
                println!("PASS {name}: {figures}");
                self.checks.insert(name.into(), json!({ "passed": true, "figures": figures }));
            }
            Err(why) => {
                println!("FAIL {name}: {why}");
                self.checks.insert(name.into(), json!({ "passed": false, "error": why }));
                self.failed.push(name.into());
            }
        }
        self.save();
    }
}

fn run(args: &[String]) -> i32 {
    let device = match flag(args, "--device") {
        Some("cuda") => DeviceChoice::Cuda,
        Some("metal") => DeviceChoice::Metal,
        Some("cpu") => DeviceChoice::Cpu,
        other => {
            eprintln!("--device cuda|metal|cpu, not {other:?}");
            return 2;
        }
    };
    let data = PathBuf::from(flag(args, "--data").unwrap_or(".gpu-check"));
    let out = PathBuf::from(flag(args, "--out").unwrap_or("."));
    let corpus_size: usize = flag(args, "--texts").and_then(|n| n.parse().ok()).unwrap_or(500);
    let ctx = Context { device, data };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("could not create {}: {e}", out.display());
        return 2;
    }
    let mut report =
        Report { checks: BTreeMap::new(), failed: Vec::new(), device, started: Instant::now(), file: out.join("gpu-check.json") };

    report.record("device", ctx.device_check());
    for (fixture, prompts) in [
        ("tiny-bert-cls", &[][..]),
        ("tiny-xlmr-cls", &[]),
        ("tiny-bert-mean-e5", &[]),
        ("tiny-xlmr-mean-prompts", &["query", "passage"]),
        ("tiny-modernbert-mean", &[]),
    ] {
        report.record(&format!("parity f32 {fixture}"), ctx.tiny_parity(fixture, prompts));
    }
    for dtype in [Dtype::F16, Dtype::Bf16] {
        let name = format!("parity {} all-MiniLM-L6-v2", dtype.as_str());
        if dtype == Dtype::F16 && device == DeviceChoice::Cpu {
            report.skip(&name, "f16 is a GPU format; the CPU refuses it");
        } else {
            report.record(&name, ctx.minilm_parity(dtype));
        }
    }
    for dtype in [Dtype::F32, Dtype::Bf16] {
        report.record(&format!("throughput {}", dtype.as_str()), ctx.throughput(dtype, corpus_size));
    }
    if device == DeviceChoice::Cpu {
        report.skip("memory released on unload", "device cpu: no driver to ask");
    } else {
        report.record("memory released on unload", ctx.memory());
    }
    report.record("keep-alive race", ctx.keep_alive_race());
    report.record("stall watchdog", ctx.stall());

    println!(
        "{} in {:.1} s: {} of {} checks failed, {} skipped",
        if report.failed.is_empty() { "PASSED" } else { "FAILED" },
        report.started.elapsed().as_secs_f64(),
        report.failed.len(),
        report.checks.len(),
        report.skipped()
    );
    i32::from(!report.failed.is_empty())
}

struct Context {
    device: DeviceChoice,
    data: PathBuf,
}

type Outcome = std::result::Result<Value, String>;

impl Context {
    fn fixture(&self, name: &str) -> PathBuf {
        self.data.join("reference").join(name)
    }

    fn minilm(&self) -> PathBuf {
        self.data.join("all-MiniLM-L6-v2-f16")
    }

    fn options(&self, model: &Path, dtype: Option<Dtype>) -> ServiceOptions {
        let mut options = ServiceOptions::new(model.to_string_lossy());
        options.device = self.device;
        options.dtype = dtype;
        options
    }

    fn service(&self, model: &Path, dtype: Option<Dtype>) -> std::result::Result<Service, String> {
        Service::new(self.options(model, dtype)).map_err(|e| format!("{}: {}", e.code.as_str(), e.message))
    }

    fn texts(&self) -> std::result::Result<Vec<String>, String> {
        serde_json::from_value(read_json(&self.fixture("minilm").join("texts.json"))?).map_err(|e| e.to_string())
    }

    fn embed(&self, svc: &Service, texts: Vec<String>, prompt: Option<&str>) -> std::result::Result<embedding_service::Embeddings, String> {
        svc.embed_blocking(texts, EmbedOptions { prompt: prompt.map_or(PromptChoice::ModelDefault, |p| PromptChoice::Named(p.to_string())), ..Default::default() })
            .map_err(|e| format!("{}: {}", e.code.as_str(), e.message))
    }

    fn device_check(&self) -> Outcome {
        let svc = self.service(&self.fixture("tiny-bert-cls").join("model"), None)?;
        self.embed(&svc, vec!["hello".into()], None)?;
        let status = svc.status();
        let name = status.device.clone().unwrap_or_default();
        svc.close_blocking();
        let expected = match self.device {
            DeviceChoice::Cuda => "cuda:",
            DeviceChoice::Metal => "metal:",
            _ => "cpu",
        };
        if !name.starts_with(expected) {
            return Err(format!("status().device is {name:?}, expected {expected}..."));
        }
        Ok(json!({ "status.device": name, "default dtype": status.dtype }))
    }

    fn tiny_parity(&self, fixture: &str, prompts: &[&str]) -> Outcome {
        let expected = read_json(&self.fixture(fixture).join("expected.json"))?;
        let svc = self.service(&self.fixture(fixture).join("model"), Some(Dtype::F32))?;
        let texts = self.texts()?;
        let mut worst = min_cosine(&self.embed(&svc, texts.clone(), None)?, &expected["embeddings"])?;
        for prompt in prompts {
            let got = self.embed(&svc, texts.clone(), Some(prompt))?;
            worst = worst.min(min_cosine(&got, &expected["embeddings_by_prompt"][*prompt])?);
        }
        svc.close_blocking();
        at_least(worst, 0.99999, json!({ "min cosine": worst, "texts": texts.len(), "prompts": prompts }))
    }

    fn minilm_parity(&self, dtype: Dtype) -> Outcome {
        let expected = read_json(&self.fixture("minilm").join("expected.json"))?;
        let svc = self.service(&self.minilm(), Some(dtype))?;
        let got = self.embed(&svc, self.texts()?, None)?;
        svc.close_blocking();
        let worst = min_cosine(&got, &expected["embeddings"])?;
        at_least(worst, 0.999, json!({ "min cosine": worst, "weights": "f16 file", "texts": got.vectors.len() }))
    }

    fn throughput(&self, dtype: Dtype, size: usize) -> Outcome {
        let corpus: Vec<String> = serde_json::from_value(read_json(&self.data.join("bench-corpus.json"))?).map_err(|e| e.to_string())?;
        let corpus: Vec<String> = corpus.into_iter().take(size).collect();
        let svc = self.service(&self.minilm(), Some(dtype))?;
        // The first pass pays for loading, the kernels' JIT compilation and the allocator's growth.
        self.embed(&svc, corpus.clone(), None)?;
        let mut runs = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let out = self.embed(&svc, corpus.clone(), None)?;
            let tokens: usize = out.token_counts.iter().sum();
            runs.push((tokens, t.elapsed().as_secs_f64()));
        }
        svc.close_blocking();
        let mut rates: Vec<f64> = runs.iter().map(|(tokens, s)| *tokens as f64 / s).collect();
        rates.sort_by(f64::total_cmp);
        Ok(json!({
            "texts": corpus.len(),
            "tokens": runs[0].0,
            "median tokens/s": rates[1].round(),
            "runs tokens/s": runs.iter().map(|(t, s)| (*t as f64 / s).round()).collect::<Vec<_>>(),
        }))
    }

    /// The driver's figure for the device's used memory, before the model loads, while loaded, after unload.
    /// On a shared GPU other processes move it too, so the bound is generous: what this process took while
    /// loaded must be back within 64 MiB.
    fn memory(&self) -> Outcome {
        let before = gpu_memory_used_mib()?;
        let svc = self.service(&self.minilm(), Some(Dtype::F32))?;
        self.embed(&svc, self.texts()?, None)?;
        let weights = svc.status().weights;
        let loaded = gpu_memory_used_mib()?;
        let (tx, rx) = std::sync::mpsc::channel();
        svc.unload(Box::new(move |r| drop(tx.send(r))));
        rx.recv().map_err(|e| e.to_string())?.map_err(|e| e.message)?;
        let after = gpu_memory_used_mib()?;
        svc.close_blocking();
        let closed = gpu_memory_used_mib()?;
        let figures = json!({
            "used MiB before load": before, "loaded": loaded, "after unload": after, "after close": closed,
            "status weights bytes": weights.owned,
        });
        if loaded <= before {
            return Err(format!("loading used no device memory by the driver's count: {figures}"));
        }
        if after > before + 64 {
            return Err(format!("unload left {} MiB on the device: {figures}", after - before));
        }
        Ok(figures)
    }

    /// A 1 ms keep-alive while threads send requests with gaps around it: every request succeeds with the same
    /// vectors, and the event stream never shows an unload begin while a request runs.
    fn keep_alive_race(&self) -> Outcome {
        let recorder = Arc::new(Recorder::default());
        let mut options = self.options(&self.fixture("tiny-bert-cls").join("model"), Some(Dtype::F32));
        options.keep_alive = Some(Duration::from_millis(1));
        options.sink = recorder.clone();
        let svc = Arc::new(Service::new(options).map_err(|e| e.message)?);
        let texts: Vec<String> = (0..8).map(|i| format!("text number {i} {}", "word ".repeat(i))).collect();
        let want = self.embed(&svc, texts.clone(), None)?.vectors.to_vecs();
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let threads: Vec<_> = (0..3u32)
            .map(|t| {
                let (svc, texts, want, failures) = (svc.clone(), texts.clone(), want.clone(), failures.clone());
                std::thread::spawn(move || {
                    let mut seed = 0x9e37_79b9u32.wrapping_mul(t + 1);
                    for _ in 0..20 {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        std::thread::sleep(Duration::from_micros(u64::from(seed % 3000)));
                        match svc.embed_blocking(texts.clone(), EmbedOptions::default()) {
                            Ok(got) if got.vectors.to_vecs() == want => {}
                            Ok(_) => failures.lock().unwrap().push("vectors changed between loads".into()),
                            Err(e) => failures.lock().unwrap().push(format!("{}: {}", e.code.as_str(), e.message)),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().map_err(|_| "a request thread panicked".to_string())?;
        }
        let failures = failures.lock().unwrap().clone();
        if !failures.is_empty() {
            return Err(format!("{} requests failed, first: {}", failures.len(), failures[0]));
        }
        let mut running = HashSet::new();
        for e in recorder.events.lock().unwrap().iter() {
            match (e.status, e.request_id) {
                (Status::ProcessingEmbeddings, Some(id)) if e.current == 0 => {
                    running.insert(id);
                }
                (Status::Completed, Some(id)) => {
                    running.remove(&id);
                }
                (Status::UnloadingModel, _) if !running.is_empty() => {
                    return Err(format!("an unload began while requests {running:?} ran"));
                }
                _ => {}
            }
        }
        let status = svc.status();
        svc.close_blocking();
        if status.unload_count == 0 {
            return Err("no unload happened: the race was not exercised".into());
        }
        Ok(json!({ "requests": 60, "loads": status.load_count, "unloads": status.unload_count }))
    }

    /// The first worker sleeps through its first batch; the watchdog warns, fails the request with ERR_STALLED
    /// and starts a replacement, which loads the model on the device again and answers the next request.
    fn stall(&self) -> Outcome {
        let recorder = Arc::new(Recorder::default());
        let mut options = self.options(&self.fixture("tiny-bert-cls").join("model"), Some(Dtype::F32));
        options.faults.stall = Some(Duration::from_millis(3000));
        options.stall_warning = Duration::from_millis(300);
        options.stall_timeout = Duration::from_millis(1000);
        options.sink = recorder.clone();
        let svc = Service::new(options).map_err(|e| e.message)?;
        let err = match svc.embed_blocking(vec!["stuck".into()], EmbedOptions::default()) {
            Ok(_) => return Err("the stuck request succeeded".into()),
            Err(e) => e,
        };
        if err.code != ErrorCode::Stalled {
            return Err(format!("expected ERR_STALLED, got {}: {}", err.code.as_str(), err.message));
        }
        let next = self.embed(&svc, vec!["fine".into()], None)?;
        let status = svc.status();
        svc.close_blocking();
        let statuses: Vec<Status> = recorder.events.lock().unwrap().iter().map(|e| e.status).collect();
        let warned = statuses.iter().position(|s| *s == Status::StallWarning);
        let stalled = statuses.iter().position(|s| *s == Status::Stalled);
        match (warned, stalled) {
            (Some(w), Some(s)) if w < s => {}
            _ => return Err(format!("expected a stall warning then a stall event, saw {warned:?} and {stalled:?}")),
        }
        if next.vectors.len() != 1 || status.load_count != 2 {
            return Err(format!("the replacement did not reload and answer: {} loads", status.load_count));
        }
        Ok(json!({ "error": err.message, "loads": status.load_count, "device after": status.device }))
    }
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<ProgressEvent>>,
}

impl Sink for Recorder {
    fn send(&self, item: Outgoing) {
        if let Outgoing::Progress(e) = item {
            self.events.lock().unwrap().push(e);
        }
    }
}

fn read_json(path: &Path) -> std::result::Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn min_cosine(got: &embedding_service::Embeddings, want: &Value) -> std::result::Result<f64, String> {
    let want: Vec<Vec<f32>> = serde_json::from_value(want.clone()).map_err(|e| format!("golden vectors: {e}"))?;
    if got.vectors.len() != want.len() {
        return Err(format!("{} vectors for {} golden ones", got.vectors.len(), want.len()));
    }
    Ok(got.vectors.iter().zip(&want).map(|(g, w)| cosine(g, w)).fold(f64::MAX, f64::min))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn at_least(value: f64, bound: f64, figures: Value) -> Outcome {
    if value >= bound {
        Ok(figures)
    } else {
        Err(format!("minimum cosine {value} is below {bound}: {figures}"))
    }
}

fn gpu_memory_used_mib() -> std::result::Result<u64, String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"])
        .output()
        .map_err(|e| format!("nvidia-smi: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| format!("nvidia-smi said {text:?} {}", String::from_utf8_lossy(&out.stderr)))
}

/// Copies a model folder, writing its safetensors weights as f16 (half the size, so the check's files fit the
/// device machine's 64 MiB transfer).
fn half(src: &Path, dst: &Path) -> i32 {
    let result = (|| -> std::result::Result<(), String> {
        std::fs::create_dir_all(dst).map_err(|e| e.to_string())?;
        for entry in std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path();
            if path.is_dir() {
                copy_dir(&path, &dst.join(entry.file_name()))?;
            } else if entry.file_name() == "model.safetensors" {
                let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
                let halved: HashMap<String, candle_core::Tensor> = tensors
                    .into_iter()
                    .map(|(name, t)| {
                        let t = if t.dtype().is_float() { t.to_dtype(candle_core::DType::F16) } else { Ok(t) };
                        t.map(|t| (name, t))
                    })
                    .collect::<candle_core::Result<_>>()
                    .map_err(|e| e.to_string())?;
                candle_core::safetensors::save(&halved, dst.join("model.safetensors")).map_err(|e| e.to_string())?;
            } else if entry.file_name() != "pytorch_model.bin" {
                std::fs::copy(&path, dst.join(entry.file_name())).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("half: {e}");
            1
        }
    }
}

fn copy_dir(src: &Path, dst: &Path) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dst).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(src).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dst.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
