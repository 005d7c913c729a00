//! ShuffleNet v1 as the PyTorch port of 2017 built it (github.com/jaxony/ShuffleNet, `model.py`
//! from 18 July to 14 November 2017), the layout whose parameter count is the paper's Table 1:
//! 1,826,554 with its learned 1000-way classifier for g = 3 (1,826,555 in the table: one more,
//! which is what a fixed classifier's learned scale adds when its fixed matrix is counted).
//!
//! It differs from megvii's reference ([`super::shufflenet`]) in four ways, each changing the
//! count or the function: every convolution has a bias; the stem is a bare 3x3 stride-2
//! convolution (no BN, no ReLU) before the max pool; a stride-2 unit's bottleneck is a quarter
//! of its branch's width (`(out - in) / 4`, where megvii takes `out / 4`); and the ReLU comes
//! after the unit's add or concatenation, so it clips the average-pooled shortcut too. The
//! channel shuffle is the paper's (`[g, C / g]` transposed), initialization the port's:
//! Kaiming normal (fan out) for convolutions with zero biases, BN weight 1 and bias 0.
use super::layers::batch_norm;
use super::shufflenet::{stage_channels, REPEATS, STEM};
use super::Backbone;
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

/// A convolution with bias, Kaiming normal weights over the fan out (`c_out k k`, as PyTorch
/// counts it for grouped convolutions too) and zero biases.
fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        groups,
        bias: true,
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: (2.0 / (c_out * k * k) as f64).sqrt(),
        },
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// `[B, C, H, W]` with channel `j C / g + i` moved to `i g + j` (the paper's shuffle).
fn channel_shuffle(xs: &Tensor, groups: i64) -> Tensor {
    let (b, c, h, w) = xs.size4().expect("a 4-d feature map");
    xs.reshape([b, groups, c / groups, h, w])
        .permute([0, 2, 1, 3, 4])
        .reshape([b, c, h, w])
}

/// One unit from `c_in` to `c_out` channels; stride 2 concatenates the pooled input.
fn unit(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    stride: i64,
    groups: i64,
    grouped_first: bool,
    sync_bn: bool,
) -> impl ModuleT {
    let branch = if stride == 2 { c_out - c_in } else { c_out };
    let mid = branch / 4;
    let first_groups = if grouped_first { groups } else { 1 };
    let compress = conv(&p / "compress", c_in, mid, 1, 1, first_groups);
    let compress_bn = batch_norm(&p / "compress_bn", mid, 0.0, sync_bn);
    let depthwise = conv(&p / "depthwise", mid, mid, 3, stride, mid);
    let depthwise_bn = batch_norm(&p / "depthwise_bn", mid, 0.0, sync_bn);
    let expand = conv(&p / "expand", mid, branch, 1, 1, groups);
    let expand_bn = batch_norm(&p / "expand_bn", branch, 0.0, sync_bn);
    nn::func_t(move |xs, train| {
        let ys = xs.apply(&compress).apply_t(&compress_bn, train).relu();
        let ys = channel_shuffle(&ys, groups)
            .apply(&depthwise)
            .apply_t(&depthwise_bn, train)
            .apply(&expand)
            .apply_t(&expand_bn, train);
        let combined = if stride == 1 {
            ys + xs
        } else {
            let pooled = xs.avg_pool2d([3, 3], [2, 2], [1, 1], false, true, None::<i64>);
            Tensor::cat(&[pooled, ys], 1)
        };
        combined.relu()
    })
}

/// ShuffleNet v1 1x with `groups` g in the 2017 port's layout (g validated by `ModelConfig`:
/// 1, 2 or 3; for 4 and 8 the port's stride-2 bottleneck is not divisible by g); `sync_bn`:
/// synchronized BatchNorm ([`crate::distributed::sync_bn`]).
pub fn shufflenet_v1_2017(p: &nn::Path, groups: i64, in_channels: i64, sync_bn: bool) -> Backbone {
    let channels = stage_channels(groups).expect("groups validated by ModelConfig");
    let stem = conv(p / "stem", in_channels, STEM, 3, 2, 1);
    let mut features = nn::seq_t();
    let mut c_in = STEM;
    for (stage, (&c_out, &repeats)) in channels.iter().zip(&REPEATS).enumerate() {
        let sp = p / format!("stage{}", stage + 2);
        for i in 0..repeats {
            let stride = if i == 0 { 2 } else { 1 };
            // Stage 2's first 1x1 convolution reads the 24 stem channels, ungrouped.
            let grouped_first = !(stage == 0 && i == 0);
            features = features.add(unit(
                &sp / i,
                c_in,
                c_out,
                stride,
                groups,
                grouped_first,
                sync_bn,
            ));
            c_in = c_out;
        }
    }
    Backbone {
        net: nn::func_t(move |xs, train| {
            xs.apply(&stem)
                .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
                .apply_t(&features, train)
                .adaptive_avg_pool2d([1, 1])
                .flat_view()
        }),
        features: channels[2],
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{count_with_classifier, forward_features};
    use super::super::{Arch, ModelConfig, ShufflenetLayout};
    use super::*;

    fn config(groups: i64) -> ModelConfig {
        ModelConfig {
            groups,
            shufflenet_layout: ShufflenetLayout::Jaxony2017,
            ..ModelConfig::new(Arch::ShufflenetV1)
        }
    }

    /// The count PyTorch gives for the port's `ShuffleNet(groups=3)` at its commits of
    /// 18 July - 14 November 2017 (`sum(p.numel() for p in net.parameters())`).
    #[test]
    fn g3_count_is_the_papers_table_less_the_scale() {
        let (n, f) = count_with_classifier(&config(3), 3, 1000);
        assert_eq!((n, f), (1_826_554, 960));
    }

    #[test]
    fn forward_shape_for_every_group_count() {
        for g in [1, 2, 3] {
            assert_eq!(forward_features(&config(g), [1, 3, 64, 64]), {
                stage_channels(g).unwrap()[2]
            });
        }
    }

    #[test]
    fn channel_shuffle_is_the_papers_order() {
        let x = Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu)).view([1, 6, 1, 1]);
        let y = Vec::<f32>::try_from(channel_shuffle(&x, 3).flatten(0, -1)).unwrap();
        assert_eq!(y, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    }
}
