//! fixclf: fixed-classifier experiments (Hoffer, Hubara, Soudry, ICLR 2018) on libtorch.
pub mod bench;
pub mod classifier;
pub mod config;
pub mod corpus;
pub mod embed;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod lm;
pub mod memory;
pub mod optim;
pub mod report;
pub mod run;
pub mod suite;
pub mod train;
pub mod vectors;

pub use error::{Error, Result};
