//! Vocabulary and token counts on the real WikiText-2 and PTB (placed by `make data`).
use fixclf::lm::corpus::{Corpus, CorpusFiles};
use std::path::Path;

fn files(dir: &str) -> CorpusFiles {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(dir);
    assert!(
        d.join("train.txt").exists(),
        "{} is missing: run `make data` (data/fetch.sh) first",
        d.display()
    );
    CorpusFiles {
        train: d.join("train.txt"),
        valid: d.join("valid.txt"),
        test: d.join("test.txt"),
    }
}

#[test]
fn wikitext2_vocabulary_and_token_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = tmp.path().join("tokenizer.json");
    let cache = tmp.path().join("cache");
    let c = Corpus::load(&files("wikitext-2"), &tok, Some(&cache)).unwrap();
    assert_eq!(c.vocab.len(), 33_278);
    assert_eq!(c.train.len(), 2_088_628);
    assert_eq!(c.valid.len(), 217_646);
    assert_eq!(c.test.len(), 245_569);
    // The saved tokenizer and the cache give the same ids again.
    let again = Corpus::load(&files("wikitext-2"), &tok, Some(&cache)).unwrap();
    assert_eq!(&again.valid[..], &c.valid[..]);
    assert_eq!(again.vocab.words(), c.vocab.words());
}

#[test]
fn ptb_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Corpus::load(&files("ptb"), &tmp.path().join("t.json"), None).unwrap();
    assert_eq!(c.vocab.len(), 10_000);
}
