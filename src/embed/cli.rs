//! `fixclf embed ...`: the command-line surface of the embedding tool.
use super::eval::{analogies, similarity, AnalogyResult, Normalized, SimilarityResult};
use super::{compute, CorpusSpec, EmbedSpec, PmiParams, Word2VecParams};
use crate::error::{Error, Result};
use crate::vectors::{read_any, write_any};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum EmbedCommand {
    /// Train skip-gram negative-sampling vectors (word2vec) for the LM vocabulary.
    Word2vec(Word2VecArgs),
    /// Compute PPMI + truncated SVD vectors for the LM vocabulary.
    Pmi(PmiArgs),
    /// Convert word vectors between formats (.npy, .txt/.vec word2vec text, .bin).
    Export(ExportArgs),
    /// Evaluate word vectors: nearest neighbours, word similarity, analogies.
    Eval(EvalArgs),
}

/// Flags shared by `word2vec` and `pmi`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Training text (whitespace tokens, `<eos>` appended to every line).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// The LM's tokenizer.json: its vocabulary fixes the rows and their order (every corpus
    /// word must be in it). Without it the vocabulary is built from the corpus.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Vector dimension (must be smaller than the vocabulary).
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Context window on each side.
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = super::word2vec::default_threads())]
    pub threads: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output base name: writes NAME.npy, NAME.vocab and NAME.json.
    #[arg(long, value_name = "embeddings/NAME")]
    pub out: PathBuf,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

impl CommonArgs {
    fn corpus_spec(&self) -> CorpusSpec {
        CorpusSpec {
            corpus: self.corpus.clone(),
            tokenizer: self.tokenizer.clone(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Word2VecArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Negative samples per positive pair.
    #[arg(long, default_value_t = 5)]
    pub negative: usize,
    /// Subsampling threshold for frequent words (0 disables).
    #[arg(long, default_value_t = 1e-3)]
    pub sample: f64,
    /// Starting learning rate (decays linearly to alpha * 1e-4).
    #[arg(long, default_value_t = 0.025)]
    pub alpha: f32,
}

impl Word2VecArgs {
    pub fn params(&self) -> Word2VecParams {
        Word2VecParams {
            dim: self.common.dim,
            window: self.common.window,
            negative: self.negative,
            sample: self.sample,
            alpha: self.alpha,
            epochs: self.epochs,
            threads: self.common.threads,
            seed: self.common.seed,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PmiArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Context-distribution smoothing exponent (1 disables).
    #[arg(long, default_value_t = 0.75)]
    pub cds: f64,
    /// Shifted PPMI: subtract log(NEG) (1 = no shift).
    #[arg(long, default_value_t = 1.0)]
    pub neg: f64,
    /// Eigenvalue weighting: vectors are U * S^p (0, 0.5 or 1).
    #[arg(long, default_value_t = 0.5)]
    pub eig_p: f64,
    /// Weight co-occurrences at distance d by 1/d.
    #[arg(long)]
    pub distance_weighted: bool,
    /// Extra random directions of the randomized SVD.
    #[arg(long, default_value_t = 16)]
    pub oversample: usize,
    /// Power (subspace) iterations of the randomized SVD.
    #[arg(long, default_value_t = 4)]
    pub power_iters: usize,
}

impl PmiArgs {
    pub fn params(&self) -> PmiParams {
        PmiParams {
            dim: self.common.dim,
            window: self.common.window,
            distance_weighted: self.distance_weighted,
            cds: self.cds,
            neg: self.neg,
            eig_p: self.eig_p,
            oversample: self.oversample,
            power_iters: self.power_iters,
            threads: self.common.threads,
            seed: self.common.seed,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Input vectors (.npy with .vocab beside it, .txt/.vec, .bin).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Output file; the format follows the extension (.npy, .txt/.vec word2vec text, .bin).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Vectors to evaluate (.npy with .vocab beside it, .txt/.vec, .bin).
    #[arg(value_name = "VECTORS")]
    pub vectors: PathBuf,
    /// Words whose nearest neighbours to list (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub neighbours: Vec<String>,
    /// How many neighbours per word.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Word-similarity file(s): `word1 word2 score` lines (tab or space).
    #[arg(long, value_name = "FILE")]
    pub similarity: Vec<PathBuf>,
    /// Analogy file(s): `: section` headers and `a b c d` lines.
    #[arg(long, value_name = "FILE")]
    pub analogy: Vec<PathBuf>,
    /// Match words exactly (default: case-insensitive, as gensim).
    #[arg(long)]
    pub case_sensitive: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: &EmbedCommand) -> Result<()> {
    match cmd {
        EmbedCommand::Word2vec(a) => {
            compute(
                &EmbedSpec::Word2vec(a.params()),
                &a.common.corpus_spec(),
                &a.common.out,
                a.common.force,
            )?;
        }
        EmbedCommand::Pmi(a) => {
            compute(
                &EmbedSpec::Pmi(a.params()),
                &a.common.corpus_spec(),
                &a.common.out,
                a.common.force,
            )?;
        }
        EmbedCommand::Export(a) => {
            if a.output.exists() && !a.force {
                return Err(Error::arg(
                    "--output",
                    format!(
                        "{} already exists; pass --force to overwrite it",
                        a.output.display()
                    ),
                ));
            }
            let v = read_any(&a.input)?;
            write_any(&a.output, &v)?;
            eprintln!("wrote {} ({} x {})", a.output.display(), v.len(), v.dim);
        }
        EmbedCommand::Eval(a) => eval(a)?,
    }
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<()> {
    let v = read_any(&a.vectors)?;
    let n = Normalized::new(&v, !a.case_sensitive);
    let mut nn = serde_json::Map::new();
    for w in &a.neighbours {
        let value = match n.neighbours(w, a.k) {
            Some(list) => serde_json::json!(list),
            None => serde_json::Value::Null,
        };
        nn.insert(w.clone(), value);
    }
    let sims: Vec<SimilarityResult> = a
        .similarity
        .iter()
        .map(|f| similarity(&n, f))
        .collect::<Result<_>>()?;
    let anas: Vec<AnalogyResult> = a
        .analogy
        .iter()
        .map(|f| analogies(&n, f))
        .collect::<Result<_>>()?;
    if a.json {
        let out = serde_json::json!({
            "vectors": a.vectors,
            "vocab_size": v.len(),
            "dim": v.dim,
            "neighbours": nn,
            "similarity": sims,
            "analogy": anas,
        });
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
        return Ok(());
    }
    println!("{}: {} words x {}", a.vectors.display(), v.len(), v.dim);
    for w in &a.neighbours {
        match n.neighbours(w, a.k) {
            Some(list) => {
                let s: Vec<String> = list.iter().map(|(w, c)| format!("{w} {c:.3}")).collect();
                println!("  {w:>12}: {}", s.join(", "));
            }
            None => println!("  {w:>12}: (not in the vocabulary)"),
        }
    }
    for s in &sims {
        println!(
            "similarity {}: Spearman {:.4} on {} pairs ({} out of vocabulary)",
            s.file,
            s.spearman,
            s.pairs - s.oov_pairs,
            s.oov_pairs
        );
    }
    for r in &anas {
        println!(
            "analogy {}: {:.2}% ({}/{} answered; {} of {} questions out of vocabulary)",
            r.file,
            100.0 * r.accuracy,
            r.correct,
            r.questions - r.oov_questions,
            r.oov_questions,
            r.questions
        );
        for s in &r.sections {
            let acc = if s.answered > 0 {
                100.0 * s.correct as f64 / s.answered as f64
            } else {
                0.0
            };
            println!(
                "  {:<28} {:>6.2}% {:>5}/{:<5} oov {}",
                s.section, acc, s.correct, s.answered, s.oov
            );
        }
    }
    Ok(())
}
