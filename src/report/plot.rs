//! The plots: each is drawn once with plotters' SVG backend (text as SVG text, plotters' own
//! axes and tick labels); its PNG is that SVG rendered by resvg, so both show the same text.
//!
//! Text is DejaVu Sans, bundled in the binary (`assets/fonts/DejaVuSans.ttf`, Bitstream Vera
//! license with public-domain DejaVu changes; see `assets/fonts/DejaVuSans-LICENSE.txt`):
//! plotters measures text with it for the layout, and resvg renders with it alone (no
//! system font, fontconfig or other system library, at build time or at run time).
//!
//! The legend has an area of its own beside the chart (`legend.rs`), so it never covers a
//! curve.
use super::legend::{draw_legend, layout, Swatch};
use super::ReportTable;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::{tiny_skia, usvg};
use std::sync::{Arc, OnceLock};

/// Width and height of every plot, in pixels (the SVG's size too).
pub const PLOT_SIZE: (u32, u32) = (960, 600);

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";
pub(super) const TITLE_PX: u32 = 28;
pub(super) const LABEL_PX: u32 = 17;
pub(super) const DESC_PX: u32 = 19;
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);

/// An error while drawing, as text.
#[derive(Debug)]
pub(crate) struct PlotError(pub(crate) String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) type PlotResult = std::result::Result<(), PlotError>;
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(crate) use super::series::{Band, Series};

/// The plot `name` (one of [`super::PLOTS`]) as SVG text and as PNG bytes.
pub(super) fn render(t: &ReportTable, name: &str) -> Result<(String, Vec<u8>), PlotError> {
    render_with(PLOT_SIZE, |root| draw_plot(t, name, root))
}

/// A plot of `size` pixels drawn by `draw`, as SVG text and as PNG bytes.
pub(super) fn render_with(
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> PlotResult,
) -> Result<(String, Vec<u8>), PlotError> {
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)?;
        root.present()?;
    }
    let png = svg_to_png(&svg)?;
    Ok((svg, png))
}

/// Registers the bundled font for plotters' text measurement, under the family it is asked
/// for (once).
pub(crate) fn register_font() -> PlotResult {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| PlotError("the bundled font could not be loaded".into()))
}

/// Renders an SVG to PNG with the bundled font as the only font (for `sans-serif` too).
pub(crate) fn svg_to_png(svg: &str) -> Result<Vec<u8>, PlotError> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    let fontdb = FONTS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        Arc::new(db)
    });
    let opt = usvg::Options {
        font_family: FONT_FAMILY.into(),
        fontdb: fontdb.clone(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| PlotError(format!("SVG: {e}")))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| PlotError("empty plot".into()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| PlotError(format!("PNG encoding: {e}")))
}

/// Tableau 10: distinguishable line colors.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
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

/// The title, and a note in the middle, for a plot with nothing to draw.
pub(crate) fn draw_note(root: &Area, title: &str, note: &str) -> PlotResult {
    let area = root.titled(title, ("sans-serif", TITLE_PX))?;
    let (w, h) = area.dim_in_pixel();
    let style = ("sans-serif", 21)
        .into_font()
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Center, VPos::Center));
    let at = (w as i32 / 2, h as i32 / 2);
    area.draw(&Text::new(note.to_string(), at, style))?;
    Ok(())
}

/// A tick label: the value to 10 significant digits, written shortest (`0.3`, `1000`);
/// whole thousands and millions from 10,000 up with a suffix (`20k`, `1M`), so that wide
/// log axes stay readable.
pub(super) fn tick_label(v: &f64) -> String {
    let r: f64 = format!("{v:.9e}").parse().unwrap_or(*v);
    if r == 0.0 {
        "0".into()
    } else if r.abs() >= 1e6 && (r / 1e6).fract() == 0.0 {
        format!("{}M", r / 1e6)
    } else if r.abs() >= 1e4 && (r / 1e3).fract() == 0.0 {
        format!("{}k", r / 1e3)
    } else {
        r.to_string()
    }
}

/// The smallest and largest x, and y, of the points.
pub(super) fn bounds(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    let range = |f: fn(&(f64, f64)) -> f64| {
        points
            .iter()
            .map(f)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    (range(|p| p.0), range(|p| p.1))
}

/// A padded range around `lo..hi` (a point gets a range around it).
pub(crate) fn padded(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        let (lo, hi) = (lo.max(1e-12), hi.max(1e-12));
        let f = if hi / lo < 1.05 { 1.1 } else { 1.05 };
        (lo / f, hi * f)
    } else if hi - lo < 1e-9 * (1.0 + hi.abs()) {
        let d = if hi.abs() >= 1.0 { 0.5 } else { 0.1 };
        (lo - d, hi + d)
    } else {
        let d = 0.05 * (hi - lo);
        (lo - d, hi + d)
    }
}

pub(super) const CHART_MARGIN: u32 = 16;
const X_LABEL_AREA: u32 = 48;
pub(super) const Y_LABEL_AREA: u32 = 80;

/// A chart's margins and axis areas.
pub(crate) fn chart_builder<'a, 'b>(area: &'a Area<'b>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.margin(CHART_MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA);
    b
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

/// A log axis over `lo..hi`: plotters' log ticks (powers of ten, then 2 and 5 times them up
/// to three decades, powers of ten alone beyond) over a range past a decade; within one,
/// plotters' linear ticks (its log ticks are only at and between powers of ten, and a range
/// such as 140..420 has none).
pub(crate) fn log_axis(lo: f64, hi: f64) -> impl Ranged<ValueType = f64> + ValueFormatter<f64> {
    let mut ticks: Vec<f64> = if hi / lo < 10.0 {
        RangedCoordf64::from(lo..hi).key_points(6)
    } else {
        let log: LogCoord<f64> = (lo..hi).log_scale().into();
        log.key_points(100)
            .into_iter()
            .filter(|v| {
                let m = v / 10f64.powf(v.log10().floor());
                let multiples: &[f64] = if hi / lo <= 1e3 {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                multiples.iter().any(|k| (m - k).abs() < 1e-6)
            })
            .collect()
    };
    // plotters repeats each power of ten past the first.
    ticks.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs());
    (lo..hi).log_scale().with_key_points(ticks)
}

/// How many ticks an axis of whole numbers (epochs, steps) over `lo..hi` gets: at most one
/// per unit, and 10 at most.
pub(super) fn whole_ticks(lo: f64, hi: f64) -> usize {
    ((hi.floor() - lo.ceil()) as usize + 1).clamp(1, 10)
}

/// What [`lines_chart`] draws, each entry a color and its points: solid lines, dashed
/// lines, and bands `(x, lowest, highest)` filled lightly behind them.
pub(crate) struct Lines<'a> {
    pub solid: &'a [(RGBColor, Vec<(f64, f64)>)],
    pub dashed: &'a [(RGBColor, Vec<(f64, f64)>)],
    pub bands: &'a [(RGBColor, Band)],
}

/// Lines (and markers where a series has few points) on axes `x` and `y`, linear or
/// [`log_axis`] each, with `x_ticks` ticks at most on a linear x axis.
pub(crate) fn lines_chart<X, Y>(
    mut builder: ChartBuilder<SVGBackend>,
    (x, x_ticks): (X, usize),
    y: Y,
    (x_desc, y_desc): (&str, &str),
    lines: Lines,
) -> PlotResult
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = builder.build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(x_ticks)
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", LABEL_PX))
        .axis_desc_style(("sans-serif", DESC_PX))
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .bold_line_style(GRID)
        .draw()?;
    for (c, band) in lines.bands.iter().filter(|b| !b.1.is_empty()) {
        if let [(x, lo, hi)] = band[..] {
            // A band of one x: a bar from the lowest value to the highest.
            let bar = PathElement::new(vec![(x, lo), (x, hi)], c.mix(0.45).stroke_width(6));
            chart.draw_series(std::iter::once(bar))?;
            continue;
        }
        // The highest values left to right, then the lowest back.
        let outline = band
            .iter()
            .map(|&(x, _, hi)| (x, hi))
            .chain(band.iter().rev().map(|&(x, lo, _)| (x, lo)));
        chart.draw_series(std::iter::once(Polygon::new(
            outline.collect::<Vec<_>>(),
            c.mix(0.18).filled(),
        )))?;
    }
    for &(c, ref pts) in lines.solid {
        chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?;
    }
    for &(c, ref pts) in lines.dashed {
        let line = DashedLineSeries::new(pts.iter().copied(), 8, 5, c.stroke_width(2));
        chart.draw_series(line)?;
    }
    for &(c, ref pts) in lines.solid.iter().chain(lines.dashed) {
        if pts.len() <= 60 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::build_report;
    use super::super::testing::five_runs;
    use super::*;
    use plotters::coord::ranged1d::BoldPoints;

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

    #[test]
    fn log_axis_ticks() {
        let ticks = |lo: f64, hi: f64| log_axis(lo, hi).key_points(BoldPoints(100));
        // Within a decade: round linear ticks.
        assert_eq!(
            ticks(140.0, 420.0),
            vec![150.0, 200.0, 250.0, 300.0, 350.0, 400.0]
        );
        // Over a decade: 1, 2, 5 times powers of ten.
        assert_eq!(
            ticks(30.0, 2000.0),
            vec![100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
        assert_eq!(tick_label(&0.30000000000000004), "0.3");
        assert_eq!(tick_label(&1000.0), "1000");
        assert_eq!(tick_label(&0.0), "0");
        assert_eq!(tick_label(&20000.0), "20k");
        assert_eq!(tick_label(&1e6), "1M");
        assert_eq!(tick_label(&12345.0), "12345");
        // Past three decades: powers of ten alone.
        assert_eq!(ticks(10.0, 1e6), vec![10.0, 100.0, 1000.0, 1e4, 1e5, 1e6]);
    }
}
