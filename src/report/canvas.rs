//! The drawing primitives under the report's plots and the benches' charts: the SVG area,
//! the bundled font and text sizes, the line colours, axes (padded ranges, log ticks, tick
//! labels), a chart of lines and bands, a note for an empty chart, and the SVG rendered to
//! PNG.
//!
//! Everything is drawn with plotters' SVG backend (text as SVG text, plotters' own axes and
//! tick labels); the PNG is that SVG rendered by resvg, so both show the same text. Text is
//! DejaVu Sans, bundled in the binary (`assets/fonts/DejaVuSans.ttf`, Bitstream Vera license
//! with public-domain DejaVu changes; see `assets/fonts/DejaVuSans-LICENSE.txt`): plotters
//! measures text with it for the layout, and resvg renders with it alone (no system font,
//! fontconfig or other system library, at build time or at run time).
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::{tiny_skia, usvg};
use std::sync::{Arc, OnceLock};

/// The one font of every plot, and the family name it is rendered under.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";
/// Text sizes in pixels: plot titles, tick and legend labels, axis descriptions.
pub(crate) const TITLE_PX: u32 = 28;
pub(crate) const LABEL_PX: u32 = 17;
pub(crate) const DESC_PX: u32 = 19;
/// The grid lines behind a chart.
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);

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

/// `(x, lowest, highest)` at each x: the band a group of seeds spans.
pub(crate) type Band = Vec<(f64, f64, f64)>;

/// A plot of `size` pixels drawn by `draw`, as SVG text and as PNG bytes.
pub(crate) fn render_with(
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

/// The colour of series `i` (the palette repeats after ten).
pub(crate) fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
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
pub(crate) fn tick_label(v: &f64) -> String {
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
pub(crate) fn bounds(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
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

pub(crate) const CHART_MARGIN: u32 = 16;
const X_LABEL_AREA: u32 = 48;
pub(crate) const Y_LABEL_AREA: u32 = 80;

/// A chart's margins and axis areas.
pub(crate) fn chart_builder<'a, 'b>(area: &'a Area<'b>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.margin(CHART_MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA);
    b
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
pub(crate) fn whole_ticks(lo: f64, hi: f64) -> usize {
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
    use super::*;
    use plotters::coord::ranged1d::BoldPoints;

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
