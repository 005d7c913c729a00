//! ResNet-50 for ImageNet: tch's `vision::resnet::resnet50_no_final_layer`, torchvision's
//! network and parameter names (`conv1`, `layer1.0.conv1`, ...) with tch's initialization
//! (Kaiming-uniform convolutions, BN weight uniform in [0, 1]). N = 2048; 25,557,032
//! parameters with a learned 1000-way classifier.
use super::Backbone;
use crate::error::{Error, Result};
use tch::nn::{self, ModuleT};

/// ResNet-50 under `p`; tch's definition takes 3-channel images only.
pub fn resnet50(p: &nn::Path, in_channels: i64) -> Result<Backbone> {
    if in_channels != 3 {
        return Err(Error::arg(
            "in_channels",
            format!("resnet50 (tch's definition) takes 3-channel images, got {in_channels}"),
        ));
    }
    let net = tch::vision::resnet::resnet50_no_final_layer(p);
    Ok(Backbone {
        net: nn::func_t(move |xs, train| net.forward_t(xs, train)),
        features: 2048,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::count_with_classifier;
    use super::super::{build, Arch, ModelConfig};
    use tch::{nn, Device};

    #[test]
    fn resnet50_counts_25_557_032_with_a_learned_1000_way_classifier() {
        let cfg = ModelConfig::new(Arch::Resnet50);
        assert_eq!(count_with_classifier(&cfg, 3, 1000), (25_557_032, 2048));
        let vs = nn::VarStore::new(Device::Cpu);
        let e = build(&vs.root(), &cfg, 1).unwrap_err().to_string();
        assert!(e.contains("3-channel"), "{e}");
    }
}
