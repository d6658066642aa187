//! The options of each call, from JS objects into the core's option types.

use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::Unknown;
use napi::ValueType;

use super::values::{millis, numbers_from_js, texts_from_js, type_name, unreadable, Props};
use crate::error::{Error, Result};
use crate::keyphrases::{KeyphraseOptions, Ranking, StopWords};
use crate::model::source::ModelSource;
use crate::model::Dtype;
use crate::scheduler::Priority;
use crate::service::{EmbedOptions, InputType, Output, ServiceOptions};

/// `{ ngramRange?, stopWords?, topN?, useMmr?, diversity?, maxCandidates?, priority? }` of `extractKeyphrases`.
pub(super) fn keyphrase_options(options: Option<Unknown>) -> Result<KeyphraseOptions> {
    let props = Props::new(options, "options")?;
    let mut o = KeyphraseOptions::default();
    if let Some((v, _)) = props.get("ngramRange")? {
        let pair = numbers_from_js(v, "options.ngramRange")?;
        match pair.as_slice() {
            [min, max] if min.fract() == 0.0 && max.fract() == 0.0 && *min >= 0.0 && *max >= 0.0 => {
                o.ngram_range = (*min as usize, *max as usize)
            }
            _ => return Err(Error::invalid_input("options.ngramRange must be [min, max], two whole numbers")),
        }
    }
    match props.get("stopWords")? {
        None => {}
        Some((_, ValueType::Null)) => o.stop_words = StopWords::None,
        Some((v, ValueType::String)) => {
            // SAFETY: checked to be a string.
            let name = unsafe { v.cast::<String>() }.map_err(|e| unreadable("options.stopWords", e))?;
            if name != "english" {
                return Err(Error::invalid_input(format!(
                    "options.stopWords must be 'english', null or an array of words, got {name:?}"
                )));
            }
        }
        Some((v, ValueType::Object)) => {
            o.stop_words = StopWords::Custom(
                texts_from_js(v).map_err(|e| Error::invalid_input(format!("options.stopWords: {}", e.message)))?,
            )
        }
        Some((_, t)) => return Err(props.wrong("stopWords", "'english', null or an array of words", t)),
    }
    if let Some(n) = props.count("topN")? {
        o.top_n = n;
    }
    if let Some(n) = props.count("maxCandidates")? {
        o.max_candidates = n;
    }
    let use_mmr = props.boolean("useMmr")?.unwrap_or(true);
    let diversity = props.number("diversity")?.unwrap_or(0.5);
    o.ranking = if use_mmr { Ranking::Mmr { diversity } } else { Ranking::Cosine };
    o.priority = embed_options_priority(&props)?;
    Ok(o)
}

pub(super) fn service_options(options: Option<Unknown>) -> Result<ServiceOptions> {
    let props = Props::new(options, "options")?;
    let model = props.string("model")?.ok_or_else(|| {
        Error::invalid_input(
            "options.model is required: a hub id such as \"sentence-transformers/all-MiniLM-L6-v2\" or a path to a \
             model folder",
        )
    })?;
    let mut o = ServiceOptions::new(model);
    if let Some(revision) = props.string("revision")? {
        o.revision = revision;
    }
    if let Some(dir) = props.string("cacheDir")? {
        o.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(offline) = props.boolean("offline")? {
        o.offline = offline;
    }
    if let Some(ms) = millis(&props, "downloadTimeoutMs", false)? {
        o.download_timeout = duration(ms)?;
    }
    if let Some(device) = props.string("device")? {
        o.device = device.parse()?;
    }
    if let Some(dtype) = props.string("dtype")? {
        o.dtype = Some(Dtype::parse(&dtype)?);
    }
    if let Some(threads) = props.count("threads")? {
        o.threads = threads;
    }
    if let Some(n) = props.count("maxBatchSize")? {
        o.limits.max_batch_size = n;
    }
    if let Some(n) = props.count("maxBatchTokens")? {
        o.limits.max_batch_tokens = n;
    }
    if let Some(ms) = millis(&props, "keepAliveMs", true)? {
        o.keep_alive = if ms >= 0.0 { Some(duration(ms)?) } else { None };
    }
    if let Some(ms) = millis(&props, "stallWarningMs", false)? {
        o.stall_warning = duration(ms)?;
    }
    if let Some(ms) = millis(&props, "stallTimeoutMs", false)? {
        o.stall_timeout = duration(ms)?;
    }
    if let Some(endpoint) = props.string("endpoint")? {
        o.remote = Some(crate::remote::RemoteOptions {
            endpoint,
            api_key: props.string("apiKey")?,
            concurrency: props.count("remoteConcurrency")?.unwrap_or(crate::remote::DEFAULT_CONCURRENCY),
        });
    } else if props.string("apiKey")?.is_some() || props.count("remoteConcurrency")?.is_some() {
        return Err(Error::invalid_input("`apiKey` and `remoteConcurrency` apply only with `endpoint`"));
    }
    let hooks = Props::new(props.get("testHooks")?.map(|(v, _)| v), "options.testHooks")?;
    o.faults.panic_on_text = hooks.string("panicOnText")?;
    o.faults.hold_index_until_queries = hooks.count("holdIndexBatchUntilQueries")?.unwrap_or(0);
    if let Some(ms) = millis(&hooks, "stallMs", false)? {
        o.faults.stall = Some(duration(ms)?);
    }
    Ok(o)
}

/// Milliseconds as a `Duration`; one too long for a `Duration` (about 1.8e22 ms) is refused, not a panic.
fn duration(ms: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| Error::invalid_input(format!("{ms} ms is too long a time; give at most 1e21")))
}

fn embed_options_priority(props: &Props) -> Result<Priority> {
    Ok(priority_choice(props)?.unwrap_or(Priority::Index))
}

/// `priority`, where the caller gave one.
fn priority_choice(props: &Props) -> Result<Option<Priority>> {
    match props.string("priority")?.as_deref() {
        None => Ok(None),
        Some("index") => Ok(Some(Priority::Index)),
        Some("query") => Ok(Some(Priority::Query)),
        Some(other) => Err(Error::invalid_input(format!("options.priority must be 'query' or 'index', got {other:?}"))),
    }
}

/// `{ inputType?, priority?, prompt?, normalize?, dimensions? }` of `embed` (and of `embedQuery` /
/// `embedDocuments`, which set `inputType`).
pub(super) fn embed_options(options: Option<Unknown>) -> Result<EmbedOptions> {
    let props = Props::new(options, "options")?;
    let input_type = match props.string("inputType")?.as_deref() {
        None => None,
        Some("query") => Some(InputType::Query),
        Some("document") => Some(InputType::Document),
        Some(other) => {
            return Err(Error::invalid_input(format!("options.inputType must be 'query' or 'document', got {other:?}")))
        }
    };
    let priority = priority_choice(&props)?;
    let output = Output { normalize: props.boolean("normalize")?, dimensions: props.count("dimensions")? };
    Ok(EmbedOptions::from_choices(input_type, priority, props.string("prompt")?, output))
}

/// `{ cacheDir?, revision?, offline?, downloadTimeoutMs? }` for the static model functions.
pub(super) fn model_source(model: Unknown, options: Option<Unknown>) -> Result<ModelSource> {
    let model = match model.get_type().map_err(|e| unreadable("model", e))? {
        // SAFETY: checked to be a string.
        ValueType::String => unsafe { model.cast::<String>() }.map_err(|e| unreadable("model", e))?,
        t => return Err(Error::invalid_input(format!("model must be a hub id or a folder path (a string), got {}", type_name(t)))),
    };
    let props = Props::new(options, "options")?;
    let mut source = ModelSource::new(model);
    if let Some(revision) = props.string("revision")? {
        source.revision = revision;
    }
    if let Some(dir) = props.string("cacheDir")? {
        source.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(offline) = props.boolean("offline")? {
        source.offline = offline;
    }
    if let Some(ms) = millis(&props, "downloadTimeoutMs", false)? {
        source.download_timeout = duration(ms)?;
    }
    Ok(source)
}
