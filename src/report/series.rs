//! The lines of the plots: one per run, except for the runs of one experiment under
//! several seeds (`<run>-seed<s>`, one color already), which become one line, their mean,
//! inside a band from the lowest to the highest seed at each x. Three seeds of six heads
//! would otherwise be 18 tangled lines and an 18-entry legend, and the band shows at a
//! glance whether two heads differ by more than the seeds do.
use super::canvas::{color, Band};
use super::RunCurves;
use plotters::style::RGBColor;

/// A band's lowest and highest points, for the axes' bounds.
pub(crate) fn band_corners(band: &Band) -> impl Iterator<Item = (f64, f64)> + '_ {
    band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)])
}

/// One line of a plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub label: String,
    pub color: RGBColor,
    /// A run's points, or the group's mean at each x (over the seeds with a value there).
    pub points: Vec<(f64, f64)>,
    /// `(x, lowest, highest)` over a group's seeds; empty for a single run.
    pub band: Band,
}

/// The series of the runs `keep` selects, their points taken by `pick`, in the order of
/// each group's first run; a group of several kept runs is merged into its mean and band.
/// Runs without points count in a group's size and add nothing to its line.
pub(crate) fn of_runs(
    curves: &[RunCurves],
    pick: impl Fn(&RunCurves) -> Vec<(f64, f64)>,
    keep: impl Fn(&RunCurves) -> bool,
) -> Vec<Series> {
    let mut groups: Vec<Vec<&RunCurves>> = Vec::new();
    for c in curves.iter().filter(|c| keep(c)) {
        match groups.iter_mut().find(|g| g[0].color == c.color) {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            if let [one] = g[..] {
                return Series {
                    label: one.label.clone(),
                    color: color(one.color),
                    points: pick(one),
                    band: Vec::new(),
                };
            }
            let (points, band) = mean_and_band(&g.iter().map(|c| pick(c)).collect::<Vec<_>>());
            Series {
                label: with_seeds(&g[0].group_label, g.len()),
                color: color(g[0].color),
                points,
                band,
            }
        })
        .collect()
}

/// `label (n seeds)`, or `label (mode, n seeds)` when the label ends in parentheses.
fn with_seeds(label: &str, n: usize) -> String {
    match label.strip_suffix(')') {
        Some(open) => format!("{open}, {n} seeds)"),
        None => format!("{label} ({n} seeds)"),
    }
}

/// The mean, lowest and highest value at every x of any of `runs` (x in increasing
/// order), over the runs with a finite value at that x (a run's last value at an x it
/// logged twice).
fn mean_and_band(runs: &[Vec<(f64, f64)>]) -> (Vec<(f64, f64)>, Band) {
    let mut xs: Vec<f64> = runs
        .iter()
        .flatten()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|p| p.0)
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (mut mean, mut band) = (Vec::new(), Vec::new());
    for x in xs {
        let at: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.iter().rev().find(|p| p.0 == x && p.1.is_finite()))
            .map(|p| p.1)
            .collect();
        let lo = at.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = at.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        mean.push((x, at.iter().sum::<f64>() / at.len() as f64));
        band.push((x, lo, hi));
    }
    (mean, band)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(label: &str, group: &str, color: usize, pts: &[(f64, f64)]) -> RunCurves {
        RunCurves {
            label: label.into(),
            group_label: group.into(),
            color,
            val_ppl: pts.to_vec(),
            ..RunCurves::default()
        }
    }

    #[test]
    fn seeds_of_a_group_become_their_mean_and_band() {
        let curves = [
            curve("a-seed1", "a", 0, &[(1.0, 10.0), (2.0, 8.0)]),
            curve("b", "b", 1, &[(1.0, 5.0)]),
            // A resumed run logged epoch 1 twice: its last value counts.
            curve(
                "a-seed2",
                "a",
                0,
                &[(1.0, 99.0), (1.0, 14.0), (2.0, 6.0), (3.0, 5.0)],
            ),
            curve("a-seed3", "a", 0, &[(1.0, f64::NAN)]),
            curve("c-seed1", "c", 2, &[]),
        ];
        let s = of_runs(&curves, |c| c.val_ppl.clone(), |c| c.label != "b");
        assert_eq!(s.len(), 2, "b is not kept; c has no points but is a series");
        assert_eq!(s[0].label, "a (3 seeds)");
        assert_eq!(s[0].color, color(0));
        assert_eq!(s[0].points, [(1.0, 12.0), (2.0, 7.0), (3.0, 5.0)]);
        assert_eq!(
            s[0].band,
            [(1.0, 10.0, 14.0), (2.0, 6.0, 8.0), (3.0, 5.0, 5.0)]
        );
        assert_eq!((s[1].label.as_str(), s[1].points.len()), ("c-seed1", 0));
        let all = of_runs(&curves, |c| c.val_ppl.clone(), |_| true);
        assert_eq!(all[1].label, "b");
        assert!(all[1].band.is_empty(), "a single run has no band");
    }
}
