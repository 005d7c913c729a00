//! ShuffleNet v1 1x (Zhang et al. 2018) for ImageNet: a 3x3 stride-2 conv of 24 channels +
//! BN + ReLU, a 3x3 stride-2 max pool, three stages of 4, 8, 4 units and global average
//! pooling. A unit is a grouped 1x1 conv to `out / 4` channels - BN - ReLU - channel shuffle -
//! 3x3 depthwise conv - BN - grouped 1x1 conv - BN, added to its input (then ReLU); the first
//! unit of a stage has stride 2 and concatenates the 3x3 stride-2 average pool of its input
//! (its 1x1 conv makes `out - in` channels). The first 1x1 conv of stage 2 is not grouped (24
//! input channels). Stage widths per group count g are the paper's Table 1.
//!
//! This is megvii's reference implementation (github.com/megvii-model/ShuffleNet-Series,
//! `ShuffleNetV1/{network,blocks}.py`), with its parameter names (`first_conv.0`,
//! `features.3.branch_main_1.0`, ...), channel-shuffle order (reshape to `[C / g, g]`,
//! transpose: the inverse of the paper's `[g, C / g]` permutation, which mixes the groups just
//! as well) and initialization (normal std 0.01 for the first conv, std `1 / fan_in` for the
//! others, BN weight 1 and bias 1e-4). g = 3: N = 960; 904,728 backbone parameters, 1,864,728
//! with megvii's bias-free 1000-way classifier (its README's "1.9M") and 1,865,728 with a
//! learned classifier with bias. The paper's Table 1 counts the 2017 PyTorch port's layout
//! instead: [`super::shufflenet_2017`].
use super::layers::{batch_norm, conv2d};
use super::Backbone;
use tch::nn::{self, Init, ModuleT};
use tch::Tensor;

/// Channels after the stem.
pub(super) const STEM: i64 = 24;
/// Units per stage.
pub(super) const REPEATS: [i64; 3] = [4, 8, 4];
/// BN bias at initialization (megvii's).
const BN_BIAS: f64 = 1e-4;

/// Output channels of stages 2, 3, 4 for `groups` (the paper's Table 1, 1x), if defined.
pub fn stage_channels(groups: i64) -> Option<[i64; 3]> {
    Some(match groups {
        1 => [144, 288, 576],
        2 => [200, 400, 800],
        3 => [240, 480, 960],
        4 => [272, 544, 1088],
        8 => [384, 768, 1536],
        _ => return None,
    })
}

/// Bias-free conv of `groups` groups, normal weights with std `1 / (c_in / groups)`.
fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let stdev = groups as f64 / c_in as f64;
    conv2d(
        p,
        (c_in, c_out),
        k,
        stride,
        groups,
        Init::Randn { mean: 0.0, stdev },
    )
}

/// `[B, C, H, W]` with channel `i g + j` moved to `j C / g + i` (megvii's order).
fn channel_shuffle(xs: &Tensor, groups: i64) -> Tensor {
    let (b, c, h, w) = xs.size4().expect("a 4-d feature map");
    xs.reshape([b, c / groups, groups, h, w])
        .permute([0, 2, 1, 3, 4])
        .reshape([b, c, h, w])
}

/// One ShuffleNet unit from `c_in` to `c_out` channels; `first_group`: ungrouped first 1x1.
fn unit(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    stride: i64,
    groups: i64,
    first_group: bool,
    sync_bn: bool,
) -> impl ModuleT {
    let mid = c_out / 4;
    let outputs = if stride == 2 { c_out - c_in } else { c_out };
    let (m1, m2) = (&p / "branch_main_1", &p / "branch_main_2");
    let pw_groups = if first_group { 1 } else { groups };
    let pw = conv(&m1 / "0", c_in, mid, 1, 1, pw_groups);
    let pw_bn = batch_norm(&m1 / "1", mid, BN_BIAS, sync_bn);
    let dw = conv(&m1 / "3", mid, mid, 3, stride, mid);
    let dw_bn = batch_norm(&m1 / "4", mid, BN_BIAS, sync_bn);
    let pw_linear = conv(&m2 / "0", mid, outputs, 1, 1, groups);
    let pw_linear_bn = batch_norm(&m2 / "1", outputs, BN_BIAS, sync_bn);
    nn::func_t(move |xs, train| {
        let mut ys = xs.apply(&pw).apply_t(&pw_bn, train).relu();
        if groups > 1 {
            ys = channel_shuffle(&ys, groups);
        }
        let ys = ys
            .apply(&dw)
            .apply_t(&dw_bn, train)
            .apply(&pw_linear)
            .apply_t(&pw_linear_bn, train);
        if stride == 1 {
            (ys + xs).relu()
        } else {
            let proj = xs.avg_pool2d([3, 3], [2, 2], [1, 1], false, true, None::<i64>);
            Tensor::cat(&[proj, ys.relu()], 1)
        }
    })
}

/// ShuffleNet v1 1x with `groups` g (1, 2, 3, 4 or 8; validated by [`super::ModelConfig`]);
/// `sync_bn`: synchronized BatchNorm ([`crate::distributed::sync_bn`]).
pub fn shufflenet_v1(p: &nn::Path, groups: i64, in_channels: i64, sync_bn: bool) -> Backbone {
    let channels = stage_channels(groups).expect("groups validated by ModelConfig");
    let first = p / "first_conv";
    let stem_conv = conv2d(
        &first / "0",
        (in_channels, STEM),
        3,
        2,
        1,
        Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        },
    );
    let stem_bn = batch_norm(&first / "1", STEM, BN_BIAS, sync_bn);
    let fp = p / "features";
    let mut features = nn::seq_t();
    let mut c_in = STEM;
    let mut index = 0;
    for (stage, (&c_out, &repeats)) in channels.iter().zip(&REPEATS).enumerate() {
        for i in 0..repeats {
            let stride = if i == 0 { 2 } else { 1 };
            let first_group = stage == 0 && i == 0;
            features = features.add(unit(
                &fp / index,
                c_in,
                c_out,
                stride,
                groups,
                first_group,
                sync_bn,
            ));
            c_in = c_out;
            index += 1;
        }
    }
    Backbone {
        net: nn::func_t(move |xs, train| {
            xs.apply(&stem_conv)
                .apply_t(&stem_bn, train)
                .relu()
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
    use super::super::{Arch, ModelConfig};
    use super::*;

    #[test]
    fn shufflenet_g3_matches_megvii_count() {
        let cfg = ModelConfig::new(Arch::ShufflenetV1);
        let (n, f) = count_with_classifier(&cfg, 3, 1000);
        assert_eq!((n, f), (1_865_728, 960));
        // megvii's classifier has no bias: 1,864,728, its README's 1.9M.
        assert_eq!(n - 1000, 1_864_728);
    }

    #[test]
    fn shufflenet_forward_shape_for_every_group_count() {
        for g in [1, 2, 3, 4, 8] {
            let cfg = ModelConfig {
                groups: g,
                ..ModelConfig::new(Arch::ShufflenetV1)
            };
            let n = forward_features(&cfg, [1, 3, 64, 64]);
            assert_eq!(n, stage_channels(g).unwrap()[2]);
        }
    }

    #[test]
    fn channel_shuffle_interleaves_groups() {
        let x = Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu)).view([1, 6, 1, 1]);
        let y = Vec::<f32>::try_from(channel_shuffle(&x, 3).flatten(0, -1)).unwrap();
        assert_eq!(y, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
