//! What one embedding request asks for beyond its texts: its lane, the prompt its texts get, and the shape of
//! its vectors (normalised or not, and how many dimensions). The worker resolves the prompt against the loaded
//! model and finishes each vector with `Output` as it stores it, so a request that asks for nothing special
//! costs exactly what it did before: the model's own normalisation, moved from the pooling to the store.

use crate::error::{Error, Result};
use crate::model::pooling;
use crate::scheduler::Priority;

/// Which of the model's prompts a request's texts get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PromptChoice {
    /// The model's `default_prompt_name`, if it has one.
    #[default]
    ModelDefault,
    /// A prompt by name; an unknown name is `ERR_INVALID_INPUT`.
    Named(String),
    /// The prompt for search queries, as sentence-transformers' `encode_query` picks it: "query" where the model
    /// has it, else the model's default.
    Query,
    /// The prompt for documents, as `encode_document` picks it: "document", "passage" or "corpus" (the first
    /// the model has), else the model's default.
    Document,
}

impl PromptChoice {
    /// The prompt name to apply, given the names the loaded model has; `None` for the model's default.
    pub fn resolve<'a>(&'a self, names: &'a [String]) -> Option<&'a str> {
        let first_known = |candidates: &[&str]| -> Option<&'a str> {
            candidates.iter().find_map(|c| names.iter().find(|n| n == c)).map(String::as_str)
        };
        match self {
            PromptChoice::ModelDefault => None,
            PromptChoice::Named(name) => Some(name),
            PromptChoice::Query => first_known(&["query"]),
            PromptChoice::Document => first_known(&["document", "passage", "corpus"]),
        }
    }
}

/// The shape of a request's vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Output {
    /// `None`: as the model's sentence-transformers config says (a `Normalize` module or not).
    pub normalize: Option<bool>,
    /// Keep the first `n` dimensions (Matryoshka truncation); `None`: all of them.
    pub dimensions: Option<usize>,
}

impl Output {
    /// How this request's vectors are finished, now that the model (and its size) is known.
    pub fn finisher(&self, model_dimensions: usize, model_normalizes: bool, arrives_normalized: bool) -> Result<Finisher> {
        let dimensions = match self.dimensions {
            None => model_dimensions,
            Some(0) => return Err(Error::invalid_input("options.dimensions must be at least 1")),
            Some(d) if d > model_dimensions => {
                return Err(Error::invalid_input(format!(
                    "options.dimensions is {d}, more than the model's {model_dimensions}; a vector can only be truncated"
                )))
            }
            Some(d) => d,
        };
        let truncated = dimensions < model_dimensions;
        let normalize = self.normalize.unwrap_or(model_normalizes);
        // A vector that arrives unit-length (a server's) and keeps all its dimensions is already what was asked.
        let normalize = normalize && (truncated || !arrives_normalized);
        Ok(Finisher { dimensions, normalize })
    }
}

/// Turns one pooled vector into what the request asked for: truncated, then L2-normalised where asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finisher {
    pub dimensions: usize,
    pub normalize: bool,
}

impl Finisher {
    /// The finished vector, in place in `v`'s first `dimensions` values; returns them.
    pub fn finish<'a>(&self, v: &'a mut [f32]) -> &'a [f32] {
        let v = &mut v[..self.dimensions];
        if self.normalize {
            pooling::normalize(v);
        }
        v
    }
}

/// What a request's texts are, as retrieval frameworks name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// Search queries: the query lane and the model's query prompt.
    Query,
    /// What goes into an index: the index lane and the model's document prompt.
    Document,
}

/// Options for one `embed` call.
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    pub prompt: PromptChoice,
    pub priority: Priority,
    pub output: Output,
}

impl EmbedOptions {
    /// The options a caller's choices make: `input_type` sets the lane and the prompt role, and an explicit
    /// `priority` or `prompt` wins over it.
    pub fn from_choices(input_type: Option<InputType>, priority: Option<Priority>, prompt: Option<String>, output: Output) -> Self {
        let prompt = match (prompt, input_type) {
            (Some(name), _) => PromptChoice::Named(name),
            (None, Some(InputType::Query)) => PromptChoice::Query,
            (None, Some(InputType::Document)) => PromptChoice::Document,
            (None, None) => PromptChoice::ModelDefault,
        };
        let lane = match input_type {
            Some(InputType::Query) => Priority::Query,
            Some(InputType::Document) | None => Priority::Index,
        };
        EmbedOptions { prompt, priority: priority.unwrap_or(lane), output }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn query_and_document_prompts_follow_sentence_transformers_order() {
        let e5 = names(&["passage", "query"]);
        assert_eq!(PromptChoice::Query.resolve(&e5), Some("query"));
        assert_eq!(PromptChoice::Document.resolve(&e5), Some("passage"));
        let both = names(&["corpus", "document", "passage", "query"]);
        assert_eq!(PromptChoice::Document.resolve(&both), Some("document"));
        // A model without such prompts gets its default (None here), never a made-up name.
        let none = names(&["classification"]);
        assert_eq!(PromptChoice::Query.resolve(&none), None);
        assert_eq!(PromptChoice::Document.resolve(&none), None);
        assert_eq!(PromptChoice::Named("x".into()).resolve(&none), Some("x"));
        assert_eq!(PromptChoice::ModelDefault.resolve(&e5), None);
    }

    #[test]
    fn input_type_sets_lane_and_prompt_unless_told_otherwise() {
        let o = Output::default();
        let q = EmbedOptions::from_choices(Some(InputType::Query), None, None, o);
        assert_eq!((q.priority, q.prompt), (Priority::Query, PromptChoice::Query));
        let d = EmbedOptions::from_choices(Some(InputType::Document), None, None, o);
        assert_eq!((d.priority, d.prompt), (Priority::Index, PromptChoice::Document));
        let plain = EmbedOptions::from_choices(None, None, None, o);
        assert_eq!((plain.priority, plain.prompt), (Priority::Index, PromptChoice::ModelDefault));
        let explicit = EmbedOptions::from_choices(Some(InputType::Query), Some(Priority::Index), Some("passage".into()), o);
        assert_eq!((explicit.priority, explicit.prompt), (Priority::Index, PromptChoice::Named("passage".into())));
    }

    #[test]
    fn default_output_is_the_model_normalisation_over_all_dimensions() {
        let f = Output::default().finisher(4, true, false).unwrap();
        assert_eq!(f, Finisher { dimensions: 4, normalize: true });
        let mut v = [3.0, 0.0, 4.0, 0.0];
        assert_eq!(f.finish(&mut v), &[0.6, 0.0, 0.8, 0.0]);
        let raw = Output::default().finisher(4, false, false).unwrap();
        let mut w = [3.0, 0.0, 4.0, 0.0];
        assert_eq!(raw.finish(&mut w), &[3.0, 0.0, 4.0, 0.0]);
    }

    #[test]
    fn truncation_renormalises_unless_told_not_to() {
        let f = Output { dimensions: Some(2), normalize: None }.finisher(4, true, false).unwrap();
        let mut v = [3.0, 4.0, 12.0, 0.0];
        assert_eq!(f.finish(&mut v), &[0.6, 0.8]);
        let f = Output { dimensions: Some(2), normalize: Some(false) }.finisher(4, true, false).unwrap();
        let mut v = [3.0, 4.0, 12.0, 0.0];
        assert_eq!(f.finish(&mut v), &[3.0, 4.0]);
        // A unit-length arrival (a server) is renormalised once truncated, left alone whole.
        assert!(Output { dimensions: Some(2), normalize: None }.finisher(4, true, true).unwrap().normalize);
        assert!(!Output::default().finisher(4, true, true).unwrap().normalize);
        assert!(Output { normalize: Some(true), dimensions: None }.finisher(4, false, false).unwrap().normalize);
    }

    #[test]
    fn dimensions_outside_the_model_are_refused() {
        let too_many = Output { dimensions: Some(5), normalize: None }.finisher(4, true, false).unwrap_err();
        assert_eq!(too_many.code, crate::error::ErrorCode::InvalidInput);
        assert!(too_many.message.contains("more than the model's 4"), "{}", too_many.message);
        assert!(Output { dimensions: Some(0), normalize: None }.finisher(4, true, false).is_err());
        assert_eq!(Output { dimensions: Some(4), normalize: None }.finisher(4, true, false).unwrap().dimensions, 4);
    }
}
