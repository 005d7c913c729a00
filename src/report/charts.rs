//! The report's two charts that are not one line per run: the training and test error of
//! image runs (the paper's Figure 2) and the trainable / fixed parameter bars. Both are drawn
//! on [`super::canvas`], with [`super::legend`].
use super::canvas::{
    bounds, chart_builder, color, draw_note, lines_chart, padded, tick_label, whole_ticks, Area,
    Band, Lines, PlotResult, DESC_PX, GRID, LABEL_PX,
};
use super::legend::{draw_legend, draw_legend_entries, layout, Swatch};
use super::series::{band_corners, of_runs, Series};
use super::RunRow;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The paper's Figure 2: each image run's test (or validation) error per epoch as a solid
/// line and its training error as a dashed line of the same color, on one chart; a group of
/// seeds as their means, the test error's band from the lowest seed to the highest behind.
pub(super) fn draw_errors(root: &Area, title: &str, curves: &[super::RunCurves]) -> PlotResult {
    let image = |c: &super::RunCurves| !c.val_err.is_empty() || !c.train_err.is_empty();
    let finite = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect()
    };
    let eval = of_runs(curves, |c| finite(&c.val_err), image);
    let train = of_runs(curves, |c| finite(&c.train_err), image);
    let all: Vec<(f64, f64)> = eval
        .iter()
        .chain(&train)
        .flat_map(|s| s.points.iter().copied())
        .chain(eval.iter().flat_map(|s| band_corners(&s.band)))
        .collect();
    if all.is_empty() {
        return draw_note(root, title, "no image run has finished an epoch yet");
    }
    let eval_name = if curves.iter().filter(|c| image(c)).all(|c| c.valid_is_test) {
        "test"
    } else {
        "validation"
    };
    let mut entries: Vec<(&str, RGBColor, Swatch)> = eval
        .iter()
        .map(|s| (s.label.as_str(), s.color, Swatch::Line))
        .collect();
    let grey = RGBColor(90, 90, 90);
    let eval_label = format!("{eval_name} error");
    entries.push((&eval_label, grey, Swatch::Line));
    entries.push(("training error", grey, Swatch::Dashed));
    let labels: Vec<&str> = entries.iter().map(|e| e.0).collect();
    let ((x0, x1), (y0, y1)) = bounds(&all);
    let (x0, x1) = padded(x0, x1, false);
    let (y0, y1) = padded(y0, y1, false);
    let (chart_area, legend) = layout(root, title, &labels, false)?;
    let lines = |series: &[Series]| -> Vec<(RGBColor, Vec<(f64, f64)>)> {
        series.iter().map(|s| (s.color, s.points.clone())).collect()
    };
    let bands: Vec<(RGBColor, Band)> = eval.iter().map(|s| (s.color, s.band.clone())).collect();
    let y_desc = format!("error (%): {eval_name} solid, training dashed");
    lines_chart(
        chart_builder(&chart_area),
        (x0..x1, whole_ticks(x0, x1)),
        y0.max(0.0)..y1,
        ("epoch", &y_desc),
        Lines {
            solid: &lines(&eval),
            dashed: &lines(&train),
            bands: &bands,
        },
    )?;
    draw_legend_entries(&legend, &entries)
}

/// Stacked bars of trainable and fixed parameters (millions) per run, labelled by mode
/// (by run when two runs share a mode).
pub(super) fn draw_params(root: &Area, title: &str, runs: &[RunRow]) -> PlotResult {
    let rows: Vec<&RunRow> = runs
        .iter()
        .filter(|r| r.params_trainable.is_some() && r.params_fixed.is_some())
        .collect();
    if rows.is_empty() {
        return draw_note(root, title, "no parameter counts: no run has started");
    }
    let m = |n: Option<i64>| n.unwrap_or(0) as f64 / 1e6;
    let trainable: Vec<f64> = rows.iter().map(|r| m(r.params_trainable)).collect();
    let total: Vec<f64> = rows
        .iter()
        .zip(&trainable)
        .map(|(r, t)| t + m(r.params_fixed))
        .collect();
    let modes_unique = rows
        .iter()
        .enumerate()
        .all(|(i, r)| rows[i + 1..].iter().all(|o| o.mode != r.mode));
    let labels: Vec<&str> = rows
        .iter()
        .map(|r| if modes_unique { &r.mode } else { &r.run })
        .map(String::as_str)
        .collect();
    let top = total.iter().copied().fold(1e-6, f64::max) * 1.18;
    let n = rows.len() as u32;
    let (trainable_c, fixed_c) = (color(0), RGBColor(190, 190, 190));
    let legend = [("trainable", trainable_c), ("fixed (not trained)", fixed_c)];
    // The legend below, leaving the width to the bars and their labels.
    let (chart_area, legend_area) = layout(root, title, &legend.map(|e| e.0), true)?;
    let mut chart =
        chart_builder(&chart_area).build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)?;
    let x_label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i as usize).copied().unwrap_or("").into(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        // Not max_light_lines(0): plotters' integer key points loop forever on 0 points.
        .light_line_style(TRANSPARENT)
        .x_labels(rows.len())
        .x_label_formatter(&x_label)
        .y_label_formatter(&tick_label)
        .y_desc("parameters (millions)")
        .label_style(("sans-serif", LABEL_PX))
        .axis_desc_style(("sans-serif", DESC_PX))
        .bold_line_style(GRID)
        .draw()?;
    let bar_margin = (0.2 * chart.plotting_area().dim_in_pixel().0 as f64 / n as f64) as u32;
    chart.draw_series(
        Histogram::vertical(&chart)
            .margin(bar_margin)
            .style(trainable_c.filled())
            .data((0..n).zip(trainable.iter().copied())),
    )?;
    chart.draw_series(
        Histogram::vertical(&chart)
            .margin(bar_margin)
            .style(fixed_c.filled())
            .baseline_func(|x| match x {
                SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                    trainable.get(*i as usize).copied().unwrap_or(0.0)
                }
                SegmentValue::Last => 0.0,
            })
            .data((0..n).zip(total.iter().copied())),
    )?;
    // Above each bar: its trainable parameters, and how many fewer than all learned.
    let text_style = ("sans-serif", 16)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let slot = chart.plotting_area().dim_in_pixel().0 / n;
    let wide = root.estimate_text_size("0.00 M trainable", &text_style)?.0 + 8 <= slot;
    let line = 20;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let t = trainable[i];
        let first = format!("{t:.2} M{}", if wide { " trainable" } else { "" });
        let second = match r.share_removed.filter(|s| *s > 0.0005) {
            Some(s) => format!("{:.0}% fewer", 100.0 * s),
            None => String::new(),
        };
        let lines = if second.is_empty() {
            [second, first]
        } else {
            [first, second]
        };
        EmptyElement::at((SegmentValue::CenterOf(i as u32), total[i]))
            + Text::new(lines[0].clone(), (0, -4 - line), text_style.clone())
            + Text::new(lines[1].clone(), (0, -4), text_style.clone())
    }))?;
    draw_legend(&legend_area, &legend, Swatch::Block)
}
