//! The LSTM language model: embedding -> dropout -> L-layer LSTM -> dropout -> classifier
//! [`Head`] (learned, tied or fixed), with the regularizers of Merity et al. 2017 (embedding
//! dropout, weight-drop) as options. The backbone's output (`Forward::output`) is the head's
//! N = hidden_size features.
//!
//! Parameter names follow PyTorch's word_language_model (`encoder.weight`,
//! `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`), so checkpoints load into the
//! equivalent PyTorch module.
use super::config::{InputEmbedding, LmConfig, LstmConfig};
use super::corpus::Vocab;
use crate::classifier::{FixedMatrix, Head, HeadConfig, HeadMode, HeadShape, TrainingLoss};
use crate::error::Result;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

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

/// The LSTM backbone (embedding, LSTM, dropouts) with a classifier [`Head`] on top.
pub struct LanguageModel {
    pub vocab: i64,
    pub cfg: LstmConfig,
    pub mode: HeadMode,
    pub input: InputLayer,
    /// Per layer: weight_ih, weight_hh, bias_ih, bias_hh: views into the layer's buffer.
    pub rnn: Vec<[Tensor; 4]>,
    /// Per layer, its weights in one flat buffer, in cuDNN's layout on CUDA
    /// ([`flatten_lstm_weights`]).
    pub rnn_buffers: Vec<Tensor>,
    pub head: Head,
    pub device: Device,
}

/// Moves the LSTM's weights (per layer weight_ih, weight_hh, bias_ih, bias_hh) into one
/// flat buffer and makes each variable a view into it (their values kept), as PyTorch's
/// `flatten_parameters` does. On CUDA the buffer has cuDNN's layout
/// (`_cudnn_rnn_flatten_weight`): cuDNN then reads the weights in place, where separate
/// tensors are copied into its layout on every call (libtorch warns each time: "RNN module
/// weights are not part of single contiguous chunk of memory"). On the CPU the layout is
/// the parameters in order; nothing reads it, but the variables are views all the same, so
/// the CPU tests run the code that the GPU runs. Weight-drop (`lm.model.weight_drop`) hands
/// the LSTM a new hidden-to-hidden matrix each pass, which cuDNN copies again.
pub fn flatten_lstm_weights(rnn: &[[Tensor; 4]], input_size: i64, hidden: i64) -> Result<Tensor> {
    let weights: Vec<&Tensor> = rnn.iter().flatten().collect();
    let Some(first) = weights.first() else {
        return Ok(Tensor::new());
    };
    let device = first.device();
    tch::no_grad(|| {
        if device.is_cuda() {
            // cuDNN's mode 2 is LSTM; the call copies the values and re-points each tensor.
            return Ok(Tensor::f_internal_cudnn_rnn_flatten_weight(
                &weights,
                4,
                input_size,
                2,
                hidden,
                0,
                rnn.len() as i64,
                false,
                false,
            )?);
        }
        let total: i64 = weights.iter().map(|w| w.numel() as i64).sum();
        let buffer = Tensor::f_empty([total], (first.kind(), device))?;
        let mut offset = 0;
        for w in &weights {
            let n = w.numel() as i64;
            buffer
                .f_narrow(0, offset, n)?
                .f_copy_(&w.f_reshape([-1])?)?;
            let size = w.size();
            let stride = contiguous_strides(&size);
            let _ = w
                .shallow_clone()
                .f_set_source_tensor_storage_offset_(&buffer, offset, &size, &stride)?;
            offset += n;
        }
        Ok(buffer)
    })
}

fn contiguous_strides(size: &[i64]) -> Vec<i64> {
    let mut strides = vec![1; size.len()];
    for i in (0..size.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * size[i + 1];
    }
    strides
}

impl LanguageModel {
    /// Builds the model's variables in `vs` (trainable ones only, by construction), in the
    /// order of PyTorch's example (encoder, rnn, decoder), which fixes their random init.
    /// `words` (the vocabulary in id order) is needed by the pretrained fixed modes.
    pub fn new(
        vs: &nn::VarStore,
        lm: &LmConfig,
        head_cfg: &HeadConfig,
        vocab: i64,
        words: Option<&Vocab>,
    ) -> Result<LanguageModel> {
        let m = &lm.model;
        let (v, e, h) = (vocab, m.emb_size, m.hidden_size);
        let fixed = head_cfg
            .fixed_matrix(v, h, words.map(Vocab::words))?
            .map(|q| q.to_device(vs.device()));
        let root = vs.root();
        let uniform = |r: f64| Init::Uniform { lo: -r, up: r };
        let enc = root.sub("encoder");
        let input = match (&fixed, m.input_embedding) {
            (Some(q), InputEmbedding::Fixed) => InputLayer::Fixed(q.clone()),
            _ => InputLayer::Learned(enc.var("weight", &[v, e], uniform(0.1))),
        };
        let rnn_path = root.sub("rnn");
        let k = 1.0 / (h as f64).sqrt();
        let rnn: Vec<[Tensor; 4]> = (0..m.layers)
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
        // One buffer per layer: the forward pass runs the layers one by one (see `forward`).
        let rnn_buffers = rnn
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let input = if l == 0 { e } else { h };
                flatten_lstm_weights(std::slice::from_ref(layer), input, h)
            })
            .collect::<Result<Vec<_>>>()?;
        let head = Head::build(
            &root.sub("decoder"),
            head_cfg,
            HeadShape {
                classes: v,
                features: h,
                fixed,
                words: None,
                tied: match &input {
                    InputLayer::Learned(w) => Some(w),
                    InputLayer::Fixed(_) => None,
                },
                learned_init: (uniform(0.1), Init::Const(0.0)),
            },
        )?;
        Ok(LanguageModel {
            vocab,
            cfg: m.clone(),
            mode: head_cfg.mode,
            input,
            rnn,
            rnn_buffers,
            head,
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
        // The layers one by one, with the dropout between them that a multi-layer call would
        // apply (the same numbers, the same random draws on the CPU): cuDNN's own dropout
        // inside a multi-layer call keeps a generator of its own, which a CUDA graph replay
        // would not advance, and each layer's weights are a flat buffer cuDNN reads in place.
        let mut x = emb;
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (l, p) in params.chunks(4).enumerate() {
            let l = l as i64;
            let (h0, c0) = (state.h.narrow(0, l, 1), state.c.narrow(0, l, 1));
            let (out, h, c) = x.lstm(&[&h0, &c0], p, true, 1, 0.0, train, false, false);
            hs.push(h);
            cs.push(c);
            x = if l + 1 < self.cfg.layers {
                out.dropout(self.cfg.dropout_hidden, train)
            } else {
                out
            };
        }
        let (out, h, c) = (x, Tensor::cat(&hs, 0), Tensor::cat(&cs, 0));
        let output = out.dropout(self.cfg.dropout_output, train);
        Forward {
            output,
            raw_output: out,
            state: LstmState { h, c },
        }
    }

    /// Features `[.., H]` as the head takes them, `[n, H]`.
    fn features(&self, hidden: &Tensor) -> Tensor {
        hidden.reshape([-1, self.cfg.hidden_size])
    }

    /// Logits `[n, V]` of hidden states `[.., H]`.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.head.logits(&self.features(hidden))
    }

    /// Number of values in fixed matrices (regenerated, never stored or trained).
    pub fn fixed_matrix_numel(&self) -> i64 {
        match (&self.input, self.head.fixed_numel()) {
            (InputLayer::Fixed(q), 0) => q.rows() * q.cols(),
            (_, n) => n,
        }
    }

    /// The training loss of hidden states `[T, B, H]` against targets `[T * B]`
    /// ([`Head::training_loss`]).
    pub fn training_loss(&self, hidden: &Tensor, targets: &Tensor) -> TrainingLoss {
        self.head.training_loss(&self.features(hidden), targets)
    }

    /// Mean cross-entropy (negative log-likelihood per token): what perplexity measures.
    pub fn nll(&self, hidden: &Tensor, targets: &Tensor) -> Tensor {
        self.head.cross_entropy(&self.features(hidden), targets)
    }

    /// Parameters of this network with a learned embedding and classifier, and how many of
    /// them are in embedding + classifier (what the fixed modes can remove).
    pub fn learned_param_counts(&self) -> (i64, i64) {
        let (v, e, h, l) = (
            self.vocab,
            self.cfg.emb_size,
            self.cfg.hidden_size,
            self.cfg.layers,
        );
        let lstm: i64 = (0..l)
            .map(|i| 4 * h * (if i == 0 { e } else { h }) + 4 * h * h + 8 * h)
            .sum();
        let emb_cls = v * e + h * v + v;
        (lstm + emb_cls, emb_cls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_size_parameter_count() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = LanguageModel::new(
            &vs,
            &LmConfig::default(),
            &HeadConfig::default(),
            33_278,
            None,
        )
        .unwrap();
        let n: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        // 2 x 33,278 x 512 + 33,278 + 2 x 4 x 512 x (512 + 512 + 2)
        assert_eq!(n, 2 * 33_278 * 512 + 33_278 + 2 * 4 * 512 * (1024 + 2));
        assert!((n as f64 / 1e6 - 38.3).abs() < 0.05, "{n}");
        assert_eq!(m.learned_param_counts().0, n);
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

    /// The LSTM's variables are consecutive views of one buffer, still trainable, and the
    /// LSTM gives what it gives on separate copies of the same weights.
    #[test]
    fn flat_lstm_weights_are_views_with_the_same_output() {
        let mut lm = LmConfig::default();
        lm.model.emb_size = 6;
        lm.model.hidden_size = 5;
        let vs = nn::VarStore::new(Device::Cpu);
        let m = LanguageModel::new(&vs, &lm, &HeadConfig::default(), 13, None).unwrap();
        let ws: Vec<&Tensor> = m.rnn.iter().flatten().collect();
        for (layer, buffer) in m.rnn.iter().zip(&m.rnn_buffers) {
            let total: usize = layer.iter().map(|w| w.numel()).sum();
            assert_eq!(buffer.numel(), total);
            let mut at = buffer.data_ptr() as usize;
            for w in layer {
                assert_eq!(w.data_ptr() as usize, at, "consecutive views");
                assert!(w.requires_grad() && w.is_contiguous());
                at += 4 * w.numel();
            }
        }
        let named = vs.variables();
        assert_eq!(
            named["rnn.weight_hh_l1"].data_ptr(),
            m.rnn[1][1].data_ptr(),
            "the var store holds the views"
        );
        let copies: Vec<Tensor> = ws.iter().map(|w| w.detach().copy()).collect();
        let x = Tensor::randn([4, 3, 6], (Kind::Float, Device::Cpu));
        let s = m.zero_state(3);
        let run = |p: Vec<&Tensor>| {
            x.lstm(&[&s.h, &s.c], &p, true, 2, 0.0, false, false, false)
                .0
        };
        assert!(run(ws.clone()).equal(&run(copies.iter().collect())));
        // Gradients reach every view.
        let grads = Tensor::run_backward(&[run(ws.clone()).sum(Kind::Float)], &ws, false, false);
        assert!(grads
            .iter()
            .all(|g| g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0));
    }

    /// The layer-by-layer forward pass equals libtorch's two-layer LSTM call, dropout
    /// between the layers included (same seed, same draws).
    #[test]
    fn layer_by_layer_lstm_equals_the_multi_layer_call() {
        let mut lm = LmConfig::default();
        lm.model.emb_size = 6;
        lm.model.hidden_size = 5;
        lm.model.dropout_input = 0.0;
        lm.model.dropout_output = 0.0;
        lm.model.dropout_hidden = 0.3;
        let vs = nn::VarStore::new(Device::Cpu);
        let m = LanguageModel::new(&vs, &lm, &HeadConfig::default(), 13, None).unwrap();
        let ids = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6, 7, 8]).view([4, 2]);
        let s = LstmState {
            h: Tensor::randn([2, 2, 5], (Kind::Float, Device::Cpu)),
            c: Tensor::randn([2, 2, 5], (Kind::Float, Device::Cpu)),
        };
        for train in [false, true] {
            tch::manual_seed(7);
            let f = m.forward(&ids, &s, train);
            tch::manual_seed(7);
            let emb = m.embed(&ids, train);
            let p: Vec<&Tensor> = m.rnn.iter().flatten().collect();
            let (out, h, c) = emb.lstm(&[&s.h, &s.c], &p, true, 2, 0.3, train, false, false);
            assert!(f.output.allclose(&out, 1e-6, 1e-6, false), "train {train}");
            assert!(f.state.h.allclose(&h, 1e-6, 1e-6, false));
            assert!(f.state.c.allclose(&c, 1e-6, 1e-6, false));
        }
    }

    #[test]
    fn shapes_of_a_forward_pass() {
        let mut lm = LmConfig::default();
        lm.model.emb_size = 8;
        lm.model.hidden_size = 8;
        let head = HeadConfig {
            mode: HeadMode::Tied,
            ..Default::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let m = LanguageModel::new(&vs, &lm, &head, 11, None).unwrap();
        let ids = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).view([3, 2]);
        let f = m.forward(&ids, &m.zero_state(2), true);
        assert_eq!(f.output.size(), [3, 2, 8]);
        assert_eq!(f.state.h.size(), [2, 2, 8]);
        assert_eq!(m.logits(&f.output).size(), [6, 11]);
    }
}
