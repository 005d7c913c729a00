//! The heads side by side (image runs with neural-collapse diagnostics): one row per
//! experiment (its seeds merged: mean ± sample standard deviation) with the parameters a head
//! removes, the test accuracy, NC1-NC4 on the training split, and the many-, medium- and
//! few-shot accuracy of the long-tailed protocol, all of the final weights (the last
//! `collapse` event); and the `class_norms` plot: per class, sorted by training images, the
//! norm of the centred class mean and of the classifier row (each over its mean across the
//! classes, so heads of any scale compare), and the per-class test accuracy: minority
//! collapse shows as the curves falling to the right.
use super::canvas::{render_with, PlotError};
use super::cells::md_escape;
use super::plot::draw_lines;
use super::{ReportTable, RunCurves, RunRow};
use crate::engine::Collapse;
use serde::Serialize;

/// The plot's name (`class_norms.png`, `class_norms.svg`).
pub const PLOT: &str = "class_norms";
const SIZE: (u32, u32) = (1280, 480);

/// One experiment's numbers over its seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeadRow {
    pub group: String,
    pub mode: String,
    pub seeds: usize,
    /// Share of the all-learned network's parameters the head removes, percent.
    pub removed: Option<f64>,
    /// `(mean, std)` over the seeds of: test accuracy (%, final weights), NC1, NC2 equinorm,
    /// NC2 equiangular, NC3, NC4 (training split), many / medium / few-shot accuracy (%).
    pub cells: Vec<(String, Option<(f64, f64)>)>,
}

type Pick = fn(&Collapse) -> Option<f64>;

const COLUMNS: [(&str, Pick); 10] = [
    ("test acc %", |c| test_of(c, |t| Some(100.0 * t.acc))),
    ("NC1", |c| Some(c.nc1)),
    ("NC2 norm", |c| Some(c.nc2_equinorm)),
    ("NC2 angle", |c| Some(c.nc2_equiangular)),
    ("NC2 W angle", |c| Some(c.nc2_w_equiangular)),
    ("NC3", |c| Some(c.nc3)),
    ("NC4", |c| Some(c.nc4)),
    ("many %", |c| shot(c, |s| s.many)),
    ("medium %", |c| shot(c, |s| s.medium)),
    ("few %", |c| shot(c, |s| s.few)),
];

fn test_of(c: &Collapse, f: impl Fn(&Collapse) -> Option<f64>) -> Option<f64> {
    c.test.as_deref().and_then(f)
}

fn shot(c: &Collapse, f: fn(&crate::engine::ShotAccuracy) -> Option<f64>) -> Option<f64> {
    test_of(c, |t| t.shots.as_ref().and_then(f).map(|a| 100.0 * a))
}

/// Mean and sample standard deviation of the finite values (std 0 for one value).
fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((m, s))
}

/// The rows, in the order of each group's first run; runs without diagnostics are left out.
pub fn rows(t: &ReportTable) -> Vec<HeadRow> {
    let mut groups: Vec<(&RunRow, Vec<(&RunRow, &Collapse)>)> = Vec::new();
    for (r, c) in t.runs.iter().zip(&t.curves) {
        let Some(last) = c.collapse.last() else {
            continue;
        };
        match groups
            .iter_mut()
            .find(|g| g.0.group == r.group && g.0.mode == r.mode)
        {
            Some(g) => g.1.push((r, last)),
            None => groups.push((r, vec![(r, last)])),
        }
    }
    groups
        .into_iter()
        .map(|(first, runs)| HeadRow {
            group: first.group.clone(),
            mode: first.mode.clone(),
            seeds: runs.len(),
            removed: mean_std(
                &runs
                    .iter()
                    .filter_map(|(r, _)| r.share_removed.map(|s| 100.0 * s))
                    .collect::<Vec<_>>(),
            )
            .map(|m| m.0),
            cells: COLUMNS
                .iter()
                .map(|(name, pick)| {
                    let v: Vec<f64> = runs.iter().filter_map(|(_, c)| pick(c)).collect();
                    (name.to_string(), mean_std(&v))
                })
                .collect(),
        })
        .collect()
}

fn cell(v: Option<(f64, f64)>, percent: bool) -> String {
    match v {
        None => "-".into(),
        Some((m, s)) if percent => format!("{m:.2} ± {s:.2}"),
        Some((m, s)) => format!("{m:.3} ± {s:.3}"),
    }
}

/// The Markdown section (empty when no run has diagnostics).
pub fn markdown(t: &ReportTable) -> String {
    let rows = rows(t);
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Heads side by side (final weights; mean ± std over seeds)\n\n\
         Test accuracy and the many / medium / few-shot accuracy (classes by training images, \
         `vision.data.many_shot` / `few_shot`) are of the final weights on the test split; \
         NC1-NC4 of the training split (NC2 W angle: the classifier rows' equiangularity; \
         NC4: share of samples whose prediction differs from the nearest class mean). \
         Per class, sorted by class size: [class_norms](class_norms.png).\n\n\
         | run | mode | seeds | removed % |",
    );
    for (name, _) in COLUMNS {
        md.push_str(&format!(" {name} |"));
    }
    md.push_str("\n|---|---|--:|--:|");
    md.push_str(&"--:|".repeat(COLUMNS.len()));
    md.push('\n');
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} |",
            md_escape(&r.group),
            r.mode,
            r.seeds,
            r.removed.map_or("-".into(), |v| format!("{v:.2}"))
        ));
        for (name, v) in &r.cells {
            md.push_str(&format!(" {} |", cell(*v, name.ends_with('%'))));
        }
        md.push('\n');
    }
    md
}

/// The CSV of the rows (`heads.csv`): mean and std columns per measure.
pub fn csv(t: &ReportTable) -> String {
    let mut out = String::from("run,mode,seeds,removed_percent");
    for (name, _) in COLUMNS {
        let key = name
            .replace([' ', '%'], "_")
            .trim_end_matches('_')
            .to_lowercase();
        out.push_str(&format!(",{key}_mean,{key}_std"));
    }
    out.push('\n');
    for r in rows(t) {
        out.push_str(&format!(
            "{},{},{},{}",
            super::cells::csv_cell(&r.group),
            r.mode,
            r.seeds,
            r.removed.map_or(String::new(), |v| v.to_string())
        ));
        for (_, v) in &r.cells {
            match v {
                Some((m, s)) => out.push_str(&format!(",{m},{s}")),
                None => out.push_str(",,"),
            }
        }
        out.push('\n');
    }
    out
}

/// Whether the plot has anything to draw (some run's last diagnostics have per-class data).
pub fn has_class_data(t: &ReportTable) -> bool {
    t.curves.iter().any(|c| per_class_points(c, 0).is_some())
}

/// Per-class points of a run's last diagnostics, classes ranked by training images (most
/// first; ties by class id): `which` 0: centred class-mean norm, 1: row norm (each over
/// its mean across the classes), 2: test accuracy (%).
fn per_class_points(c: &RunCurves, which: usize) -> Option<Vec<(f64, f64)>> {
    let last = c.collapse.last()?;
    let pc = last.per_class.as_ref()?;
    let mut order: Vec<usize> = (0..pc.count.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(pc.count[i]), i));
    let values: Vec<Option<f64>> = match which {
        0 => pc.mean_norm.clone(),
        1 => pc.row_norm.iter().map(|&v| Some(v)).collect(),
        _ => {
            let t = last.test.as_ref()?.per_class.as_ref()?;
            t.acc.iter().map(|a| a.map(|a| 100.0 * a)).collect()
        }
    };
    let present: Vec<f64> = order
        .iter()
        .filter(|&&i| pc.count[i] > 0)
        .filter_map(|&i| values.get(i).copied().flatten())
        .collect();
    let scale = if which < 2 {
        present.iter().sum::<f64>() / present.len().max(1) as f64
    } else {
        1.0
    };
    Some(
        order
            .iter()
            .enumerate()
            .filter_map(|(rank, &i)| {
                let v = values.get(i).copied().flatten()?;
                Some((rank as f64, v / scale))
            })
            .collect(),
    )
}

/// The `class_norms` plot: three charts over the classes ranked by training images.
pub(super) fn render(t: &ReportTable) -> Result<(String, Vec<u8>), PlotError> {
    render_with(SIZE, |root| {
        let charts = [
            ("Class means ||mu_c - mu_G|| / mean", "norm / mean"),
            ("Classifier rows ||w_c|| / mean", "norm / mean"),
            ("Test accuracy per class", "accuracy %"),
        ];
        let areas = root.split_evenly((1, 3));
        for (which, (area, (title, y))) in areas.iter().zip(charts).enumerate() {
            let series = super::series::of_runs(
                &t.curves,
                |c| per_class_points(c, which).unwrap_or_default(),
                |c| per_class_points(c, which).is_some(),
            );
            draw_lines(
                area,
                title,
                ("class, by training images (most first)", y),
                &series,
                false,
                "no per-class diagnostics in these runs",
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_spread() {
        assert_eq!(mean_std(&[]), None);
        assert_eq!(mean_std(&[2.0]), Some((2.0, 0.0)));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(cell(Some((1.234, 0.5)), true), "1.23 ± 0.50");
        assert_eq!(cell(None, false), "-");
    }
}
