//! One entry per file reader, for the fuzzers (`fuzz/`, `cargo +nightly fuzz run <target>`)
//! and for the replay of their corpus in `tests/fuzz_corpus.rs`.
//!
//! Each entry runs the real parser on `data` (the parsers take bytes or a reader; the path
//! they are given only names the file in messages) and panics when the parser breaks its
//! contract: it must return `Ok`, or an error whose message is one line and names the file.
//! A panic inside the parser (an index out of range, an overflow, a `unwrap`) is the bug the
//! fuzzer reports. Allocation is bounded too: every size a header declares is checked
//! against the bytes that follow before anything is allocated, so a lying header is an
//! error, and the fuzzers' `-rss_limit_mb` catches a reader that forgets.
use crate::error::Result;
use std::path::Path;

/// Checks the contract of a reader's result: an error is one line that names `file`.
pub fn check<T>(result: Result<T>, file: &str) {
    if let Err(e) = result {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "error on several lines: {msg:?}");
        assert!(msg.contains(file), "error does not name {file}: {msg:?}");
    }
}

/// The first clause (of three words or more) that a message says twice, if any. Clauses are
/// the pieces between `: ` and `; `: a message of the form `file: field: what: fix` that
/// repeats one has a cause folded in twice.
pub fn repeated_clause(msg: &str) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    msg.split(": ")
        .flat_map(|part| part.split("; "))
        .map(|c| c.trim().trim_end_matches('.').to_string())
        .filter(|c| c.split_whitespace().count() >= 3)
        .find(|c| !seen.insert(c.clone()))
}

/// A config file (`fixclf train --config`), and a run folder's `config.toml` (the fixclf 0.1
/// layout migrated).
pub fn config(data: &[u8]) {
    for legacy in [false, true] {
        check(
            crate::config::from_toml_bytes(data, "fuzz.toml", legacy),
            "fuzz.toml",
        );
    }
}

/// A suite file (`fixclf suite --config`): parsed, then every run's config resolved from
/// the base and the run's overrides, and validated.
pub fn suite(data: &[u8]) {
    let origin = "fuzz-suite.toml";
    check(
        crate::suite::SuiteConfig::from_bytes(data, origin)
            .and_then(|s| s.run_configs(origin, &[])),
        origin,
    );
}

/// A `tokenizer.json` (the LM's vocabulary).
pub fn tokenizer(data: &[u8]) {
    let path = Path::new("fuzz/tokenizer.json");
    check(
        crate::lm::corpus::Vocab::from_json_bytes(data, path),
        "tokenizer.json",
    );
}

/// A token cache (`<cache_dir>/<split>-<hash>-<hash>.u32`), for a vocabulary of 64 words.
pub fn token_cache(data: &[u8]) {
    let path = Path::new("fuzz/train-0-0.u32");
    check(
        crate::lm::corpus::check_token_cache(data, path, 64),
        "train-0-0.u32",
    );
}

/// A `.npy` matrix of word vectors.
pub fn npy(data: &[u8]) {
    check(
        crate::vectors::parse_npy_f32(data, Path::new("fuzz/e.npy")),
        "e.npy",
    );
}

/// A `.vocab` file (one word a line, beside a `.npy`).
pub fn vocab(data: &[u8]) {
    check(
        crate::vectors::parse_vocab(data, Path::new("fuzz/e.vocab")),
        "e.vocab",
    );
}

/// word2vec text (`V dim` header) or GloVe text (no header): one parser tells them apart.
pub fn vectors_text(data: &[u8]) {
    check(
        crate::vectors::parse_text_any(data, Path::new("fuzz/e.txt")),
        "e.txt",
    );
}

/// word2vec binary.
pub fn word2vec_bin(data: &[u8]) {
    check(
        crate::vectors::parse_word2vec_bin(data, Path::new("fuzz/e.bin")),
        "e.bin",
    );
}

/// A safetensors checkpoint and the metadata training reads back from it (the training
/// state, the fixed matrix's spec).
pub fn checkpoint(data: &[u8]) {
    let path = Path::new("fuzz/last.safetensors");
    let ckpt = crate::engine::Checkpoint::from_bytes(data, path);
    if let Ok(ckpt) = &ckpt {
        // Unreadable metadata is an error where it is used; here: no panic.
        if let Some(state) = ckpt.meta("state") {
            let _ = serde_json::from_str::<crate::engine::TrainState>(state);
        }
        if let Some(spec) = ckpt.meta("fixed_spec") {
            let _ = serde_json::from_str::<crate::classifier::FixedSpec>(spec);
        }
    }
    check(ckpt.map(|_| ()), "last.safetensors");
}

/// An IDX file (MNIST, Fashion-MNIST; gzipped or plain). The first byte picks labels (odd)
/// or images (even); the rest is the file.
pub fn idx(data: &[u8]) {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let ndims = if pick % 2 == 1 { 1 } else { 3 };
    let path = Path::new("fuzz/train-idx-ubyte");
    check(
        crate::vision::data::parse_idx_bytes(file, path, ndims),
        "train-idx-ubyte",
    );
}

/// A CIFAR binary file. The first byte picks CIFAR-100 (odd) or CIFAR-10 (even); the rest is
/// the file.
pub fn cifar(data: &[u8]) {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz/data_batch_1.bin");
    check(
        crate::vision::data::parse_cifar_bytes(file, path, pick % 2 == 1),
        "data_batch_1.bin",
    );
}

/// An image file of an image folder or shard (JPEG or PNG, told by its magic bytes). The
/// first byte picks the channels asked for (odd: 1, even: 3) and a rectangle (its other
/// bits: where the rectangle starts, in eighths of the width and height); the rest is the
/// file. Where the whole decode succeeds, the rectangle's must too, with the same pixels
/// inside it (the converse need not hold: damage below the rectangle is never read).
pub fn image(data: &[u8]) {
    use crate::vision::data::decode::{decode, CropBox, Decoder};
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let channels = if pick % 2 == 1 { 1 } else { 3 };
    let path = Path::new("fuzz/n01440764/x.JPEG");
    let whole = decode(file, path, channels);
    let region = |w: usize, h: usize| {
        let (fx, fy) = (((pick >> 1) & 7) as usize, (pick >> 4) as usize % 8);
        let (left, top) = (w * fx / 8, h * fy / 8);
        let b = CropBox {
            top,
            left,
            height: (h - top).div_ceil(2),
            width: (w - left).div_ceil(2),
        };
        (b, b)
    };
    let mut decoder = Decoder::new();
    let part = decoder.decode_region(file, path, channels, region);
    if let (Ok(whole), Ok((img, b))) = (&whole, &part) {
        assert_eq!(whole.data.len(), whole.width * whole.height * channels);
        assert_eq!((img.width, img.height), (whole.width, whole.height));
        let row = b.width * channels;
        for y in b.top..b.top + b.height {
            let at = (y * whole.width + b.left) * channels;
            assert!(
                img.data[at..at + row] == whole.data[at..at + row],
                "row {y} of {b:?} differs from the whole decode"
            );
        }
    }
    assert!(
        whole.is_err() || part.is_ok(),
        "the whole image decodes, the rectangle does not: {:?}",
        part.as_ref().err()
    );
    check(whole.map(|_| ()), "x.JPEG");
    check(part.map(|_| ()), "x.JPEG");
}

/// A WebDataset tar shard: its members, then its samples (image + `.cls` pairs).
pub fn tar_shard(data: &[u8]) {
    use crate::vision::data::shards;
    let path = Path::new("fuzz/shard-000000.tar");
    let samples = shards::parse_tar(data, path).and_then(|members| {
        for m in &members {
            assert!(
                m.offset + m.len <= data.len(),
                "member {} out of the file",
                m.name
            );
        }
        shards::samples_of(&members, data, path)
    });
    check(samples, "shard-000000.tar");
}

/// A run's `metrics.jsonl`, as `fixclf report` reads it.
pub fn metrics(data: &[u8]) {
    check(
        crate::engine::metrics::parse_events(data, Path::new("fuzz/metrics.jsonl")),
        "metrics.jsonl",
    );
}

/// A run's `summary.json`, as `fixclf report` reads it.
pub fn summary(data: &[u8]) {
    check(
        crate::engine::Summary::from_bytes(data, Path::new("fuzz/summary.json")),
        "summary.json",
    );
}

/// A reader's entry.
pub type Entry = fn(&[u8]);

/// Every entry by the name of its fuzz target (`fuzz/fuzz_targets/<name>.rs`,
/// `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Entry)] = &[
    ("config", config),
    ("suite", suite),
    ("tokenizer", tokenizer),
    ("token_cache", token_cache),
    ("npy", npy),
    ("vocab", vocab),
    ("vectors_text", vectors_text),
    ("word2vec_bin", word2vec_bin),
    ("checkpoint", checkpoint),
    ("idx", idx),
    ("cifar", cifar),
    ("image", image),
    ("tar_shard", tar_shard),
    ("metrics", metrics),
    ("summary", summary),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_clauses_are_found() {
        assert_eq!(
            repeated_clause("a.toml: no such file or directory: no such file or directory"),
            Some("no such file or directory".to_string())
        );
        assert_eq!(
            repeated_clause("x: run `make data` first; then retry: run `make data` first."),
            Some("run `make data` first".to_string())
        );
        // Short clauses (a word or two) may repeat: `line 2`, `field`.
        assert_eq!(repeated_clause("a: line 2: b: line 2"), None);
        assert_eq!(repeated_clause("one line: no repeats at all"), None);
    }

    #[test]
    #[should_panic(expected = "several lines")]
    fn a_multi_line_error_breaks_the_contract() {
        // Built directly: the constructors fold line breaks away.
        let e = crate::Error::Arg {
            arg: "a".into(),
            msg: "b\nc".into(),
        };
        check::<()>(Err(e), "a");
    }
}
