//! The image-classification task.
pub mod augment;
pub mod data;
pub mod models;
pub mod params;
