//! The bench commands end to end, at tiny sizes: `fixclf bench vision` prints lines with the
//! PyTorch reference's keys, `fixclf bench classifier --out` writes its CSV, table and plot.
mod common;
use common::fixclf;
use fixclf::bench::vision::REFERENCE_KEYS;

/// The keys of the reference's JSON line: the dict literal that `bench()` returns in
/// `../shared/bench/torch_vision_bench.py` when that file is there (checking that the copy in
/// `REFERENCE_KEYS` is still the reference's), else that copy.
fn reference_keys() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/bench/torch_vision_bench.py");
    let Ok(src) = std::fs::read_to_string(&path) else {
        return REFERENCE_KEYS.iter().map(|k| k.to_string()).collect();
    };
    let start = src
        .find("    return {")
        .expect("the reference returns a dict literal");
    let end = start
        + src[start..]
            .find("\n    }")
            .expect("end of the dict literal");
    let keys: Vec<String> = src[start..end]
        .split('"')
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1].trim_start().starts_with(':'))
        .map(|w| w[0].to_string())
        .collect();
    assert_eq!(
        keys,
        REFERENCE_KEYS,
        "REFERENCE_KEYS differs from {}",
        path.display()
    );
    keys
}

#[test]
fn bench_vision_prints_the_reference_keys() {
    let (code, out, err) = fixclf(&[
        "bench",
        "vision",
        "--depths",
        "20",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch",
        "4",
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, mode) in lines.iter().zip(["learned", "fixed"]) {
        for key in reference_keys() {
            assert!(line.get(&key).is_some(), "no `{key}` in {line}");
        }
        assert_eq!(line["impl"], "fixclf");
        assert_eq!(line["model"], "resnet20");
        assert_eq!(line["mode"], mode);
        assert_eq!(line["image"], serde_json::json!([3, 32, 32]));
        assert!(line["train_images_per_s"].as_f64().unwrap() > 0.0);
    }
    // ResNet-20 with a learned 10-way classifier: the reference's count.
    assert_eq!(lines[0]["params_total"], 272_474);
}

#[test]
fn bench_vision_names_a_bad_flag() {
    let (code, _, err) = fixclf(&["bench", "vision", "--heads", "learned,lin"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: --heads: unknown head `lin`"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn bench_classifier_writes_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    let (code, out, err) = fixclf(&[
        "bench",
        "classifier",
        "--classes",
        "10,100",
        "--features",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch",
        "8",
        "--threads",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let json: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 6, "{out}");
    assert!(out.contains("| N | C | head |"), "{out}");
    let csv = std::fs::read_to_string(out_dir.join("classifier_sweep.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 7, "{csv}");
    assert!(rows[0].starts_with("device,threads,classes,features,batch,head,"));
    for head in ["learned", "fixed-dense", "fixed-hadamard"] {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!(",100,16,8,{head},"))),
            "{csv}"
        );
    }
    for f in ["md", "svg", "png"] {
        assert!(
            out_dir.join(format!("classifier_sweep.{f}")).exists(),
            "{f}"
        );
    }
}
