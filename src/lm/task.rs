//! The language model as an engine [`Task`]: the corpus batched in columns, truncated BPTT
//! over them (the loop of PyTorch's word_language_model) with variable BPTT and AR/TAR
//! (Merity et al. 2017) as options, and evaluation by perplexity.
use super::config::LmConfig;
use super::corpus::{batchify, get_batch, Corpus, CorpusFiles};
use super::model::{LanguageModel, LstmState};
use crate::classifier::HeadConfig;
use crate::classifier::{Head, HeadMode};
use crate::distributed::{self, shard, sync::gather_along, sync::sum_over_ranks};
use crate::engine::TrainConfig;
use crate::engine::{Evaluation, Identity, ParamReport, Split, StagedStep, Task, TrainStep, Unit};
use crate::error::{Error, Result};
use crate::random::standard_normal;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The first `n` ids of a split (`n = 0`: all of them).
fn first_tokens(ids: &[u32], n: usize) -> &[u32] {
    if n == 0 || n >= ids.len() {
        ids
    } else {
        &ids[..n]
    }
}

/// Loads the corpus of an `[lm]` section (the vocabulary is built on first use).
pub fn load_corpus(lm: &LmConfig) -> Result<Corpus> {
    let d = &lm.data;
    let files = CorpusFiles {
        train: d.dir.join("train.txt"),
        valid: d.dir.join("valid.txt"),
        test: d.dir.join("test.txt"),
    };
    Corpus::load(&files, &d.tokenizer_path(), Some(&d.cache_dir))
}

/// The language-model task: corpus, model, and where training stands in the data.
pub struct LmTask {
    lm: LmConfig,
    /// This rank's columns of the batch (all of them in a single process).
    batch_size: usize,
    /// `train.batch_size`: the columns of all ranks together.
    global_batch: usize,
    eval_batch_size: usize,
    device: Device,
    pub corpus: Corpus,
    pub vs: nn::VarStore,
    pub model: LanguageModel,
    /// The training split batched in columns, `[rows, batch]`.
    train_data: Tensor,
    /// Row of `train_data` where the next step starts.
    row: usize,
    /// The hidden state the next step starts from: buffers that stay in place (a captured
    /// step reads and writes them at every replay).
    state: LstmState,
    /// The state the step just computed, until [`Task::finish_step`] copies it in.
    next_state: Option<LstmState>,
    /// Input and target buffers per BPTT length (`[len, batch]`, `[len * batch]`).
    batches: HashMap<usize, (Tensor, Tensor)>,
}

impl LmTask {
    /// Loads the corpus of `lm` and builds its model with `head` on `device` (after
    /// [`crate::engine::prepare`] seeded the weights).
    pub fn new(
        lm: &LmConfig,
        train: &TrainConfig,
        head: &HeadConfig,
        device: Device,
    ) -> Result<LmTask> {
        let lm = lm.clone();
        let corpus = load_corpus(&lm)?;
        let vs = nn::VarStore::new(device);
        let vocab = corpus.vocab.len() as i64;
        let model = LanguageModel::new(&vs, &lm, head, vocab, Some(&corpus.vocab))?;
        // Data parallel: the corpus is batched in the global batch's columns, and each rank
        // trains on its own B / N of them (the single process's batch, split).
        let (rank, world) = (distributed::rank(), distributed::world_size());
        let share = shard::per_rank_batch(train.batch_size, world)?;
        let state = model.zero_state(share as i64);
        let train_data = batchify(
            first_tokens(&corpus.train, lm.data.train_tokens),
            train.batch_size,
            device,
        )
        .narrow(1, (rank * share) as i64, share as i64)
        .contiguous();
        Ok(LmTask {
            batch_size: share,
            global_batch: train.batch_size,
            eval_batch_size: train.eval_batch_size,
            device,
            corpus,
            vs,
            model,
            train_data,
            row: 0,
            state,
            next_state: None,
            batches: HashMap::new(),
            lm,
        })
    }

    /// A split batched for evaluation (`eval_batch_size` columns).
    fn eval_data(&self, split: Split) -> Tensor {
        let d = &self.lm.data;
        let ids = match split {
            Split::Train => first_tokens(&self.corpus.train, d.train_tokens),
            Split::Valid => first_tokens(&self.corpus.valid, d.valid_tokens),
            Split::Test => first_tokens(&self.corpus.test, d.test_tokens),
        };
        batchify(ids, self.eval_batch_size, self.device)
    }

    /// This rank's first column of the global batch.
    fn first_column(&self) -> i64 {
        (distributed::rank() * self.batch_size) as i64
    }

    fn rows(&self) -> usize {
        self.train_data.size()[0] as usize
    }

    /// This step's BPTT length: fixed, or Merity et al.'s variable length.
    fn seq_len(&self, rng: &mut StdRng) -> usize {
        let bptt = self.lm.bptt;
        if !self.lm.variable_bptt {
            return bptt;
        }
        let base = if rng.gen::<f64>() < 0.95 {
            bptt as f64
        } else {
            bptt as f64 / 2.0
        };
        (base + 5.0 * standard_normal(rng)).round().max(5.0) as usize
    }
}

/// [`evaluate`] of a data-parallel run: each rank takes its share of `data`'s columns
/// (independent streams), and the ranks' sums of token losses and tokens are added, so
/// the result is the single process's (up to rounding).
fn evaluate_sharded(model: &LanguageModel, data: &Tensor, bptt: usize) -> Result<f64> {
    let cols = data.size()[1] as usize;
    let (lo, hi) = shard::range(cols, distributed::rank(), distributed::world_size());
    let mut sums = [0.0, 0.0];
    if hi > lo {
        let part = data.narrow(1, lo as i64, (hi - lo) as i64);
        let (loss, tokens) = (evaluate(model, &part, bptt), token_count(&part));
        sums = [loss * tokens, tokens];
    }
    let total = sum_over_ranks("evaluation losses", &sums)?;
    Ok(total[0] / total[1].max(1.0))
}

/// Targets [`evaluate`] scores in `data`: every row but the first, in every column.
fn token_count(data: &Tensor) -> f64 {
    let s = data.size();
    ((s[0] - 1).max(0) * s[1]) as f64
}

/// Mean cross-entropy of the model over `data` (from [`batchify`]), in evaluation mode.
/// The sum stays on the device (in float64) and is read once at the end, so a GPU is not
/// waited for after every window.
pub fn evaluate(model: &LanguageModel, data: &Tensor, bptt: usize) -> f64 {
    tch::no_grad(|| {
        let rows = data.size()[0];
        let batch = data.size()[1];
        let mut state = model.zero_state(batch);
        let mut total = Tensor::zeros([], (Kind::Double, data.device()));
        let mut count = 0i64;
        let mut i = 0;
        while i < rows - 1 {
            let (x, y) = get_batch(data, i, bptt as i64);
            let f = model.forward(&x, &state, false);
            let len = x.size()[0];
            let nll = model.nll(&f.output, &y).to_kind(Kind::Double);
            total += nll * len as f64;
            count += len;
            state = f.state;
            i += len;
        }
        total.double_value(&[]) / count.max(1) as f64
    })
}

impl Task for LmTask {
    fn name(&self) -> &'static str {
        "lm"
    }
    fn unit(&self) -> Unit {
        Unit::Tokens
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn device(&self) -> Device {
        self.device
    }
    fn head(&self) -> &Head {
        &self.model.head
    }
    fn head_mode(&self) -> HeadMode {
        self.model.mode
    }
    fn classes(&self) -> i64 {
        self.model.vocab
    }
    fn params(&self) -> ParamReport {
        let (learned_total, removable) = self.model.learned_param_counts();
        ParamReport::new(
            &self.vs,
            self.model.fixed_matrix_numel(),
            learned_total,
            removable,
        )
    }
    fn removable(&self) -> &'static str {
        "embedding + classifier"
    }
    fn describe_data(&self) -> String {
        format!(
            "vocabulary {} | train {} tokens",
            self.corpus.vocab.len(),
            first_tokens(&self.corpus.train, self.lm.data.train_tokens).len()
        )
    }
    fn identity(&self) -> Vec<Identity> {
        vec![
            Identity {
                key: "vocab_size",
                value: self.corpus.vocab.len().to_string(),
                checked_as: None,
            },
            Identity {
                key: "vocab_sha256",
                value: self.corpus.vocab.hash().to_string(),
                checked_as: Some("vocabulary"),
            },
            Identity {
                key: "model",
                value: serde_json::to_string(&self.lm.model).unwrap_or_default(),
                checked_as: None,
            },
        ]
    }
    fn steps_per_epoch(&self) -> usize {
        self.rows().saturating_sub(1).div_ceil(self.lm.bptt)
    }
    fn start_epoch(&mut self, _epoch: usize, position: usize) {
        self.row = position;
        self.next_state = None;
        tch::no_grad(|| {
            let _ = self.state.h.zero_();
            let _ = self.state.c.zero_();
        });
    }
    fn stage_step(&mut self, rng: &mut StdRng) -> Option<StagedStep> {
        if self.row + 1 >= self.rows() {
            return None;
        }
        let seq_len = self.seq_len(rng);
        let (x, y) = get_batch(&self.train_data, self.row as i64, seq_len as i64);
        let len = x.size()[0] as usize;
        let (bx, by) = self
            .batches
            .entry(len)
            .or_insert_with(|| (x.empty_like(), y.empty_like()));
        bx.copy_(&x);
        by.copy_(&y);
        self.row += len;
        Some(StagedStep {
            key: len,
            lr_scale: len as f64 / self.lm.bptt as f64,
            units: len * self.global_batch,
            samples: None,
        })
    }
    fn compute_step(&mut self, staged: &StagedStep) -> Result<TrainStep> {
        let (x, y) = &self.batches[&staged.key];
        let len = staged.key as i64;
        let f = self.model.forward(x, &self.state, true);
        let tl = self.model.training_loss(&f.output, y);
        let mut objective = tl.objective;
        if self.lm.ar > 0.0 {
            objective += f.output.square().mean(Kind::Float) * self.lm.ar;
        }
        if self.lm.tar > 0.0 && len > 1 {
            let r = &f.raw_output;
            let d = r.narrow(0, 1, len - 1) - r.narrow(0, 0, len - 1);
            objective += d.square().mean(Kind::Float) * self.lm.tar;
        }
        self.next_state = Some(f.state);
        Ok(TrainStep {
            loss: tl.value.detach(),
            objective,
            correct: None,
        })
    }
    fn finish_step(&mut self, _staged: &StagedStep) {
        // After the backward pass: the LSTM saved the old state for it.
        if let Some(next) = self.next_state.take() {
            tch::no_grad(|| {
                self.state.h.copy_(&next.h);
                self.state.c.copy_(&next.c);
            });
        }
    }
    fn capturable(&self) -> bool {
        true
    }
    fn position(&self) -> usize {
        self.row
    }
    fn next_epoch_position(&self) -> usize {
        if self.row + 1 >= self.rows() {
            0
        } else {
            self.row
        }
    }
    fn evaluate(&self, split: Split) -> Result<Evaluation> {
        let data = self.eval_data(split);
        let loss = if distributed::current().is_some() {
            evaluate_sharded(&self.model, &data, self.lm.bptt)?
        } else {
            evaluate(&self.model, &data, self.lm.bptt)
        };
        Ok(Evaluation {
            loss,
            ppl: Some(loss.exp()),
            acc: None,
            top5: None,
        })
    }
    fn nt_asgd(&self) -> Option<usize> {
        self.lm.asgd.then_some(self.lm.nonmono)
    }
    /// The hidden state of the whole global batch (gathered from the ranks' columns), so a
    /// checkpoint is the same whatever the number of ranks that wrote it.
    fn carried_state(&self) -> Result<Vec<(String, Tensor)>> {
        let (whole, lo) = (self.global_batch as i64, self.first_column());
        Ok(vec![
            ("lstm.h".into(), gather_along(&self.state.h, 1, whole, lo)?),
            ("lstm.c".into(), gather_along(&self.state.c, 1, whole, lo)?),
        ])
    }
    fn restore_carried_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        from: &Path,
    ) -> Result<()> {
        // A checkpoint written before the hidden state was saved: the epoch goes on from a
        // zero state (close to, not exactly, the uninterrupted run).
        let (Some(h), Some(c)) = (tensors.get("lstm.h"), tensors.get("lstm.c")) else {
            return Ok(());
        };
        let want = self.model.zero_state(self.global_batch as i64).h.size();
        if h.size() != want || c.size() != want {
            return Err(Error::bad_file(
                from,
                format!(
                    "the saved LSTM state has shape {:?}, this model and batch size need {want:?}; \
                     resume with the run's own config",
                    h.size()
                ),
            ));
        }
        let (lo, n) = (self.first_column(), self.batch_size as i64);
        tch::no_grad(|| {
            self.state.h.copy_(&h.narrow(1, lo, n));
            self.state.c.copy_(&c.narrow(1, lo, n));
        });
        Ok(())
    }
}
