//! The CIFAR ResNet of He et al. 2016 (section 4.2): depth 6n+2, a 3x3 conv of 16 channels,
//! three stages of n basic blocks of 16, 32 and 64 channels (stride 2 at the first block of
//! stages 2 and 3), global average pooling: N = 64 features. Where a block changes the shape,
//! its shortcut is a 1x1 convolution + BN (option B). Convolutions have no bias; weights are
//! Kaiming-normal (fan_out), BN weight 1 and bias 0, as torchvision initializes its ResNets.
//! Parameter names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`).
//!
//! With a learned 10-way classifier: ResNet-20 has 272,474 parameters, ResNet-56 855,770.
use super::layers::{batch_norm, conv2d, kaiming_normal};
use super::Backbone;
use tch::nn::init::FanInOut;
use tch::nn::{self, ModuleT};

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> nn::Conv2D {
    conv2d(
        p,
        (c_in, c_out),
        k,
        stride,
        1,
        kaiming_normal(FanInOut::FanOut),
    )
}

/// conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.
fn basic_block(p: nn::Path, c_in: i64, c_out: i64, stride: i64, sync_bn: bool) -> impl ModuleT {
    let conv1 = conv(&p / "conv1", c_in, c_out, 3, stride);
    let bn1 = batch_norm(&p / "bn1", c_out, 0.0, sync_bn);
    let conv2 = conv(&p / "conv2", c_out, c_out, 3, 1);
    let bn2 = batch_norm(&p / "bn2", c_out, 0.0, sync_bn);
    let downsample = (stride != 1 || c_in != c_out).then(|| {
        let d = &p / "downsample";
        (
            conv(&d / "0", c_in, c_out, 1, stride),
            batch_norm(&d / "1", c_out, 0.0, sync_bn),
        )
    });
    nn::func_t(move |xs, train| {
        let ys = xs
            .apply(&conv1)
            .apply_t(&bn1, train)
            .relu()
            .apply(&conv2)
            .apply_t(&bn2, train);
        let shortcut = match &downsample {
            Some((c, bn)) => xs.apply(c).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (shortcut + ys).relu()
    })
}

/// A stage of `blocks` basic blocks, the first with `stride`; the last one's output has
/// `last` channels when given (tding1/Neural-Collapse's `outdim`), `c_out` otherwise.
fn stage(
    p: nn::Path,
    (c_in, c_out): (i64, i64),
    stride: i64,
    blocks: i64,
    last: Option<i64>,
    sync_bn: bool,
) -> nn::SequentialT {
    (0..blocks).fold(nn::seq_t(), |seq, i| {
        let (c, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
        let out = if i == blocks - 1 {
            last.unwrap_or(c_out)
        } else {
            c_out
        };
        seq.add(basic_block(&p / i, c, out, s, sync_bn))
    })
}

/// The CIFAR ResNet of `depth` = 6n+2 under `p` (validated by [`super::ModelConfig`]).
/// `last`: the last block's width (Zhu et al.'s `fixdim`: the classes), default 64;
/// `sync_bn`: synchronized BatchNorm ([`crate::distributed::sync_bn`]).
pub fn resnet_cifar(
    p: &nn::Path,
    depth: i64,
    in_channels: i64,
    last: Option<i64>,
    sync_bn: bool,
) -> Backbone {
    let n = (depth - 2) / 6;
    let conv1 = conv(p / "conv1", in_channels, 16, 3, 1);
    let bn1 = batch_norm(p / "bn1", 16, 0.0, sync_bn);
    let layer1 = stage(p / "layer1", (16, 16), 1, n, None, sync_bn);
    let layer2 = stage(p / "layer2", (16, 32), 2, n, None, sync_bn);
    let layer3 = stage(p / "layer3", (32, 64), 2, n, last, sync_bn);
    Backbone {
        net: nn::func_t(move |xs, train| {
            xs.apply(&conv1)
                .apply_t(&bn1, train)
                .relu()
                .apply_t(&layer1, train)
                .apply_t(&layer2, train)
                .apply_t(&layer3, train)
                .adaptive_avg_pool2d([1, 1])
                .flat_view()
        }),
        features: last.unwrap_or(64),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{count_with_classifier, forward_features};
    use super::super::{Arch, ModelConfig};
    use tch::{nn, Device};

    fn depth(d: i64) -> ModelConfig {
        ModelConfig {
            depth: d,
            ..ModelConfig::new(Arch::ResnetCifar)
        }
    }

    #[test]
    fn resnet_56_and_20_parameter_counts() {
        assert_eq!(count_with_classifier(&depth(56), 3, 10), (855_770, 64));
        assert_eq!(count_with_classifier(&depth(0), 3, 10), (855_770, 64));
        assert_eq!(count_with_classifier(&depth(20), 3, 10), (272_474, 64));
    }

    #[test]
    fn resnet_20_forward_shape_and_names() {
        assert_eq!(forward_features(&depth(20), [2, 3, 32, 32]), 64);
        let vs = nn::VarStore::new(Device::Cpu);
        super::super::build(&vs.root(), &depth(20), 3).unwrap();
        let names = vs.variables();
        for want in [
            "conv1.weight",
            "layer1.2.bn2.bias",
            "layer2.0.downsample.0.weight",
            "layer3.0.downsample.1.running_var",
        ] {
            assert!(names.contains_key(want), "{want}");
        }
        assert!(!names.contains_key("layer1.0.downsample.0.weight"));
        assert!(!names
            .keys()
            .any(|k| k.contains("conv") && k.ends_with(".bias")));
        let bn = &names["layer1.0.bn1.weight"];
        assert_eq!(bn.min().double_value(&[]), 1.0);
    }
}
