//! What `fixclf bench classifier --out DIR` writes: `classifier_sweep.csv` (every point),
//! `classifier_sweep.md` (the README's table) and `classifier_sweep.svg` / `.png`, a log-log
//! plot of the step time and of the peak memory against the number of classes, a line per
//! head and N, drawn on the report's canvas ([`crate::report::canvas`]).
use super::sweep::SweepPoint;
use crate::error::{Error, Result};
use crate::fsutil::write_bytes_atomic;
use crate::report::canvas::{self, Area, PlotError, PlotResult};
use crate::report::legend::{self, Swatch};
use plotters::prelude::*;
use std::path::Path;

/// The CSV's columns: every field of a point but its list of step times.
const CSV_COLUMNS: [&str; 19] = [
    "device",
    "threads",
    "classes",
    "features",
    "batch",
    "head",
    "skipped",
    "estimate_mb",
    "step_ms_median",
    "step_ms_min",
    "steps",
    "steps_requested",
    "build_s",
    "peak_rss_delta_mb",
    "optimizer_state_floats",
    "checkpoint_bytes",
    "resume_checkpoint_bytes",
    "stored_matrix_floats",
    "torch",
];

/// The points as CSV (RFC 4180 quoting), one row each.
pub fn render_csv(points: &[SweepPoint]) -> String {
    let mut out = CSV_COLUMNS.join(",") + "\n";
    for p in points {
        let v = serde_json::to_value(p).unwrap_or_default();
        let cells: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|k| match &v[*k] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) if s.contains([',', '"', '\n']) => {
                    format!("\"{}\"", s.replace('"', "\"\""))
                }
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// `1234567` as `1,234,567`.
fn thousands(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0 {
        out.insert(0, '-');
    }
    out
}

/// Bytes in B, kB, MB or GB (powers of 1000, as the JSON's `_mb` fields).
fn human_bytes(b: i64) -> String {
    let b = b as f64;
    match b {
        _ if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        _ if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        _ if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        _ => format!("{b} B"),
    }
}

/// The Markdown table: per N, C and head, the median step, its speed-up over the learned
/// head at the same point, the peak memory, the optimizer state and the checkpoint bytes.
pub fn render_markdown(points: &[SweepPoint]) -> String {
    let mut out = String::from(
        "| N | C | head | step (ms, median) | speed-up vs learned | peak RSS added (MB) | optimizer state (floats) | checkpoint (bytes) |\n\
         |--:|--:|---|--:|--:|--:|--:|--:|\n",
    );
    for p in points {
        let (n, c) = (thousands(p.features), thousands(p.classes));
        if let Some(why) = &p.skipped {
            out.push_str(&format!(
                "| {n} | {c} | {} | skipped: {why} | | | | |\n",
                p.head
            ));
            continue;
        }
        let learned = points
            .iter()
            .find(|q| q.head == "learned" && q.classes == p.classes && q.features == p.features)
            .and_then(|q| q.step_ms_median);
        let up = match (learned, p.step_ms_median) {
            (Some(l), Some(s)) if p.head != "learned" && s > 0.0 => format!("{:.2}x", l / s),
            _ => String::new(),
        };
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        out.push_str(&format!(
            "| {n} | {c} | {} | {} | {up} | {} | {} | {} |\n",
            p.head,
            opt(p.step_ms_median),
            opt(p.peak_rss_delta_mb),
            p.optimizer_state_floats.map_or(String::new(), thousands),
            p.checkpoint_bytes.map_or(String::new(), human_bytes),
        ));
    }
    out
}

/// Width and height of the sweep's plot (two panels side by side).
const SIZE: (u32, u32) = (1400, 640);

/// One series per (head, N), in the order of their first point: label, color, `(C, y)`.
type Series = (String, RGBColor, Vec<(f64, f64)>);

fn series(points: &[SweepPoint], y: fn(&SweepPoint) -> Option<f64>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let mut keys: Vec<(String, i64)> = Vec::new();
    for p in points {
        let key = (p.head.clone(), p.features);
        let i = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                let label = format!("{} N={}", p.head, p.features);
                out.push((label, canvas::color(keys.len() - 1), Vec::new()));
                keys.len() - 1
            }
        };
        if let Some(v) = y(p).filter(|v| *v > 0.0 && v.is_finite()) {
            out[i].2.push((p.classes as f64, v));
        }
    }
    out
}

/// One log-log panel: `title`, the y axis named `y_desc`, the legend below.
fn panel(area: &Area, title: &str, y_desc: &str, series: &[Series]) -> PlotResult {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    if all.is_empty() {
        return canvas::draw_note(area, title, "no measured point");
    }
    let ((x0, x1), (y0, y1)) = canvas::bounds(&all);
    let (x0, x1) = canvas::padded(x0, x1, true);
    let (y0, y1) = canvas::padded(y0, y1, true);
    let labels: Vec<&str> = series.iter().map(|s| s.0.as_str()).collect();
    let (chart, legend_area) = legend::layout(area, title, &labels, true)?;
    let lines: Vec<(RGBColor, Vec<(f64, f64)>)> =
        series.iter().map(|s| (s.1, s.2.clone())).collect();
    canvas::lines_chart(
        canvas::chart_builder(&chart),
        (canvas::log_axis(x0, x1), 20),
        canvas::log_axis(y0, y1),
        ("classes C (log scale)", y_desc),
        canvas::Lines {
            solid: &lines,
            dashed: &[],
            bands: &[],
        },
    )?;
    let entries: Vec<(&str, RGBColor)> = series.iter().map(|s| (s.0.as_str(), s.1)).collect();
    legend::draw_legend(&legend_area, &entries, Swatch::Line)
}

/// The plot as SVG text and PNG bytes.
pub(crate) fn render_plot(
    points: &[SweepPoint],
) -> std::result::Result<(String, Vec<u8>), PlotError> {
    let batch = points.first().map_or(0, |p| p.batch);
    canvas::render_with(SIZE, |root| {
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        panel(
            &left,
            &format!("Classifier training step, batch {batch}"),
            "step (ms, median, log scale)",
            &series(points, |p| p.step_ms_median),
        )?;
        panel(
            &right,
            "Peak memory the head adds",
            "peak RSS added (MB, log scale)",
            &series(points, |p| p.peak_rss_delta_mb),
        )
    })
}

/// Writes the CSV, the Markdown table and the plot (SVG and PNG) into `dir`.
pub fn write(dir: &Path, points: &[SweepPoint]) -> Result<()> {
    let svg_path = dir.join("classifier_sweep.svg");
    let (svg, png) = render_plot(points)
        .map_err(|e| Error::bad_file(&svg_path, format!("cannot draw the plot: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_bytes_atomic(
        &dir.join("classifier_sweep.csv"),
        render_csv(points).as_bytes(),
    )?;
    write_bytes_atomic(
        &dir.join("classifier_sweep.md"),
        render_markdown(points).as_bytes(),
    )?;
    write_bytes_atomic(&svg_path, svg.as_bytes())?;
    write_bytes_atomic(&dir.join("classifier_sweep.png"), &png)
}

#[cfg(test)]
mod tests {
    use super::super::sweep::Sweep;
    use super::*;

    #[test]
    fn sweep_outputs_csv_table_and_plot() {
        let s = Sweep {
            classes: vec![10, 100],
            features: vec![16],
            batch: 4,
            measure: crate::bench::measure::Measure {
                steps: 1,
                warmup: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut pts = s.run(|_| {}).unwrap();
        let mut skipped = pts[0].clone();
        skipped.classes = 1_000_000;
        skipped.skipped = Some("needs ~32.0 GB, 20.1 GB available".into());
        skipped.step_ms_median = None;
        pts.push(skipped);
        let csv = render_csv(&pts);
        assert_eq!(csv.lines().count(), 8, "{csv}");
        assert!(
            csv.contains("\"needs ~32.0 GB, 20.1 GB available\""),
            "{csv}"
        );
        let md = render_markdown(&pts);
        assert!(
            md.contains("| 16 | 1,000,000 | learned | skipped: needs ~32.0 GB"),
            "{md}"
        );
        assert!(md.contains("x |"), "a speed-up column: {md}");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &pts).unwrap();
        for f in ["csv", "md", "svg", "png"] {
            let path = dir.path().join(format!("classifier_sweep.{f}"));
            assert!(std::fs::metadata(&path).unwrap().len() > 100, "{f}");
        }
        let svg = std::fs::read_to_string(dir.path().join("classifier_sweep.svg")).unwrap();
        assert!(svg.contains("fixed-hadamard N=16") && svg.contains("classes C (log scale)"));
        assert_eq!(thousands(33_278), "33,278");
        assert_eq!(human_bytes(2_000), "2.0 kB");
    }
}
