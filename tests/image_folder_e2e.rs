//! End-to-end tests of the streamed image sets (CPU, seconds each): a PNG image folder
//! written from IDX files trains exactly as the IDX files do; a folder of JPEGs trains with
//! the ImageNet transforms, stopped and resumed (with another number of loader threads) to
//! the uninterrupted run's numbers; its tar shards train as the folder; bad files are
//! one-line errors naming the file, or skipped with `vision.data.skip_bad`.
use fixclf::config;
use fixclf::engine::metrics::{read_events, EpochEvent, Event};
use fixclf::engine::TrainOptions;
use fixclf::tasks::train;
use fixclf::vision::data::DatasetKind;
use fixclf::vision::export::{export_png_folder, write_jpeg_folder, JpegSpec};
use fixclf::vision::pack::{pack, PackSpec};
use serial_test::serial;
use std::path::{Path, PathBuf};

fn quiet() -> TrainOptions {
    TrainOptions {
        quiet: true,
        ..Default::default()
    }
}

fn epochs(run: &Path) -> Vec<EpochEvent> {
    read_events(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Epoch(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Fashion-MNIST-shaped IDX files of `n` 28x28 images sorted by label (so that the image
/// folder's class-by-class order is the files' order): each class a bright band at its own
/// rows, plus noise.
fn write_idx(dir: &Path, split: &str, n: usize) {
    let labels: Vec<u8> = (0..n).map(|i| (i * 10 / n) as u8).collect();
    let mut x: u32 = 12345 + n as u32;
    let mut images = Vec::with_capacity(n * 784);
    for &l in &labels {
        for p in 0..784 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let row = p / 28;
            let band = if row / 3 == l as usize { 160 } else { 0 };
            images.push((band + (x >> 24) as usize % 90) as u8);
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    let (n32, files) = (n as u32, [("images-idx3", 0x803), ("labels-idx1", 0x801)]);
    for (what, magic) in files {
        let bytes = if magic == 0x803 {
            idx_bytes(magic, &[n32, 28, 28], &images)
        } else {
            idx_bytes(magic, &[n32], &labels)
        };
        std::fs::write(dir.join(format!("{split}-{what}-ubyte")), bytes).unwrap();
    }
}

/// A config of the small CNN under `dir` reading `data` (TOML lines of `[vision.data]`),
/// `vision` (lines of `[vision]`, then its subsections).
fn config_file(dir: &Path, name: &str, vision: &str, data: &str, train: &str) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
runs_dir = "{runs}"

[vision]
{vision}

[vision.data]
{data}

[vision.model]
arch = "small-cnn"
width = 8

[head]
mode = "learned"

[train]
optimizer = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 5e-4
schedule = "multi-step"
milestones = [1]
lr_decay = 10.0
clip = 0.0
epochs = 2
batch_size = 16
eval_batch_size = 32
log_interval = 2
threads = 1
{train}
"#,
        runs = dir.join("runs").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn same_epochs(a: &[EpochEvent], b: &[EpochEvent], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            x.train_loss, y.train_loss,
            "{what}: epoch {} train loss",
            x.epoch
        );
        assert_eq!(x.val_loss, y.val_loss, "{what}: epoch {} val loss", x.epoch);
        assert_eq!(x.val_acc, y.val_acc, "{what}: epoch {}", x.epoch);
    }
}

#[test]
#[serial]
fn png_folder_trains_exactly_as_the_idx_files_it_was_written_from() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("fmnist");
    write_idx(&idx, "train", 160);
    write_idx(&idx, "t10k", 60);
    let png = dir.path().join("fmnist-png");
    let (n_train, n_val) = export_png_folder(DatasetKind::FashionMnist, &idx, &png).unwrap();
    assert_eq!((n_train, n_val), (160, 60));
    assert!(png.join("train/3").is_dir() && png.join("val/9").is_dir());
    let aug = "crop_padding = 2\nflip = true";
    let idx_cfg = config_file(
        dir.path(),
        "idx",
        aug,
        &format!("dataset = \"fashion-mnist\"\ndir = \"{}\"", idx.display()),
        "",
    );
    let folder_cfg = config_file(
        dir.path(),
        "folder",
        &format!("{aug}\n[vision.transform]\ntrain = \"none\"\neval = \"none\"\nsize = 28"),
        &format!(
            "dataset = \"image-folder\"\ndir = \"{}\"\nchannels = 1\nmean = [0.2860]\n\
             std = [0.3530]\nworkers = 2",
            png.display()
        ),
        "",
    );
    let a = config::load(&idx_cfg, &[]).unwrap();
    let b = config::load(&folder_cfg, &[]).unwrap();
    let (sa, sb) = (train(&a, &quiet()).unwrap(), train(&b, &quiet()).unwrap());
    same_epochs(
        &epochs(&a.run_dir()),
        &epochs(&b.run_dir()),
        "idx vs png folder",
    );
    assert_eq!(sa.test_acc, sb.test_acc);
    assert!(sa.test_acc.unwrap() > 0.3, "{:?}", sa.test_acc);
}

fn jpeg_folder(dir: &Path) -> PathBuf {
    let out = dir.join("jpegs");
    let spec = JpegSpec {
        classes: 3,
        per_class: 16,
        width: 64,
        height: 48,
        quality: 90,
        seed: 1,
    };
    write_jpeg_folder(&spec, &out).unwrap();
    out
}

const IMAGENET_TRANSFORMS: &str = "crop_padding = 0\nflip = true\n[vision.transform]\n\
    train = \"random-resized-crop\"\neval = \"resize-center-crop\"\nsize = 32\nresize = 36";

fn folder_data(dir: &Path, workers: usize, extra: &str) -> String {
    format!(
        "dataset = \"image-folder\"\ndir = \"{}\"\nworkers = {workers}\n{extra}",
        dir.display()
    )
}

#[test]
#[serial]
fn jpeg_folder_stops_and_resumes_exactly_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let jpegs = jpeg_folder(dir.path());
    let straight = config_file(
        dir.path(),
        "straight",
        IMAGENET_TRANSFORMS,
        &folder_data(&jpegs, 1, ""),
        "",
    );
    let cfg = config::load(&straight, &[]).unwrap();
    train(&cfg, &quiet()).unwrap();
    // Stopped after one epoch, resumed with three loader threads.
    let split = config_file(
        dir.path(),
        "split",
        IMAGENET_TRANSFORMS,
        &folder_data(&jpegs, 3, ""),
        "",
    );
    let first = config::load(&split, &["train.epochs=1".into()]).unwrap();
    train(&first, &quiet()).unwrap();
    let again = config::load(&split, &[]).unwrap();
    let opts = TrainOptions {
        resume: true,
        quiet: true,
        ..Default::default()
    };
    train(&again, &opts).unwrap();
    same_epochs(
        &epochs(&cfg.run_dir()),
        &epochs(&again.run_dir()),
        "resumed",
    );

    // The same folder as tar shards: the same samples in the same order, the same run.
    let shards = dir.path().join("shards");
    let spec = PackSpec {
        per_shard: 10,
        resize: None,
        quality: 90,
    };
    assert_eq!(pack(&jpegs, &shards, &spec).unwrap(), (48, 9));
    let data = format!(
        "dataset = \"tar-shards\"\ndir = \"{}\"\nworkers = 2",
        shards.display()
    );
    let tar = config_file(dir.path(), "tar", IMAGENET_TRANSFORMS, &data, "");
    let tar = config::load(&tar, &[]).unwrap();
    train(&tar, &quiet()).unwrap();
    same_epochs(
        &epochs(&cfg.run_dir()),
        &epochs(&tar.run_dir()),
        "tar shards",
    );
}

#[test]
#[serial]
fn bad_files_are_one_line_errors_or_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let jpegs = jpeg_folder(dir.path());
    let good = std::fs::read(jpegs.join("train/0/000000.jpg")).unwrap();
    let class = jpegs.join("train/1");
    // A PNG named .JPEG is read as the PNG it is.
    std::fs::write(
        class.join("png.JPEG"),
        fixclf::vision::export::png_bytes(&[9u8; 3 * 20 * 30], 3, 20, 30),
    )
    .unwrap();
    let bad = [
        (
            "truncated.jpg",
            good[..good.len() / 2].to_vec(),
            "unreadable JPEG",
        ),
        ("zero.jpg", Vec::new(), "empty file"),
        ("text.jpeg", b"hello, world".to_vec(), "not a JPEG or PNG"),
    ];
    for (name, bytes, says) in &bad {
        let path = class.join(name);
        std::fs::write(&path, bytes).unwrap();
        let cfg = config_file(
            dir.path(),
            "bad",
            IMAGENET_TRANSFORMS,
            &folder_data(&jpegs, 2, ""),
            "",
        );
        let cfg = config::load(&cfg, &["train.epochs=1".into()]).unwrap();
        let msg = train(
            &cfg,
            &TrainOptions {
                force: true,
                quiet: true,
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(says),
            "{msg}"
        );
        std::fs::remove_file(&path).unwrap();
    }
    for (name, bytes, _) in &bad {
        std::fs::write(class.join(name), bytes).unwrap();
    }
    let cfg = config_file(
        dir.path(),
        "skip",
        IMAGENET_TRANSFORMS,
        &folder_data(&jpegs, 2, "skip_bad = true"),
        "",
    );
    let cfg = config::load(&cfg, &["train.epochs=1".into()]).unwrap();
    let summary = train(&cfg, &quiet()).unwrap();
    assert!(summary.test_acc.is_some());
    // Three bad training files, skipped in the epoch (and counted in metrics.jsonl).
    assert_eq!(epochs(&cfg.run_dir())[0].skipped_files, 3);
}
