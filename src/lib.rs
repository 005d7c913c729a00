//! fixclf: fixed-classifier experiments (Hoffer, Hubara, Soudry, ICLR 2018) on libtorch.
pub mod embed;
pub mod error;
pub mod fsutil;
pub mod vectors;

pub use error::{Error, Result};
