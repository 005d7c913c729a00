//! The report as text: `results.md`, `results.csv` and `results.json`.
use super::cells::{
    csv_cell, fmt_count, fmt_duration, fmt_f, fmt_millions, fmt_params, md_escape, opt,
};
use super::{ReportKind, ReportTable, RunRow, Setup, CSV_COLUMNS, IMAGE_CSV_COLUMNS};

/// Values joined by ` / ` (the distinct values of a setup field).
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
    fn setup_lists_join_their_values() {
        assert_eq!(join(&[200, 400]), "200 / 400");
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
