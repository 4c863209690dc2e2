//! The errors of model building, and the "did you mean" hints they carry.

use thiserror::Error;

/// Errors of this crate.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    /// The name is not in the registry.
    #[error("unknown model '{name}'{}; known models: {known}", suggestion.map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownModel {
        /// What the user typed.
        name: String,
        /// The closest registered name, if any is close.
        suggestion: Option<&'static str>,
        /// All registered names, comma separated.
        known: String,
    },
    /// A build option does not fit the model.
    #[error("{model}: {reason}")]
    BadOption {
        /// The model name.
        model: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The candidate closest to `name` (case-insensitive edit distance, at most 3), for "did you
/// mean" hints on any list of names.
pub fn nearest_name<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&name, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}
