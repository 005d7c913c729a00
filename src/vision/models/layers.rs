//! The layers every family builds from: bias-free convolutions with a chosen initialization
//! and BatchNorm initialized as PyTorch does (synchronized over the ranks of a launch when
//! `vision.sync_batch_norm` is set).
use crate::distributed::sync_bn::{sync_batch_norm2d, SyncBatchNorm};
use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Conv2D, Init};

/// Kaiming-normal weights for a ReLU network, as torchvision initializes its convolutions.
pub(crate) fn kaiming_normal(fan: FanInOut) -> Init {
    Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan,
        non_linearity: NonLinearity::ReLU,
    }
}

/// A bias-free `k x k` convolution with `k / 2` padding, `groups` groups, weights from `init`.
pub(crate) fn conv2d(
    p: nn::Path,
    (c_in, c_out): (i64, i64),
    k: i64,
    stride: i64,
    groups: i64,
    init: Init,
) -> Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        groups,
        bias: false,
        ws_init: init,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// BatchNorm with weight `1` and bias `bias` (PyTorch's defaults for bias 0; tch's own
/// default draws the weight uniformly in [0, 1]); `sync_bn`: the global batch's statistics
/// in training under a launch (the same variables either way).
pub(crate) fn batch_norm(p: nn::Path, c: i64, bias: f64, sync_bn: bool) -> SyncBatchNorm {
    let cfg = nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(bias),
        ..Default::default()
    };
    sync_batch_norm2d(p, c, cfg, sync_bn)
}
