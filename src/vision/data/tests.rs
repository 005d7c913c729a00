//! Tests of the readers on files they write, and on the real Fashion-MNIST when present.
use super::cifar::*;
use super::*;
use flate2::write::GzEncoder;
use std::io::Write;

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes a small IDX pair for `split`: `n` images of 3 x 2 pixels (pixel value = item
/// index + position) and labels `i % 10`.
fn write_idx_split(dir: &Path, split: &str, n: u32, gz: bool) {
    let images: Vec<u8> = (0..n * 6).map(|i| (i / 6 + i % 6) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let files = [
        (
            format!("{split}-images-idx3-ubyte"),
            idx_bytes(0x803, &[n, 3, 2], &images),
        ),
        (
            format!("{split}-labels-idx1-ubyte"),
            idx_bytes(0x801, &[n], &labels),
        ),
    ];
    for (name, bytes) in files {
        if gz {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn err_line(r: Result<ImageData>) -> String {
    let msg = r.expect_err("should fail").to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

#[test]
fn idx_gz_and_plain_load() {
    for gz in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_idx_split(dir.path(), "train", 12, gz);
        write_idx_split(dir.path(), "t10k", 5, gz);
        let d = load(DatasetKind::FashionMnist, dir.path(), None).unwrap();
        assert_eq!(d.train.images.size(), [12, 1, 3, 2]);
        assert_eq!(d.train.images.kind(), Kind::Uint8);
        assert_eq!(d.test.labels.size(), [5]);
        assert_eq!(d.test.labels.kind(), Kind::Int64);
        assert_eq!(d.classes(), 10);
        assert_eq!(d.train.labels.int64_value(&[11]), 1);
        assert_eq!(d.train.images.int64_value(&[4, 0, 1, 1]), 4 + 3);
        assert_eq!(d.name, "fashion-mnist");
        assert_eq!(
            (d.mean.clone(), d.std.clone()),
            (vec![0.2860], vec![0.3530])
        );
    }
}

/// A Fashion-MNIST folder with 12 gzipped training and 5 plain test items.
fn idx_setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_idx_split(dir.path(), "train", 12, true);
    write_idx_split(dir.path(), "t10k", 5, false);
    dir
}
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

#[test]
fn idx_errors_are_one_line_naming_the_file() {
    let (setup, train_images, test_images) = (idx_setup, TRAIN_IMAGES, TEST_IMAGES);

    // Truncated gzip stream and truncated plain file.
    let dir = setup();
    let p = dir.path().join(train_images);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(
        msg.contains(train_images) && msg.contains("truncated"),
        "{msg}"
    );
    assert!(msg.contains("make data-vision"), "{msg}");

    let dir = setup();
    let p = dir.path().join(test_images);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(
        msg.contains(test_images) && msg.contains("truncated"),
        "{msg}"
    );

    // Decompressed data shorter than the header says (a valid gzip stream).
    let dir = setup();
    let p = dir.path().join(train_images);
    let short = idx_bytes(0x803, &[12, 3, 2], &[0; 70]);
    std::fs::write(&p, gzip(&short)).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(msg.contains("70 bytes") && msg.contains("need 72"), "{msg}");

    // Extra data.
    let dir = setup();
    let p = dir.path().join(test_images);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.push(0);
    std::fs::write(&p, &bytes).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(msg.contains("longer than its header"), "{msg}");

    // Wrong magic (labels where images belong).
    let dir = setup();
    let p = dir.path().join(test_images);
    std::fs::write(&p, idx_bytes(0x801, &[5], &[0; 5])).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(
        msg.contains(test_images) && msg.contains("0x00000801"),
        "{msg}"
    );
}

#[test]
fn idx_header_and_label_errors_are_one_line_naming_the_file() {
    let (setup, train_images, test_images, test_labels) =
        (idx_setup, TRAIN_IMAGES, TEST_IMAGES, TEST_LABELS);
    // A header claiming 10^9 images fails at once, gzipped or not.
    for gz in [true, false] {
        let dir = setup();
        let head = idx_bytes(0x803, &[1_000_000_000, 28, 28], &[0; 100]);
        let (name, bytes) = if gz {
            (train_images, gzip(&head))
        } else {
            (test_images, head)
        };
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let t = std::time::Instant::now();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(msg.contains(name) && msg.contains("1000000000"), "{msg}");
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }
    // A header within the item bound but far beyond the data: bounded, then truncated.
    let dir = setup();
    let head = idx_bytes(0x803, &[5_000_000, 28, 28], &[0; 100]);
    std::fs::write(dir.path().join(train_images), gzip(&head)).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(msg.contains("truncated"), "{msg}");

    // Label out of range.
    let dir = setup();
    let p = dir.path().join(test_labels);
    std::fs::write(&p, idx_bytes(0x801, &[5], &[0, 1, 10, 3, 4])).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(
        msg.contains(test_labels) && msg.contains("label 10 of item 2"),
        "{msg}"
    );

    // Image and label counts differ.
    let dir = setup();
    let p = dir.path().join(test_labels);
    std::fs::write(&p, idx_bytes(0x801, &[4], &[0, 1, 2, 3])).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(
        msg.contains(test_labels) && msg.contains("4 labels but"),
        "{msg}"
    );

    // Not gzip data behind a gzip magic.
    let dir = setup();
    let p = dir.path().join(train_images);
    std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(msg.contains(train_images), "{msg}");

    // Missing files name the .gz file and the fix.
    let dir = tempfile::tempdir().unwrap();
    let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
    assert!(
        msg.contains(train_images) && msg.contains("make data-vision"),
        "{msg}"
    );
    let msg = err_line(load(DatasetKind::Mnist, dir.path(), None));
    assert!(msg.contains("official MNIST files"), "{msg}");
}

/// CIFAR records: label bytes then 3072 pixels whose value is the record index.
fn cifar_records(labels: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        out.extend_from_slice(l);
        out.extend(std::iter::repeat_n(i as u8, CIFAR_PIXELS));
    }
    out
}

fn write_cifar10(dir: &Path) {
    for (k, name) in CIFAR10.train.iter().enumerate() {
        let labels: Vec<[u8; 1]> = (0..2).map(|i| [(k * 2 + i) as u8]).collect();
        let refs: Vec<&[u8]> = labels.iter().map(|l| l.as_slice()).collect();
        std::fs::write(dir.join(name), cifar_records(&refs)).unwrap();
    }
    std::fs::write(
        dir.join("test_batch.bin"),
        cifar_records(&[&[9], &[0], &[5]]),
    )
    .unwrap();
}

#[test]
fn cifar10_loads_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    let d = load(DatasetKind::Cifar10, dir.path(), None).unwrap();
    assert_eq!(d.train.images.size(), [10, 3, 32, 32]);
    assert_eq!(d.test.images.size(), [3, 3, 32, 32]);
    assert_eq!(
        Vec::<i64>::try_from(&d.train.labels).unwrap(),
        (0..10).collect::<Vec<i64>>()
    );
    assert_eq!(Vec::<i64>::try_from(&d.test.labels).unwrap(), [9, 0, 5]);
    // Record 1 of data_batch_3 is training image 5, its pixels all 1.
    assert_eq!(d.train.images.get(5).min().int64_value(&[]), 1);
    assert_eq!(d.train.images.get(5).max().int64_value(&[]), 1);
    assert_eq!(d.classes(), 10);
    assert_eq!(d.mean.len(), 3);

    // The archive's own folder inside the data folder.
    let outer = tempfile::tempdir().unwrap();
    let nested = outer.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    write_cifar10(&nested);
    assert_eq!(
        load(DatasetKind::Cifar10, outer.path(), None)
            .unwrap()
            .train
            .len(),
        10
    );

    // Not a whole number of records.
    let p = dir.path().join("data_batch_4.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.pop();
    std::fs::write(&p, &bytes).unwrap();
    let msg = err_line(load(DatasetKind::Cifar10, dir.path(), None));
    assert!(
        msg.contains("data_batch_4.bin") && msg.contains("6145 bytes"),
        "{msg}"
    );
    assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");

    // Label out of range.
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    std::fs::write(
        dir.path().join("test_batch.bin"),
        cifar_records(&[&[3], &[10]]),
    )
    .unwrap();
    let msg = err_line(load(DatasetKind::Cifar10, dir.path(), None));
    assert!(
        msg.contains("test_batch.bin") && msg.contains("record 1 is 10"),
        "{msg}"
    );

    // Missing files: where they go and which archive has them.
    let dir = tempfile::tempdir().unwrap();
    let msg = err_line(load(DatasetKind::Cifar10, dir.path(), None));
    assert!(msg.contains("data_batch_1.bin"), "{msg}");
    assert!(
        msg.contains("cifar-10-binary.tar.gz")
            && msg.contains("162 MB")
            && msg.contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")
            && msg.contains("30,730,000"),
        "{msg}"
    );
}

#[test]
fn cifar100_uses_fine_labels_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.bin"),
        cifar_records(&[&[19, 99], &[0, 42], &[7, 0]]),
    )
    .unwrap();
    std::fs::write(dir.path().join("test.bin"), cifar_records(&[&[1, 5]])).unwrap();
    let d = load(DatasetKind::Cifar100, dir.path(), None).unwrap();
    assert_eq!(Vec::<i64>::try_from(&d.train.labels).unwrap(), [99, 42, 0]);
    assert_eq!(d.train.images.size(), [3, 3, 32, 32]);
    assert_eq!(d.train.images.get(2).max().int64_value(&[]), 2);
    assert_eq!(d.classes(), 100);
    assert_eq!(d.name, "cifar100");

    // Coarse and fine labels out of range.
    for (labels, what) in [([20u8, 0u8], "label byte 0"), ([0, 100], "label byte 1")] {
        std::fs::write(dir.path().join("test.bin"), cifar_records(&[&labels])).unwrap();
        let msg = err_line(load(DatasetKind::Cifar100, dir.path(), None));
        assert!(msg.contains("test.bin") && msg.contains(what), "{msg}");
    }
    // A CIFAR-10 record size is not a CIFAR-100 one.
    std::fs::write(dir.path().join("test.bin"), cifar_records(&[&[1]])).unwrap();
    let msg = err_line(load(DatasetKind::Cifar100, dir.path(), None));
    assert!(msg.contains("3074-byte"), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let msg = err_line(load(DatasetKind::Cifar100, empty.path(), None));
    assert!(
        msg.contains("train.bin")
            && msg.contains("cifar-100-binary.tar.gz")
            && msg.contains("161 MB")
            && msg.contains("153,700,000"),
        "{msg}"
    );
}

#[test]
fn real_fashion_mnist_when_present() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists() {
        eprintln!(
            "skipped: no Fashion-MNIST at {} (make data-vision)",
            dir.display()
        );
        return;
    }
    let d = load(DatasetKind::FashionMnist, &dir, None).unwrap();
    assert_eq!(d.train.images.size(), [60_000, 1, 28, 28]);
    assert_eq!(d.test.images.size(), [10_000, 1, 28, 28]);
    assert_eq!(d.classes(), 10);
    // Balanced classes: 6,000 and 1,000 images each.
    let counts = d.train.labels.bincount(None::<Tensor>, 10);
    assert_eq!(Vec::<i64>::try_from(&counts).unwrap(), vec![6000; 10]);
    let counts = d.test.labels.bincount(None::<Tensor>, 10);
    assert_eq!(Vec::<i64>::try_from(&counts).unwrap(), vec![1000; 10]);
    // The published statistics match the data.
    let (mean, std) = channel_mean_std(&d.train.images);
    assert!((mean[0] - d.mean[0]).abs() < 1e-3, "{mean:?}");
    assert!((std[0] - d.std[0]).abs() < 1e-3, "{std:?}");
}

#[test]
fn synthetic_is_deterministic_and_learnable() {
    let spec = SyntheticSpec {
        classes: 4,
        train: 40,
        test: 12,
        channels: 2,
        size: 8,
        seed: 7,
    };
    let a = load(DatasetKind::Synthetic, Path::new(""), Some(spec)).unwrap();
    let b = load(DatasetKind::Synthetic, Path::new(""), Some(spec)).unwrap();
    assert!(a.train.images.equal(&b.train.images) && a.test.images.equal(&b.test.images));
    assert!(a.train.labels.equal(&b.train.labels));
    assert_eq!(a.train.images.size(), [40, 2, 8, 8]);
    assert_eq!(a.test.labels.size(), [12]);
    assert_eq!(a.classes(), 4);
    assert_eq!((a.mean.len(), a.std.len()), (2, 2));
    assert!(a.std.iter().all(|&s| s > 0.05));
    let other = load(
        DatasetKind::Synthetic,
        Path::new(""),
        Some(SyntheticSpec { seed: 8, ..spec }),
    )
    .unwrap();
    assert!(!a.train.images.equal(&other.train.images));
    // Learnable: the nearest class mean of the training images classifies the test set.
    let x = a.train.images.to_kind(Kind::Float).view([40, -1]);
    let centers = Tensor::stack(
        &(0..4i64)
            .map(|c| {
                x.index_select(0, &a.train.labels.eq(c).nonzero().view([-1]))
                    .mean_dim(0, false, Kind::Float)
            })
            .collect::<Vec<_>>(),
        0,
    );
    let t = a.test.images.to_kind(Kind::Float).view([12, -1]);
    let d = Tensor::cdist(&t, &centers, 2.0, None::<i64>);
    let pred = d.argmin(1, false);
    assert!(pred.equal(&a.test.labels), "{pred:?}");

    let bad = SyntheticSpec { classes: 1, ..spec };
    let msg = err_line(load(DatasetKind::Synthetic, Path::new(""), Some(bad)));
    assert!(msg.starts_with("synthetic.classes:"), "{msg}");
}

#[test]
fn kinds_use_kebab_case_names() {
    for kind in [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Synthetic,
    ] {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.name()));
        assert_eq!(serde_json::from_str::<DatasetKind>(&json).unwrap(), kind);
    }
}
