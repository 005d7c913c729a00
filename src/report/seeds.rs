//! Runs of one experiment under several seeds (a suite's `seeds`: folders `<run>-seed<s>`):
//! the mean and spread of the test result over the seeds, and the gap to the learned
//! classifier paired seed by seed. One seed's gap of a few tenths of a point says little
//! until the spread between seeds is known.
use super::cells::{csv_cell, fmt_f, md_escape, optf, short};
use super::RunRow;
use crate::stats::mean_std;
use serde::Serialize;

/// The runs of one experiment over its seeds (finished runs only).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeedGroup {
    /// The run name without its `-seed<s>` suffix.
    pub group: String,
    pub task: String,
    pub model: String,
    pub data: String,
    pub mode: String,
    pub seeds: Vec<u64>,
    /// The test result of each seed, in the order of `seeds`: accuracy in percent (image
    /// runs) or perplexity (language models).
    pub test: Vec<f64>,
    pub test_mean: f64,
    /// Sample standard deviation (n - 1) over the seeds.
    pub test_std: f64,
    /// Test result minus the learned classifier's of the same model, data and seed
    /// (percentage points or perplexity), over the seeds both have; `None` for the learned
    /// group itself or without one.
    pub delta_mean: Option<f64>,
    pub delta_std: Option<f64>,
    pub delta_pairs: usize,
}

/// The name without the `-seed<seed>` suffix, when it has it.
pub fn group_name(run: &str, seed: u64) -> String {
    run.strip_suffix(&format!("-seed{seed}"))
        .unwrap_or(run)
        .to_string()
}

/// The test result a group averages: accuracy in percent, or perplexity.
fn test_of(r: &RunRow) -> Option<f64> {
    if r.is_image() {
        r.test_acc.map(|a| 100.0 * a)
    } else {
        r.test_ppl
    }
}

/// The groups of two or more finished runs (by group name, model, data and mode), in the
/// order of their first run.
pub fn groups(runs: &[RunRow]) -> Vec<SeedGroup> {
    let mut out: Vec<SeedGroup> = Vec::new();
    for r in runs.iter().filter(|r| r.status == "finished") {
        let Some(test) = test_of(r) else { continue };
        let same = |g: &SeedGroup| {
            g.group == r.group && g.model == r.model && g.data == r.data && g.mode == r.mode
        };
        match out.iter_mut().find(|g| same(g)) {
            Some(g) => {
                g.seeds.push(r.seed);
                g.test.push(test);
            }
            None => out.push(SeedGroup {
                group: r.group.clone(),
                task: r.task.clone(),
                model: r.model.clone(),
                data: r.data.clone(),
                mode: r.mode.clone(),
                seeds: vec![r.seed],
                test: vec![test],
                test_mean: f64::NAN,
                test_std: f64::NAN,
                delta_mean: None,
                delta_std: None,
                delta_pairs: 0,
            }),
        }
    }
    out.retain(|g| g.seeds.len() > 1);
    for g in &mut out {
        (g.test_mean, g.test_std) = mean_std(&g.test);
    }
    let learned: Vec<SeedGroup> = out
        .iter()
        .filter(|g| g.mode == "learned")
        .cloned()
        .collect();
    for g in out.iter_mut().filter(|g| g.mode != "learned") {
        let Some(base) = learned
            .iter()
            .find(|l| l.model == g.model && l.data == g.data)
        else {
            continue;
        };
        let deltas: Vec<f64> = g
            .seeds
            .iter()
            .zip(&g.test)
            .filter_map(|(s, t)| {
                let i = base.seeds.iter().position(|b| b == s)?;
                Some(t - base.test[i])
            })
            .collect();
        if !deltas.is_empty() {
            let (m, s) = mean_std(&deltas);
            g.delta_mean = Some(m);
            g.delta_std = Some(s).filter(|s| s.is_finite());
            g.delta_pairs = deltas.len();
        }
    }
    out
}

/// The markdown section over seeds (empty without groups).
pub fn markdown(groups: &[SeedGroup]) -> String {
    if groups.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\nOver seeds (finished runs; mean ± sample standard deviation; the gap to the learned \
         classifier is taken seed by seed, then averaged):\n\n\
         | run | model | mode | seeds | test | vs learned | per seed |\n\
         |---|---|---|--:|--:|--:|---|\n",
    );
    for g in groups {
        let (unit, digits) = if g.task == "vision" {
            (" %", 2)
        } else {
            (" ppl", 2)
        };
        let delta = match (g.delta_mean, g.delta_std) {
            (Some(m), Some(s)) => format!("{m:+.digits$} ± {s:.digits$} ({} seeds)", g.delta_pairs),
            (Some(m), None) => format!("{m:+.digits$} (1 seed)"),
            _ => "–".into(),
        };
        let per_seed: Vec<String> = g
            .seeds
            .iter()
            .zip(&g.test)
            .map(|(s, t)| format!("{s}: {t:.digits$}"))
            .collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} ± {}{unit} | {delta} | {} |\n",
            md_escape(&g.group),
            g.model,
            g.mode,
            g.seeds.len(),
            fmt_f(Some(g.test_mean), digits),
            fmt_f(Some(g.test_std), digits),
            per_seed.join(", "),
        ));
    }
    md
}

/// `results-seeds.csv`: a row per group; `test_*` and `delta_*` in percent (image runs) or
/// perplexity (language models), `seeds` and `test` joined by spaces.
pub fn csv(groups: &[SeedGroup]) -> String {
    let mut out = String::from(
        "group,task,model,data,mode,n_seeds,test_mean,test_std,delta_mean,delta_std,\
         delta_pairs,seeds,test\n",
    );
    for g in groups {
        let join = |v: Vec<String>| v.join(" ");
        let cells = [
            csv_cell(&g.group),
            csv_cell(&g.task),
            csv_cell(&g.model),
            csv_cell(&g.data),
            csv_cell(&g.mode),
            g.seeds.len().to_string(),
            optf(Some(g.test_mean)),
            optf(Some(g.test_std)),
            optf(g.delta_mean),
            optf(g.delta_std),
            g.delta_pairs.to_string(),
            join(g.seeds.iter().map(|s| s.to_string()).collect()),
            join(g.test.iter().map(|t| short(*t)).collect()),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, mode: &str, seed: u64, acc: f64) -> RunRow {
        let mut r = super::super::testing::image_row(run, mode);
        r.seed = seed;
        r.group = group_name(run, seed);
        r.test_acc = Some(acc);
        r
    }

    #[test]
    fn group_names_drop_the_seed_suffix_of_their_own_seed() {
        assert_eq!(group_name("learned-seed3", 3), "learned");
        assert_eq!(group_name("learned-seed3", 4), "learned-seed3");
        assert_eq!(group_name("learned", 3), "learned");
    }

    /// Means, sample deviations and the gap paired seed by seed, by hand.
    #[test]
    fn groups_average_over_seeds_and_pair_the_gap() {
        let runs = vec![
            row("learned-seed1", "learned", 1, 0.80),
            row("learned-seed2", "learned", 2, 0.90),
            row("fixed-seed1", "fixed-orthogonal", 1, 0.79),
            row("fixed-seed2", "fixed-orthogonal", 2, 0.87),
            row("fixed-seed3", "fixed-orthogonal", 3, 0.70),
            row("single", "fixed-hadamard", 1111, 0.5),
        ];
        let g = groups(&runs);
        assert_eq!(g.len(), 2, "a run of one seed is no group");
        assert_eq!(
            (g[0].group.as_str(), g[0].seeds.as_slice()),
            ("learned", &[1, 2][..])
        );
        assert!((g[0].test_mean - 85.0).abs() < 1e-9);
        assert!((g[0].test_std - 50f64.sqrt()).abs() < 1e-9);
        assert_eq!(g[0].delta_mean, None);
        // Seeds 1 and 2 have a learned run: gaps -1 and -3 points (seed 3 has no pair).
        assert_eq!(g[1].delta_pairs, 2);
        assert!((g[1].delta_mean.unwrap() + 2.0).abs() < 1e-9);
        assert!((g[1].delta_std.unwrap() - 2f64.sqrt()).abs() < 1e-9);
        let md = markdown(&g);
        assert!(md.contains("| fixed | small-cnn | fixed-orthogonal | 3 | 78.67 ± 8.50 % | -2.00 ± 1.41 (2 seeds) | 1: 79.00, 2: 87.00, 3: 70.00 |"), "{md}");
        let csv = csv(&g);
        assert_eq!(csv.lines().count(), 3);
        assert!(
            csv.lines().nth(2).unwrap().ends_with(",2,1 2 3,79 87 70"),
            "{csv}"
        );
        assert!(markdown(&[]).is_empty());
    }
}
