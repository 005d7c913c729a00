//! Replays the fuzzers' corpus (`fuzz/corpus/<target>/`) and the inputs that once crashed a
//! reader (`fuzz/regressions/<target>/`) through the same entries the fuzz targets call
//! (`fixclf::fuzzing`): plain `cargo test` keeps every reader to its contract (no panic; an
//! error is one line naming the file) without nightly or cargo-fuzz.
use std::path::Path;

/// Every file of `<root>/<target>/` through its target's entry; returns how many ran.
fn replay(root: &Path) -> usize {
    let mut n = 0;
    for (target, run) in fixclf::fuzzing::TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks the reader",
                path.display()
            );
            n += 1;
        }
    }
    n
}

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

#[test]
fn every_target_has_a_corpus_and_it_replays() {
    let corpus = fuzz_dir().join("corpus");
    for (target, _) in fixclf::fuzzing::TARGETS {
        let files = std::fs::read_dir(corpus.join(target)).map_or(0, |d| d.count());
        assert!(files > 0, "fuzz/corpus/{target}/ is empty or missing");
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(source.is_file(), "no fuzz target {}", source.display());
    }
    assert!(replay(&corpus) >= fixclf::fuzzing::TARGETS.len());
}

/// Inputs that once crashed a reader (none may be there: then nothing to replay).
#[test]
fn crash_regressions_replay() {
    replay(&fuzz_dir().join("regressions"));
}

/// What CI can afford of fuzzing, deterministically: every seed truncated at many lengths,
/// with bytes flipped, and replaced by random bytes of its length, through its reader.
#[test]
fn truncated_flipped_and_random_seeds_keep_the_contract() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let corpus = fuzz_dir().join("corpus");
    let mut runs = 0;
    for (target, run) in fixclf::fuzzing::TARGETS {
        for entry in std::fs::read_dir(corpus.join(target)).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                continue;
            }
            let seed = std::fs::read(&path).unwrap();
            let mut inputs: Vec<Vec<u8>> = Vec::new();
            let step = (seed.len() / 200).max(1);
            inputs.extend((0..seed.len()).step_by(step).map(|n| seed[..n].to_vec()));
            for _ in 0..200 {
                let mut v = seed.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % v.len();
                    v[i] ^= 1 << (next() % 8);
                }
                inputs.push(v);
            }
            inputs.push((0..seed.len()).map(|_| next() as u8).collect());
            for input in inputs {
                let outcome = std::panic::catch_unwind(|| run(&input));
                assert!(
                    outcome.is_ok(),
                    "{target}: a mutation of {} breaks the reader: {:?}",
                    path.display(),
                    String::from_utf8_lossy(&input[..input.len().min(200)])
                );
                runs += 1;
            }
        }
    }
    assert!(runs > 1000, "{runs}");
}

/// The seeds are valid files: each reader accepts its seed (so the corpus starts from real
/// formats, and a reader that rejects its own writer's output fails here).
#[test]
fn seeds_are_accepted() {
    let corpus = fuzz_dir().join("corpus");
    let path = Path::new("x");
    let read = |target: &str, name: &str| {
        std::fs::read(corpus.join(target).join(format!("seed-{name}"))).unwrap()
    };
    use fixclf::vectors::*;
    parse_npy_f32(&read("npy", "e.npy"), path).unwrap();
    assert_eq!(
        parse_vocab(&read("vocab", "e.vocab"), path).unwrap().len(),
        3
    );
    parse_text_any(&read("vectors_text", "glove.txt")[..], path).unwrap();
    parse_text_any(&read("vectors_text", "word2vec.txt")[..], path).unwrap();
    parse_word2vec_bin(&read("word2vec_bin", "e.bin"), path).unwrap();
    let ckpt =
        fixclf::engine::Checkpoint::from_bytes(&read("checkpoint", "last.safetensors"), path)
            .unwrap();
    assert!(ckpt.meta("state").is_some());
    assert!(
        !fixclf::engine::metrics::parse_events(&read("metrics", "metrics.jsonl"), path)
            .unwrap()
            .is_empty()
    );
    fixclf::engine::Summary::from_bytes(&read("summary", "summary.json"), path).unwrap();
    let vocab =
        fixclf::lm::corpus::Vocab::from_json_bytes(&read("tokenizer", "tokenizer.json"), path)
            .unwrap();
    fixclf::lm::corpus::check_token_cache(&read("token_cache", "valid.u32"), path, vocab.len())
        .unwrap();
    for name in ["lm-wt2.toml", "fmnist-cnn.toml"] {
        fixclf::config::from_toml_bytes(&read("config", name), "x", false).unwrap();
    }
    fixclf::config::from_toml_bytes(&read("config", "run-config.toml"), "x", true).unwrap();
}
