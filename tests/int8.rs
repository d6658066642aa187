//! `dtype: 'int8'`: how close it stays to sentence-transformers on every fixture family, that every int8
//! kernel this CPU has gives the same vectors, what it holds in memory, and what it refuses.

mod common;

use candle_core::Device;
use common::*;
use embedding_service::kernels::level::{int8_kernel, Int8Kernel};
use embedding_service::model::{Dtype, Embedder, Kernels};
use embedding_service::{EmbedOptions, ErrorCode, PromptChoice, Service, ServiceOptions};

fn int8_service(dir: std::path::PathBuf) -> Service {
    let mut options = ServiceOptions::new(dir.to_string_lossy());
    options.threads = 2;
    options.dtype = Some(Dtype::Int8);
    Service::new(options).unwrap()
}

/// Minimum and mean cosine of `got` to `want`, text by text.
fn agreement<G: AsRef<[f32]>>(got: impl IntoIterator<Item = G>, want: &[Vec<f32>]) -> (f64, f64) {
    let cosines: Vec<f64> = got.into_iter().zip(want).map(|(g, w)| cosine(g.as_ref(), w)).collect();
    assert_eq!(cosines.len(), want.len());
    (cosines.iter().copied().fold(1.0, f64::min), cosines.iter().sum::<f64>() / cosines.len() as f64)
}

#[test]
fn int8_stays_within_one_percent_of_sentence_transformers_on_every_fixture_family() {
    let expected = read_json(reference("minilm").join("expected.json"));
    let svc = int8_service(minilm_dir());
    let got = svc.embed_blocking(texts(), EmbedOptions::default()).unwrap();
    let want: Vec<usize> = serde_json::from_value(expected["token_counts"].clone()).unwrap();
    assert_eq!(got.token_counts, want);
    let (min, mean) = agreement(&got.vectors, &vectors(&expected["embeddings"]));
    eprintln!("int8 ({}), all-MiniLM-L6-v2: minimum cosine {min:.6}, mean {mean:.6}", int8_kernel().as_str());
    assert!(min >= 0.99 && mean >= 0.997, "minimum {min}, mean {mean}");
    assert_eq!(svc.status().dtype, Some("int8"));
    assert_eq!(svc.status().simd, Some(int8_kernel().as_str()));
    svc.close_blocking();

    for name in ["tiny-bert-cls", "tiny-xlmr-cls", "tiny-xlmr-mean-prompts", "tiny-modernbert-mean", "tiny-qwen3-last", "tiny-gemma3-mean"] {
        let expected = read_json(reference(name).join("expected.json"));
        let svc = int8_service(reference(name).join("model"));
        let got = svc.embed_blocking(texts(), EmbedOptions::default()).unwrap();
        let (min, mean) = agreement(&got.vectors, &vectors(&expected["embeddings"]));
        eprintln!("int8, {name}: minimum cosine {min:.9}, mean {mean:.9}");
        assert!(min >= 0.99, "{name}: minimum {min}");
        // Not secretly f32: quantizing must move the result.
        let f32_svc = service(reference(name).join("model"));
        assert_ne!(f32_svc.embed_blocking(texts(), EmbedOptions::default()).unwrap().vectors, got.vectors, "{name}: int8 is bit-for-bit f32");
        f32_svc.close_blocking();
        if name == "tiny-xlmr-mean-prompts" {
            for prompt in ["query", "passage"] {
                let options = EmbedOptions { prompt: PromptChoice::Named(prompt.into()), ..Default::default() };
                let got = svc.embed_blocking(texts(), options).unwrap();
                let (min, _) = agreement(&got.vectors, &vectors(&expected["embeddings_by_prompt"][prompt]));
                assert!(min >= 0.99, "{name} with {prompt}: minimum {min}");
            }
        }
        svc.close_blocking();
    }
}

/// Prints the int8 vectors of the reference texts as JSON, for `int8_vectors_are_the_same_with_every_kernel`,
/// which runs it once per SIMD level. Not a test on its own.
#[test]
#[ignore = "a helper run by int8_vectors_are_the_same_with_every_kernel, one process per SIMD level"]
fn helper_print_int8_vectors() {
    let embedder = Embedder::load_with(&minilm_dir(), &Device::Cpu, Kernels::Fast, Dtype::Int8, 2).unwrap();
    let tokens = embedder.tokenize(&texts(), None).unwrap();
    let vectors = embedder.embed_tokens(&tokens.iter().collect::<Vec<_>>()).unwrap();
    println!("VECTORS {}", serde_json::to_string(&vectors).unwrap());
    println!("KERNEL {}", int8_kernel().as_str());
}

/// The int8 products sum exactly, so every kernel gives the same sums (`kernels::int8`'s tests, bit for bit);
/// what can differ between SIMD levels is the f32 work around them. Whole vectors, one process per level this
/// CPU has (`EMBEDDING_SERVICE_SIMD`), against the scalar level's.
#[test]
fn int8_vectors_are_the_same_with_every_kernel() {
    let caps: &[&str] = if cfg!(target_arch = "x86_64") { &["scalar", "avx2", "avxvnni", "avx512"] } else { &["scalar", "neon"] };
    let run = |cap: &str| {
        // Under emulation (`npm run test:arm64`) the binary starts through the emulator, as cargo started this one.
        let runner = std::env::var("EMBEDDING_SERVICE_TEST_RUNNER").unwrap_or_default();
        let mut words: Vec<String> = runner.split_whitespace().map(str::to_string).collect();
        words.push(std::env::current_exe().unwrap().display().to_string());
        let out = std::process::Command::new(&words[0])
            .args(&words[1..])
            .args(["--ignored", "--exact", "helper_print_int8_vectors", "--nocapture", "--test-threads=1"])
            .env("EMBEDDING_SERVICE_SIMD", cap)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{cap}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        // The harness prints its own words before the test's on the same line.
        let line = |prefix: &str| stdout.lines().find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_string())).expect(prefix);
        let vectors: Vec<Vec<f32>> = serde_json::from_str(&line("VECTORS ")).unwrap();
        (line("KERNEL "), vectors)
    };
    let (_, reference) = run("scalar");
    let mut kernels = Vec::new();
    for cap in &caps[1..] {
        let (kernel, got) = run(cap);
        let (min, _) = agreement(&got, &reference);
        eprintln!("int8 kernel {kernel} against scalar: minimum cosine {min:.9}");
        assert!(min >= 0.999999, "{kernel}: minimum cosine {min} to the scalar kernel's vectors");
        kernels.push(kernel);
    }
    // The best kernel of each level ran (the others are checked product by product in `kernels::int8`'s
    // tests, every one this CPU has).
    let best = Int8Kernel::available().into_iter().last().unwrap();
    assert!(kernels.iter().any(|name| name == best.as_str()), "{} never ran: {kernels:?}", best.as_str());
}

#[test]
fn int8_holds_about_a_quarter_of_f32s_layer_memory() {
    let load = |dtype| Embedder::load_with(&minilm_dir(), &Device::Cpu, Kernels::Fast, dtype, 2).unwrap().weight_memory();
    let (f32, int8) = (load(Dtype::F32), load(Dtype::Int8));
    eprintln!("weights held: f32 {} bytes, int8 {} bytes", f32.owned, int8.owned);
    assert!(int8.owned * 10 <= f32.owned * 3, "int8 {} of f32 {}", int8.owned, f32.owned);
    assert_eq!(int8.mapped, f32.mapped, "the word table is read in place either way");
}

#[test]
fn int8_is_refused_where_it_cannot_run_with_a_message_that_says_where_it_can() {
    let err = Embedder::load_with(&reference("tiny-modernbert-mean").join("model"), &Device::Cpu, Kernels::Candle, Dtype::Int8, 1)
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("'int8'") && err.message.contains("fast CPU kernels"), "{}", err.message);

    let mut gpu = ServiceOptions::new(minilm_dir().to_string_lossy());
    gpu.dtype = Some(Dtype::Int8);
    gpu.device = embedding_service::DeviceChoice::Cuda;
    let err = Service::new(gpu).err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("runs on the CPU"), "{}", err.message);

    let mut remote = ServiceOptions::new("m");
    remote.dtype = Some(Dtype::Int8);
    remote.remote = Some(embedding_service::remote::RemoteOptions { endpoint: "http://127.0.0.1:1/v1".into(), api_key: None, concurrency: 1 });
    assert_eq!(Service::new(remote).err().unwrap().code, ErrorCode::InvalidInput);
    assert_eq!(Dtype::parse("int4").unwrap_err().code, ErrorCode::InvalidInput);
}
