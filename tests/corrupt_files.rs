//! Corrupt and hostile files through the command line, for every reader: truncated,
//! random bytes, wrong dtype or shape, NaN-filled, a header that lies about its size. Each
//! is exit code 2 and one line on stderr naming the file, never a panic or a huge
//! allocation; a damaged token cache is rebuilt, damaged embeddings are refused with the fix.
mod common;

use common::{fixclf, tiny_config, tiny_corpus};
use std::path::Path;

/// Deterministic junk (xorshift), so a failure replays.
fn junk(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs fixclf; asserts exit 2, one line naming `file`, no panic, every `want`.
fn refused(args: &[&str], file: &Path, want: &[&str]) -> String {
    let (code, _, err) = fixclf(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(
        err.contains(file.to_str().unwrap()),
        "{} not named: {err}",
        file.display()
    );
    for w in want {
        assert!(err.contains(w), "{args:?}: `{w}` not in: {err}");
    }
    err
}

/// `embed export` reads any word-vector format (chosen by the extension).
fn export_refused(input: &Path, want: &[&str]) {
    let out = input.with_file_name("out.npy");
    let args = [
        "embed",
        "export",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    refused(&args, input, want);
    assert!(!out.exists());
}

fn npy(shape: &str, descr: &str, data: &[u8]) -> Vec<u8> {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn word_vector_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name);
    std::fs::write(p("v.vocab"), "a\nb\n").unwrap();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("v.npy", junk(300, 1), &["magic"]),
        ("v.npy", npy("(2, 2)", "<f4", &[0; 9]), &["truncated"]),
        ("v.npy", npy("(2, 2)", "<f8", &[0; 32]), &["float32"]),
        ("v.npy", npy("(2, 2, 1)", "<f4", &[0; 16]), &["2-D"]),
        (
            "v.npy",
            npy("(4611686018427387904, 8)", "<f4", &[0; 16]),
            &["needs"],
        ),
        (
            "v.npy",
            npy("(3, 1)", "<f4", &[0; 12]),
            &["v.vocab", "2 words"],
        ),
        (
            "v.bin",
            b"1000000000 1000000000\nab".to_vec(),
            &["truncated or a wrong header"],
        ),
        ("v.bin", junk(500, 2), &[]),
        ("v.bin", b"2 3\na \x00\x00\x80\x3f".to_vec(), &["truncated"]),
        ("v.txt", b"3 2\na 1 2\nb 1\n".to_vec(), &["line 3"]),
        ("v.txt", junk(500, 3), &[]),
        ("v.vec", b"the 0.5 x\n".to_vec(), &["not a number"]),
    ];
    for (name, bytes, want) in cases {
        std::fs::write(p(name), &bytes).unwrap();
        export_refused(&p(name), want);
    }
}

/// Embeddings for the tiny LM (dim 16) with the `.json` that `fixclf embed` writes.
fn tiny_embeddings(dir: &Path) -> std::path::PathBuf {
    let corpus = tiny_corpus(dir).join("train.txt");
    let base = dir.join("emb/p");
    let args = [
        "embed",
        "pmi",
        "--corpus",
        corpus.to_str().unwrap(),
        "--dim",
        "16",
        "--threads",
        "1",
        "--out",
        base.to_str().unwrap(),
    ];
    let (code, _, err) = fixclf(&args);
    assert_eq!(code, 0, "{err}");
    base.with_extension("npy")
}

#[test]
fn damaged_or_nan_embeddings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy_path = tiny_embeddings(dir.path());
    let cfg = tiny_config(dir.path(), "e", "");
    let emb = format!("head.embeddings=\"{}\"", npy_path.display());
    let train = |want: &[&str]| {
        let args = [
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--quiet",
            "--set",
            "head.mode=fixed-pmi",
            "--set",
            &emb,
        ];
        refused(&args, &npy_path, want)
    };
    // A bit flip passes every structural check; the hash the .json recorded does not.
    let mut bytes = std::fs::read(&npy_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&npy_path, &bytes).unwrap();
    train(&["damaged", "--force"]);
    // Without a .json (vectors from elsewhere): NaN values are refused by name.
    std::fs::remove_file(npy_path.with_extension("json")).unwrap();
    let header = bytes.len() - 4 * 16 * 18;
    for c in bytes[header..].chunks_exact_mut(4) {
        c.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&npy_path, &bytes).unwrap();
    train(&["NaN"]);
    assert!(!dir.path().join("runs/e").exists());
}

#[test]
fn damaged_token_caches_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "c", "epochs = 1");
    let cfg = cfg.to_str().unwrap();
    let (code, _, err) = fixclf(&["train", "--config", cfg, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let mut caches: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "u32"))
        .collect();
    caches.sort();
    assert_eq!(caches.len(), 3);
    let good: Vec<Vec<u8>> = caches.iter().map(|p| std::fs::read(p).unwrap()).collect();
    // Truncated, one bit flipped, random bytes.
    std::fs::write(&caches[0], &good[0][..good[0].len() - 4]).unwrap();
    let mut flipped = good[1].clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&caches[1], &flipped).unwrap();
    std::fs::write(&caches[2], junk(good[2].len(), 4)).unwrap();
    let (code, _, err) = fixclf(&["train", "--config", cfg, "--quiet", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("damaged token cache").count(), 3, "{err}");
    assert!(err.contains("rebuilding"), "{err}");
    for (p, g) in caches.iter().zip(&good) {
        assert_eq!(&std::fs::read(p).unwrap(), g, "{} not rebuilt", p.display());
    }
}

#[test]
fn config_and_tokenizer_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "k", "");
    let bad = dir.path().join("bad.toml");
    for bytes in [
        junk(400, 5),
        b"[train]\nlr = \xff\n".to_vec(),
        b"[lm]\n[train\n".to_vec(),
    ] {
        std::fs::write(&bad, &bytes).unwrap();
        refused(&["params", "--config", bad.to_str().unwrap()], &bad, &[]);
    }
    let tok = dir.path().join("tok.json");
    let set = format!("lm.data.tokenizer=\"{}\"", tok.display());
    for bytes in [
        junk(300, 6),
        b"{\"model\": {\"type\": \"WordLevel\"".to_vec(),
    ] {
        std::fs::write(&tok, &bytes).unwrap();
        let args = [
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--quiet",
            "--set",
            &set,
        ];
        refused(&args, &tok, &["tokenizer.json"]);
    }
}

#[test]
fn checkpoints_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), "m", "epochs = 1");
    let (code, _, err) = fixclf(&["train", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let run = dir.path().join("runs/m");
    let best = run.join("best.safetensors");
    let good = std::fs::read(&best).unwrap();
    // Random bytes; a header length far beyond the file.
    let mut lying = good.clone();
    lying[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    for bytes in [junk(good.len(), 7), lying] {
        std::fs::write(&best, &bytes).unwrap();
        refused(
            &["eval", "--run", run.to_str().unwrap()],
            &best,
            &["safetensors"],
        );
    }
    // A damaged line in the middle of metrics.jsonl.
    let metrics = run.join("metrics.jsonl");
    let mut text = std::fs::read(&metrics).unwrap();
    text.splice(0..0, junk(40, 8).into_iter().chain(*b"\n"));
    std::fs::write(&metrics, &text).unwrap();
    let out = dir.path().join("rep");
    refused(
        &[
            "report",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &metrics,
        &[],
    );
}

fn vision_config(dir: &Path, dataset: &str) -> std::path::PathBuf {
    let cfg = dir.join(format!("{dataset}.toml"));
    let text = format!(
        "[vision.data]\ndataset = \"{dataset}\"\ndir = \"{}\"\n[train]\nclip = 0.0\n",
        dir.join("data").display()
    );
    std::fs::write(&cfg, text).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    cfg
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

#[test]
fn image_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = vision_config(dir.path(), "fashion-mnist");
    let data = dir.path().join("data");
    let images = data.join("train-images-idx3-ubyte");
    let labels = data.join("train-labels-idx1-ubyte");
    for split in ["train", "t10k"] {
        std::fs::write(
            data.join(format!("{split}-images-idx3-ubyte")),
            idx(&[2, 2, 2], &[0; 8]),
        )
        .unwrap();
        std::fs::write(
            data.join(format!("{split}-labels-idx1-ubyte")),
            idx(&[2], &[1, 2]),
        )
        .unwrap();
    }
    let params = ["params", "--config", cfg.to_str().unwrap()];
    for (bytes, want) in [
        (idx(&[2, 2, 2], &[0; 5]), "truncated"),
        (idx(&[4_000_000_000, 28, 28], &[0; 8]), "more than"),
        (junk(100, 9), "magic"),
    ] {
        std::fs::write(&images, &bytes).unwrap();
        refused(&params, &images, &[want]);
    }
    std::fs::write(&images, idx(&[2, 2, 2], &[0; 8])).unwrap();
    std::fs::write(&labels, idx(&[2], &[1, 200])).unwrap();
    refused(&params, &labels, &["out of range"]);

    let cfg = vision_config(dir.path(), "cifar10");
    let record = 3073;
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for name in names {
        std::fs::write(data.join(name), vec![1u8; record]).unwrap();
    }
    let params = ["params", "--config", cfg.to_str().unwrap()];
    let first = data.join(names[0]);
    std::fs::write(&first, vec![1u8; record - 1]).unwrap();
    refused(&params, &first, &["whole number"]);
    std::fs::write(
        &first,
        junk(record, 10)
            .into_iter()
            .map(|b| b | 0x80)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    refused(&params, &first, &["out of range"]);
}
