//! Intrinsic evaluation of word vectors: cosine nearest neighbours, Spearman correlation on a
//! word-similarity file (`word1 word2 score`), and analogy accuracy with 3CosAdd
//! (`: section` headers, `a b c d` lines; a, b, c excluded from the answers).
//! Lookups are case-insensitive by default (as gensim's evaluators): a word maps to the
//! vocabulary entry spelled exactly so if there is one, else to the first entry with the
//! same lowercase form (so the result does not depend on the vocabulary's order).
use crate::error::{Error, IoContext, Result};
use crate::vectors::WordVectors;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Row-normalized vectors with a word index.
pub struct Normalized {
    pub words: Vec<String>,
    pub dim: usize,
    pub unit: Vec<f32>,
    index: HashMap<String, usize>,
    lower: HashMap<String, usize>,
    case_insensitive: bool,
}

impl Normalized {
    pub fn new(v: &WordVectors, case_insensitive: bool) -> Self {
        let mut unit = v.data.clone();
        for row in unit.chunks_exact_mut(v.dim.max(1)) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        let mut index = HashMap::new();
        let mut lower = HashMap::new();
        for (i, w) in v.words.iter().enumerate() {
            index.entry(w.clone()).or_insert(i);
            if case_insensitive {
                lower.entry(w.to_lowercase()).or_insert(i);
            }
        }
        Self {
            words: v.words.clone(),
            dim: v.dim,
            unit,
            index,
            lower,
            case_insensitive,
        }
    }

    pub fn id(&self, w: &str) -> Option<usize> {
        match self.index.get(w) {
            Some(&i) => Some(i),
            None if self.case_insensitive => self.lower.get(&w.to_lowercase()).copied(),
            None => None,
        }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.unit[i * self.dim..(i + 1) * self.dim]
    }

    pub fn cosine(&self, a: usize, b: usize) -> f32 {
        self.row(a)
            .iter()
            .zip(self.row(b))
            .map(|(x, y)| x * y)
            .sum()
    }

    /// The `k` nearest words to `word` by cosine (itself excluded); None if OOV.
    pub fn neighbours(&self, word: &str, k: usize) -> Option<Vec<(String, f32)>> {
        let i = self.id(word)?;
        let mut sims: Vec<(usize, f32)> = (0..self.words.len())
            .filter(|&j| j != i)
            .map(|j| (j, self.cosine(i, j)))
            .collect();
        let k = k.min(sims.len());
        if k == 0 {
            return Some(Vec::new());
        }
        sims.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        sims.truncate(k);
        sims.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(
            sims.into_iter()
                .map(|(j, s)| (self.words[j].clone(), s))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SimilarityResult {
    pub file: String,
    pub pairs: usize,
    pub oov_pairs: usize,
    pub spearman: f64,
}

/// Average ranks (ties share the mean rank).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0f64; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson correlation of the average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman correlation between cosine and human scores on `file` (`w1 w2 score`, tab or
/// spaces; `#` comments and lines whose third field is not a number are skipped).
pub fn similarity(v: &Normalized, file: &Path) -> Result<SimilarityResult> {
    let text = std::fs::read_to_string(file).at(file)?;
    let (mut ours, mut human) = (Vec::new(), Vec::new());
    let (mut pairs, mut oov) = (0, 0);
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(['\t', ' ']).filter(|s| !s.is_empty()).collect();
        let [a, b, s, ..] = f[..] else { continue };
        let Ok(score) = s.parse::<f64>() else {
            continue;
        };
        pairs += 1;
        match (v.id(a), v.id(b)) {
            (Some(i), Some(j)) => {
                ours.push(v.cosine(i, j) as f64);
                human.push(score);
            }
            _ => oov += 1,
        }
    }
    if ours.len() < 2 {
        return Err(Error::bad_file(
            file,
            format!(
                "{pairs} scored pairs, {oov} out of vocabulary: too few to correlate \
                 (expected `word1 word2 score` lines)"
            ),
        ));
    }
    Ok(SimilarityResult {
        file: file.display().to_string(),
        pairs,
        oov_pairs: oov,
        spearman: spearman(&ours, &human),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct AnalogySection {
    pub section: String,
    pub correct: usize,
    pub answered: usize,
    pub oov: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnalogyResult {
    pub file: String,
    pub questions: usize,
    pub oov_questions: usize,
    pub correct: usize,
    /// Accuracy over the questions with all four words in the vocabulary.
    pub accuracy: f64,
    pub sections: Vec<AnalogySection>,
}

/// 3CosAdd analogy accuracy: for `a b c d`, is argmax_w cos(w, b - a + c) (w not in
/// {a, b, c}) equal to d? Scored in batches with libtorch matmul.
pub fn analogies(v: &Normalized, file: &Path) -> Result<AnalogyResult> {
    let text = std::fs::read_to_string(file).at(file)?;
    let mut sections: Vec<AnalogySection> = Vec::new();
    let mut questions: Vec<(usize, [usize; 4])> = Vec::new();
    let mut total = 0;
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix(':') {
            sections.push(AnalogySection {
                section: name.trim().to_string(),
                correct: 0,
                answered: 0,
                oov: 0,
            });
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            return Err(Error::bad_file(
                file,
                format!("line {}: expected `a b c d` or `: section`", lineno + 1),
            ));
        }
        if sections.is_empty() {
            sections.push(AnalogySection {
                section: "(none)".into(),
                correct: 0,
                answered: 0,
                oov: 0,
            });
        }
        total += 1;
        let s = sections.len() - 1;
        let ids: Option<Vec<usize>> = f.iter().map(|w| v.id(w)).collect();
        match ids {
            Some(ids) => questions.push((s, [ids[0], ids[1], ids[2], ids[3]])),
            None => sections[s].oov += 1,
        }
    }
    let n_words = v.words.len() as i64;
    let emb = Tensor::f_from_slice(&v.unit)?.f_view([n_words, v.dim as i64])?;
    for batch in questions.chunks(512) {
        let mut q = Vec::with_capacity(batch.len() * v.dim);
        for (_, [a, b, c, _]) in batch {
            for k in 0..v.dim {
                q.push(v.row(*b)[k] - v.row(*a)[k] + v.row(*c)[k]);
            }
        }
        let qt = Tensor::f_from_slice(&q)?.f_view([batch.len() as i64, v.dim as i64])?;
        let sims = qt
            .f_matmul(&emb.f_transpose(0, 1)?)?
            .f_to_kind(Kind::Float)?;
        // Exclude a, b, c.
        let mut excl = Vec::with_capacity(batch.len() * 3);
        for (_, [a, b, c, _]) in batch {
            excl.extend([*a as i64, *b as i64, *c as i64]);
        }
        let excl = Tensor::f_from_slice(&excl)?.f_view([batch.len() as i64, 3])?;
        let sims = sims.f_scatter_value(1, &excl, f64::NEG_INFINITY)?;
        let best = Vec::<i64>::try_from(&sims.f_argmax(1, false)?)?;
        for ((s, [_, _, _, d]), &b) in batch.iter().zip(&best) {
            sections[*s].answered += 1;
            if b as usize == *d {
                sections[*s].correct += 1;
            }
        }
    }
    let correct = sections.iter().map(|s| s.correct).sum();
    let answered: usize = sections.iter().map(|s| s.answered).sum();
    Ok(AnalogyResult {
        file: file.display().to_string(),
        questions: total,
        oov_questions: total - answered,
        correct,
        accuracy: if answered > 0 {
            correct as f64 / answered as f64
        } else {
            0.0
        },
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_eval_spearman_with_ties() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[5.0, 1.0, 5.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn embed_eval_analogy_and_similarity_files() {
        // king - man + woman = queen in a hand-made 2-D space.
        let words = ["man", "woman", "king", "queen", "apple"];
        let data = vec![1.0, 0.0, 1.0, 1.0, 2.0, 0.1, 2.0, 1.1, -1.0, -3.0];
        let v = WordVectors::new(words.iter().map(|w| w.to_string()).collect(), 2, data);
        let n = Normalized::new(&v, true);
        let dir = tempfile::tempdir().unwrap();
        let qa = dir.path().join("q.txt");
        std::fs::write(
            &qa,
            ": family\nman woman King queen\nman woman king zebra\n",
        )
        .unwrap();
        let r = analogies(&n, &qa).unwrap();
        assert_eq!((r.questions, r.oov_questions, r.correct), (2, 1, 1));
        assert_eq!(r.sections[0].section, "family");
        let sim = dir.path().join("s.tsv");
        std::fs::write(
            &sim,
            "# w1\tw2\tscore\nman\twoman\t9\nking queen 8\nman apple 1\nfoo bar 3\n",
        )
        .unwrap();
        let s = similarity(&n, &sim).unwrap();
        assert_eq!((s.pairs, s.oov_pairs), (4, 1));
        assert!(s.spearman > 0.0);
        let nn = n.neighbours("king", 2).unwrap();
        assert_eq!((nn[0].0.as_str(), nn[1].0.as_str()), ("man", "queen"));
        assert!(n.neighbours("zebra", 3).is_none());
    }
}
