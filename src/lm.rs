//! The LSTM language model: embedding -> dropout -> L-layer LSTM -> dropout -> output layer,
//! with the output layer a pluggable mode ([`OutputLayer`]) and the regularizers of
//! Merity et al. 2017 (embedding dropout, weight-drop) as options.
//!
//! Parameter names follow PyTorch's word_language_model (`encoder.weight`,
//! `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`), so checkpoints load into the
//! equivalent PyTorch module.
use crate::classifier::{FixedClassifier, FixedMatrix, FixedSpec, TrainingLoss};
use crate::config::{Config, InputEmbedding, ModelConfig, OutputMode};
use crate::error::Result;
use tch::nn::{self, Init};
use tch::{Device, Kind, Reduction, Tensor};

/// The output layer: maps `[n, H]` hidden states to `[n, V]` logits.
pub enum OutputLayer {
    /// Own `Linear(H, V)` with bias.
    Learned { weight: Tensor, bias: Tensor },
    /// The input embedding's weight, own bias.
    Tied { bias: Tensor },
    /// `alpha * Q x_hat + b` with a fixed `Q` (see [`crate::classifier`]).
    Fixed(FixedClassifier),
}

/// The input embedding.
pub enum InputLayer {
    Learned(Tensor),
    /// The fixed classifier's matrix: row `i` embeds word `i`; nothing trained.
    Fixed(FixedMatrix),
}

/// The LSTM's (h, c), each `[layers, batch, hidden]`.
pub struct LstmState {
    pub h: Tensor,
    pub c: Tensor,
}

impl LstmState {
    pub fn detach(&self) -> LstmState {
        LstmState {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

/// What one forward pass returns.
pub struct Forward {
    /// Last LSTM layer's output after output dropout, `[T, B, H]`: the classifier's input.
    pub output: Tensor,
    /// The same before dropout (for temporal activation regularization).
    pub raw_output: Tensor,
    pub state: LstmState,
}

pub struct LanguageModel {
    pub vocab: i64,
    pub cfg: ModelConfig,
    pub mode: OutputMode,
    pub input: InputLayer,
    /// Per layer: weight_ih, weight_hh, bias_ih, bias_hh.
    pub rnn: Vec<[Tensor; 4]>,
    pub output_layer: OutputLayer,
    pub device: Device,
}

impl LanguageModel {
    /// Builds the model's variables in `vs` (trainable ones only, by construction).
    /// `words` (the vocabulary in id order) is needed by the pretrained fixed modes.
    pub fn new(
        vs: &nn::VarStore,
        cfg: &Config,
        vocab: i64,
        words: Option<&crate::corpus::Vocab>,
    ) -> Result<LanguageModel> {
        let fixed = match cfg.output.mode.fixed_kind() {
            None => None,
            Some(kind) => Some(build_fixed_matrix(cfg, kind, vocab, words)?.to_device(vs.device())),
        };
        let m = &cfg.model;
        let root = vs.root();
        let (v, e, h) = (vocab, m.emb_size, m.hidden_size);
        let uniform = |r: f64| Init::Uniform { lo: -r, up: r };
        let enc = root.sub("encoder");
        let input = match (cfg.output.mode.is_fixed(), cfg.output.input_embedding) {
            (false, _) | (true, InputEmbedding::Learned) => {
                InputLayer::Learned(enc.var("weight", &[v, e], uniform(0.1)))
            }
            (true, InputEmbedding::Fixed) => {
                InputLayer::Fixed(fixed.clone().expect("fixed modes build a matrix"))
            }
        };
        let rnn_path = root.sub("rnn");
        let k = 1.0 / (h as f64).sqrt();
        let rnn = (0..m.layers)
            .map(|l| {
                let input_size = if l == 0 { e } else { h };
                [
                    rnn_path.var(&format!("weight_ih_l{l}"), &[4 * h, input_size], uniform(k)),
                    rnn_path.var(&format!("weight_hh_l{l}"), &[4 * h, h], uniform(k)),
                    rnn_path.var(&format!("bias_ih_l{l}"), &[4 * h], uniform(k)),
                    rnn_path.var(&format!("bias_hh_l{l}"), &[4 * h], uniform(k)),
                ]
            })
            .collect();
        let dec = root.sub("decoder");
        let output_layer = match cfg.output.mode {
            OutputMode::Learned => OutputLayer::Learned {
                weight: dec.var("weight", &[v, h], uniform(0.1)),
                bias: dec.var("bias", &[v], Init::Const(0.0)),
            },
            OutputMode::Tied => OutputLayer::Tied {
                bias: dec.var("bias", &[v], Init::Const(0.0)),
            },
            _ => {
                let matrix = fixed.expect("fixed modes build a matrix");
                let origin = "config";
                let clf_cfg = cfg.fixed_classifier();
                clf_cfg.validate(origin)?;
                OutputLayer::Fixed(FixedClassifier::new(&dec, matrix, &clf_cfg)?)
            }
        };
        Ok(LanguageModel {
            vocab,
            cfg: m.clone(),
            mode: cfg.output.mode,
            input,
            rnn,
            output_layer,
            device: vs.device(),
        })
    }

    pub fn zero_state(&self, batch: i64) -> LstmState {
        let shape = [self.cfg.layers, batch, self.cfg.hidden_size];
        LstmState {
            h: Tensor::zeros(shape, (Kind::Float, self.device)),
            c: Tensor::zeros(shape, (Kind::Float, self.device)),
        }
    }

    fn embed(&self, ids: &Tensor, train: bool) -> Tensor {
        match &self.input {
            InputLayer::Learned(w) => {
                let p = self.cfg.dropout_embedding;
                if train && p > 0.0 {
                    // Embedding dropout: drop whole words (rows), rescale the kept ones.
                    let mask = Tensor::empty([w.size()[0], 1], (Kind::Float, w.device()))
                        .bernoulli_float_(1.0 - p)
                        / (1.0 - p);
                    Tensor::embedding(&(w * mask), ids, -1, false, false)
                } else {
                    Tensor::embedding(w, ids, -1, false, false)
                }
            }
            InputLayer::Fixed(q) => q.rows_for(ids),
        }
    }

    /// Runs the model over `ids` `[T, B]` from `state`.
    pub fn forward(&self, ids: &Tensor, state: &LstmState, train: bool) -> Forward {
        let emb = self
            .embed(ids, train)
            .dropout(self.cfg.dropout_input, train);
        let wd = self.cfg.weight_drop;
        let dropped: Vec<Tensor>;
        let params: Vec<&Tensor> = if train && wd > 0.0 {
            // Weight-drop: DropConnect on the hidden-to-hidden matrices, a new mask each pass.
            dropped = self.rnn.iter().map(|l| l[1].dropout(wd, true)).collect();
            self.rnn
                .iter()
                .zip(&dropped)
                .flat_map(|(l, whh)| [&l[0], whh, &l[2], &l[3]])
                .collect()
        } else {
            self.rnn.iter().flat_map(|l| l.iter()).collect()
        };
        let (out, h, c) = emb.lstm(
            &[&state.h, &state.c],
            &params,
            true,
            self.cfg.layers,
            self.cfg.dropout_hidden,
            train,
            false,
            false,
        );
        let output = out.dropout(self.cfg.dropout_output, train);
        Forward {
            output,
            raw_output: out,
            state: LstmState { h, c },
        }
    }

    /// Logits `[n, V]` of hidden states `[.., H]`.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        let x = hidden.reshape([-1, self.cfg.hidden_size]);
        match (&self.output_layer, &self.input) {
            (OutputLayer::Learned { weight, bias }, _) => x.linear(weight, Some(bias)),
            (OutputLayer::Tied { bias }, InputLayer::Learned(w)) => x.linear(w, Some(bias)),
            (OutputLayer::Fixed(clf), _) => clf.forward(&x),
            (OutputLayer::Tied { .. }, InputLayer::Fixed(_)) => {
                unreachable!("tied mode always has a learned embedding")
            }
        }
    }

    /// Number of values in fixed matrices (regenerated, never stored or trained).
    pub fn fixed_matrix_numel(&self) -> i64 {
        match (&self.output_layer, &self.input) {
            (OutputLayer::Fixed(clf), _) => clf.matrix().rows() * clf.matrix().cols(),
            (_, InputLayer::Fixed(q)) => q.rows() * q.cols(),
            _ => 0,
        }
    }

    /// How to regenerate the fixed matrix, for checkpoint metadata.
    pub fn fixed_spec_json(&self) -> Option<String> {
        self.fixed_spec()
            .and_then(|spec| serde_json::to_string(spec).ok())
    }

    pub fn fixed_spec(&self) -> Option<&FixedSpec> {
        match &self.output_layer {
            OutputLayer::Fixed(clf) => Some(clf.matrix().spec()),
            _ => None,
        }
    }

    /// The fixed classifier's scale alpha, if any.
    pub fn alpha(&self) -> Option<f64> {
        match &self.output_layer {
            OutputLayer::Fixed(clf) => Some(clf.alpha()),
            _ => None,
        }
    }

    /// Mean training loss of hidden states `[T, B, H]` against targets `[T * B]`: the
    /// cross-entropy, or the cosine loss when a fixed classifier is configured with it.
    pub fn loss(&self, hidden: &Tensor, targets: &Tensor) -> Tensor {
        match &self.output_layer {
            OutputLayer::Fixed(clf) => {
                clf.loss(&hidden.reshape([-1, self.cfg.hidden_size]), targets)
            }
            _ => self.nll(hidden, targets),
        }
    }

    /// [`loss`](Self::loss) for training: a fixed classifier's cross-entropy is differentiated
    /// by hand through its C-wide logits ([`FixedClassifier::training_loss`]); the learned and
    /// tied layers, whose weight gradient autograd forms anyway, go through autograd as they are.
    pub fn training_loss(&self, hidden: &Tensor, targets: &Tensor) -> TrainingLoss {
        match &self.output_layer {
            OutputLayer::Fixed(clf) => {
                clf.training_loss(&hidden.reshape([-1, self.cfg.hidden_size]), targets)
            }
            _ => TrainingLoss::plain(self.nll(hidden, targets)),
        }
    }

    /// Mean cross-entropy (negative log-likelihood per token): what perplexity measures.
    pub fn nll(&self, hidden: &Tensor, targets: &Tensor) -> Tensor {
        self.logits(hidden)
            .cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, -100, 0.0)
    }
}

/// The fixed matrix of a fixed mode: `vocab x hidden_size`.
fn build_fixed_matrix(
    cfg: &Config,
    kind: crate::classifier::FixedKind,
    vocab: i64,
    words: Option<&crate::corpus::Vocab>,
) -> Result<FixedMatrix> {
    use crate::classifier::FixedKind;
    let n = cfg.model.hidden_size;
    let seed = cfg.output.matrix_seed;
    match kind {
        FixedKind::Orthogonal => FixedMatrix::orthogonal(vocab, n, seed),
        FixedKind::Hadamard => FixedMatrix::hadamard(vocab, n, seed),
        FixedKind::Simplex => FixedMatrix::simplex(vocab, n),
        FixedKind::Pretrained => {
            let words = words.ok_or_else(|| {
                crate::Error::arg("output.embeddings", "pretrained modes need the vocabulary")
            })?;
            Ok(FixedMatrix::pretrained(&cfg.output.embeddings, words.words(), n)?.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_size_parameter_count() {
        let cfg = Config::default();
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = LanguageModel::new(&vs, &cfg, 33_278, None).unwrap();
        let n: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        // 2 x 33,278 x 512 + 33,278 + 2 x 4 x 512 x (512 + 512 + 2)
        assert_eq!(n, 2 * 33_278 * 512 + 33_278 + 2 * 4 * 512 * (1024 + 2));
        assert!((n as f64 / 1e6 - 38.3).abs() < 0.05, "{n}");
        let names: Vec<String> = vs.variables().into_keys().collect();
        for want in [
            "encoder.weight",
            "rnn.weight_hh_l1",
            "decoder.weight",
            "decoder.bias",
        ] {
            assert!(names.iter().any(|n| n == want), "{names:?}");
        }
    }

    #[test]
    fn shapes_of_a_forward_pass() {
        let mut cfg = Config::default();
        cfg.model.emb_size = 8;
        cfg.model.hidden_size = 8;
        cfg.output.mode = OutputMode::Tied;
        let vs = nn::VarStore::new(Device::Cpu);
        let m = LanguageModel::new(&vs, &cfg, 11, None).unwrap();
        let ids = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).view([3, 2]);
        let f = m.forward(&ids, &m.zero_state(2), true);
        assert_eq!(f.output.size(), [3, 2, 8]);
        assert_eq!(f.state.h.size(), [2, 2, 8]);
        assert_eq!(m.logits(&f.output).size(), [6, 11]);
    }
}
