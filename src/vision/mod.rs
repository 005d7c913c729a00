//! Image classification: convolutional backbones (`models`, `[vision.model]`) that end in N
//! features for a classifier [`crate::classifier::Head`], and the parameter table of the
//! paper's networks (`params`).
pub mod models;
pub mod params;
