//! Image backbones: `[B, C, H, W]` images to `[B, N]` features, without a classifier (the
//! [`crate::classifier::Head`] goes on top), in the `*_no_final_layer` style of tch-rs's
//! `vision::resnet`: `nn::` layers on a `VarStore` path, one closure for the forward pass.
//! One file per family; [`ModelConfig`] (`[vision.model]`) picks one and [`build`] builds it.
//!
//! | arch | network | N |
//! |---|---|---|
//! | `small-cnn` | 3 x (3x3 conv-BN-ReLU-maxpool), global pool: quick runs | 4 `width` |
//! | `resnet-cifar` | He et al. 2016, depth 6n+2, 1x1-conv shortcuts (option B) | 64 |
//! | `densenet-bc` | Huang et al. 2017, CIFAR DenseNet-BC, depth 6n+4 (3 blocks of n bottlenecks), growth k | 342 for 100-12 |
//! | `resnet50` | tch's (torchvision's) ResNet-50 for ImageNet, 3-channel input only | 2048 |
//! | `densenet169` | torchvision's DenseNet-169 for ImageNet | 1664 |
//! | `shufflenet-v1` | Zhang et al. 2018, 1x, `groups` g (1, 2, 3, 4, 8); `shufflenet_layout` megvii's or the 2017 PyTorch port's (the paper's count) | 960 for g = 3 |
pub mod densenet;
mod layers;
pub mod resnet50;
pub mod resnet_cifar;
pub mod shufflenet;
pub mod shufflenet_2017;
pub mod small_cnn;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

/// Which backbone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    SmallCnn,
    ResnetCifar,
    DensenetBc,
    Resnet50,
    Densenet169,
    ShufflenetV1,
}

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::SmallCnn,
        Arch::ResnetCifar,
        Arch::DensenetBc,
        Arch::Resnet50,
        Arch::Densenet169,
        Arch::ShufflenetV1,
    ];

    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Arch::SmallCnn => "small-cnn",
            Arch::ResnetCifar => "resnet-cifar",
            Arch::DensenetBc => "densenet-bc",
            Arch::Resnet50 => "resnet50",
            Arch::Densenet169 => "densenet169",
            Arch::ShufflenetV1 => "shufflenet-v1",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[vision.model]` section. Each field is read only by the architectures named on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub arch: Arch,
    /// resnet-cifar: 6n+2 (20, 32, 56, 110); densenet-bc: 6n+4 (40, 100, 190);
    /// 0: the paper's network (ResNet-56, DenseNet-BC-100).
    pub depth: i64,
    /// densenet-bc: growth rate k (12 in the paper).
    pub growth: i64,
    /// shufflenet-v1: groups g of the pointwise convolutions (1, 2, 3, 4 or 8; 3 in the paper).
    pub groups: i64,
    /// small-cnn: channels of the first block (then 2x and 4x; N = 4 x width).
    pub width: i64,
    /// small-cnn and resnet-cifar: the last block's width is the number of classes, so the
    /// backbone gives N = C features (Zhu et al. 2021, tding1/Neural-Collapse `--fixdim`).
    pub fixdim: bool,
    /// small-cnn: BatchNorm after each convolution (false: none, a network whose
    /// data-parallel training equals the single process's exactly).
    #[serde(skip_serializing_if = "is_true")]
    pub batch_norm: bool,
    /// shufflenet-v1: megvii's reference layout (the default) or the 2017 PyTorch port's,
    /// whose parameter count is the paper's Table 1.
    #[serde(skip_serializing_if = "ShufflenetLayout::is_megvii")]
    pub shufflenet_layout: ShufflenetLayout,
}

/// Which ShuffleNet v1 layout `shufflenet-v1` builds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ShufflenetLayout {
    /// megvii's reference (ShuffleNet-Series): [`shufflenet`].
    #[default]
    Megvii,
    /// github.com/jaxony/ShuffleNet as of July-November 2017: [`shufflenet_2017`].
    #[serde(rename = "jaxony-2017")]
    Jaxony2017,
}

impl ShufflenetLayout {
    fn is_megvii(&self) -> bool {
        *self == ShufflenetLayout::Megvii
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::SmallCnn,
            depth: 0,
            growth: 12,
            groups: 3,
            width: 32,
            fixdim: false,
            batch_norm: true,
            shufflenet_layout: ShufflenetLayout::Megvii,
        }
    }
}

impl ModelConfig {
    /// A config for `arch` with the other fields at their defaults.
    pub fn new(arch: Arch) -> Self {
        Self {
            arch,
            ..Default::default()
        }
    }

    /// The depth `build` uses: `depth`, or the paper's (56, 100) where it is 0.
    pub fn effective_depth(&self) -> i64 {
        match (self.arch, self.depth) {
            (Arch::ResnetCifar, 0) => 56,
            (Arch::DensenetBc, 0) => 100,
            (_, d) => d,
        }
    }

    /// A short name of the network: `resnet-cifar-56`, `densenet-bc-100-12`, `shufflenet-v1-g3`.
    pub fn describe(&self) -> String {
        match self.arch {
            Arch::SmallCnn => format!("small-cnn-{}", self.width),
            Arch::ResnetCifar => format!("resnet-cifar-{}", self.effective_depth()),
            Arch::DensenetBc => format!("densenet-bc-{}-{}", self.effective_depth(), self.growth),
            Arch::ShufflenetV1 => match self.shufflenet_layout {
                ShufflenetLayout::Megvii => format!("shufflenet-v1-g{}", self.groups),
                ShufflenetLayout::Jaxony2017 => {
                    format!("shufflenet-v1-g{}-jaxony2017", self.groups)
                }
            },
            a => a.name().to_string(),
        }
    }

    /// Why this network cannot synchronize its BatchNorm (`vision.sync_batch_norm`), if it
    /// cannot: it has none, or its layers are tch's (ResNet-50).
    pub fn sync_batch_norm_refusal(&self) -> Option<String> {
        match self.arch {
            Arch::Resnet50 => Some(
                "resnet50 is tch's definition, whose BatchNorm layers cannot be synchronized; \
                 use densenet169 or shufflenet-v1, or set it false"
                    .into(),
            ),
            Arch::SmallCnn if !self.batch_norm => Some(
                "the model has no BatchNorm (vision.model.batch_norm = false); set it false".into(),
            ),
            _ => None,
        }
    }

    /// Checks the values serde cannot; errors name `vision.model.<field>` in `origin`.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(origin, field, msg));
        if self.fixdim && !matches!(self.arch, Arch::SmallCnn | Arch::ResnetCifar) {
            return err(
                "vision.model.fixdim",
                format!("applies to small-cnn and resnet-cifar, not {}", self.arch),
            );
        }
        let depth = self.effective_depth();
        match self.arch {
            Arch::SmallCnn if !(1..=1024).contains(&self.width) => err(
                "vision.model.width",
                format!(
                    "must be in 1..=1024 (32 is a good start), got {}",
                    self.width
                ),
            ),
            Arch::ResnetCifar if depth < 8 || (depth - 2) % 6 != 0 => err(
                "vision.model.depth",
                format!(
                    "resnet-cifar needs depth = 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {depth}"
                ),
            ),
            Arch::DensenetBc if depth < 10 || (depth - 4) % 6 != 0 => err(
                "vision.model.depth",
                format!("densenet-bc needs depth = 6n+4 with n >= 1 (40, 100, 190), got {depth}"),
            ),
            Arch::DensenetBc if !(1..=256).contains(&self.growth) => err(
                "vision.model.growth",
                format!("must be in 1..=256 (12 in the paper), got {}", self.growth),
            ),
            a if !self.batch_norm && a != Arch::SmallCnn => err(
                "vision.model.batch_norm",
                format!("only small-cnn can be built without BatchNorm, not {a}"),
            ),
            Arch::ShufflenetV1 if shufflenet::stage_channels(self.groups).is_none() => err(
                "vision.model.groups",
                format!(
                    "shufflenet-v1 has groups 1, 2, 3, 4 or 8 (3 in the paper), got {}",
                    self.groups
                ),
            ),
            Arch::ShufflenetV1
                if self.shufflenet_layout == ShufflenetLayout::Jaxony2017 && self.groups > 3 =>
            {
                err(
                    "vision.model.groups",
                    format!(
                        "the jaxony-2017 ShuffleNet layout builds groups 1, 2 or 3 (its stride-2 \
                         bottleneck is not divisible by {}); use shufflenet_layout = \"megvii\"",
                        self.groups
                    ),
                )
            }
            _ => Ok(()),
        }
    }
}

/// A feature extractor: `forward_t(x [B, C, H, W], train) -> [B, features]`.
#[derive(Debug)]
pub struct Backbone {
    pub net: nn::FuncT<'static>,
    /// N, the classifier's input size.
    pub features: i64,
}

impl nn::ModuleT for Backbone {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(xs, train)
    }
}

/// How images and convolution weights are laid out in memory (`vision.memory_format`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// NCHW, PyTorch's default.
    #[default]
    Contiguous,
    /// NHWC (PyTorch's `channels_last`), where oneDNN's CPU convolutions need no reordering.
    /// Opt-in: faster for some models and image sizes, slower for others
    /// (`docs/vision-speed.md`).
    ChannelsLast,
}

impl MemoryFormat {
    pub fn name(self) -> &'static str {
        match self {
            MemoryFormat::Contiguous => "contiguous",
            MemoryFormat::ChannelsLast => "channels-last",
        }
    }
}

/// `t` with NHWC strides (PyTorch's `channels_last`) when it has 4 dimensions: the same
/// values and shape, only the order in memory differs.
pub fn to_channels_last(t: &Tensor) -> Tensor {
    if t.dim() == 4 {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        t.shallow_clone()
    }
}

impl Backbone {
    /// This backbone in `format`: for channels-last, the 4-D variables of `vs` (convolution
    /// weights) are laid out NHWC in place, so that their gradients and the optimizer's
    /// buffers made after this follow, and every input is laid out so on its way in.
    /// Checkpoints store the values, not the layout.
    pub fn with_memory_format(self, vs: &nn::VarStore, format: MemoryFormat) -> Backbone {
        if format != MemoryFormat::ChannelsLast {
            return self;
        }
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let nhwc = to_channels_last(&v);
                tch::no_grad(|| v.set_data(&nhwc));
            }
        }
        use nn::ModuleT as _;
        let net = self.net;
        Backbone {
            net: nn::func_t(move |xs, train| net.forward_t(&to_channels_last(xs), train)),
            features: self.features,
        }
    }
}

/// Builds the backbone of `cfg` under `p` for images of `in_channels` channels.
pub fn build(p: &nn::Path, cfg: &ModelConfig, in_channels: i64) -> Result<Backbone> {
    build_for(p, cfg, in_channels, None, false)
}

/// [`build`] for `classes` classes: with `fixdim` the last block has `classes` channels
/// (N = C); `classes = None` or `fixdim = false` builds the usual widths. `sync_bn`: the
/// BatchNorm layers synchronized over the ranks of a launch (`vision.sync_batch_norm`;
/// not tch's ResNet-50, whose layers are tch's own).
pub fn build_for(
    p: &nn::Path,
    cfg: &ModelConfig,
    in_channels: i64,
    classes: Option<i64>,
    sync_bn: bool,
) -> Result<Backbone> {
    cfg.validate("vision::models::build")?;
    let last = classes.filter(|_| cfg.fixdim);
    if in_channels <= 0 {
        return Err(Error::arg(
            "in_channels",
            format!("must be positive, got {in_channels}"),
        ));
    }
    if let Some(why) = sync_bn.then(|| cfg.sync_batch_norm_refusal()).flatten() {
        return Err(Error::arg("sync_bn", why));
    }
    let s = sync_bn;
    Ok(match cfg.arch {
        Arch::SmallCnn => small_cnn::small_cnn(p, in_channels, cfg.width, last, cfg.batch_norm, s),
        Arch::ResnetCifar => {
            resnet_cifar::resnet_cifar(p, cfg.effective_depth(), in_channels, last, s)
        }
        Arch::DensenetBc => {
            densenet::densenet_bc(p, cfg.effective_depth(), cfg.growth, in_channels, s)
        }
        Arch::Resnet50 => resnet50::resnet50(p, in_channels)?,
        Arch::Densenet169 => densenet::densenet169(p, in_channels, s),
        Arch::ShufflenetV1 => match cfg.shufflenet_layout {
            ShufflenetLayout::Megvii => shufflenet::shufflenet_v1(p, cfg.groups, in_channels, s),
            ShufflenetLayout::Jaxony2017 => {
                shufflenet_2017::shufflenet_v1_2017(p, cfg.groups, in_channels, s)
            }
        },
    })
}

/// Trainable parameters in `vs` (BatchNorm running statistics are not trainable).
pub fn trainable_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Parameters of a learned classifier (weight `[C, N]` and bias `[C]`): `N C + C`.
pub fn learned_classifier_params(features: i64, classes: i64) -> i64 {
    features * classes + classes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tch::nn::ModuleT;
    use tch::{Device, Kind};

    /// Trainable parameters of `cfg`'s backbone plus a learned `classes`-way classifier, and N.
    pub fn count_with_classifier(cfg: &ModelConfig, in_channels: i64, classes: i64) -> (i64, i64) {
        let vs = nn::VarStore::new(Device::Cpu);
        let b = build(&vs.root(), cfg, in_channels).unwrap();
        let total = trainable_params(&vs) + learned_classifier_params(b.features, classes);
        (total, b.features)
    }

    /// Forward shape (train and eval) of `cfg`'s backbone on `shape`, returns N.
    pub fn forward_features(cfg: &ModelConfig, shape: [i64; 4]) -> i64 {
        let vs = nn::VarStore::new(Device::Cpu);
        let b = build(&vs.root(), cfg, shape[1]).unwrap();
        let x = Tensor::randn(shape, (Kind::Float, Device::Cpu));
        for train in [true, false] {
            let y = b.forward_t(&x, train);
            assert_eq!(y.size(), [shape[0], b.features], "{cfg:?} train={train}");
            assert!(y.isfinite().all().int64_value(&[]) == 1);
        }
        b.features
    }

    /// Zhu et al.'s fixdim: the last block has C channels, so the backbone gives N = C
    /// features (the forward pass too); architectures without it are refused by name.
    #[test]
    fn fixdim_narrows_the_last_block_to_the_classes() {
        for (arch, shape) in [
            (Arch::SmallCnn, [2, 1, 16, 16]),
            (Arch::ResnetCifar, [2, 3, 16, 16]),
        ] {
            let cfg = ModelConfig {
                fixdim: true,
                depth: if arch == Arch::ResnetCifar { 8 } else { 0 },
                ..ModelConfig::new(arch)
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let b = build_for(&vs.root(), &cfg, shape[1], Some(7), false).unwrap();
            let y = b.forward_t(&Tensor::randn(shape, (Kind::Float, Device::Cpu)), false);
            assert_eq!((b.features, y.size()), (7, vec![2, 7]), "{arch}");
            let usual = nn::VarStore::new(Device::Cpu);
            let u = build(&usual.root(), &cfg, shape[1]).unwrap();
            assert!(u.features > 7 && trainable_params(&usual) > trainable_params(&vs));
        }
        let cfg = ModelConfig {
            fixdim: true,
            ..ModelConfig::new(Arch::DensenetBc)
        };
        let e = cfg.validate("c.toml").unwrap_err().to_string();
        assert!(e.contains("vision.model.fixdim"), "{e}");
    }

    /// Every backbone built with synchronized BatchNorm has the same variables as without
    /// it, and with no launch computes the same (plain BatchNorm), in training too;
    /// tch's ResNet-50 is refused.
    #[test]
    fn sync_batch_norm_backbones_have_the_same_variables_and_alone_compute_the_same() {
        let small = config_with;
        for cfg in [
            small(Arch::SmallCnn, |m| m.width = 4),
            small(Arch::ResnetCifar, |m| m.depth = 8),
            small(Arch::DensenetBc, |m| (m.depth, m.growth) = (10, 2)),
            small(Arch::ShufflenetV1, |m| m.groups = 2),
            small(Arch::ShufflenetV1, |m| {
                m.shufflenet_layout = ShufflenetLayout::Jaxony2017;
                m.groups = 2
            }),
        ] {
            let plain = nn::VarStore::new(Device::Cpu);
            let a = build_for(&plain.root(), &cfg, 3, None, false).unwrap();
            let mut synced = nn::VarStore::new(Device::Cpu);
            let b = build_for(&synced.root(), &cfg, 3, None, true).unwrap();
            let names = |vs: &nn::VarStore| {
                let mut v: Vec<String> = vs.variables().into_keys().collect();
                v.sort();
                v
            };
            assert_eq!(names(&plain), names(&synced), "{cfg:?}");
            synced.copy(&plain).unwrap();
            let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
            for train in [true, false] {
                let (ya, yb) = (a.forward_t(&x, train), b.forward_t(&x, train));
                assert!(ya.equal(&yb), "{cfg:?} train {train}");
            }
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let e = build_for(&vs.root(), &ModelConfig::new(Arch::Resnet50), 3, None, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tch's definition"), "{e}");
    }

    /// A config for `arch` with `f` applied to the defaults.
    fn config_with(arch: Arch, f: fn(&mut ModelConfig)) -> ModelConfig {
        let mut cfg = ModelConfig::new(arch);
        f(&mut cfg);
        cfg
    }

    #[test]
    fn config_errors_name_the_field() {
        let c = config_with;
        for (cfg, field, hint) in [
            (c(Arch::ResnetCifar, |m| m.depth = 40), "depth", "6n+2"),
            (c(Arch::ResnetCifar, |m| m.depth = 2), "depth", "6n+2"),
            (c(Arch::DensenetBc, |m| m.depth = 56), "depth", "6n+4"),
            (c(Arch::DensenetBc, |m| m.growth = 0), "growth", "12"),
            (
                c(Arch::ShufflenetV1, |m| m.groups = 5),
                "groups",
                "1, 2, 3, 4 or 8",
            ),
            (
                c(Arch::ShufflenetV1, |m| {
                    m.groups = 4;
                    m.shufflenet_layout = ShufflenetLayout::Jaxony2017
                }),
                "groups",
                "shufflenet_layout = \"megvii\"",
            ),
            (c(Arch::SmallCnn, |m| m.width = 0), "width", "32"),
        ] {
            let e = cfg.validate("v.toml").unwrap_err().to_string();
            let want = format!("v.toml: field `vision.model.{field}`");
            assert!(e.starts_with(&want) && e.contains(hint), "{e}");
            assert!(!e.contains('\n'), "{e}");
            let vs = nn::VarStore::new(Device::Cpu);
            assert!(build(&vs.root(), &cfg, 3).is_err());
        }
        // Fields of other architectures are not checked.
        assert!(c(Arch::SmallCnn, |m| m.depth = 7)
            .validate("v.toml")
            .is_ok());
    }

    #[test]
    fn config_reads_kebab_case_names_and_refuses_unknown_fields() {
        for a in Arch::ALL {
            let cfg: ModelConfig = toml::from_str(&format!("arch = \"{a}\"")).unwrap();
            assert_eq!((cfg.arch, Arch::parse(a.name())), (a, Some(a)));
            assert!(cfg.validate("t").is_ok(), "{a}");
        }
        let cfg: ModelConfig = toml::from_str("arch = \"densenet-bc\"\ndepth = 40").unwrap();
        assert_eq!(cfg.describe(), "densenet-bc-40-12");
        assert_eq!(
            ModelConfig::new(Arch::ResnetCifar).describe(),
            "resnet-cifar-56"
        );
        assert!(toml::from_str::<ModelConfig>("arch = \"resnet-cifar\"\nlayers = 3").is_err());
        assert!(toml::from_str::<ModelConfig>("arch = \"resnet-56\"").is_err());
    }

    /// The channels-last backbone computes what the contiguous one does (to float
    /// rounding), with NHWC weights and gradients, and checkpoints store the same values.
    #[test]
    fn channels_last_gives_the_same_features_and_gradients() {
        let small = config_with;
        for cfg in [
            small(Arch::SmallCnn, |m| m.width = 8),
            small(Arch::ResnetCifar, |m| m.depth = 8),
            small(Arch::DensenetBc, |m| (m.depth, m.growth) = (10, 4)),
            small(Arch::ShufflenetV1, |m| m.groups = 2),
        ] {
            // Tests share libtorch's global generator: the weights are copied, not reseeded.
            let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
            let first = nn::VarStore::new(Device::Cpu);
            build(&first.root(), &cfg, 3).unwrap();
            let mut outs = Vec::new();
            for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
                let mut vs = nn::VarStore::new(Device::Cpu);
                let b = build(&vs.root(), &cfg, 3).unwrap();
                vs.copy(&first).unwrap();
                let b = b.with_memory_format(&vs, format);
                let conv = vs
                    .variables()
                    .into_iter()
                    .filter(|(_, v)| v.dim() == 4 && v.size()[1] > 1 && v.size()[2] > 1)
                    .min_by_key(|(n, _)| n.clone())
                    .unwrap()
                    .1;
                // NHWC strides: the channel is the fastest-moving index.
                assert_eq!(conv.stride()[1] == 1, format == MemoryFormat::ChannelsLast);
                let train = b.forward_t(&x, true);
                let eval = b.forward_t(&x, false);
                // A weighted sum of the evaluation features: the plain sum of batch-normalized
                // features hardly depends on the weights, and batch statistics over 4 images
                // make training mode's gradient ill-conditioned (rounding grows into percents).
                let r = Tensor::arange(eval.numel() as i64, (Kind::Float, Device::Cpu))
                    .view(eval.size().as_slice())
                    .sin();
                let objective = (&eval * r).sum(Kind::Float);
                let grads = Tensor::run_backward(&[objective], &[&conv], false, false);
                assert_eq!(
                    grads[0].stride()[1] == 1,
                    format == MemoryFormat::ChannelsLast
                );
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("c.safetensors");
                let named = vec![("w".to_string(), conv.shallow_clone())];
                crate::engine::save_safetensors(&path, &named, &Default::default()).unwrap();
                let saved = crate::engine::Checkpoint::load(&path).unwrap().tensors["w"].copy();
                assert!(saved.equal(&conv.detach()), "{cfg:?}: stored values");
                outs.push((train.detach(), eval, grads[0].copy()));
            }
            let (a, b) = (&outs[0], &outs[1]);
            // Summed in another order: equal to rounding, relative to the whole tensor. Batch
            // statistics over 4 images (training mode) and a gradient summed over the whole
            // network magnify rounding up to about 1e-3 (ShuffleNet); a layout mistake would
            // be of the order of the values themselves.
            for (x, y, what, tolerance) in [
                (&a.0, &b.0, "train", 1e-2),
                (&a.1, &b.1, "eval", 1e-4),
                (&a.2, &b.2, "grad", 1e-2),
            ] {
                let gap = (x - y).norm().double_value(&[]);
                let scale = x.norm().double_value(&[]).max(1e-6);
                assert!(gap <= tolerance * scale, "{cfg:?} {what}: {gap} of {scale}");
            }
        }
        let cfg: crate::vision::VisionConfig =
            toml::from_str("memory_format = \"channels-last\"").unwrap();
        assert_eq!(cfg.memory_format, MemoryFormat::ChannelsLast);
        assert_eq!(
            crate::vision::VisionConfig::default().memory_format,
            MemoryFormat::Contiguous
        );
    }
}
