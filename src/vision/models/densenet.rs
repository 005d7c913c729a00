//! DenseNet-BC (Huang et al. 2017): dense blocks of bottleneck layers (BN-ReLU-1x1 conv of
//! `4 k` channels - BN-ReLU-3x3 conv of `k`, concatenated to the input), transitions with
//! compression 0.5 (BN-ReLU-1x1 conv-2x2 average pool), a final BN-ReLU and global average
//! pooling. Two stems:
//! - CIFAR ([`densenet_bc`]): a 3x3 conv of `2 k` channels, three blocks of (depth - 4) / 6
//!   layers. DenseNet-BC-100-12: N = 342; 800,032 parameters with a learned 100-way
//!   classifier, 769,162 with a 10-way one (the paper's 0.8 M).
//! - ImageNet ([`densenet169`], torchvision's): a 7x7 stride-2 conv of 64 channels, BN, ReLU,
//!   a 3x3 stride-2 max pool, blocks of 6, 12, 32, 32 layers with k = 32: N = 1664;
//!   14,149,480 parameters with a learned 1000-way classifier.
//!
//! Convolutions have no bias and Kaiming-normal (fan_in) weights, BN weight 1 and bias 0, as
//! torchvision initializes its DenseNets; parameter names follow torchvision
//! (`features.denseblock1.denselayer1.conv1`, `features.transition1.conv`, `features.norm5`).
use super::layers::{batch_norm, conv2d, kaiming_normal};
use super::Backbone;
use tch::nn::init::FanInOut;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Bottleneck width factor: the 1x1 conv has `BN_SIZE k` channels.
const BN_SIZE: i64 = 4;

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> nn::Conv2D {
    conv2d(
        p,
        (c_in, c_out),
        k,
        stride,
        1,
        kaiming_normal(FanInOut::FanIn),
    )
}

/// BN-ReLU-1x1 conv (`BN_SIZE k`)-BN-ReLU-3x3 conv (`k`), concatenated after the input.
fn dense_layer(p: nn::Path, c_in: i64, growth: i64, sync_bn: bool) -> impl ModuleT {
    let c_mid = BN_SIZE * growth;
    let norm1 = batch_norm(&p / "norm1", c_in, 0.0, sync_bn);
    let conv1 = conv(&p / "conv1", c_in, c_mid, 1, 1);
    let norm2 = batch_norm(&p / "norm2", c_mid, 0.0, sync_bn);
    let conv2 = conv(&p / "conv2", c_mid, growth, 3, 1);
    nn::func_t(move |xs, train| {
        let ys = xs
            .apply_t(&norm1, train)
            .relu()
            .apply(&conv1)
            .apply_t(&norm2, train)
            .relu()
            .apply(&conv2);
        Tensor::cat(&[xs, &ys], 1)
    })
}

/// BN-ReLU-1x1 conv-2x2 average pool.
fn transition(p: nn::Path, c_in: i64, c_out: i64, sync_bn: bool) -> impl ModuleT {
    let norm = batch_norm(&p / "norm", c_in, 0.0, sync_bn);
    let conv = conv(&p / "conv", c_in, c_out, 1, 1);
    nn::func_t(move |xs, train| {
        xs.apply_t(&norm, train)
            .relu()
            .apply(&conv)
            .avg_pool2d_default(2)
    })
}

/// The stem at the start of the network.
enum Stem {
    /// 3x3 conv of `c` channels (CIFAR).
    Cifar(i64),
    /// 7x7 stride-2 conv of `c` channels, BN, ReLU, 3x3 stride-2 max pool (ImageNet).
    ImageNet(i64),
}

/// The network after `stem`: one dense block of `n` layers per entry of `blocks`, a
/// transition (compression 0.5) between two blocks, the final BN-ReLU and global pool;
/// `sync_bn`: synchronized BatchNorm ([`crate::distributed::sync_bn`]).
fn densenet(
    p: &nn::Path,
    stem: Stem,
    growth: i64,
    blocks: &[i64],
    in_channels: i64,
    sync_bn: bool,
) -> Backbone {
    let fp = p / "features";
    let mut seq = nn::seq_t();
    let mut c = match stem {
        Stem::Cifar(c) => {
            seq = seq.add(conv(&fp / "conv0", in_channels, c, 3, 1));
            c
        }
        Stem::ImageNet(c) => {
            seq = seq
                .add(conv(&fp / "conv0", in_channels, c, 7, 2))
                .add(batch_norm(&fp / "norm0", c, 0.0, sync_bn))
                .add_fn(|xs| xs.relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false));
            c
        }
    };
    for (i, &layers) in blocks.iter().enumerate() {
        let bp = &fp / format!("denseblock{}", i + 1);
        for l in 0..layers {
            seq = seq.add(dense_layer(
                &bp / format!("denselayer{}", l + 1),
                c,
                growth,
                sync_bn,
            ));
            c += growth;
        }
        if i + 1 < blocks.len() {
            seq = seq.add(transition(
                &fp / format!("transition{}", i + 1),
                c,
                c / 2,
                sync_bn,
            ));
            c /= 2;
        }
    }
    let norm5 = batch_norm(&fp / "norm5", c, 0.0, sync_bn);
    Backbone {
        net: nn::func_t(move |xs, train| {
            xs.apply_t(&seq, train)
                .apply_t(&norm5, train)
                .relu()
                .adaptive_avg_pool2d([1, 1])
                .flat_view()
        }),
        features: c,
    }
}

/// The CIFAR DenseNet-BC of `depth` = 6n+4 and growth `k` under `p` (validated by
/// [`super::ModelConfig`]).
pub fn densenet_bc(
    p: &nn::Path,
    depth: i64,
    growth: i64,
    in_channels: i64,
    sync_bn: bool,
) -> Backbone {
    let n = (depth - 4) / 6;
    densenet(
        p,
        Stem::Cifar(2 * growth),
        growth,
        &[n; 3],
        in_channels,
        sync_bn,
    )
}

/// torchvision's DenseNet-169 (ImageNet) under `p`: N = 1664.
pub fn densenet169(p: &nn::Path, in_channels: i64, sync_bn: bool) -> Backbone {
    densenet(
        p,
        Stem::ImageNet(64),
        32,
        &[6, 12, 32, 32],
        in_channels,
        sync_bn,
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{count_with_classifier, forward_features};
    use super::super::{Arch, ModelConfig};

    fn bc(depth: i64, growth: i64) -> ModelConfig {
        ModelConfig {
            depth,
            growth,
            ..ModelConfig::new(Arch::DensenetBc)
        }
    }

    #[test]
    fn densenet_bc_100_12_parameter_counts() {
        assert_eq!(count_with_classifier(&bc(100, 12), 3, 100), (800_032, 342));
        assert_eq!(count_with_classifier(&bc(0, 12), 3, 10), (769_162, 342));
    }

    #[test]
    fn densenet169_parameter_count() {
        let cfg = ModelConfig::new(Arch::Densenet169);
        assert_eq!(count_with_classifier(&cfg, 3, 1000), (14_149_480, 1664));
    }

    #[test]
    fn densenet_bc_forward_shape() {
        // Depth 22 (3 layers a block), k = 4: 8 -> 20 -> 10 -> 22 -> 11 -> 23 channels.
        assert_eq!(forward_features(&bc(22, 4), [2, 3, 32, 32]), 23);
        // Depth 10 (1 layer a block), k = 2: 4 -> 6 -> 3 -> 5 -> 2 -> 4 channels.
        assert_eq!(forward_features(&bc(10, 2), [1, 1, 28, 28]), 4);
    }
}
