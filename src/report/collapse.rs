//! Neural collapse in the report: the last diagnostics of each run as columns of the row
//! (`nc1, nc2_equinorm, nc2_equiangular, nc3, ncc_acc`), a Markdown table, and the
//! `collapse` plot (NC1 on a log axis, NC2 and NC3 per epoch, one curve per run), written
//! only when some run has `collapse` events (image runs; see `crate::vision::collapse`).
use super::canvas::{render_with, PlotError};
use super::cells::{fmt_f, md_escape, optf};
use super::plot::draw_lines;
use super::ReportTable;
use crate::engine::Collapse;
use serde::Serialize;

/// The plot's name (`collapse.png`, `collapse.svg`).
pub const PLOT: &str = "collapse";
/// It has four charts: larger than the others.
const SIZE: (u32, u32) = (1280, 960);

/// The last diagnostics of a run, as cells of its row (all empty when it has none).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CollapseCells {
    /// The epoch they were measured after.
    pub nc_epoch: Option<usize>,
    pub nc1: Option<f64>,
    pub nc2_equinorm: Option<f64>,
    pub nc2_equiangular: Option<f64>,
    pub nc3: Option<f64>,
    pub ncc_acc: Option<f64>,
}

impl CollapseCells {
    pub fn of(c: Option<&Collapse>) -> Self {
        let Some(c) = c else {
            return Self::default();
        };
        let f = |x: f64| x.is_finite().then_some(x);
        Self {
            nc_epoch: Some(c.epoch),
            nc1: f(c.nc1),
            nc2_equinorm: f(c.nc2_equinorm),
            nc2_equiangular: f(c.nc2_equiangular),
            nc3: f(c.nc3),
            ncc_acc: f(c.ncc_acc),
        }
    }

    /// The CSV columns, always present (empty cells for a run without diagnostics), so that
    /// every row has the header's columns.
    pub fn csv_cells(&self) -> [(&'static str, String); 5] {
        [
            ("nc1", optf(self.nc1)),
            ("nc2_equinorm", optf(self.nc2_equinorm)),
            ("nc2_equiangular", optf(self.nc2_equiangular)),
            ("nc3", optf(self.nc3)),
            ("ncc_acc", optf(self.ncc_acc)),
        ]
    }
}

/// Whether any run has collapse diagnostics (then the table and the plot are written).
pub fn has_data(t: &ReportTable) -> bool {
    t.curves.iter().any(|c| !c.collapse.is_empty())
}

/// The Markdown section: a table of the runs' last diagnostics and a link to the plot;
/// empty when no run has any.
pub fn markdown(t: &ReportTable) -> String {
    if !has_data(t) {
        return String::new();
    }
    let mut md = String::from(
        "\n## Neural collapse (training features, last epoch)\n\n\
         NC1 = tr(Sw Sb^+)/K; NC2: coefficient of variation of the centred class means' \
         norms, and mean |cos + 1/(K-1)| of their angles; NC3 = ||W/||W|| - M/||M|| ||^2; \
         NCC: nearest-class-mean accuracy. All tend to 0 (NCC to the training accuracy) as \
         the features collapse; for fixed heads they are measured on the features before \
         the head's normalization. [collapse](collapse.png)\n\n\
         | run | mode | epoch | NC1 | NC2 equinorm | NC2 equiangular | NC3 | NCC acc |\n\
         |---|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in t.runs.iter().filter(|r| r.collapse.nc_epoch.is_some()) {
        let c = &r.collapse;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            md_escape(&r.run),
            r.mode,
            c.nc_epoch.map_or(String::new(), |e| e.to_string()),
            fmt_f(c.nc1, 4),
            fmt_f(c.nc2_equinorm, 4),
            fmt_f(c.nc2_equiangular, 4),
            fmt_f(c.nc3, 4),
            fmt_f(c.ncc_acc, 4),
        ));
    }
    md
}

type Pick = fn(&Collapse) -> f64;

/// The `collapse` plot as SVG text and PNG bytes: a 2 x 2 grid (NC1 on a log axis, NC2
/// equinorm, NC2 equiangularity, NC3) over epochs; a run keeps its color of the other plots.
pub(super) fn render(t: &ReportTable) -> Result<(String, Vec<u8>), PlotError> {
    render_with(SIZE, |root| {
        let charts: [(&str, &str, Pick, bool); 4] = [
            (
                "NC1: within / between class",
                "tr(Sw Sb^+)/K (log)",
                |c| c.nc1,
                true,
            ),
            (
                "NC2: equinorm",
                "std / mean of norms",
                |c| c.nc2_equinorm,
                false,
            ),
            (
                "NC2: equiangular",
                "mean |cos + 1/(K-1)|",
                |c| c.nc2_equiangular,
                false,
            ),
            (
                "NC3: classifier vs means",
                "||W - M||^2 (normalized)",
                |c| c.nc3,
                false,
            ),
        ];
        let areas = root.split_evenly((2, 2));
        for (area, (title, y, pick, log)) in areas.iter().zip(charts) {
            let series = super::series::of_runs(
                &t.curves,
                |c| {
                    c.collapse
                        .iter()
                        .map(|e| (e.epoch as f64, pick(e)))
                        .collect()
                },
                |c| !c.collapse.is_empty(),
            );
            draw_lines(
                area,
                title,
                ("epoch", y),
                &series,
                log,
                "no neural-collapse diagnostics in these runs",
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fake_run, png_pixels};
    use super::super::write_report;
    use crate::classifier::HeadMode;
    use crate::engine::METRICS_FILE;
    use serde_json::json;

    /// A run with `collapse` events gets the columns, the table and the plot; a resumed
    /// epoch's diagnostics replace the abandoned ones; a run without any has empty cells.
    #[test]
    fn collapse_columns_table_and_plot() {
        let dir = tempfile::tempdir().unwrap();
        let with = fake_run(dir.path(), "nc", HeadMode::FixedSimplex, 3, false);
        let without = fake_run(dir.path(), "plain", HeadMode::Learned, 3, false);
        // Image runs (neural collapse is measured on image runs only).
        for (run, mode) in [(&with, "fixed-simplex"), (&without, "learned")] {
            let cfg = format!(
                "name = \"x\"\n[vision.data]\ndataset = \"synthetic\"\n[head]\nmode = \"{mode}\"\n\
                 [train]\nepochs = 3\n"
            );
            std::fs::write(run.join(crate::engine::CONFIG_FILE), cfg).unwrap();
        }
        let path = with.join(METRICS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        // Drop fake_run's torn last line: the run goes on.
        let mut text = text[..=text.rfind('\n').unwrap()].to_string();
        let event = |epoch: usize, nc1: f64| {
            json!({"event": "collapse", "epoch": epoch, "nc1": nc1, "nc2_equinorm": 0.2,
                "nc2_equiangular": 0.1, "nc3": 0.4, "ncc_acc": 0.9, "classes": 10,
                "samples": 600})
        };
        for e in [event(1, 2.0), event(2, 0.5), event(3, 9.0)] {
            text.push_str(&format!("{e}\n"));
        }
        // Resumed at epoch 3: its diagnostics come again after its epoch line.
        text.push_str(&format!(
            "{}\n{}\n",
            json!({"event": "epoch", "epoch": 3, "step": 90, "val_loss": 5.9, "lr": 20.0,
                "epoch_s": 1.0, "elapsed_s": 1.0, "alpha": 10.0, "peak_rss_mb": 1.0}),
            event(3, 0.25)
        ));
        std::fs::write(&path, text).unwrap();
        let out = dir.path().join("r");
        let t = write_report(&[with, without.clone()], &out, "nc").unwrap();
        assert_eq!(t.curves[0].collapse.len(), 3);
        assert_eq!(t.curves[0].collapse[2].nc1, 0.25);
        assert_eq!(t.runs[0].collapse.nc1, Some(0.25));
        assert_eq!(t.runs[1].collapse, Default::default());
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].ends_with(",nc1,nc2_equinorm,nc2_equiangular,nc3,ncc_acc"));
        assert!(lines[1].ends_with(",0.25,0.2,0.1,0.4,0.9"), "{csv}");
        assert!(lines[2].ends_with(",,,,,"), "{csv}");
        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert!(md.contains("## Neural collapse (training features, last epoch)"));
        assert!(
            md.contains("| nc | fixed-simplex | 3 | 0.2500 | 0.2000 | 0.1000 | 0.4000 | 0.9000 |"),
            "{md}"
        );
        assert!(!md.contains("| plain |"), "{md}");
        let (size, pixels) = png_pixels(&std::fs::read(out.join("collapse.png")).unwrap());
        assert_eq!(size, super::SIZE);
        assert!(pixels.chunks(4).any(|p| p[..3].iter().all(|&c| c < 80)));
        assert!(out.join("collapse.svg").exists());
        // No run with diagnostics: no section, no plot.
        let out = dir.path().join("r2");
        write_report(&[without], &out, "plain").unwrap();
        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert!(!md.contains("Neural collapse") && !out.join("collapse.png").exists());
    }
}
