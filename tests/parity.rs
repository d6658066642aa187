//! Parity with sentence-transformers' golden outputs (fixtures/reference, made with sentence-transformers 6.2).

mod common;

use common::*;
use embedding_service::{EmbedOptions, ErrorCode, Output, PromptChoice, Service, ServiceOptions};

fn token_counts(expected: &serde_json::Value) -> Vec<usize> {
    serde_json::from_value(expected["token_counts"].clone()).unwrap()
}

#[test]
fn minilm_matches_sentence_transformers_all_together_one_at_a_time_and_shuffled() {
    let expected = read_json(reference("minilm").join("expected.json"));
    let want = vectors(&expected["embeddings"]);
    let texts = texts();
    let svc = service(minilm_dir());

    let all = embed(&svc, &texts, None);
    assert_eq!(all.dimensions, 384);
    assert_eq!(svc.dimensions(), Some(384));
    assert!(all.vectors.iter().all(|v| v.len() == 384));
    assert_eq!(all.token_counts, token_counts(&expected));
    assert_parity("minilm, all together", &all.vectors, &want);

    let singles: Vec<Vec<f32>> =
        texts.iter().map(|t| embed(&svc, std::slice::from_ref(t), None).vectors[0].to_vec()).collect();
    assert_parity("minilm, one at a time", &singles, &want);

    // A fixed permutation (multiply by a unit mod 32) puts every text next to different neighbours.
    let order: Vec<usize> = (0..texts.len()).map(|i| (i * 13 + 5) % texts.len()).collect();
    let shuffled: Vec<String> = order.iter().map(|&i| texts[i].clone()).collect();
    let got = embed(&svc, &shuffled, None);
    let want_shuffled: Vec<Vec<f32>> = order.iter().map(|&i| want[i].clone()).collect();
    assert_parity("minilm, shuffled", &got.vectors, &want_shuffled);
    svc.close_blocking();
}

#[test]
fn minilm_through_the_hub_cache_offline() {
    let expected = read_json(reference("minilm").join("expected.json"));
    let mut options = ServiceOptions::new("sentence-transformers/all-MiniLM-L6-v2");
    options.cache_dir = Some(hub_cache_dir());
    options.offline = true;
    options.threads = 2;
    let svc = Service::new(options).unwrap();
    let got = embed(&svc, &texts(), None);
    assert_parity("minilm via hub cache", &got.vectors, &vectors(&expected["embeddings"]));
}

#[test]
fn tiny_bert_cls_pooling_with_truncation_at_16() {
    let expected = read_json(reference("tiny-bert-cls").join("expected.json"));
    let svc = service(reference("tiny-bert-cls").join("model"));
    let got = embed(&svc, &texts(), None);
    assert_eq!(got.dimensions, 32);
    assert_eq!(got.token_counts, token_counts(&expected));
    assert!(got.token_counts.iter().all(|&n| n <= 16));
    assert_parity("tiny-bert-cls", &got.vectors, &vectors(&expected["embeddings"]));
}

#[test]
fn tiny_xlmr_cls() {
    let expected = read_json(reference("tiny-xlmr-cls").join("expected.json"));
    let svc = service(reference("tiny-xlmr-cls").join("model"));
    let got = embed(&svc, &texts(), None);
    assert_eq!(got.token_counts, token_counts(&expected));
    assert_parity("tiny-xlmr-cls", &got.vectors, &vectors(&expected["embeddings"]));
}

#[test]
fn tiny_xlmr_mean_with_and_without_each_prompt() {
    let expected = read_json(reference("tiny-xlmr-mean-prompts").join("expected.json"));
    let svc = service(reference("tiny-xlmr-mean-prompts").join("model"));
    let got = embed(&svc, &texts(), None);
    assert_eq!(got.token_counts, token_counts(&expected));
    assert_parity("tiny-xlmr-mean, no prompt", &got.vectors, &vectors(&expected["embeddings"]));
    for prompt in ["query", "passage"] {
        let got = embed(&svc, &texts(), Some(prompt));
        let want = vectors(&expected["embeddings_by_prompt"][prompt]);
        assert_parity(&format!("tiny-xlmr-mean, prompt {prompt}"), &got.vectors, &want);
    }
}

#[test]
fn an_unknown_prompt_is_invalid_input_and_the_service_keeps_working() {
    let svc = service(reference("tiny-xlmr-mean-prompts").join("model"));
    let err = svc
        .embed_blocking(vec!["x".into()], EmbedOptions { prompt: PromptChoice::Named("nope".into()), ..Default::default() })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("\"query\""), "{}", err.message);
    assert_eq!(embed(&svc, &["x".to_string()], Some("query")).vectors.len(), 1);
}

#[test]
fn empty_input_resolves_empty_and_empty_strings_get_vectors() {
    let svc = service(reference("tiny-bert-cls").join("model"));
    assert!(embed(&svc, &[], None).vectors.is_empty());
    let got = embed(&svc, &["".to_string(), "   ".to_string()], None);
    assert_eq!(got.vectors.len(), 2);
    assert!(got.vectors.iter().all(|v| v.len() == 32 && v.iter().all(|x| x.is_finite())));
}

#[test]
fn a_missing_model_fails_the_request_not_the_service_and_close_is_final() {
    let svc = service("/no/such/model/folder".into());
    let err = svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelNotFound);
    // The worker is still there to answer the next call the same way.
    let err = svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelNotFound);
    svc.close_blocking();
    let err = svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::Closed);
}

#[test]
fn a_panic_in_the_worker_fails_that_request_with_internal_and_the_next_one_works() {
    let mut options = ServiceOptions::new(reference("tiny-bert-cls").join("model").to_string_lossy());
    options.threads = 1;
    options.faults.panic_on_text = Some("boom".into());
    let svc = Service::new(options).unwrap();
    let err = svc.embed_blocking(vec!["a".into(), "boom".into()], EmbedOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("injected test panic"), "{}", err.message);
    let ok = svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).unwrap();
    assert_eq!(ok.vectors.len(), 1);
}

/// The opt-in bf16 mode: cosine >= 0.999 per text to sentence-transformers (f32) on every family, prompts
/// included; with the SIMD level capped to scalar the service refuses it up front with ERR_DEVICE_UNAVAILABLE.
#[test]
fn bf16_mode_stays_within_0_999_of_sentence_transformers_or_is_refused() {
    let bf16_service = |dir: std::path::PathBuf| {
        let mut options = ServiceOptions::new(dir.to_string_lossy());
        options.threads = 2;
        options.device = embedding_service::DeviceChoice::Cpu;
        options.dtype = Some(embedding_service::Dtype::Bf16);
        Service::new(options)
    };
    if !embedding_service::kernels::panel::bf16_supported() {
        let err = bf16_service(minilm_dir()).err().expect("bf16 must be refused on this CPU");
        assert_eq!(err.code, ErrorCode::DeviceUnavailable);
        assert!(err.message.contains("EMBEDDING_SERVICE_SIMD=scalar"), "{}", err.message);
        return;
    }
    let reference_dir = |name: &str| if name == "minilm" { minilm_dir() } else { reference(name).join("model") };
    let cases = [
        ("minilm", minilm_dir(), None),
        ("tiny-bert-cls", reference("tiny-bert-cls").join("model"), None),
        ("tiny-xlmr-cls", reference("tiny-xlmr-cls").join("model"), None),
        ("tiny-xlmr-mean-prompts", reference("tiny-xlmr-mean-prompts").join("model"), Some("query")),
        ("tiny-modernbert-mean", reference("tiny-modernbert-mean").join("model"), None),
        ("tiny-qwen3-last", reference("tiny-qwen3-last").join("model"), Some("query")),
        ("tiny-gemma3-mean", reference("tiny-gemma3-mean").join("model"), Some("query")),
    ];
    for (name, dir, prompt) in cases {
        let expected = read_json(reference(name).join("expected.json"));
        let want = match prompt {
            Some(p) => vectors(&expected["embeddings_by_prompt"][p]),
            None => vectors(&expected["embeddings"]),
        };
        let svc = bf16_service(dir).unwrap();
        let got = embed(&svc, &texts(), prompt);
        let worst = got.vectors.iter().zip(&want).map(|(g, w)| cosine(g, w)).fold(f64::MAX, f64::min);
        eprintln!("{name} bf16: minimum cosine {worst:.6}");
        assert!(worst >= 0.999, "{name} in bf16: minimum cosine {worst}");
        svc.close_blocking();
        // Not secretly f32: rounding the weights must move the result.
        let f32_svc = service(reference_dir(name));
        assert_ne!(embed(&f32_svc, &texts(), prompt).vectors, got.vectors, "{name} in bf16 is bit-for-bit f32");
    }
}

/// Copies a model folder (one level of subfolders) to a fresh temporary folder with the given name.
fn copy_model(from: &std::path::Path, name: &str) -> std::path::PathBuf {
    let to = std::env::temp_dir().join(format!("embedding-service-{}-{}", std::process::id(), name)).join(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(to.join(entry.file_name())).unwrap();
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                let inner = inner.unwrap();
                std::fs::copy(inner.path(), to.join(entry.file_name()).join(inner.file_name())).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    to
}

/// An E5 folder without prompts in config_sentence_transformers.json gets "query: " / "passage: " from the
/// built-in table, giving exactly what sentence-transformers gives with those prompts; the same folder under
/// another name has no prompts at all.
#[test]
fn e5_folders_without_prompts_get_the_built_in_query_and_passage_prompts() {
    let expected = read_json(reference("tiny-xlmr-mean-prompts").join("expected.json"));
    let strip = |dir: &std::path::Path| {
        let path = dir.join("config_sentence_transformers.json");
        let mut cst = read_json(path.clone());
        cst.as_object_mut().unwrap().remove("prompts");
        std::fs::write(path, cst.to_string()).unwrap();
    };
    let e5 = copy_model(&reference("tiny-xlmr-mean-prompts").join("model"), "multilingual-e5-tiny");
    strip(&e5);
    // The XLM-R family (multilingual-e5-large) with its prompts stripped, and a BERT one (multilingual-e5-small)
    // saved by sentence-transformers without prompts.
    let e5_bert = copy_model(&reference("tiny-bert-mean-e5").join("model"), "multilingual-e5-small-tiny");
    let bert_expected = read_json(reference("tiny-bert-mean-e5").join("expected.json"));
    for (dir, expected) in [(&e5, &expected), (&e5_bert, &bert_expected)] {
        let svc = service(dir.clone());
        for prompt in ["query", "passage"] {
            let got = embed(&svc, &texts(), Some(prompt));
            let label = format!("{} built-in {prompt}", dir.display());
            assert_parity(&label, &got.vectors, &vectors(&expected["embeddings_by_prompt"][prompt]));
        }
        let plain = embed(&svc, &texts(), None);
        assert_eq!(plain.token_counts, token_counts(expected));
        assert_parity(&format!("{} without a prompt", dir.display()), &plain.vectors, &vectors(&expected["embeddings"]));
        svc.close_blocking();
    }

    let other = copy_model(&reference("tiny-xlmr-mean-prompts").join("model"), "some-other-model");
    strip(&other);
    let svc = service(other.clone());
    let err = svc.embed_blocking(vec!["a".into()], EmbedOptions { prompt: PromptChoice::Named("query".into()), ..Default::default() }).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("prompts are: none"), "{}", err.message);
    svc.close_blocking();
    for dir in [e5, e5_bert, other] {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

/// ModernBERT (global and sliding-window attention, rotary positions, GeGLU): parity with sentence-transformers
/// on a tiny random model whose window (8) is shorter than most texts; token counts equal; a padded batch and
/// one-at-a-time calls agree.
#[test]
fn tiny_modernbert_mean_pooling_matches_sentence_transformers() {
    let expected = read_json(reference("tiny-modernbert-mean").join("expected.json"));
    let want = vectors(&expected["embeddings"]);
    let svc = service(reference("tiny-modernbert-mean").join("model"));
    let got = embed(&svc, &texts(), None);
    assert_eq!(got.dimensions, 32);
    assert_eq!(got.token_counts, token_counts(&expected));
    assert_parity("tiny-modernbert-mean, batched", &got.vectors, &want);
    let singles: Vec<Vec<f32>> = texts().iter().map(|t| embed(&svc, std::slice::from_ref(t), None).vectors[0].to_vec()).collect();
    assert_parity("tiny-modernbert-mean, one at a time", &singles, &want);
    svc.close_blocking();
}

/// Qwen3 as Qwen3-Embedding uses it (grouped-query causal attention, per-head q/k RMSNorm, rotary positions,
/// SwiGLU, last-token pooling): parity with sentence-transformers on a tiny random model, with and without its
/// `query` instruction prompt, batched and one at a time, at each Matryoshka size its fixture records; token
/// counts equal (the tokenizer appends <|endoftext|>, kept when a text is truncated at 512 tokens); several
/// texts span more than one of the fast path's 64-row attention blocks.
#[test]
fn tiny_qwen3_last_token_matches_sentence_transformers_with_and_without_its_prompt() {
    let expected = read_json(reference("tiny-qwen3-last").join("expected.json"));
    let svc = service(reference("tiny-qwen3-last").join("model"));
    let plain = embed(&svc, &texts(), None);
    assert_eq!(plain.dimensions, 32);
    assert_eq!(svc.status().family.as_deref(), Some("qwen3"));
    assert_eq!(plain.token_counts, token_counts(&expected));
    assert!(plain.token_counts.iter().filter(|&&n| n > 64).count() >= 3, "{:?}", plain.token_counts);
    assert_eq!(plain.token_counts.iter().max(), Some(&512));
    assert_parity("tiny-qwen3-last, batched", &plain.vectors, &vectors(&expected["embeddings"]));
    let singles: Vec<Vec<f32>> = texts().iter().map(|t| embed(&svc, std::slice::from_ref(t), None).vectors[0].to_vec()).collect();
    assert_parity("tiny-qwen3-last, one at a time", &singles, &vectors(&expected["embeddings"]));
    let query = embed(&svc, &texts(), Some("query"));
    let counts: Vec<usize> = serde_json::from_value(expected["token_counts_by_prompt"]["query"].clone()).unwrap();
    assert_eq!(query.token_counts, counts);
    assert_parity("tiny-qwen3-last, query prompt", &query.vectors, &vectors(&expected["embeddings_by_prompt"]["query"]));
    // The query lane picks the `query` prompt by itself, as for any model that names one.
    let lane = svc.embed_blocking(texts(), EmbedOptions { prompt: PromptChoice::Query, ..Default::default() }).unwrap();
    assert_eq!(lane.vectors, query.vectors);
    for (size, want) in expected["embeddings_truncated"].as_object().unwrap() {
        let size: usize = size.parse().unwrap();
        let options = EmbedOptions { output: Output { normalize: None, dimensions: Some(size) }, ..Default::default() };
        let got = svc.embed_blocking(texts(), options).unwrap();
        assert_eq!(got.dimensions, size);
        assert_parity(&format!("tiny-qwen3-last, dimensions {size}"), got.vectors.iter(), &vectors(want));
    }
    svc.close_blocking();
}

/// Gemma 3 as EmbeddingGemma uses it (bidirectional attention, three local layers seeing |q - k| < 17 and a
/// global one, each with its rotary base; grouped-query heads wider than hidden/heads; query_pre_attn_scalar
/// scaling; (1 + w) RMSNorms before and after each block; tanh GeGLU; embeddings scaled by sqrt(hidden)), then
/// mean pooling and two Dense projections: parity with sentence-transformers on a tiny random model, with no
/// prompt and with its `query` and `document` task prompts, batched and one at a time, at each Matryoshka size
/// its fixture records; token counts equal (<bos> ... <eos>, kept when a text is truncated at 256 tokens); most
/// texts are longer than the window, and some span several of the fast path's 64-row attention blocks.
#[test]
fn tiny_gemma3_matches_sentence_transformers_with_and_without_its_task_prompts() {
    let expected = read_json(reference("tiny-gemma3-mean").join("expected.json"));
    let svc = service(reference("tiny-gemma3-mean").join("model"));
    let plain = embed(&svc, &texts(), None);
    assert_eq!(plain.dimensions, 32);
    assert_eq!(svc.status().family.as_deref(), Some("gemma3_text"));
    assert_eq!(plain.token_counts, token_counts(&expected));
    let window = expected["window"].as_u64().unwrap() as usize;
    assert!(plain.token_counts.iter().filter(|&&n| n > window).count() >= 16, "{:?}", plain.token_counts);
    assert!(plain.token_counts.iter().filter(|&&n| n > 128).count() >= 3, "{:?}", plain.token_counts);
    assert_eq!(plain.token_counts.iter().max(), Some(&256));
    assert_parity("tiny-gemma3-mean, batched", &plain.vectors, &vectors(&expected["embeddings"]));
    let singles: Vec<Vec<f32>> = texts().iter().map(|t| embed(&svc, std::slice::from_ref(t), None).vectors[0].to_vec()).collect();
    assert_parity("tiny-gemma3-mean, one at a time", &singles, &vectors(&expected["embeddings"]));
    for prompt in ["query", "document"] {
        let got = embed(&svc, &texts(), Some(prompt));
        let counts: Vec<usize> = serde_json::from_value(expected["token_counts_by_prompt"][prompt].clone()).unwrap();
        assert_eq!(got.token_counts, counts, "{prompt}");
        assert_parity(&format!("tiny-gemma3-mean, {prompt} prompt"), &got.vectors, &vectors(&expected["embeddings_by_prompt"][prompt]));
    }
    // The query lane picks the `query` prompt by itself.
    let lane = svc.embed_blocking(texts(), EmbedOptions { prompt: PromptChoice::Query, ..Default::default() }).unwrap();
    assert_eq!(lane.vectors, embed(&svc, &texts(), Some("query")).vectors);
    for (size, want) in expected["embeddings_truncated"].as_object().unwrap() {
        let size: usize = size.parse().unwrap();
        let options = EmbedOptions { output: Output { normalize: None, dimensions: Some(size) }, ..Default::default() };
        let got = svc.embed_blocking(texts(), options).unwrap();
        assert_eq!(got.dimensions, size);
        assert_parity(&format!("tiny-gemma3-mean, dimensions {size}"), got.vectors.iter(), &vectors(want));
    }
    svc.close_blocking();
}

/// sentence-transformers `Dense` modules after pooling (32 -> 48 with a bias and Tanh, 48 -> 16 without a bias),
/// then Normalize: parity, the output size from the last module, and `dimensions` under it. A Dense module's
/// weights that do not fit its config, or are missing, refuse the model with ERR_MODEL_INVALID naming the file.
#[test]
fn dense_modules_after_pooling_match_sentence_transformers() {
    let expected = read_json(reference("tiny-bert-dense").join("expected.json"));
    let svc = service(reference("tiny-bert-dense").join("model"));
    let got = embed(&svc, &texts(), None);
    assert_eq!(got.dimensions, 16);
    assert_eq!(svc.dimensions(), Some(16));
    assert_eq!(got.token_counts, token_counts(&expected));
    assert_parity("tiny-bert-dense", &got.vectors, &vectors(&expected["embeddings"]));
    let err = svc
        .embed_blocking(vec!["a".into()], EmbedOptions { output: Output { dimensions: Some(17), normalize: None }, ..Default::default() })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    svc.close_blocking();

    let broken = copy_model(&reference("tiny-bert-dense").join("model"), "dense-broken");
    std::fs::copy(broken.join("2_Dense/model.safetensors"), broken.join("3_Dense/model.safetensors")).unwrap();
    let err = Service::new(ServiceOptions::new(broken.to_string_lossy())).and_then(|svc| svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).map(|_| ())).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelInvalid);
    assert!(err.message.contains("3_Dense") && err.message.contains("linear.weight"), "{}", err.message);
    std::fs::remove_file(broken.join("3_Dense/model.safetensors")).unwrap();
    let err = Service::new(ServiceOptions::new(broken.to_string_lossy())).and_then(|svc| svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).map(|_| ())).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelInvalid);
    assert!(err.message.contains("3_Dense") && err.message.contains("missing"), "{}", err.message);
    let _ = std::fs::remove_dir_all(broken.parent().unwrap());
}

/// `normalize` and `dimensions` against sentence-transformers (`scripts/fixtures/make_output_shapes.py`): the
/// direction to 0.99999 cosine and the length to 1e-5, since an unnormalised vector's length is the point.
#[test]
fn normalize_and_dimensions_match_sentence_transformers_shapes() {
    let expected = read_json(reference("output-shapes").join("expected.json"));
    let svc = service(minilm_dir());
    let shaped = |normalize: Option<bool>, dimensions: Option<usize>| {
        let options = EmbedOptions { output: Output { normalize, dimensions }, ..Default::default() };
        svc.embed_blocking(texts(), options).unwrap()
    };
    let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    for (label, got, key) in [
        ("dimensions 128", shaped(None, Some(128)), "truncated_128"),
        ("normalize false", shaped(Some(false), None), "unnormalized"),
        ("normalize false, dimensions 64", shaped(Some(false), Some(64)), "unnormalized_truncated_64"),
    ] {
        let want = vectors(&expected[key]);
        assert_eq!(got.dimensions, want[0].len(), "{label}");
        assert_parity(label, got.vectors.iter(), &want);
        for (i, (g, w)) in got.vectors.iter().zip(&want).enumerate() {
            let (ng, nw) = (norm(g), norm(w));
            assert!((ng - nw).abs() <= 1e-5 * nw.max(1e-6), "{label}: text {i} has length {ng}, sentence-transformers {nw}");
        }
    }
    // The default is the model's own pipeline, bit for bit the same as asking for it by name.
    let default = embed(&svc, &texts(), None);
    let explicit = shaped(Some(true), Some(384));
    assert_eq!(default.vectors, explicit.vectors);
    let err = svc
        .embed_blocking(vec!["a".into()], EmbedOptions { output: Output { dimensions: Some(385), normalize: None }, ..Default::default() })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("385") && err.message.contains("384"), "{}", err.message);
    assert_eq!(embed(&svc, &["after the refusal".to_string()], None).vectors.len(), 1);
}

/// `embedQuery` / `embedDocuments` pick the prompts sentence-transformers' `encode_query` / `encode_document`
/// pick: "query"; "document" before "passage" (this model's "document" prompt is empty).
#[test]
fn query_and_document_roles_use_the_models_prompts() {
    let expected = read_json(reference("tiny-xlmr-mean-prompts").join("expected.json"));
    let svc = service(reference("tiny-xlmr-mean-prompts").join("model"));
    let query = svc.embed_blocking(texts(), EmbedOptions { prompt: PromptChoice::Query, ..Default::default() }).unwrap();
    assert_parity("role query", query.vectors.iter(), &vectors(&expected["embeddings_by_prompt"]["query"]));
    let document = svc.embed_blocking(texts(), EmbedOptions { prompt: PromptChoice::Document, ..Default::default() }).unwrap();
    assert_parity("role document", document.vectors.iter(), &vectors(&expected["embeddings"]));
    // A model without such prompts embeds with none.
    let plain = service(reference("tiny-xlmr-cls").join("model"));
    let expected = read_json(reference("tiny-xlmr-cls").join("expected.json"));
    let got = plain.embed_blocking(texts(), EmbedOptions { prompt: PromptChoice::Query, ..Default::default() }).unwrap();
    assert_parity("role query without prompts", got.vectors.iter(), &vectors(&expected["embeddings"]));
}
