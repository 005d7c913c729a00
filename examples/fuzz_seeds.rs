//! Writes the seed inputs of the fuzz targets (`fuzz/corpus/<target>/seed-*`): small, valid
//! files of every format, written by fixclf's own writers (a one-epoch run of a tiny LM for
//! the checkpoint, metrics, summary, tokenizer and token cache).
//!
//! `cargo run --release --example fuzz_seeds [-- OUT]` (OUT defaults to `fuzz/corpus`).
use fixclf::config::from_toml_str;
use fixclf::engine::TrainOptions;
use fixclf::vectors::{write_any, WordVectors};
use std::io::Write;
use std::path::{Path, PathBuf};

fn put(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// An IDX file of u8: magic, big-endian dimensions, data.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Configs: the repository's, whole (they are small text).
    for entry in ["configs/lm-wt2.toml", "configs/vision/fmnist-cnn.toml"] {
        let name = Path::new(entry).file_name().unwrap().to_string_lossy();
        put(&out, "config", &name, &std::fs::read(entry).unwrap());
    }

    // Suites: the repository's, an LM one and an image one.
    for entry in ["configs/wt2-quick.toml", "configs/fmnist-quick.toml"] {
        let name = Path::new(entry).file_name().unwrap().to_string_lossy();
        put(&out, "suite", &name, &std::fs::read(entry).unwrap());
    }

    // A one-epoch run of a tiny LM: tokenizer, token cache, checkpoint, metrics, summary.
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let text = "the cat sat on the mat .\na dog saw the cat .\n".repeat(8);
    for split in ["train", "valid", "test"] {
        std::fs::write(data.join(format!("{split}.txt")), &text).unwrap();
    }
    let cfg = from_toml_str(
        &format!(
            "name = \"seed\"\nruns_dir = \"{runs}\"\n[lm]\nbptt = 5\n[lm.data]\ndir = \"{data}\"\n\
             cache_dir = \"{cache}\"\n[lm.model]\nemb_size = 4\nhidden_size = 4\nlayers = 1\n\
             [head]\nmode = \"fixed-orthogonal\"\n[train]\noptimizer = \"adam\"\nlr = 0.01\n\
             epochs = 1\nbatch_size = 2\neval_batch_size = 2\nthreads = 1\n",
            runs = dir.join("runs").display(),
            data = data.display(),
            cache = dir.join("cache").display(),
        ),
        "seed.toml",
    )
    .unwrap();
    fixclf::tasks::train(
        &cfg,
        &TrainOptions {
            resume: false,
            force: false,
            quiet: true,
        },
    )
    .unwrap();
    let run = dir.join("runs/seed");
    put(
        &out,
        "checkpoint",
        "last.safetensors",
        &std::fs::read(run.join("last.safetensors")).unwrap(),
    );
    put(
        &out,
        "metrics",
        "metrics.jsonl",
        &std::fs::read(run.join("metrics.jsonl")).unwrap(),
    );
    put(
        &out,
        "summary",
        "summary.json",
        &std::fs::read(run.join("summary.json")).unwrap(),
    );
    put(
        &out,
        "config",
        "run-config.toml",
        &std::fs::read(run.join("config.toml")).unwrap(),
    );
    // The cache folder holds the built tokenizer and a token cache per split.
    for entry in std::fs::read_dir(dir.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        if name.ends_with("tokenizer.json") {
            put(&out, "tokenizer", "tokenizer.json", &bytes);
        } else if name.starts_with("valid") {
            put(&out, "token_cache", "valid.u32", &bytes);
        }
    }

    // Word vectors in every format.
    let v = WordVectors::new(
        vec!["the".into(), "cat".into(), "<eos>".into()],
        3,
        vec![0.5, -1.0, 2.0, 1e-3, 3.5, -0.25, 0.0, 1.0, -1.0],
    );
    for name in ["e.npy", "e.txt", "e.bin"] {
        write_any(&dir.join(name), &v).unwrap();
    }
    put(
        &out,
        "npy",
        "e.npy",
        &std::fs::read(dir.join("e.npy")).unwrap(),
    );
    put(
        &out,
        "vocab",
        "e.vocab",
        &std::fs::read(dir.join("e.vocab")).unwrap(),
    );
    put(
        &out,
        "vectors_text",
        "word2vec.txt",
        &std::fs::read(dir.join("e.txt")).unwrap(),
    );
    put(
        &out,
        "vectors_text",
        "glove.txt",
        b"the 0.5 -1 2\ncat 1e-3 3.5 -0.25\n",
    );
    put(
        &out,
        "word2vec_bin",
        "e.bin",
        &std::fs::read(dir.join("e.bin")).unwrap(),
    );

    // IDX (first byte: 1 labels, 0 images), plain and gzipped; CIFAR (first byte: 0
    // CIFAR-10, 1 CIFAR-100), one record each.
    let labels = idx(&[3], &[0, 9, 4]);
    let images = idx(&[2, 3, 2], &[0, 255, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    put(&out, "idx", "labels", &[&[1u8][..], &labels].concat());
    put(&out, "idx", "images", &[&[0u8][..], &images].concat());
    put(
        &out,
        "idx",
        "labels.gz",
        &[&[1u8][..], &gzip(&labels)].concat(),
    );
    put(
        &out,
        "idx",
        "images.gz",
        &[&[0u8][..], &gzip(&images)].concat(),
    );
    let pixels: Vec<u8> = (0..3 * 32 * 32).map(|i| (i % 251) as u8).collect();
    put(
        &out,
        "cifar",
        "cifar10.bin",
        &[&[0u8, 7][..], &pixels].concat(),
    );
    put(
        &out,
        "cifar",
        "cifar100.bin",
        &[&[1u8, 19, 99][..], &pixels].concat(),
    );
    eprintln!("seeds written to {}", out.display());
}
