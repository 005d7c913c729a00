//! Skip-gram with negative sampling (Mikolov et al. 2013), following the reference
//! `word2vec.c`: unigram^0.75 negative table, frequent-word subsampling, randomly shrunk
//! window, linear learning-rate decay, a sigmoid lookup table, one linear congruential RNG
//! per thread and lock-free (Hogwild) updates shared between threads.
//!
//! Differences to `word2vec.c`: the token stream is the LM's (one `<eos>` per line, and
//! `<eos>` is an ordinary word that gets trained, since the LM needs its vector); it is cut
//! into "sentences" of [`SENTENCE_LEN`] tokens; there is no min-count (every vocabulary word
//! gets a row; words absent from the corpus keep their random initialisation).
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tokens per "sentence" (word2vec.c's MAX_SENTENCE_LENGTH).
pub const SENTENCE_LEN: usize = 1000;
const EXP_TABLE_SIZE: usize = 1000;
const MAX_EXP: f32 = 6.0;
/// How much of each row to prefetch explicitly (the hardware prefetcher follows on).
const PREFETCH_FLOATS: usize = 512;
/// Prefetch the rows of the job this many jobs ahead.
const PREFETCH_AHEAD: usize = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word2VecParams {
    pub dim: usize,
    /// Maximum window (each side); the effective window is drawn uniformly from 1..=window.
    pub window: usize,
    pub negative: usize,
    /// Subsampling threshold (0 disables).
    pub sample: f64,
    /// Starting learning rate; decays linearly to alpha * 1e-4.
    pub alpha: f32,
    pub epochs: usize,
    pub threads: usize,
    pub seed: u64,
}

impl Default for Word2VecParams {
    fn default() -> Self {
        Self {
            dim: 512,
            window: 5,
            negative: 5,
            sample: 1e-3,
            alpha: 0.025,
            epochs: 5,
            threads: default_threads(),
            seed: 1,
        }
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Word2VecParams {
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if self.dim == 0 {
            return Err(Error::arg("--dim", "must be at least 1"));
        }
        if self.window == 0 {
            return Err(Error::arg(
                "--window",
                "must be at least 1 (try --window 5)",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::arg("--epochs", "must be at least 1"));
        }
        if self.threads == 0 {
            return Err(Error::arg("--threads", "must be at least 1"));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::arg(
                "--alpha",
                "must be a positive number (try 0.025)",
            ));
        }
        if !(self.sample >= 0.0 && self.sample.is_finite()) {
            return Err(Error::arg(
                "--sample",
                "must be >= 0 (0 disables subsampling)",
            ));
        }
        if self.negative == 0 {
            return Err(Error::arg("--negative", "must be at least 1 (try 5)"));
        }
        if vocab_size < 2 {
            return Err(Error::arg(
                "--corpus",
                "the vocabulary needs at least 2 words",
            ));
        }
        Ok(())
    }
}

/// What training reports besides the vectors.
#[derive(Debug, Clone, Serialize)]
pub struct Word2VecStats {
    /// Corpus tokens x epochs (as word2vec.c/gensim count words/s: before subsampling).
    pub words_processed: u64,
    pub seconds: f64,
    pub words_per_sec: f64,
    /// "avx2+fma" or "portable": which compiled inner loop ran.
    pub kernel: &'static str,
    /// Process CPU seconds (user + system) spent in training (Linux; None elsewhere).
    pub cpu_seconds: Option<f64>,
}

/// This process's CPU time (user + system) from /proc/self/stat, in seconds.
pub fn process_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A raw pointer shared between Hogwild threads.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: the threads write the shared matrices without locks on purpose (Hogwild, as
// word2vec.c does); racing f32 updates may lose an increment, which SGD tolerates. Rows are
// always in bounds (ids < vocab_size is checked before training).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Trains skip-gram negative-sampling vectors; returns the input vectors (`syn0`),
/// row-major `vocab_size x dim`. `tokens` must all be `< vocab_size`.
/// `progress(done_words, total_words, words_per_sec)` is called every ~0.5 s from thread 0.
pub fn train_word2vec(
    tokens: &[u32],
    vocab_size: usize,
    params: &Word2VecParams,
    progress: &(dyn Fn(u64, u64, f64) + Sync),
) -> Result<(Vec<f32>, Word2VecStats)> {
    params.validate(vocab_size)?;
    super::check_tokens(tokens, vocab_size)?;
    let dim = params.dim;
    let mut counts = vec![0u64; vocab_size];
    for &t in tokens {
        counts[t as usize] += 1;
    }
    let train_words = tokens.len() as u64;

    // word2vec.c: syn0 uniform in [-0.5, 0.5) / dim, syn1neg zero.
    let mut syn0 = super::hugepage_vec(vocab_size * dim);
    let mut syn1 = super::hugepage_vec(vocab_size * dim);
    let mut rng = params.seed.wrapping_add(1);
    for x in syn0.iter_mut() {
        rng = lcg(rng);
        *x = (((rng & 0xFFFF) as f32 / 65536.0) - 0.5) / dim as f32;
    }

    let table = unigram_table(&counts);
    // Keep probability of each word under subsampling (word2vec.c's formula), as u32 scale.
    let keep: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if params.sample <= 0.0 || c == 0 {
                return 1.0;
            }
            let st = params.sample * train_words as f64;
            let cn = c as f64;
            (((cn / st).sqrt() + 1.0) * st / cn) as f32
        })
        .collect();
    let exp_table: Vec<f32> = (0..EXP_TABLE_SIZE)
        .map(|i| {
            let e = ((i as f32 / EXP_TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP).exp();
            e / (e + 1.0)
        })
        .collect();

    let threads = params
        .threads
        .min(tokens.len().div_ceil(SENTENCE_LEN))
        .max(1);
    let shared = Shared {
        tokens,
        dim,
        params,
        table: &table,
        keep: &keep,
        exp_table: &exp_table,
        syn0: SharedMut(syn0.as_mut_ptr()),
        syn1: SharedMut(syn1.as_mut_ptr()),
        word_count_actual: AtomicU64::new(0),
        total: params.epochs as u64 * train_words,
        threads,
    };
    let use_avx2 = super::simd::has_avx2_fma();
    let cpu0 = process_cpu_seconds();
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for id in 0..threads {
            let shared = &shared;
            s.spawn(move || run_thread(shared, id, use_avx2, start, progress));
        }
    });
    crate::interrupt::stop_unwritten("word2vec")?; // the threads stopped early on a signal
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = match (cpu0, process_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let words = shared.total;
    Ok((
        syn0,
        Word2VecStats {
            words_processed: words,
            seconds,
            words_per_sec: words as f64 / seconds.max(1e-9),
            kernel: if use_avx2 { "avx2+fma" } else { "portable" },
            cpu_seconds,
        },
    ))
}

struct Shared<'a> {
    tokens: &'a [u32],
    dim: usize,
    params: &'a Word2VecParams,
    table: &'a [u32],
    keep: &'a [f32],
    exp_table: &'a [f32],
    syn0: SharedMut,
    syn1: SharedMut,
    word_count_actual: AtomicU64,
    total: u64,
    threads: usize,
}

#[inline(always)]
fn lcg(x: u64) -> u64 {
    x.wrapping_mul(25214903917).wrapping_add(11)
}

/// The unigram^0.75 table used to draw negatives (word2vec.c's InitUnigramTable).
fn unigram_table(counts: &[u64]) -> Vec<u32> {
    // Small enough to stay in cache (word2vec.c uses 1e8 entries): 30 slots per word.
    let size = (counts.len() * 30).clamp(1_000_000, 100_000_000);
    let power = 0.75f64;
    let total: f64 = counts.iter().map(|&c| (c as f64).powf(power)).sum();
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let mut table = Vec::with_capacity(size);
    let mut i = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let mut d1 = (counts[i] as f64).powf(power) / total;
    for a in 0..size {
        table.push(i as u32);
        if a as f64 / size as f64 > d1 && i < last {
            i += 1;
            // Skip words with count 0 so that they are never drawn.
            while i < last && counts[i] == 0 {
                i += 1;
            }
            d1 += (counts[i] as f64).powf(power) / total;
        }
    }
    table
}

fn run_thread(
    sh: &Shared,
    id: usize,
    use_avx2: bool,
    start: std::time::Instant,
    progress: &(dyn Fn(u64, u64, f64) + Sync),
) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2 {
        // SAFETY: the CPU supports avx2 and fma (checked at run time).
        unsafe { run_thread_avx2(sh, id, start, progress) };
        return;
    }
    let _ = use_avx2;
    thread_body::<false>(sh, id, start, progress);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_thread_avx2(
    sh: &Shared,
    id: usize,
    start: std::time::Instant,
    progress: &(dyn Fn(u64, u64, f64) + Sync),
) {
    thread_body::<true>(sh, id, start, progress);
}

/// `sum a[i] * b[i]` with 32 independent accumulators so that it vectorizes.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: FMA is only true inside run_thread_avx2, which requires avx2 and fma.
        return unsafe { dot_avx2(a, b) };
    }
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 32];
    let ca = a.chunks_exact(32);
    let cb = b.chunks_exact(32);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..32 {
            acc[k] = if FMA {
                x[k].mul_add(y[k], acc[k])
            } else {
                acc[k] + x[k] * y[k]
            };
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    let mut h = [0f32; 8];
    for k in 0..8 {
        h[k] = (acc[k] + acc[k + 8]) + (acc[k + 16] + acc[k + 24]);
    }
    s + (h[0] + h[4]) + (h[1] + h[5]) + (h[2] + h[6]) + (h[3] + h[7])
}

/// The dot product with explicit 256-bit FMAs (4 independent accumulators).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(pa.add(i + 8 * k));
            let y = _mm256_loadu_ps(pb.add(i + 8 * k));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let lo = _mm256_castps256_ps128(s);
    let hi = _mm256_extractf128_ps(s, 1);
    let q = _mm_add_ps(lo, hi);
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    let mut r = _mm_cvtss_f32(q);
    while i < n {
        r += a[i] * b[i];
        i += 1;
    }
    r
}

/// Asks the CPU to start loading a row (every 64-byte line) into the cache.
#[inline(always)]
fn prefetch_row(ptr: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..len.min(PREFETCH_FLOATS)).step_by(16) {
        // SAFETY: prefetch never faults; the addresses are inside the row anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                ptr.add(off) as *const i8
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// `e += g * l2; l2 += g * l1` in one pass (word2vec.c's two loops, fused).
#[inline(always)]
fn axpy2<const FMA: bool>(g: f32, l1: &[f32], l2: &mut [f32], e: &mut [f32]) {
    let n = l1.len().min(l2.len()).min(e.len());
    let (l1, l2, e) = (&l1[..n], &mut l2[..n], &mut e[..n]);
    for i in 0..n {
        let v = l2[i];
        if FMA {
            e[i] = g.mul_add(v, e[i]);
            l2[i] = g.mul_add(l1[i], v);
        } else {
            e[i] += g * v;
            l2[i] = v + g * l1[i];
        }
    }
}

/// `y += g * x`.
#[inline(always)]
fn axpy<const FMA: bool>(g: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = if FMA {
            g.mul_add(*xi, *yi)
        } else {
            *yi + g * *xi
        };
    }
}

#[inline(always)]
fn thread_body<const FMA: bool>(
    sh: &Shared,
    id: usize,
    start: std::time::Instant,
    progress: &(dyn Fn(u64, u64, f64) + Sync),
) {
    let p = sh.params;
    let dim = sh.dim;
    let n = sh.tokens.len();
    let lo = n * id / sh.threads;
    let hi = n * (id + 1) / sh.threads;
    let my_tokens = &sh.tokens[lo..hi];
    let mut next_random: u64 = (id as u64).wrapping_add(p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut neu1e = vec![0f32; dim];
    let mut jobs: Vec<u32> = Vec::new();
    let mut sen: Vec<u32> = Vec::with_capacity(SENTENCE_LEN);
    let starting_alpha = p.alpha;
    let mut alpha = starting_alpha;
    let mut word_count: u64 = 0;
    let mut last_word_count: u64 = 0;
    let mut last_report = std::time::Instant::now();
    let table_len = sh.table.len() as u64;
    let window = p.window as u64;
    // SAFETY (for the row slices below): rows are < vocab_size, matrices are vocab x dim.
    let syn0 = sh.syn0;
    let syn1 = sh.syn1;
    for _epoch in 0..p.epochs {
        for chunk in my_tokens.chunks(SENTENCE_LEN) {
            if crate::interrupt::requested().is_some() {
                return; // one relaxed load per 1,000 words: a signal stops within milliseconds
            }
            // Learning-rate update every 10,000 words, as word2vec.c.
            if word_count - last_word_count > 10_000 {
                let done = sh
                    .word_count_actual
                    .fetch_add(word_count - last_word_count, Ordering::Relaxed)
                    + (word_count - last_word_count);
                last_word_count = word_count;
                alpha = starting_alpha * (1.0 - done as f32 / (sh.total + 1) as f32);
                if alpha < starting_alpha * 1e-4 {
                    alpha = starting_alpha * 1e-4;
                }
                if id == 0 && last_report.elapsed().as_secs_f64() >= 0.5 {
                    last_report = std::time::Instant::now();
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    progress(done, sh.total, done as f64 / secs);
                }
            }
            sen.clear();
            for &w in chunk {
                word_count += 1;
                let k = sh.keep[w as usize];
                if k < 1.0 {
                    next_random = lcg(next_random);
                    if k < (next_random & 0xFFFF) as f32 / 65536.0 {
                        continue;
                    }
                }
                sen.push(w);
            }
            // Plan the sentence's (context, targets) jobs first (same RNG use as
            // word2vec.c per pair), then run them while prefetching the rows of the job
            // PREFETCH_AHEAD ahead, so that the random-row cache misses overlap.
            let len = sen.len();
            let stride = p.negative + 3; // context word, target count, 1 + negative targets
            jobs.clear();
            for pos in 0..len {
                let word = sen[pos] as usize;
                next_random = lcg(next_random);
                let b = next_random % window;
                let span = 2 * window + 1 - b;
                for a in b..span {
                    if a == window {
                        continue;
                    }
                    let c = pos as i64 - window as i64 + a as i64;
                    if c < 0 || c >= len as i64 {
                        continue;
                    }
                    let start = jobs.len();
                    jobs.resize(start + stride, 0);
                    jobs[start] = sen[c as usize];
                    jobs[start + 2] = word as u32;
                    let mut nt = 1;
                    for _ in 0..p.negative {
                        next_random = lcg(next_random);
                        let t = sh.table[((next_random >> 16) % table_len) as usize];
                        if t as usize != word {
                            jobs[start + 2 + nt] = t;
                            nt += 1;
                        }
                    }
                    jobs[start + 1] = nt as u32;
                }
            }
            let n_jobs = jobs.len() / stride;
            for j in 0..n_jobs {
                if j + PREFETCH_AHEAD < n_jobs {
                    let ahead = &jobs[(j + PREFETCH_AHEAD) * stride..][..stride];
                    // SAFETY: ids < vocab_size, so the rows are inside syn0/syn1.
                    prefetch_row(unsafe { syn0.0.add(ahead[0] as usize * dim) }, dim);
                    for &t in &ahead[2..2 + ahead[1] as usize] {
                        prefetch_row(unsafe { syn1.0.add(t as usize * dim) }, dim);
                    }
                }
                let job = &jobs[j * stride..][..stride];
                let last_word = job[0] as usize;
                // SAFETY: see SharedMut; last_word < vocab_size.
                let l1 =
                    unsafe { std::slice::from_raw_parts_mut(syn0.0.add(last_word * dim), dim) };
                neu1e.fill(0.0);
                for (d, &target) in job[2..2 + job[1] as usize].iter().enumerate() {
                    let label = if d == 0 { 1.0f32 } else { 0.0 };
                    // SAFETY: see SharedMut; target < vocab_size.
                    let l2 = unsafe {
                        std::slice::from_raw_parts_mut(syn1.0.add(target as usize * dim), dim)
                    };
                    let f = dot::<FMA>(l1, l2);
                    let g = if f > MAX_EXP {
                        (label - 1.0) * alpha
                    } else if f < -MAX_EXP {
                        label * alpha
                    } else {
                        let idx =
                            ((f + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize;
                        (label - sh.exp_table[idx.min(EXP_TABLE_SIZE - 1)]) * alpha
                    };
                    axpy2::<FMA>(g, l1, l2, &mut neu1e);
                }
                axpy::<FMA>(1.0, &neu1e, l1);
            }
        }
    }
    let rest = word_count - last_word_count;
    let done = sh.word_count_actual.fetch_add(rest, Ordering::Relaxed) + rest;
    if id == 0 {
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        progress(done, sh.total, done as f64 / secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(threads: usize) -> Word2VecParams {
        Word2VecParams {
            dim: 16,
            window: 2,
            negative: 3,
            sample: 0.0,
            alpha: 0.05,
            epochs: 3,
            threads,
            seed: 7,
        }
    }

    #[test]
    fn embed_w2v_single_thread_is_deterministic() {
        let tokens: Vec<u32> = (0..5000u32).map(|i| (i * 7 + i / 3) % 20).collect();
        let p = params(1);
        let (a, _) = train_word2vec(&tokens, 20, &p, &|_, _, _| {}).unwrap();
        let (b, _) = train_word2vec(&tokens, 20, &p, &|_, _, _| {}).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn embed_w2v_dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.5).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot::<false>(&a, &b) - naive).abs() < 1e-3 * naive.abs());
    }

    #[test]
    fn embed_w2v_rejects_bad_params() {
        let mut p = params(1);
        p.window = 0;
        let err = train_word2vec(&[0, 1], 2, &p, &|_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("--window"), "{err}");
        let err = train_word2vec(&[], 2, &params(1), &|_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("no tokens"), "{err}");
        let err = train_word2vec(&[0, 5], 2, &params(1), &|_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn embed_unigram_table_skips_unseen_words() {
        let t = unigram_table(&[10, 0, 5, 0]);
        assert!(t.iter().all(|&w| w == 0 || w == 2));
    }
}
