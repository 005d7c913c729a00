//! A small CNN for quick runs: three blocks of 3x3 conv-BN-ReLU-2x2 max pool (`width`,
//! `2 width`, `4 width` channels), then global average pooling: N = `4 width` features.
//! Any input of at least 8x8 pixels (28x28x1 MNIST, 32x32x3 CIFAR); with width 32 it has
//! about 94 k parameters.
use super::layers::{batch_norm, conv2d, kaiming_normal};
use super::Backbone;
use tch::nn::init::FanInOut;
use tch::nn::{self, ModuleT};

/// 3x3 conv (no bias) - BN - ReLU - 2x2 max pool, `c_in` to `c_out` channels (without
/// `norm`: no BN, and the convolution has a bias instead; `sync_bn`: synchronized BN).
fn block(p: nn::Path, c_in: i64, c_out: i64, norm: bool, sync_bn: bool) -> impl ModuleT {
    let conv = conv2d(
        &p / "conv",
        (c_in, c_out),
        3,
        1,
        1,
        kaiming_normal(FanInOut::FanOut),
    );
    let bn = norm.then(|| batch_norm(&p / "bn", c_out, 0.0, sync_bn));
    let bias = (!norm).then(|| p.zeros("bias", &[c_out]));
    nn::func_t(move |xs, train| {
        let y = xs.apply(&conv);
        let y = match (&bn, &bias) {
            (Some(bn), _) => y.apply_t(bn, train),
            (None, Some(b)) => y + b.view([1, -1, 1, 1]),
            (None, None) => y,
        };
        y.relu().max_pool2d_default(2)
    })
}

/// The small CNN's backbone under `p` (`block1` .. `block3`); `last`: block 3's width
/// (default `4 width`; the classes for Zhu et al.'s `fixdim`); `norm`: BatchNorm after each
/// convolution (else a bias), synchronized over the ranks with `sync_bn`.
pub fn small_cnn(
    p: &nn::Path,
    in_channels: i64,
    width: i64,
    last: Option<i64>,
    norm: bool,
    sync_bn: bool,
) -> Backbone {
    let out = last.unwrap_or(4 * width);
    let b1 = block(p / "block1", in_channels, width, norm, sync_bn);
    let b2 = block(p / "block2", width, 2 * width, norm, sync_bn);
    let b3 = block(p / "block3", 2 * width, out, norm, sync_bn);
    Backbone {
        net: nn::func_t(move |xs, train| {
            xs.apply_t(&b1, train)
                .apply_t(&b2, train)
                .apply_t(&b3, train)
                .adaptive_avg_pool2d([1, 1])
                .flat_view()
        }),
        features: out,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{count_with_classifier, forward_features};
    use super::super::{Arch, ModelConfig};

    #[test]
    fn small_cnn_takes_mnist_and_cifar_images() {
        let cfg = ModelConfig::new(Arch::SmallCnn);
        assert_eq!(forward_features(&cfg, [2, 1, 28, 28]), 128);
        assert_eq!(forward_features(&cfg, [2, 3, 32, 32]), 128);
        // 3x3 convs 3-32-64-128 and their BN: 864 + 18,432 + 73,728 + 2 x 224.
        let (n, f) = count_with_classifier(&cfg, 3, 10);
        assert_eq!(n - (f * 10 + 10), 864 + 18_432 + 73_728 + 2 * 224);
        assert!(n < 300_000, "{n}");
    }
}
