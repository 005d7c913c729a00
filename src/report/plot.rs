//! The report's line plots (validation perplexity, training loss, alpha; the error and
//! parameter charts come from [`super::charts`]), each drawn on a [`super::canvas`] once as
//! SVG and rendered to PNG from it.
//!
//! The legend has an area of its own beside the chart (`legend.rs`), so it never covers a
//! curve.
use super::canvas::{
    bounds, chart_builder, draw_note, lines_chart, log_axis, padded, render_with, whole_ticks,
    Area, Band, Lines, PlotError, PlotResult,
};
use super::legend::{draw_legend, layout, Swatch};
use super::series::Series;
use super::ReportTable;
use plotters::prelude::*;

/// Width and height of every plot, in pixels (the SVG's size too).
pub const PLOT_SIZE: (u32, u32) = (960, 600);

/// The plot `name` (one of [`super::PLOTS`]) as SVG text and as PNG bytes.
pub(super) fn render(t: &ReportTable, name: &str) -> Result<(String, Vec<u8>), PlotError> {
    render_with(PLOT_SIZE, |root| draw_plot(t, name, root))
}

fn draw_plot(t: &ReportTable, name: &str, root: &Area) -> PlotResult {
    root.fill(&WHITE)?;
    let title = |what: &str| {
        if t.title.is_empty() {
            what.to_string()
        } else {
            format!("{what} — {}", t.title)
        }
    };
    // A run keeps its color in every plot; a group of seeds is one line and its band.
    let series = |pick: fn(&super::RunCurves) -> &[(f64, f64)], fixed_only: bool| {
        super::series::of_runs(&t.curves, |c| pick(c).to_vec(), |c| c.fixed || !fixed_only)
    };
    match name {
        "val_ppl" => draw_lines(
            root,
            &title("Validation perplexity"),
            ("epoch", "validation perplexity (log scale)"),
            &series(|c| &c.val_ppl, false),
            true,
            "no finished epoch in these runs yet",
        ),
        "train_loss" => draw_lines(
            root,
            &title("Training loss"),
            ("training step", "training loss (mean of each log interval)"),
            &series(|c| &c.train_loss, false),
            false,
            "no training loss logged yet (train.log_interval)",
        ),
        "alpha" => {
            let series = series(|c| &c.alpha, true);
            let note = if series.is_empty() {
                "no fixed-classifier run: alpha exists only in the fixed modes"
            } else {
                "no alpha logged yet"
            };
            draw_lines(
                root,
                &title("Scale alpha of the fixed classifier"),
                ("training step", "alpha"),
                &series,
                false,
                note,
            )
        }
        "error" => super::charts::draw_errors(root, &title("Training and test error"), &t.curves),
        "params" => super::charts::draw_params(root, &title("Parameters"), &t.runs),
        other => Err(PlotError(format!("no plot named `{other}`"))),
    }
}

/// Line chart of several runs (markers on every point when a run has few, so that a
/// single point still shows; a group of seeds' band behind its line), on a log y axis if
/// `log_y`.
pub(super) fn draw_lines(
    root: &Area,
    title: &str,
    desc: (&str, &str),
    series: &[Series],
    log_y: bool,
    empty_note: &str,
) -> PlotResult {
    let entries: Vec<(&str, RGBColor)> =
        series.iter().map(|s| (s.label.as_str(), s.color)).collect();
    let labels: Vec<&str> = entries.iter().map(|e| e.0).collect();
    let keep = |x: f64, y: f64| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let lines: Vec<(RGBColor, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            (
                s.color,
                s.points
                    .iter()
                    .copied()
                    .filter(|p| keep(p.0, p.1))
                    .collect(),
            )
        })
        .collect();
    let bands: Vec<(RGBColor, Band)> = series
        .iter()
        .map(|s| {
            let band = s
                .band
                .iter()
                .copied()
                .filter(|b| keep(b.0, b.1) && keep(b.0, b.2));
            (s.color, band.collect())
        })
        .collect();
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .chain(bands.iter().flat_map(|b| super::series::band_corners(&b.1)))
        .collect();
    if all.is_empty() {
        return draw_note(root, title, empty_note);
    }
    let ((x0, x1), (y0, y1)) = bounds(&all);
    let (x0, x1) = padded(x0, x1, false);
    let (y0, y1) = padded(y0, y1, log_y);
    // Epochs and steps are whole numbers: at most one tick per unit.
    let x_ticks = if all.iter().all(|p| p.0.fract() == 0.0) {
        whole_ticks(x0, x1)
    } else {
        10
    };
    let (chart_area, legend) = layout(root, title, &labels, false)?;
    let builder = chart_builder(&chart_area);
    let lines = Lines {
        solid: &lines,
        dashed: &[],
        bands: &bands,
    };
    if log_y {
        let y = log_axis(y0, y1);
        lines_chart(builder, (x0..x1, x_ticks), y, desc, lines)?;
    } else {
        lines_chart(builder, (x0..x1, x_ticks), y0..y1, desc, lines)?;
    }
    draw_legend(&legend, &entries, Swatch::Line)
}

#[cfg(test)]
mod tests {
    use super::super::build_report;
    use super::super::testing::five_runs;
    use super::*;
    use resvg::usvg;

    /// Left edge of the legend's labels and right edge of the curves, in an SVG plot.
    fn legend_and_curve_edges(svg: &str, labels: &[&str]) -> (f64, f64) {
        let doc = usvg::roxmltree::Document::parse(svg).unwrap();
        let num = |n: &usvg::roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>();
        let legend_x = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter(|n| labels.contains(&n.text().unwrap_or("").trim()))
            .map(|n| num(&n, "x").unwrap())
            .fold(f64::MAX, f64::min);
        let curve_x = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
            .flat_map(|n| {
                let pts = n.attribute("points").unwrap().to_string();
                pts.split_whitespace()
                    .map(|p| p.split(',').next().unwrap().parse::<f64>().unwrap())
                    .collect::<Vec<_>>()
            })
            .fold(f64::MIN, f64::max);
        (legend_x, curve_x)
    }

    #[test]
    fn the_legend_stays_out_of_the_chart() {
        let dir = tempfile::tempdir().unwrap();
        let t = build_report(&five_runs(dir.path()), "WikiText-2, quick CPU scale").unwrap();
        let labels: Vec<&str> = t.curves.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels[2], "fixed-orthogonal", "the mode is not repeated");
        let (svg, png) = render(&t, "val_ppl").unwrap();
        let (legend_x, curve_x) = legend_and_curve_edges(&svg, &labels);
        assert!(legend_x > curve_x + 20.0, "{legend_x} vs {curve_x}");
        assert_eq!(
            svg.matches("font-family=\"sans-serif\"").count(),
            svg.matches("<text").count()
        );
        let (size, _) = super::super::testing::png_pixels(&png);
        assert_eq!(size, PLOT_SIZE);
        // Labels too long for a column go below the chart.
        let mut long = t.clone();
        long.curves[0].label =
            "a run with a very long name indeed, far too long for a column".into();
        let labels: Vec<&str> = long.curves.iter().map(|c| c.label.as_str()).collect();
        let (svg, _) = render(&long, "val_ppl").unwrap();
        let doc = usvg::roxmltree::Document::parse(&svg).unwrap();
        let label_y = doc
            .descendants()
            .find(|n| n.has_tag_name("text") && n.text().unwrap_or("").trim() == labels[0])
            .and_then(|n| n.attribute("y")?.parse::<f64>().ok())
            .unwrap();
        assert!(label_y > 0.8 * PLOT_SIZE.1 as f64, "{label_y}");
    }
}
