use super::testing::{fake_run, fake_run_losses, five_runs, png_pixels};
use super::*;
use crate::classifier::HeadMode;
use crate::engine::SUMMARY_FILE;
use serde_json::{json, Value};

#[test]
fn report_of_three_runs_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let runs = vec![
        fake_run(dir.path(), "lm-learned", HeadMode::Learned, 3, true),
        fake_run(dir.path(), "lm-tied", HeadMode::Tied, 3, true),
        fake_run(dir.path(), "lm-fixed", HeadMode::FixedOrthogonal, 3, true),
    ];
    let out = dir.path().join("reports").join("quick");
    let t = write_report(&runs, &out, "quick").unwrap();
    assert_eq!(t.runs.len(), 3);

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header[..CSV_COLUMNS.len()], CSV_COLUMNS, "{}", lines[0]);
    assert!(header.contains(&"final_alpha") && header.contains(&"train_tokens"));
    assert!(!csv.contains("NaN") && !csv.to_lowercase().contains("inf"));
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        for c in &cells[2..CSV_COLUMNS.len()] {
            let v: f64 = c.parse().unwrap_or_else(|_| panic!("`{c}` in {line}"));
            assert!(v.is_finite(), "{line}");
        }
    }
    assert!(lines[1].starts_with("lm-learned,learned,4000000,4000000,0,0,"));
    assert!(lines[3].starts_with("lm-fixed,fixed-orthogonal,2500000,1000000,1500000,0.75,"));
    let alpha_col = header.iter().position(|h| *h == "final_alpha").unwrap();
    assert_eq!(lines[1].split(',').nth(alpha_col), Some(""));
    assert_eq!(lines[3].split(',').nth(alpha_col), Some("19"));

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["title"], "quick");
    assert_eq!(json["runs"].as_array().unwrap().len(), 3);
    assert_eq!(json["runs"][2]["mode"], "fixed-orthogonal");
    assert_eq!(json["runs"][0]["status"], "finished");
    assert_eq!(json["scale"]["train_tokens_limit"], json!([50000]));
    assert_eq!(json["scale"]["threads"], json!([2]));

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert_eq!(md, render_markdown(&t));
    assert!(md.contains("| run | mode | params total (M)"), "{md}");
    assert!(
        md.contains("| lm-fixed | fixed-orthogonal | 2.50 | 1.00 | 1.50 | 75.0 |"),
        "{md}"
    );
    assert!(
        md.contains("lm-fixed (fixed-orthogonal): final alpha 19.000"),
        "{md}"
    );
    assert!(
        md.contains("**Scale.** 3 runs on corpus `data/wikitext-2`, using"),
        "fixclf 0.1 runs record no vocabulary: {md}"
    );
    assert!(md.contains("first 50.0 k training tokens"), "{md}");
    assert!(md.contains("Device Cpu, 2 thread(s)"), "{md}");

    for name in PLOTS {
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        let (size, pixels) = png_pixels(&png);
        assert_eq!(size, PLOT_SIZE, "{name}");
        // Not a blank canvas: some dark pixels (text, axes).
        assert!(
            pixels.chunks(4).any(|p| p[..3].iter().all(|&c| c < 80)),
            "{name}"
        );
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<text"), "{name}");
    }
    // Labels name the mode once.
    let legend = std::fs::read_to_string(out.join("val_ppl.svg")).unwrap();
    assert!(legend.contains("\nlm-tied\n"), "{legend}");
    assert!(legend.contains("lm-fixed (fixed-orthogonal)"));
    assert!(!legend.contains("(tied)") && !legend.contains("(learned)"));
    // No temp files left.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3 + 2 * PLOTS.len(), "{names:?}");
}

#[test]
fn report_rejects_a_folder_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = fake_run(dir.path(), "good", HeadMode::Tied, 1, true);
    let bad = dir.path().join("not-a-run");
    std::fs::create_dir_all(&bad).unwrap();
    let out = dir.path().join("out");
    let e = write_report(&[good.clone(), bad.clone()], &out, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not-a-run") && e.contains("config.toml"), "{e}");
    assert!(!out.exists(), "no report files on error");
    let e = write_report(&[dir.path().join("missing")], &out, "x")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing") && e.contains("no such run folder"),
        "{e}"
    );
    let e = write_report(&[], &out, "x").unwrap_err().to_string();
    assert!(e.contains("at least one"), "{e}");
    // A corrupt summary names the file.
    std::fs::write(good.join(SUMMARY_FILE), "{").unwrap();
    let e = write_report(&[good], &out, "x").unwrap_err().to_string();
    assert!(e.contains("summary.json"), "{e}");
    assert!(!out.exists());
}

#[test]
fn report_tells_apart_runs_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let runs = vec![
        fake_run(&dir.path().join("a"), "learned", HeadMode::Learned, 1, true),
        fake_run(&dir.path().join("b"), "learned", HeadMode::Learned, 1, true),
    ];
    let t = build_report(&runs, "t").unwrap();
    assert_eq!(
        (t.runs[0].run.as_str(), t.runs[1].run.as_str()),
        ("a/learned", "b/learned")
    );
    assert_eq!(t.curves[1].label, "b/learned");
}

/// Runs `<run>-seed<s>` of seed `s` are one experiment: one color, one line (their mean)
/// and its band in the plots, one row of the table over seeds (LM: test perplexity).
#[test]
fn seeds_of_one_run_share_a_group_and_a_color() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (name, seed, drop) in [
        ("lm-seed1", 1, 0.2),
        ("other", 1111, 0.2),
        ("lm-seed2", 2, 0.4),
    ] {
        let run = fake_run_losses(dir.path(), name, HeadMode::Learned, 2, true, (6.5, drop));
        let cfg = run.join(crate::engine::CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg).unwrap();
        // The [train] section is the file's last.
        std::fs::write(&cfg, format!("{text}seed = {seed}\n")).unwrap();
        runs.push(run);
    }
    let t = build_report(&runs, "t").unwrap();
    let groups: Vec<&str> = t.runs.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups, ["lm", "other", "lm"]);
    let colors: Vec<usize> = t.curves.iter().map(|c| c.color).collect();
    assert_eq!(colors, [0, 1, 0]);
    assert_eq!(t.seed_groups.len(), 1);
    assert_eq!(t.seed_groups[0].seeds, [1, 2]);
    assert!(
        render_markdown(&t).contains("| lm | lstm-"),
        "{}",
        render_markdown(&t)
    );
    let (svg, _) = plot::render(&t, "val_ppl").unwrap();
    let doc = resvg::usvg::roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(texts.contains(&"lm (learned, 2 seeds)"), "{texts:?}");
    assert!(texts.contains(&"other (learned)"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("seed1")), "{texts:?}");
    // Two lines (the mean of lm's seeds, other), one band: lm's seeds differ after epoch 1.
    let count = |tag: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag) && n.attribute("stroke-width") == Some("2"))
            .count()
    };
    assert_eq!(count("polyline"), 2, "{svg}");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("polygon"))
            .count(),
        1
    );
}

#[test]
fn labels_name_the_mode_once() {
    assert_eq!(curve_label("learned", "learned"), "learned");
    assert_eq!(curve_label("wt2-fixed-pmi", "fixed-pmi"), "wt2-fixed-pmi");
    assert_eq!(curve_label("baseline", "tied"), "baseline (tied)");
}

/// Writes a report of five fake runs into $FIXCLF_REPORT_DEMO, to look at the plots:
/// `FIXCLF_REPORT_DEMO=/tmp/demo cargo test --release report_demo -- --ignored`.
#[test]
#[ignore]
fn report_demo() {
    let out = std::path::PathBuf::from(std::env::var("FIXCLF_REPORT_DEMO").unwrap());
    let runs_dir = out.join("runs");
    let mut runs = five_runs(&runs_dir);
    runs.push(fake_run(&runs_dir, "half", HeadMode::FixedPmi, 1, false));
    write_report(&runs, &out, "WikiText-2, quick CPU scale").unwrap();
    // Labels too long for a column; a single run.
    let long = "a-learned-baseline-whose-name-is-long-enough-to-need-a-band";
    runs.push(fake_run(&runs_dir, long, HeadMode::Learned, 3, true));
    write_report(&runs, &out.join("long"), "").unwrap();
    write_report(&runs[..1], &out.join("one"), "one run").unwrap();
}
