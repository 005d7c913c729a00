//! The paper's parameter table: for each network, how many of its learned parameters are in
//! the classifier (`N C + C`) and what share of the network fixing it removes. The counts come
//! from the real definitions ([`super::models`], [`crate::lm::LanguageModel`]) built on a CPU
//! `VarStore`, not from formulas.
use super::models::{self, Arch, ModelConfig, ShufflenetLayout};
use crate::classifier::HeadConfig;
use crate::error::Result;
use crate::lm::{LanguageModel, LmConfig};
use serde::Serialize;
use tch::{nn, Device};

/// One network of the table, all with a learned classifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperRow {
    pub network: String,
    pub dataset: String,
    pub classes: i64,
    /// N, the classifier's input size.
    pub features: i64,
    /// Trainable parameters of the whole network with a learned classifier.
    pub total_learned: i64,
    /// The learned classifier's weight and bias: `N C + C`.
    pub classifier: i64,
    /// What the fixed modes remove: the classifier; for the language model also the input
    /// embedding, which the fixed matrix replaces as well (`V E`).
    pub removable: i64,
    /// `removable / total_learned`.
    pub share: f64,
}

impl PaperRow {
    fn new(network: &str, dataset: &str, classes: i64, features: i64) -> PaperRow {
        PaperRow {
            network: network.into(),
            dataset: dataset.into(),
            classes,
            features,
            total_learned: 0,
            classifier: models::learned_classifier_params(features, classes),
            removable: 0,
            share: 0.0,
        }
    }

    fn with_counts(mut self, total_learned: i64, removable: i64) -> PaperRow {
        self.total_learned = total_learned;
        self.removable = removable;
        self.share = removable as f64 / total_learned as f64;
        self
    }
}

/// The row of an image network: its backbone built from `cfg`, plus a learned classifier.
pub fn vision_row(
    network: &str,
    dataset: &str,
    cfg: &ModelConfig,
    in_channels: i64,
    classes: i64,
) -> Result<PaperRow> {
    let vs = nn::VarStore::new(Device::Cpu);
    let backbone = models::build(&vs.root(), cfg, in_channels)?;
    let row = PaperRow::new(network, dataset, classes, backbone.features);
    let total = models::trainable_params(&vs) + row.classifier;
    let classifier = row.classifier;
    Ok(row.with_counts(total, classifier))
}

/// The row of the paper's 2-layer LSTM language model (512 / 512) with vocabulary `vocab`.
pub fn lstm_row(dataset: &str, vocab: i64) -> Result<PaperRow> {
    let mut lm = LmConfig::default();
    (lm.model.emb_size, lm.model.hidden_size, lm.model.layers) = (512, 512, 2);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = LanguageModel::new(&vs, &lm, &HeadConfig::default(), vocab, None)?;
    // The formula's total is the built one (lm::model's test); its removable part is
    // embedding + classifier.
    let (_, removable) = model.learned_param_counts();
    let total = models::trainable_params(&vs);
    Ok(PaperRow::new("LSTM 2 x 512 (emb. 512)", dataset, vocab, 512).with_counts(total, removable))
}

/// The paper's networks: ResNet-56 / CIFAR-10, DenseNet-BC-100-12 / CIFAR-100, ResNet-50,
/// DenseNet-169 and ShuffleNet v1 1x g = 3 / ImageNet, the LSTM / WikiText-2 (V = 33,278).
pub fn paper_table() -> Result<Vec<PaperRow>> {
    let resnet56 = ModelConfig {
        depth: 56,
        ..ModelConfig::new(Arch::ResnetCifar)
    };
    let densenet_bc = ModelConfig {
        depth: 100,
        growth: 12,
        ..ModelConfig::new(Arch::DensenetBc)
    };
    // The layout the paper counted (its Table 1: 1,826,555, one more than this).
    let shufflenet = ModelConfig {
        groups: 3,
        shufflenet_layout: ShufflenetLayout::Jaxony2017,
        ..ModelConfig::new(Arch::ShufflenetV1)
    };
    Ok(vec![
        vision_row("ResNet-56", "CIFAR-10", &resnet56, 3, 10)?,
        vision_row(
            "DenseNet-BC (L = 100, k = 12)",
            "CIFAR-100",
            &densenet_bc,
            3,
            100,
        )?,
        vision_row(
            "ResNet-50",
            "ImageNet",
            &ModelConfig::new(Arch::Resnet50),
            3,
            1000,
        )?,
        vision_row(
            "DenseNet-169",
            "ImageNet",
            &ModelConfig::new(Arch::Densenet169),
            3,
            1000,
        )?,
        vision_row(
            "ShuffleNet v1 1x (g = 3, 2017 port)",
            "ImageNet",
            &shufflenet,
            3,
            1000,
        )?,
        lstm_row("WikiText-2", 33_278)?,
    ])
}

/// `1234567` as `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// The table in Markdown.
pub fn render_paper_table(rows: &[PaperRow]) -> String {
    let mut s = String::from(
        "| Network | Dataset | Classes C | Features N | Learned parameters | Classifier (N C + C) \
         | Removed by fixing | Share removed |\n|---|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {}{} | {:.1}% |\n",
            r.network,
            r.dataset,
            thousands(r.classes),
            thousands(r.features),
            thousands(r.total_learned),
            thousands(r.classifier),
            thousands(r.removable),
            if r.removable > r.classifier {
                " (+ embedding)"
            } else {
                ""
            },
            100.0 * r.share,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_table_counts() {
        let rows = paper_table().unwrap();
        println!("{}", render_paper_table(&rows));
        let got: Vec<(&str, i64, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.dataset.as_str(),
                    r.features,
                    r.total_learned,
                    r.classifier,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("CIFAR-10", 64, 855_770, 650),
                ("CIFAR-100", 342, 800_032, 34_300),
                ("ImageNet", 2048, 25_557_032, 2_049_000),
                ("ImageNet", 1664, 14_149_480, 1_665_000),
                ("ImageNet", 960, 1_826_554, 961_000),
                ("WikiText-2", 512, 38_312_446, 17_071_614),
            ]
        );
        let lm = &rows[5];
        assert_eq!(lm.removable, lm.classifier + 33_278 * 512);
        let shares: Vec<f64> = rows
            .iter()
            .map(|r| (r.share * 1000.0).round() / 10.0)
            .collect();
        assert_eq!(shares, [0.1, 4.3, 8.0, 11.8, 52.6, 89.0]);
    }

    #[test]
    fn markdown_table() {
        let row = PaperRow::new("Net", "Data", 10, 64).with_counts(1_234_567, 650);
        let md = render_paper_table(&[row]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
            "| Net | Data | 10 | 64 | 1,234,567 | 650 | 650 | 0.1% |"
        );
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(999), "999");
    }
}
