//! The image-classification task's data: `data` (Fashion-MNIST, MNIST, CIFAR-10/100 and a
//! synthetic set, as u8 image tensors with their per-channel mean and std) and `augment`
//! (normalization, random crop and horizontal flip on whole batches).
pub mod augment;
pub mod data;
