//! The legend of a plot: laid out in an area of its own beside the chart (a column on the
//! right, or rows below the chart when the labels are too long for a column), so that it never
//! covers a curve.
use super::canvas::{Area, PlotError, PlotResult, CHART_MARGIN, LABEL_PX, TITLE_PX, Y_LABEL_AREA};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const LEGEND_SWATCH: u32 = 32;
const LEGEND_PAD: u32 = 8;

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
pub(crate) enum Swatch {
    Line,
    Dashed,
    Block,
}

fn legend_line() -> u32 {
    (LABEL_PX as f64 * 1.4).ceil() as u32
}

/// A legend laid out: its area, and where each entry goes in it (the left end and the
/// middle of its line).
pub(crate) struct Legend<'a> {
    area: Area<'a>,
    at: Vec<(i32, i32)>,
}

/// The plot's title on top, then the area of the chart and the legend beside it: a
/// right-hand column wide enough for the longest label, or rows of entries below the chart
/// when `below` or when such a column would take more than 30% of the width.
pub(crate) fn layout<'a>(
    root: &Area<'a>,
    title: &str,
    labels: &[&str],
    below: bool,
) -> Result<(Area<'a>, Legend<'a>), PlotError> {
    let area = root.titled(title, ("sans-serif", TITLE_PX))?;
    let (w, h) = area.dim_in_pixel();
    let style = ("sans-serif", LABEL_PX).into_text_style(&area);
    let mut widths = Vec::with_capacity(labels.len());
    for label in labels {
        widths.push(area.estimate_text_size(label, &style)?.0 + LEGEND_SWATCH + 2 * LEGEND_PAD);
    }
    let line = legend_line() as i32;
    let column = widths.iter().copied().max().unwrap_or(0);
    if !below && column as f64 <= 0.3 * w as f64 {
        let (chart, legend) = area.split_horizontally(w.saturating_sub(column));
        let top = (CHART_MARGIN + LEGEND_PAD) as i32;
        let at = (0..labels.len() as i32)
            .map(|i| (LEGEND_PAD as i32, top + i * line + line / 2))
            .collect();
        return Ok((chart, Legend { area: legend, at }));
    }
    // Rows under the plotting area, from its left edge.
    let left = (CHART_MARGIN + Y_LABEL_AREA) as i32;
    let (mut x, mut row, mut at) = (left, 0, Vec::with_capacity(labels.len()));
    for &width in &widths {
        if x > left && x + width as i32 > (w - CHART_MARGIN) as i32 {
            (x, row) = (left, row + 1);
        }
        at.push((x, LEGEND_PAD as i32 + row * line + line / 2));
        x += (width + 2 * LEGEND_PAD) as i32;
    }
    let band = ((row + 1) * line) as u32 + 2 * LEGEND_PAD;
    let (chart, legend) = area.split_vertically(h.saturating_sub(band));
    Ok((chart, Legend { area: legend, at }))
}

/// Draws the legend's entries where [`layout`] put them.
pub(crate) fn draw_legend(
    legend: &Legend,
    entries: &[(&str, RGBColor)],
    swatch: Swatch,
) -> PlotResult {
    let entries: Vec<(&str, RGBColor, Swatch)> =
        entries.iter().map(|&(l, c)| (l, c, swatch)).collect();
    draw_legend_entries(legend, &entries)
}

/// Draws legend entries, each with its own swatch.
pub(crate) fn draw_legend_entries(
    legend: &Legend,
    entries: &[(&str, RGBColor, Swatch)],
) -> PlotResult {
    let area = &legend.area;
    let style = ("sans-serif", LABEL_PX)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (&(x, y), &(label, c, swatch)) in legend.at.iter().zip(entries) {
        match swatch {
            Swatch::Line => area.draw(&PathElement::new(
                vec![(x, y), (x + 24, y)],
                c.stroke_width(3),
            ))?,
            Swatch::Dashed => {
                for x0 in [x, x + 10, x + 20] {
                    area.draw(&PathElement::new(
                        vec![(x0, y), (x0 + 5, y)],
                        c.stroke_width(3),
                    ))?
                }
            }
            Swatch::Block => area.draw(&Rectangle::new(
                [(x + 5, y - 7), (x + 19, y + 7)],
                c.filled(),
            ))?,
        }
        let at = (x + LEGEND_SWATCH as i32, y);
        area.draw(&Text::new(label.to_string(), at, style.clone()))?;
    }
    Ok(())
}
