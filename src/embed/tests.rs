use super::*;
use crate::vectors::read_any;

/// Two clusters of 6 words that co-occur only within their cluster.
fn two_cluster_corpus(dir: &Path) -> PathBuf {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let a = ["a0", "a1", "a2", "a3", "a4", "a5"];
    let b = ["b0", "b1", "b2", "b3", "b4", "b5"];
    let mut text = String::new();
    for line in 0..1500 {
        let cl = if line % 2 == 0 { &a } else { &b };
        let words: Vec<&str> = (0..12).map(|_| cl[rng.gen_range(0..6)]).collect();
        text.push_str(&words.join(" "));
        text.push('\n');
    }
    let path = dir.join("c.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn within_minus_across(v: &WordVectors) -> f32 {
    let unit = |i: usize| {
        let r = v.row(i);
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        r.iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let cluster = |w: &str| w.starts_with('a') as i32 - w.starts_with('b') as i32;
    let (mut win, mut nw, mut acr, mut na) = (0f32, 0, 0f32, 0);
    for i in 0..v.len() {
        for j in 0..i {
            let (ci, cj) = (cluster(&v.words[i]), cluster(&v.words[j]));
            if ci == 0 || cj == 0 {
                continue;
            }
            let c: f32 = unit(i).iter().zip(unit(j)).map(|(x, y)| x * y).sum();
            if ci == cj {
                win += c;
                nw += 1;
            } else {
                acr += c;
                na += 1;
            }
        }
    }
    win / nw as f32 - acr / na as f32
}

#[test]
fn embed_both_methods_separate_two_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = CorpusSpec {
        corpus: two_cluster_corpus(dir.path()),
        tokenizer: None,
    };
    let w2v = EmbedSpec::Word2vec(Word2VecParams {
        dim: 8,
        window: 3,
        epochs: 5,
        threads: 1,
        sample: 0.0,
        ..Word2VecParams::default()
    });
    let pmi = EmbedSpec::Pmi(PmiParams {
        dim: 4,
        window: 3,
        threads: 1,
        ..PmiParams::default()
    });
    for (spec, name) in [(w2v, "w2v"), (pmi, "pmi")] {
        let out = dir.path().join("emb").join(name);
        compute(&spec, &corpus, &out, false).unwrap();
        let v = read_any(&out.with_extension("npy")).unwrap();
        assert_eq!(v.len(), 13, "12 words + <eos>");
        assert_eq!(v.dim, spec.dim());
        let gap = within_minus_across(&v);
        assert!(gap > 0.3, "{name}: within - across cosine = {gap}");
        // Same parameters and corpus: up to date; other parameters: stale.
        let sha = sha256_file(&corpus.corpus).unwrap();
        assert!(is_up_to_date(&out, &spec.params_json(), &sha, None));
        let mut other = spec.params_json();
        other["dim"] = 3.into();
        assert!(!is_up_to_date(&out, &other, &sha, None));
        assert!(compute_if_stale(&spec, &corpus, &out).unwrap().reused);
        // No overwrite without force.
        let err = compute(&spec, &corpus, &out, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--force"), "{err}");
    }
}

#[test]
fn embed_bad_inputs_have_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let spec = EmbedSpec::Pmi(PmiParams {
        dim: 2,
        ..PmiParams::default()
    });
    let cs = |p: &Path| CorpusSpec {
        corpus: p.to_path_buf(),
        tokenizer: None,
    };
    let out = dir.path().join("o");
    let err = compute(&spec, &cs(&empty), &out, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");

    let small = dir.path().join("small.txt");
    std::fs::write(&small, "x y\ny z\n").unwrap();
    let big = EmbedSpec::Word2vec(Word2VecParams {
        dim: 4,
        ..Word2VecParams::default()
    });
    let err = compute(&big, &cs(&small), &out, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--dim") && err.contains("vocabulary size 4"),
        "{err}"
    );

    let w0 = EmbedSpec::Word2vec(Word2VecParams {
        dim: 2,
        window: 0,
        ..Word2VecParams::default()
    });
    let err = compute(&w0, &cs(&small), &out, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--window"), "{err}");

    // Unwritable output folder: a path below a regular file.
    let err = compute(&spec, &cs(&small), &small.join("sub/x"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--out") && err.contains("output folder"),
        "{err}"
    );

    // A tokenizer that lacks corpus words.
    let vocab = Vocab::from_words(vec!["x".into(), "y".into(), "<eos>".into()]).unwrap();
    let tok_path = dir.path().join("tokenizer.json");
    vocab.save(&tok_path).unwrap();
    let spec_tok = CorpusSpec {
        corpus: small.clone(),
        tokenizer: Some(tok_path),
    };
    let err = compute(&spec, &spec_tok, &out, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 distinct words") && err.contains("\"z\""),
        "{err}"
    );
}
