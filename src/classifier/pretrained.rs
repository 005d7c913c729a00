//! Pretrained word vectors aligned to a model's vocabulary, as a fixed matrix.
use crate::error::{Error, Result};
use crate::fsutil::sha256_file;
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

/// How many offending words an error message lists.
const SHOW: usize = 5;

fn first_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = words
        .into_iter()
        .take(SHOW)
        .map(|w| format!("{w:?}"))
        .collect();
    v.join(", ")
}

/// Reads `path`, aligns its rows to `vocab` (row `i` = vector of `vocab[i]`), checks it and
/// L2-normalizes the rows. Returns the `V x n` f32 matrix and the file's SHA-256.
///
/// Words of the file that are not in `vocab` are ignored, and so are their values and
/// duplicates; a vocabulary word that appears more than once in the file is an error (which
/// vector to take would be a guess).
pub(crate) fn load(path: &Path, vocab: &[String], n: i64) -> Result<(Tensor, String)> {
    if vocab.is_empty() {
        return Err(Error::arg("pretrained", "the vocabulary is empty"));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(vocab.len());
    for (i, w) in vocab.iter().enumerate() {
        if let Some(j) = seen.insert(w.as_str(), i) {
            return Err(Error::arg(
                "pretrained",
                format!("the model's vocabulary has {w:?} twice (entries {j} and {i})"),
            ));
        }
    }
    let vectors = crate::vectors::read_any(path)?;
    if vectors.dim as i64 != n {
        return Err(Error::bad_file(
            path,
            format!(
                "vectors have dimension {} but the model's features have dimension {n}; \
                 re-run `fixclf embed ... --dim {n}` (or set the model's width to {})",
                vectors.dim, vectors.dim
            ),
        ));
    }
    let rows = align_rows(&vectors, vocab, &seen, path)?;
    let data = unit_rows(&vectors, vocab, &rows, path)?;
    let sha = sha256_file(path)?;
    let q = Tensor::from_slice(&data).view([vocab.len() as i64, n]);
    Ok((q, sha))
}

/// The file row of each vocabulary word (`seen`: word -> its id), refusing a word that
/// appears twice in the file or has no vector.
fn align_rows(
    vectors: &crate::vectors::WordVectors,
    vocab: &[String],
    seen: &HashMap<&str, usize>,
    path: &Path,
) -> Result<Vec<usize>> {
    // File row of each vocabulary word; count duplicates among vocabulary words.
    let mut row_of: Vec<Option<usize>> = vec![None; vocab.len()];
    let mut dup_count: HashMap<usize, usize> = HashMap::new();
    for (r, w) in vectors.words.iter().enumerate() {
        if let Some(&i) = seen.get(w.as_str()) {
            if row_of[i].is_some() {
                *dup_count.entry(i).or_insert(1) += 1;
            } else {
                row_of[i] = Some(r);
            }
        }
    }
    if !dup_count.is_empty() {
        let mut dups: Vec<(usize, usize)> = dup_count.into_iter().collect();
        dups.sort_unstable();
        let list: Vec<String> = dups
            .iter()
            .take(SHOW)
            .map(|&(i, k)| format!("{:?} ({k} times)", vocab[i]))
            .collect();
        return Err(Error::bad_file(
            path,
            format!(
                "{} vocabulary words appear more than once: {}{}; keep one vector per word",
                dups.len(),
                list.join(", "),
                if dups.len() > SHOW { ", ..." } else { "" }
            ),
        ));
    }
    let missing: Vec<&str> = vocab
        .iter()
        .zip(&row_of)
        .filter(|(_, r)| r.is_none())
        .map(|(w, _)| w.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::bad_file(
            path,
            format!(
                "{} of the model's {} vocabulary words have no vector (first {}: {}); \
                 build the vectors from the same corpus and vocabulary (`fixclf embed`)",
                missing.len(),
                vocab.len(),
                missing.len().min(SHOW),
                first_words(missing.iter().copied())
            ),
        ));
    }
    Ok(row_of.into_iter().flatten().collect())
}

/// The rows of `vectors` at `rows` (one per vocabulary word), L2-normalized into one f32
/// buffer, refusing rows with NaN, infinite or all-zero values.
fn unit_rows(
    vectors: &crate::vectors::WordVectors,
    vocab: &[String],
    rows: &[usize],
    path: &Path,
) -> Result<Vec<f32>> {
    let dim = vectors.dim;
    let mut data = Vec::with_capacity(vocab.len() * dim);
    let mut non_finite = Vec::new();
    let mut zero = Vec::new();
    for (i, &r) in rows.iter().enumerate() {
        let row = vectors.row(r);
        if row.iter().any(|v| !v.is_finite()) {
            non_finite.push(vocab[i].as_str());
            continue;
        }
        let norm = row
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            zero.push(vocab[i].as_str());
            continue;
        }
        data.extend(row.iter().map(|&v| (v as f64 / norm) as f32));
    }
    if !non_finite.is_empty() {
        return Err(Error::bad_file(
            path,
            format!(
                "{} vectors contain NaN or infinite values (first {}: {}); regenerate them",
                non_finite.len(),
                non_finite.len().min(SHOW),
                first_words(non_finite.iter().copied())
            ),
        ));
    }
    if !zero.is_empty() {
        return Err(Error::bad_file(
            path,
            format!(
                "{} vectors are all zeros and have no direction (first {}: {}); regenerate \
                 them or drop those words",
                zero.len(),
                zero.len().min(SHOW),
                first_words(zero.iter().copied())
            ),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use crate::classifier::{FixedKind, FixedMatrix, FixedSpec};
    use crate::vectors::{write_npy_with_vocab, WordVectors};
    use tch::Kind;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| w.to_string()).collect()
    }

    fn write(dir: &std::path::Path, ws: &[&str], dim: usize, data: Vec<f32>) -> std::path::PathBuf {
        let path = dir.join("vec.npy");
        write_npy_with_vocab(&path, &WordVectors::new(words(ws), dim, data)).unwrap();
        path
    }

    fn err_of(path: &std::path::Path, vocab: &[&str], n: i64) -> String {
        FixedMatrix::pretrained(path, &words(vocab), n)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn classifier_pretrained_alignment() {
        let dir = tempfile::tempdir().unwrap();
        // File order differs from the vocabulary; "extra" is not in the vocabulary.
        let path = write(
            dir.path(),
            &["b", "extra", "a", "<eos>"],
            2,
            vec![0.0, 2.0, 9.0, 9.0, 3.0, 4.0, -1.0, 0.0],
        );
        let vocab = words(&["a", "<eos>", "b"]);
        let (m, sha) = FixedMatrix::pretrained(&path, &vocab, 2).unwrap();
        assert_eq!(sha, crate::fsutil::sha256_file(&path).unwrap());
        let q = m.dense();
        let want = tch::Tensor::from_slice(&[0.6f32, 0.8, -1.0, 0.0, 0.0, 1.0]).view([3, 2]);
        assert!((q - want).abs().max().double_value(&[]) < 1e-7);
        assert_eq!(m.spec().kind, FixedKind::Pretrained);
        assert_eq!(m.spec().source_sha256.as_deref(), Some(sha.as_str()));
        // Rebuild from the spec, and refuse a changed file.
        let spec: FixedSpec =
            serde_json::from_str(&serde_json::to_string(m.spec()).unwrap()).unwrap();
        let again = FixedMatrix::build(&spec, Some(&vocab)).unwrap();
        assert!(again.dense().equal(&m.dense()));
        assert!(FixedMatrix::build(&spec, None).is_err());
        write(
            dir.path(),
            &["b", "a", "<eos>"],
            2,
            vec![0.0, 2.0, 3.0, 4.0, -1.0, 0.5],
        );
        let err = FixedMatrix::build(&spec, Some(&vocab))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256") && err.contains("vec.npy"), "{err}");
        assert_eq!(m.dense().kind(), Kind::Float);
    }

    #[test]
    fn classifier_pretrained_missing_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &["a"], 1, vec![1.0]);
        let vocab = ["a", "m1", "m2", "m3", "m4", "m5", "m6", "m7"];
        let err = err_of(&path, &vocab, 1);
        assert!(err.contains("vec.npy"), "{err}");
        assert!(err.contains("7 of the model's 8"), "{err}");
        assert!(err.contains("\"m5\"") && !err.contains("\"m6\""), "{err}");
    }

    #[test]
    fn classifier_pretrained_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &["a", "b", "a", "x", "x", "a"], 1, vec![1.0; 6]);
        let err = err_of(&path, &["a", "b"], 1);
        assert!(err.contains("\"a\" (3 times)"), "{err}");
        assert!(err.contains("1 vocabulary words"), "{err}");
        // Duplicates of words the model does not use are ignored.
        assert!(FixedMatrix::pretrained(&path, &words(&["b", "x"]), 1).is_err());
        assert!(FixedMatrix::pretrained(&path, &words(&["b"]), 1).is_ok());
    }

    #[test]
    fn classifier_pretrained_wrong_dim() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &["a"], 3, vec![1.0, 2.0, 3.0]);
        let err = err_of(&path, &["a"], 4);
        assert!(
            err.contains("dimension 3") && err.contains("dimension 4"),
            "{err}"
        );
        assert!(err.contains("--dim 4"), "{err}");
    }

    #[test]
    fn classifier_pretrained_non_finite_and_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &["ok", "nan", "inf", "zero", "unused"],
            2,
            vec![
                1.0,
                0.0,
                f32::NAN,
                1.0,
                1.0,
                f32::INFINITY,
                0.0,
                0.0,
                f32::NAN,
                0.0,
            ],
        );
        let err = err_of(&path, &["ok", "nan", "inf", "zero"], 2);
        assert!(err.contains("2 vectors contain NaN"), "{err}");
        assert!(err.contains("\"nan\", \"inf\""), "{err}");
        let err = err_of(&path, &["ok", "zero"], 2);
        assert!(
            err.contains("all zeros") && err.contains("\"zero\""),
            "{err}"
        );
        // A NaN in a word the model does not use is ignored.
        assert!(FixedMatrix::pretrained(&path, &words(&["ok"]), 2).is_ok());
    }
}
