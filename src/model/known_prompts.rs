//! Prompts for well-known models whose folders do not declare them.
//!
//! The E5 family (intfloat/e5-*, intfloat/multilingual-e5-*) was trained with "query: " and "passage: "
//! prefixes, and embeds noticeably worse without them, but many copies of it (including the hub's own
//! multilingual-e5 folders) have no `prompts` in `config_sentence_transformers.json`. For those, and only when
//! the folder declares no prompts itself, this table supplies them under the names sentence-transformers users
//! know: `query` and `passage`, wherever the folder leaves those names undeclared or empty. A folder's own
//! non-empty prompts always win.

use std::collections::BTreeMap;

/// The built-in prompts for a model id (a hub id such as "intfloat/multilingual-e5-large", or a folder path
/// whose last component names the model), or `None` for a model this table does not know.
pub fn for_model(model: &str) -> Option<BTreeMap<String, String>> {
    let name = model.trim_end_matches(['/', '\\']).rsplit(['/', '\\']).next()?.to_ascii_lowercase();
    // A hub cache folder is named models--<org>--<name>.
    let name = name.rsplit("--").next().unwrap_or(&name);
    let e5 = name.starts_with("e5-") || name.starts_with("multilingual-e5-");
    // e5-mistral and the instruct variants use instructions rather than these prefixes.
    if !e5 || name.contains("instruct") || name.contains("mistral") {
        return None;
    }
    Some(BTreeMap::from([("query".to_string(), "query: ".to_string()), ("passage".to_string(), "passage: ".to_string())]))
}

#[cfg(test)]
mod tests {
    use super::for_model;

    #[test]
    fn e5_models_get_query_and_passage_prefixes() {
        for id in ["intfloat/multilingual-e5-large", "intfloat/multilingual-e5-small", "intfloat/e5-base-v2", "/models/E5-small-v2/"] {
            let p = for_model(id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(p["query"], "query: ");
            assert_eq!(p["passage"], "passage: ");
        }
    }

    #[test]
    fn other_models_get_nothing() {
        for id in ["sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-m3", "intfloat/multilingual-e5-large-instruct", "intfloat/e5-mistral-7b-instruct", "me/not-e5-really", ""] {
            assert!(for_model(id).is_none(), "{id}");
        }
    }
}
