//! Precomputed word embeddings for the fixed word2vec / fixed PMI classifiers: exactly the
//! LM's vocabulary, in the LM's id order (every word gets a row, `<eos>` and rare words
//! included), written as `NAME.npy` + `NAME.vocab` + `NAME.json` (parameters, corpus hash,
//! timings). See [`compute`] and [`is_up_to_date`] for the library entry points.
//!
//! `NAME.json` holds `params` (the [`EmbedSpec`] as JSON, `kind` included, `threads`
//! excluded), `threads`, `corpus` + `corpus_sha256`, `tokenizer` + `tokenizer_sha256`,
//! `vocab_size`, `dim`, `tokens`, `seconds`, `words_per_sec` (word2vec) and `stats`
//! (word2vec: words/s, CPU seconds, kernel; pmi: non-zeros, phase timings, all singular
//! values). It is written last, so its presence means the `.npy`/`.vocab` are complete.
//!
//! Speed against gensim and scipy (`bench/embed.sh`): `docs/embeddings.md`.

pub mod cli;
mod csr;
pub mod eval;
pub mod pmi;
mod simd;
pub mod word2vec;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{sha256_file, StagedFiles};
use crate::lm::corpus::Vocab;
use crate::vectors::{stage_npy_with_vocab, WordVectors, NPY_SHA_KEY, VOCAB_SHA_KEY};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

pub use cli::{run, EmbedCommand};
pub use pmi::{ppmi_svd, PmiParams};
pub use word2vec::{train_word2vec, Word2VecParams};

/// A zeroed f32 buffer whose pages are marked for transparent huge pages (Linux): the
/// embedding matrices are read by random rows, and 4 KiB pages make that a TLB miss per row.
/// (numpy does the same for large arrays.) Elsewhere just a zeroed Vec.
pub fn hugepage_vec(len: usize) -> Vec<f32> {
    let v = vec![0f32; len];
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = v.as_ptr() as usize;
        let end = start + len * std::mem::size_of::<f32>();
        let a = start.div_ceil(PAGE) * PAGE;
        let b = end / PAGE * PAGE;
        if b > a + (2 << 20) {
            // SAFETY: [a, b) lies inside v's allocation and is page-aligned; MADV_HUGEPAGE
            // only changes how the kernel backs the pages, not their content.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
        }
    }
    v
}

/// Checks that a token stream is non-empty and within the vocabulary (both methods need it).
pub fn check_tokens(tokens: &[u32], vocab_size: usize) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::arg("--corpus", "the corpus has no tokens"));
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
        return Err(Error::arg(
            "tokens",
            format!("token id {bad} is outside the vocabulary of {vocab_size} words"),
        ));
    }
    Ok(())
}

/// Which embedding and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EmbedSpec {
    Word2vec(Word2VecParams),
    Pmi(PmiParams),
}

impl EmbedSpec {
    pub fn name(&self) -> &'static str {
        match self {
            EmbedSpec::Word2vec(_) => "word2vec",
            EmbedSpec::Pmi(_) => "pmi",
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            EmbedSpec::Word2vec(p) => p.dim,
            EmbedSpec::Pmi(p) => p.dim,
        }
    }

    /// Checks the parameters against a vocabulary size.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        match self {
            EmbedSpec::Word2vec(p) => p.validate(vocab_size),
            EmbedSpec::Pmi(p) => p.validate(vocab_size),
        }
    }

    /// The same spec with `threads = 0` read as "all cores" (suite files use 0 so that a
    /// config runs on any machine).
    pub fn with_default_threads(mut self) -> Self {
        let cores = word2vec::default_threads();
        match &mut self {
            EmbedSpec::Word2vec(p) if p.threads == 0 => p.threads = cores,
            EmbedSpec::Pmi(p) if p.threads == 0 => p.threads = cores,
            _ => {}
        }
        self
    }

    /// The parameters as stored in `NAME.json` (`params`) and compared by
    /// [`is_up_to_date`] (`threads` excluded: it does not define the result).
    pub fn params_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("threads");
        }
        v
    }
}

/// The text the embeddings are computed from: a corpus file, and optionally the LM's
/// tokenizer (its vocabulary fixes the rows and their order).
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    pub corpus: PathBuf,
    pub tokenizer: Option<PathBuf>,
}

/// The corpus as ids plus the vocabulary in id order.
pub struct LoadedCorpus {
    pub words: Vec<String>,
    pub tokens: Vec<u32>,
}

/// Reads the corpus and maps it to ids with [`crate::lm::corpus::Vocab`]: with a tokenizer, the
/// LM's vocabulary (a corpus word missing from it is an error naming how many and the
/// first); without, the vocabulary built from the corpus (first-appearance order, as the LM
/// builds it).
pub fn load_corpus(spec: &CorpusSpec) -> Result<LoadedCorpus> {
    let vocab = match &spec.tokenizer {
        Some(tok) => {
            let vocab = Vocab::load(tok)?;
            check_covered(&vocab, &spec.corpus, tok)?;
            vocab
        }
        None => Vocab::build(&[spec.corpus.as_path()])?,
    };
    let tokens = vocab.encode_file(&spec.corpus, None)?.to_vec();
    let eos = vocab.id(crate::lm::corpus::EOS);
    if tokens.iter().all(|&t| Some(t) == eos) {
        return Err(Error::bad_file(
            &spec.corpus,
            "the corpus is empty (no words); pass a non-empty text file with --corpus",
        ));
    }
    Ok(LoadedCorpus {
        words: vocab.words().to_vec(),
        tokens,
    })
}

/// Every corpus word must be in the tokenizer's vocabulary: says how many are not and the
/// first one.
fn check_covered(vocab: &Vocab, corpus: &Path, tokenizer: &Path) -> Result<()> {
    let text = crate::lm::corpus::read_corpus_text(corpus)?;
    let mut missing = std::collections::HashSet::new();
    let mut first = None;
    let mut n_tokens = 0usize;
    for w in text.split_whitespace() {
        if vocab.id(w).is_none() {
            n_tokens += 1;
            if missing.insert(w) && first.is_none() {
                first = Some(w);
            }
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(Error::bad_file(
            corpus,
            format!(
                "{} distinct words ({n_tokens} tokens) are not in the vocabulary of {}, first \
                 {first:?}; pass the corpus the tokenizer was built from, or drop --tokenizer",
                missing.len(),
                tokenizer.display()
            ),
        )),
    }
}

/// `embeddings/NAME` (or `embeddings/NAME.npy`) -> the three output files.
pub struct OutPaths {
    pub npy: PathBuf,
    pub vocab: PathBuf,
    pub json: PathBuf,
}

pub fn out_paths(out: &Path) -> OutPaths {
    let base = if out.extension().is_some_and(|e| e == "npy") {
        out.with_extension("")
    } else {
        out.to_path_buf()
    };
    let with = |ext: &str| {
        let mut s = base.as_os_str().to_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    OutPaths {
        npy: with(".npy"),
        vocab: with(".vocab"),
        json: with(".json"),
    }
}

/// Checks before any work: the output folder can be created and written, and no output
/// exists unless `force`.
pub fn check_output(out: &Path, force: bool) -> Result<()> {
    let p = out_paths(out);
    if !force {
        for f in [&p.npy, &p.vocab, &p.json] {
            if f.exists() {
                return Err(Error::arg(
                    "--out",
                    format!(
                        "{} already exists; pass --force to overwrite it or choose another --out",
                        f.display()
                    ),
                ));
            }
        }
    }
    let dir = p
        .npy
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::arg(
            "--out",
            format!("cannot create the output folder {}: {e}", dir.display()),
        )
    })?;
    let probe = dir.join(format!(".fixclf-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        Error::arg(
            "--out",
            format!(
                "the output folder {} is not writable ({e}); choose another --out",
                dir.display()
            ),
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// True when `out`'s three files exist and its `.json` records the same parameters
/// (`spec.params_json()`), corpus hash and tokenizer hash: the result can be reused.
pub fn is_up_to_date(
    out: &Path,
    params_json: &serde_json::Value,
    corpus_sha: &str,
    tokenizer_sha: Option<&str>,
) -> bool {
    let p = out_paths(out);
    if !p.npy.exists() || !p.vocab.exists() {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(&p.json) else {
        return false;
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    meta.get("params") == Some(params_json)
        && meta.get("corpus_sha256").and_then(|v| v.as_str()) == Some(corpus_sha)
        && meta.get("tokenizer_sha256").and_then(|v| v.as_str()) == tokenizer_sha
        && intact(&meta, NPY_SHA_KEY, &p.npy)
        && intact(&meta, VOCAB_SHA_KEY, &p.vocab)
}

/// Whether `file` still has the SHA-256 that `meta` recorded under `key` (true when none was
/// recorded, as by fixclf before 0.1.1): a damaged output is stale and is computed again.
fn intact(meta: &serde_json::Value, key: &str, file: &Path) -> bool {
    match meta.get(key).and_then(|v| v.as_str()) {
        Some(want) => sha256_file(file).is_ok_and(|sha| sha == want),
        None => true,
    }
}

/// What [`compute`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ComputeReport {
    pub npy: PathBuf,
    pub reused: bool,
    pub seconds: f64,
    pub vocab_size: usize,
    pub words_per_sec: Option<f64>,
}

/// Progress for long runs: an indicatif bar when stderr is a terminal, else a plain line
/// every ~10%.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_decile: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub fn new(total: u64, what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} words, {msg} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_prefix(what.to_string());
            b
        });
        Self {
            bar,
            last_decile: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn update(&self, done: u64, total: u64, words_per_sec: f64) {
        match &self.bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(format!("{:.0} words/s", words_per_sec));
            }
            None => {
                let decile = done * 10 / total.max(1);
                let prev = self
                    .last_decile
                    .fetch_max(decile, std::sync::atomic::Ordering::Relaxed);
                if decile > prev {
                    eprintln!(
                        "  {}% ({done}/{total} words, {words_per_sec:.0} words/s)",
                        decile * 10
                    );
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// The vectors of `spec` trained on `tokens` (a vocabulary of `v` words), with the
/// trainer's statistics for the `.json` and word2vec's words per second.
fn train_vectors(
    spec: &EmbedSpec,
    tokens: &[u32],
    v: usize,
) -> Result<(Vec<f32>, serde_json::Value, Option<f64>)> {
    Ok(match spec {
        EmbedSpec::Word2vec(p) => {
            let progress = Progress::new(p.epochs as u64 * tokens.len() as u64, "word2vec");
            let (data, st) = train_word2vec(tokens, v, p, &|d, t, r| progress.update(d, t, r))?;
            progress.finish();
            eprintln!(
                "word2vec: {:.0} words/s, {:.1}s wall, {:.1} CPU-s ({} kernel, {} threads)",
                st.words_per_sec,
                st.seconds,
                st.cpu_seconds.unwrap_or(f64::NAN),
                st.kernel,
                p.threads
            );
            let wps = st.words_per_sec;
            (
                data,
                serde_json::to_value(st).unwrap_or_default(),
                Some(wps),
            )
        }
        EmbedSpec::Pmi(p) => {
            let (data, st) = ppmi_svd(tokens, v, p, &|m| eprintln!("pmi: {m}"))?;
            (data, serde_json::to_value(st).unwrap_or_default(), None)
        }
    })
}

/// Computes the embedding `spec` of `corpus` into `out` (`embeddings/NAME` ->
/// NAME.npy/.vocab/.json). With `force` false an existing output is an error; use
/// [`compute_if_stale`] to reuse an up-to-date one.
pub fn compute(
    spec: &EmbedSpec,
    corpus: &CorpusSpec,
    out: &Path,
    force: bool,
) -> Result<ComputeReport> {
    check_output(out, force)?;
    let t0 = std::time::Instant::now();
    let corpus_sha = sha256_file(&corpus.corpus)?;
    let tokenizer_sha = match &corpus.tokenizer {
        Some(t) => Some(sha256_file(t)?),
        None => None,
    };
    let loaded = load_corpus(corpus)?;
    let v = loaded.words.len();
    let dim = spec.dim();
    if dim >= v {
        return Err(Error::arg(
            "--dim",
            format!("{dim} must be smaller than the vocabulary size {v}; lower --dim"),
        ));
    }
    eprintln!(
        "{}: {} tokens, vocabulary {v}, dim {dim}",
        spec.name(),
        loaded.tokens.len()
    );
    let (data, stats, words_per_sec) = train_vectors(spec, &loaded.tokens, v)?;
    crate::interrupt::stop_unwritten(spec.name())?;
    let seconds = t0.elapsed().as_secs_f64();
    let paths = out_paths(out);
    // The three files are replaced together once all are written: a full disk halfway
    // leaves the previous embeddings whole (their .json still matching them).
    let mut files = StagedFiles::default();
    stage_npy_with_vocab(
        &mut files,
        &paths.npy,
        &WordVectors::new(loaded.words, dim, data),
    )?;
    let staged_sha = |path: &Path| sha256_file(files.staged_path(path).unwrap_or(path));
    let threads = match spec {
        EmbedSpec::Word2vec(p) => p.threads,
        EmbedSpec::Pmi(p) => p.threads,
    };
    let meta = serde_json::json!({
        "params": spec.params_json(),
        "threads": threads,
        "corpus": corpus.corpus,
        "corpus_sha256": corpus_sha,
        "tokenizer": corpus.tokenizer,
        "tokenizer_sha256": tokenizer_sha,
        "vocab_size": v,
        "dim": dim,
        "tokens": loaded.tokens.len(),
        "seconds": seconds,
        "words_per_sec": words_per_sec,
        "stats": stats,
        "fixclf_version": env!("CARGO_PKG_VERSION"),
        // Read back by `vectors::read_npy_with_vocab` and `is_up_to_date`: a damaged file is
        // refused (or recomputed) instead of training on it.
        NPY_SHA_KEY: staged_sha(&paths.npy)?,
        VOCAB_SHA_KEY: staged_sha(&paths.vocab)?,
    });
    let text = serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n";
    files.write(&paths.json, |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })?;
    files.commit()?;
    eprintln!(
        "wrote {} ({v} x {dim}) in {seconds:.1}s",
        paths.npy.display()
    );
    Ok(ComputeReport {
        npy: paths.npy,
        reused: false,
        seconds,
        vocab_size: v,
        words_per_sec,
    })
}

/// Reuses `out` when [`is_up_to_date`], else computes it (overwriting a stale one).
pub fn compute_if_stale(
    spec: &EmbedSpec,
    corpus: &CorpusSpec,
    out: &Path,
) -> Result<ComputeReport> {
    let corpus_sha = sha256_file(&corpus.corpus)?;
    let tokenizer_sha = match &corpus.tokenizer {
        Some(t) => Some(sha256_file(t)?),
        None => None,
    };
    if is_up_to_date(
        out,
        &spec.params_json(),
        &corpus_sha,
        tokenizer_sha.as_deref(),
    ) {
        let p = out_paths(out);
        let vocab_size = std::fs::read_to_string(&p.vocab)
            .at(&p.vocab)?
            .lines()
            .count();
        return Ok(ComputeReport {
            npy: p.npy,
            reused: true,
            seconds: 0.0,
            vocab_size,
            words_per_sec: None,
        });
    }
    compute(spec, corpus, out, true)
}

#[cfg(test)]
mod tests;
