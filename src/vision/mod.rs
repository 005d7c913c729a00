//! The image-classification task: `data` (Fashion-MNIST, MNIST, CIFAR-10/100 and a synthetic
//! set, as u8 image tensors with their per-channel mean and std), `augment` (normalization,
//! random crop and horizontal flip on whole batches), `models` (backbones that return N
//! features: small CNN, CIFAR ResNet, DenseNet-BC, ResNet-50, DenseNet-169, ShuffleNet v1),
//! `params` (the paper's parameter table), `collapse` (neural-collapse diagnostics of the
//! training features), `config` (the `[vision]` section) and `task` (the
//! engine's [`crate::engine::Task`]: training step, evaluation by accuracy); `bench` is
//! `fixclf bench vision`.
pub mod augment;
pub mod collapse;
pub mod config;
pub mod data;
pub mod models;
pub mod params;
pub mod task;

pub use config::VisionConfig;
pub use task::VisionTask;
