//! The report as text: `results.md`, `results.csv` and `results.json`.
use super::load::finite;
use super::{ReportKind, ReportTable, RunRow, Setup, CSV_COLUMNS, IMAGE_CSV_COLUMNS};

pub(super) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A number for the CSV: empty when missing or not finite.
pub(super) fn optf(v: Option<f64>) -> String {
    v.and_then(finite)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn fmt_millions(n: Option<i64>) -> String {
    n.map(|n| format!("{:.2}", n as f64 / 1e6))
        .unwrap_or_else(|| "–".into())
}

pub(super) fn fmt_f(v: Option<f64>, decimals: usize) -> String {
    v.and_then(finite)
        .map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "–".into())
}

/// A count with a unit prefix: 950, 12.3 k, 2.09 M, 1.10 G.
fn fmt_count(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Seconds as `12.3 s`, `4m 05s` or `2h 03m`.
fn fmt_duration(s: Option<f64>) -> String {
    let Some(s) = s.and_then(finite) else {
        return "–".into();
    };
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let t = s.round() as u64;
        format!("{}m {:02}s", t / 60, t % 60)
    } else {
        let t = (s / 60.0).round() as u64;
        format!("{}h {:02}m", t / 60, t % 60)
    }
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Values with 0 written as `zero` (0 means "all" or "default" in the config).
fn join_or(v: &[impl ToString + PartialEq + Default], zero: &str) -> String {
    v.iter()
        .map(|x| {
            if *x == Default::default() {
                zero.to_string()
            } else {
                x.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

pub(super) fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The setup paragraph of `results.md` (headed `Scale.`: the size of the experiment).
pub fn setup_paragraph(s: &Setup) -> String {
    if s.image_runs > 0 && s.image_runs == s.runs {
        return image_setup_paragraph(s);
    }
    let limit = if s.train_tokens_limit.iter().all(|&n| n == 0) {
        "all training tokens (data.train_tokens = 0)".to_string()
    } else {
        let v: Vec<String> = s
            .train_tokens_limit
            .iter()
            .map(|&n| {
                if n == 0 {
                    "all".into()
                } else {
                    fmt_count(n as f64)
                }
            })
            .collect();
        format!(
            "the first {} training tokens (data.train_tokens)",
            v.join(" / ")
        )
    };
    let trained: Vec<u64> = s.train_tokens_trained.iter().flatten().copied().collect();
    let trained = match (trained.iter().min(), trained.iter().max()) {
        (Some(&lo), Some(&hi)) if lo == hi => format!("{} tokens", fmt_count(lo as f64)),
        (Some(&lo), Some(&hi)) => {
            format!(
                "{} to {} tokens",
                fmt_count(lo as f64),
                fmt_count(hi as f64)
            )
        }
        _ => "no tokens yet".into(),
    };
    let vocab = if s.vocab.is_empty() {
        String::new()
    } else {
        format!(" (vocabulary {})", join(&s.vocab))
    };
    let steps = if s.max_steps_per_epoch.iter().all(|&n| n == 0) {
        String::new()
    } else {
        format!(
            ", at most {} steps per epoch",
            join_or(&s.max_steps_per_epoch, "all")
        )
    };
    format!(
        "**Scale.** {} run{} on corpus `{}`{vocab}, using {limit}; tokens actually trained \
         (all epochs): {trained}. Model: embedding {}, hidden {}, {} LSTM layer(s). Optimizer \
         {} (lr {}), {} epoch(s) planned{steps}, batch {}, BPTT {}. Device {}, {} thread(s).",
        s.runs,
        if s.runs == 1 { "" } else { "s" },
        s.corpus.join("`, `"),
        join(&s.emb_size),
        join(&s.hidden_size),
        join(&s.layers),
        s.optimizer.join(" / "),
        join(&s.lr),
        join(&s.epochs),
        join(&s.batch_size),
        join(&s.bptt),
        s.device.join(" / "),
        join_or(&s.threads, "default"),
    )
}

/// The setup paragraph of a report over image-classification runs.
fn image_setup_paragraph(s: &Setup) -> String {
    let classes = if s.vocab.is_empty() {
        String::new()
    } else {
        format!(" ({} classes)", join(&s.vocab))
    };
    format!(
        "**Scale.** {} image run{} on `{}`{classes}; models {}. Optimizer {} (lr {}), {} \
         epoch(s) planned, batch {}. Device {}, {} thread(s).",
        s.runs,
        if s.runs == 1 { "" } else { "s" },
        s.corpus.join("`, `"),
        s.model.join(", "),
        s.optimizer.join(" / "),
        join(&s.lr),
        join(&s.epochs),
        join(&s.batch_size),
        s.device.join(" / "),
        join_or(&s.threads, "default"),
    )
}

/// The whole `results.md`: title, setup paragraph, the results table of each task, alpha of
/// the fixed runs, the plots.
pub fn render_markdown(t: &ReportTable) -> String {
    let mut md = format!("# {}\n\n{}\n\n", t.title, setup_paragraph(&t.setup));
    let (images, lms): (Vec<&RunRow>, Vec<&RunRow>) = t.runs.iter().partition(|r| r.is_image());
    if !lms.is_empty() {
        md.push_str(&lm_table(&lms));
    }
    if !images.is_empty() {
        if !lms.is_empty() {
            md.push('\n');
        }
        md.push_str(&image_table(&images));
    }
    let fixed: Vec<&RunRow> = t.runs.iter().filter(|r| r.is_fixed()).collect();
    if !fixed.is_empty() {
        md.push('\n');
        for r in fixed {
            md.push_str(&format!(
                "- {} ({}): final alpha {}\n",
                md_escape(&r.run),
                r.mode,
                fmt_f(r.final_alpha, 3)
            ));
        }
    }
    if t.runs.iter().any(|r| r.status != "finished") {
        md.push_str(
            "\nRuns marked unfinished have no summary.json yet: their numbers come from the \
             metrics logged so far (no test result).\n",
        );
    }
    md.push_str(&super::seeds::markdown(&t.seed_groups));
    md.push_str(&super::heads::markdown(t));
    md.push_str(&super::collapse::markdown(t));
    md.push_str(&format!(
        "\nPlots: {}.\n",
        t.kind
            .plots()
            .iter()
            .map(|p| format!("[{p}]({p}.png)"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md
}

/// A run's name in a table, with its status unless it finished.
fn run_cell(r: &RunRow) -> String {
    match r.status.as_str() {
        "finished" => md_escape(&r.run),
        other => format!("{} ({other})", md_escape(&r.run)),
    }
}

fn lm_table(rows: &[&RunRow]) -> String {
    let mut md = String::from(
        "| run | mode | params total (M) | trainable (M) | fixed (M) | removed (%) | best val ppl \
         | test ppl | epochs | wall time | s/epoch | train tokens/s | peak mem (MB) |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            run_cell(r),
            r.mode,
            fmt_millions(r.params_total),
            fmt_millions(r.params_trainable),
            fmt_millions(r.params_fixed),
            fmt_f(r.share_removed.map(|x| 100.0 * x), 1),
            fmt_f(r.best_val_ppl, 2),
            fmt_f(r.test_ppl, 2),
            opt(r.epochs),
            fmt_duration(r.wall_s),
            fmt_f(r.epoch_s, 1),
            fmt_f(r.train_tokens_per_s, 0),
            fmt_f(r.peak_rss_mb, 0),
        ));
    }
    md
}

/// Parameters in millions, with more digits for small networks (a CIFAR ResNet's 0.27 M).
fn fmt_params(n: Option<i64>) -> String {
    match n {
        Some(n) if n.abs() < 10_000_000 => format!("{:.3}", n as f64 / 1e6),
        n => fmt_millions(n),
    }
}

fn image_table(rows: &[&RunRow]) -> String {
    let pct = |v: Option<f64>| fmt_f(v.map(|x| 100.0 * x), 2);
    let mut md = String::from(
        "| run | model | mode | params total (M) | trainable (M) | fixed (M) | removed (%) \
         | best val acc (%) | test acc (%) | vs learned (points) | train acc (%) | epochs \
         | wall time | s/epoch | train images/s | peak mem (MB) |\n\
         |---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in rows {
        let delta = match r.delta_test_acc {
            Some(d) if r.mode != "learned" => format!("{:+.2}", 100.0 * d),
            _ => "–".into(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {delta} | {} | {} | {} | {} | {} | {} |\n",
            run_cell(r),
            r.model,
            r.mode,
            fmt_params(r.params_total),
            fmt_params(r.params_trainable),
            fmt_params(r.params_fixed),
            fmt_f(r.share_removed.map(|x| 100.0 * x), 2),
            pct(r.best_val_acc),
            pct(r.test_acc),
            pct(r.final_train_acc),
            opt(r.epochs),
            fmt_duration(r.wall_s),
            fmt_f(r.epoch_s, 1),
            fmt_f(r.train_images_per_s, 0),
            fmt_f(r.peak_rss_mb, 0),
        ));
    }
    md
}

pub(super) fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The whole `results.csv`: a header and one row per run.
pub fn render_csv(t: &ReportTable) -> String {
    let header: Vec<&str> = match (t.runs.first(), t.kind) {
        (Some(r), kind) => r.csv_cells(kind).iter().map(|c| c.0).collect(),
        (None, ReportKind::LanguageModel) => CSV_COLUMNS.to_vec(),
        (None, _) => IMAGE_CSV_COLUMNS.to_vec(),
    };
    let mut csv = header.join(",");
    csv.push('\n');
    for r in &t.runs {
        let cells: Vec<String> = r.csv_cells(t.kind).iter().map(|c| csv_cell(&c.1)).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}

/// The whole `results.json`: the table without the curves.
pub(super) fn render_json(t: &ReportTable) -> String {
    format!("{}\n", serde_json::to_string_pretty(t).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_formats() {
        assert_eq!(fmt_duration(Some(5.25)), "5.2 s");
        assert_eq!(fmt_duration(Some(245.0)), "4m 05s");
        assert_eq!(fmt_duration(Some(7380.0)), "2h 03m");
        assert_eq!(fmt_duration(Some(f64::NAN)), "–");
        assert_eq!(fmt_count(2_088_628.0), "2.09 M");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(optf(Some(f64::NAN)), "");
        assert_eq!(optf(Some(1.5)), "1.5");
        assert_eq!(join_or(&[0usize, 4], "default"), "default / 4");
    }

    #[test]
    fn setup_paragraph_lists_distinct_values() {
        let mut s = Setup {
            runs: 2,
            image_runs: 0,
            corpus: vec!["data/wikitext-2".into()],
            train_tokens_limit: vec![0],
            train_tokens_trained: vec![Some(2_000_000), Some(2_100_000)],
            emb_size: vec![200],
            hidden_size: vec![200],
            layers: vec![2],
            optimizer: vec!["sgd".into()],
            lr: vec![20.0],
            epochs: vec![40],
            max_steps_per_epoch: vec![0, 100],
            batch_size: vec![20],
            bptt: vec![35],
            device: vec!["Cpu".into()],
            threads: vec![0],
            vocab: vec![],
            model: vec!["lstm-2x200".into()],
        };
        let p = setup_paragraph(&s);
        assert!(p.starts_with("**Scale.** 2 runs on corpus `data/wikitext-2`, using all"));
        assert!(p.contains("2.00 M to 2.10 M tokens"), "{p}");
        assert!(p.contains("at most all / 100 steps per epoch"), "{p}");
        assert!(p.ends_with("Device Cpu, default thread(s)."), "{p}");
        // Image runs get their own paragraph, without the LM's corpus, BPTT or perplexity.
        s.image_runs = 2;
        s.corpus = vec!["fashion-mnist".into()];
        s.vocab = vec![10];
        s.model = vec!["small-cnn-32".into(), "resnet-cifar-20".into()];
        let p = setup_paragraph(&s);
        assert!(
            p.starts_with(
                "**Scale.** 2 image runs on `fashion-mnist` (10 classes); models small-cnn-32, \
                 resnet-cifar-20."
            ) && !p.contains("BPTT"),
            "{p}"
        );
    }
}
