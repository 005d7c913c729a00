//! fixclf: fixed-classifier experiments (Hoffer, Hubara, Soudry, ICLR 2018) on libtorch.
pub mod bench;
pub mod classifier;
pub mod config;
pub mod distributed;
pub mod embed;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod fuzzing;
pub mod interrupt;
pub mod linalg;
pub mod lm;
pub mod memory;
pub mod native;
pub mod optim;
pub mod random;
pub mod report;
pub mod stats;
pub mod suite;
pub mod tasks;
pub mod tensor_map;
pub mod vectors;
pub mod vision;

pub use error::{Error, Result};
