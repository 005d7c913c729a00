//! The language-model task: a 2-layer LSTM on WikiText-2 / PTB with a pluggable classifier
//! head. `corpus` (vocabulary, token caches, batches), `model` (the LSTM backbone + head),
//! `task` (the engine's [`crate::engine::Task`]: training step, evaluation), `bench`
//! (`fixclf bench lm`), `config` (the `[lm]` section).
pub mod config;
pub mod corpus;
pub mod model;
pub mod task;

pub use config::LmConfig;
pub use model::LanguageModel;
pub use task::LmTask;
