//! `fixclf suite`: one command for a whole comparison. A suite file names a base run config
//! and per-run overrides, and the embeddings the fixed pretrained modes need. The suite
//! computes missing or stale embeddings, trains and evaluates every run (skipping finished
//! ones, resuming an interrupted one from its last checkpoint), then writes the report.
//! Under a launch (torchrun's variables) every rank runs the same runs, each data-parallel,
//! and rank 0 alone decides and writes ([`launch`]).
use crate::config::{self, Config, TaskConfig};
use crate::embed::{compute_if_stale, CorpusSpec, EmbedSpec};
use crate::engine::{RunDir, TrainOptions};
use crate::error::{Error, IoContext, Result};
use crate::tasks::train;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub mod jobs;
mod launch;

use launch::RunStart;

/// A suite file (`configs/*.toml` with `[base]` and `[[runs]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// Suite name: runs go to `<runs_dir>/<name>/<run>`, the report to `<reports_dir>/<name>`.
    pub name: String,
    /// Title of the report.
    #[serde(default)]
    pub title: String,
    #[serde(default = "default_runs_dir")]
    pub runs_dir: PathBuf,
    #[serde(default = "default_reports_dir")]
    pub reports_dir: PathBuf,
    /// Embeddings to compute (or reuse) before training.
    #[serde(default)]
    pub embeddings: Vec<EmbeddingJob>,
    /// The run config every run starts from (same fields as a run config file).
    #[serde(default)]
    pub base: toml::Table,
    /// Train every run once per seed (its `train.seed`), as `<run>-seed<seed>`: the report
    /// adds the mean and spread over the seeds. Empty: once, with the base config's seed.
    #[serde(default)]
    pub seeds: Vec<u64>,
    pub runs: Vec<SuiteRun>,
}

fn default_runs_dir() -> PathBuf {
    "runs".into()
}
fn default_reports_dir() -> PathBuf {
    "reports".into()
}

/// One embedding to precompute: `out` (`embeddings/NAME`, giving NAME.npy/.vocab/.json),
/// the corpus (default: the base config's training file), and the method's parameters
/// (`kind = "word2vec"` or `"pmi"` plus its fields; `threads = 0`: all cores).
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingJob {
    pub out: PathBuf,
    #[serde(default)]
    pub corpus: Option<PathBuf>,
    #[serde(flatten)]
    pub spec: EmbedSpec,
}

/// One run: a name and `key=value` overrides of the base config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteRun {
    pub name: String,
    #[serde(default)]
    pub set: Vec<String>,
    /// The `[[runs]]` entry this run is one seed of (`seeds`), by name.
    #[serde(skip)]
    pub group: Option<String>,
}

impl SuiteRun {
    /// Whether `--only name` picks this run: its own name, or its entry's (every seed).
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.group.as_deref() == Some(name)
    }
}

impl SuiteConfig {
    pub fn load(path: &Path) -> Result<SuiteConfig> {
        let bytes = std::fs::read(path).at(path)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses a suite file's bytes (`origin` names the file in errors) and checks its runs.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<SuiteConfig> {
        let value = config::parse_toml_bytes(bytes, origin)?;
        let suite: SuiteConfig = serde_path_to_error::deserialize(value)
            .map_err(|e| Error::config(origin, e.path().to_string(), e.inner().to_string()))?;
        config::check_folder_name(origin, "name", &suite.name)?;
        if suite.runs.is_empty() {
            return Err(Error::config(
                origin,
                "runs",
                "a suite needs at least one [[runs]] entry",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &suite.runs {
            config::check_folder_name(origin, "runs.name", &r.name)?;
            if !seen.insert(r.name.as_str()) {
                return Err(Error::config(
                    origin,
                    "runs.name",
                    format!("run `{}` appears twice", r.name),
                ));
            }
        }
        suite.expand_seeds(origin)
    }

    /// One run per `[[runs]]` entry and seed, `<run>-seed<seed>` with `train.seed` set.
    fn expand_seeds(mut self, origin: &str) -> Result<SuiteConfig> {
        if self.seeds.is_empty() {
            return Ok(self);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(s) = self.seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(Error::config(
                origin,
                "seeds",
                format!("seed {s} appears twice"),
            ));
        }
        if let Some(r) = self
            .runs
            .iter()
            .find(|r| r.set.iter().any(|s| sets_seed(s)))
        {
            return Err(Error::config(
                origin,
                "runs.set",
                format!(
                    "run `{}` sets train.seed while `seeds` gives every run its seeds: \
                     remove one of the two",
                    r.name
                ),
            ));
        }
        let seeds = self.seeds.clone();
        self.runs = std::mem::take(&mut self.runs)
            .into_iter()
            .flat_map(|r| {
                seeds.iter().map(move |seed| {
                    let mut set = r.set.clone();
                    set.push(format!("train.seed={seed}"));
                    SuiteRun {
                        name: format!("{}-seed{seed}", r.name),
                        set,
                        group: Some(r.name.clone()),
                    }
                })
            })
            .collect();
        Ok(self)
    }

    /// The resolved config of every run (validated), in order.
    pub fn run_configs(&self, origin: &str, overrides: &[String]) -> Result<Vec<Config>> {
        if !self.seeds.is_empty() && overrides.iter().any(|s| sets_seed(s)) {
            return Err(Error::arg(
                "--set",
                format!(
                    "train.seed: {origin} gives every run its seeds (`seeds`); change them \
                     there"
                ),
            ));
        }
        self.runs
            .iter()
            .map(|r| {
                let mut value = toml::Value::Table(self.base.clone());
                config::apply_overrides(&mut value, overrides)?;
                // The run's own overrides are the suite file's: say so, not `--set`.
                config::apply_overrides(&mut value, &r.set).map_err(|e| match e {
                    Error::Arg { msg, .. } => {
                        Error::config(origin, "runs.set", format!("run `{}`: {msg}", r.name))
                    }
                    other => other,
                })?;
                // Set as values, not as `key=value` text: a name may hold any character.
                if let Some(table) = value.as_table_mut() {
                    table.insert("name".into(), r.name.clone().into());
                    let runs_dir = self.runs_dir.join(&self.name);
                    table.insert("runs_dir".into(), runs_dir.display().to_string().into());
                }
                config::from_value(value, &format!("{origin} [run {}]", r.name))
            })
            .collect()
    }
}

/// Whether a `key=value` override sets `train.seed`.
fn sets_seed(set: &str) -> bool {
    set.split_once('=').map(|(k, _)| k.trim()) == Some("train.seed")
}

/// Options of a suite invocation.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    /// Overrides applied to the base config of every run.
    pub overrides: Vec<String>,
    /// Only these runs (by name); empty: all.
    pub only: Vec<String>,
    pub quiet: bool,
    /// Runs trained at once, each in its own `fixclf train` process (1: one after the
    /// other, in this process).
    pub jobs: usize,
}

/// Runs a suite; returns the run folders and the report folder.
pub fn run_suite(path: &Path, opts: &SuiteOptions) -> Result<(Vec<PathBuf>, PathBuf)> {
    let suite = SuiteConfig::load(path)?;
    let origin = path.display().to_string();
    // Resolve and validate every run before spending any time.
    let configs = suite.run_configs(&origin, &opts.overrides)?;
    for name in &opts.only {
        if !suite.runs.iter().any(|r| r.is_named(name)) {
            return Err(Error::arg(
                "--only",
                format!("no run named `{name}` in {origin}"),
            ));
        }
    }
    for job in &suite.embeddings {
        // The vocabulary size is not known yet; the dimension is checked against it later.
        job.spec
            .clone()
            .with_default_threads()
            .validate(usize::MAX)
            .map_err(|e| {
                Error::config(
                    &origin,
                    format!("embeddings ({})", job.out.display()),
                    e.to_string(),
                )
            })?;
    }
    let ranks = launch::join(&configs, opts)?;
    // Rank 0 (or the process alone) talks and writes the report.
    let writes = crate::distributed::is_writer();
    let start = std::time::Instant::now();
    let dirs: Vec<PathBuf> = configs.iter().map(|c| c.run_dir()).collect();
    if let Err(e) = compute_and_train(&suite, &configs, path, opts) {
        if !writes {
            return Err(e);
        }
        // Whatever stopped the suite (a signal, a failed run), the runs so far get their
        // report; the error stays the one line it was.
        match write_suite_report(&suite, &dirs) {
            Ok(Some((out, _))) => println!("| report of the runs so far in {}", out.display()),
            Ok(None) => {}
            Err(report_err) => println!("| no report of the runs so far: {report_err}"),
        }
        return Err(e);
    }
    if !writes {
        return Ok((dirs, suite.reports_dir.join(&suite.name)));
    }
    let (out, table) = write_suite_report(&suite, &dirs)?
        .ok_or_else(|| Error::arg("suite", "no run folder to report on"))?;
    println!("{}", crate::report::render_markdown(&table));
    println!(
        "| suite {} done in {:.1} min{}; report in {}",
        suite.name,
        start.elapsed().as_secs_f64() / 60.0,
        ranks.map_or(String::new(), |g| format!(" on {} ranks", g.world_size)),
        out.display()
    );
    Ok((dirs, out))
}

/// The suite's word embeddings, computed where missing or stale, from the corpus and
/// vocabulary of the language-model base config `base`.
fn compute_embeddings(
    suite: &SuiteConfig,
    base: &Config,
    path: &Path,
    opts: &SuiteOptions,
) -> Result<()> {
    // The LM's vocabulary (tokenizer.json) fixes the embeddings' rows: loading the
    // corpus builds and saves it when missing (and fills the token caches the runs use).
    let TaskConfig::Lm(lm) = &base.task else {
        return Err(Error::config(
            path.display().to_string(),
            "embeddings",
            "word embeddings need a language-model base ([base.lm]); remove [[embeddings]] \
             from an image suite",
        ));
    };
    crate::lm::task::load_corpus(lm)?;
    let tokenizer = lm.data.tokenizer_path();
    for job in &suite.embeddings {
        let corpus = job
            .corpus
            .clone()
            .unwrap_or_else(|| lm.data.dir.join("train.txt"));
        let spec = CorpusSpec {
            corpus,
            tokenizer: Some(tokenizer.clone()),
        };
        if let Some(dir) = job.out.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let rep = compute_if_stale(&job.spec.clone().with_default_threads(), &spec, &job.out)
            .map_err(|e| suite_interrupted(e, path, opts))?;
        println!(
            "| embeddings {}: {} ({:.1}s)",
            job.out.display(),
            if rep.reused {
                "up to date, reused"
            } else {
                "computed"
            },
            rep.seconds
        );
    }
    Ok(())
}

/// The embeddings, then every run not finished yet (one after the other in this process,
/// or `--jobs` processes at once).
fn compute_and_train(
    suite: &SuiteConfig,
    configs: &[Config],
    path: &Path,
    opts: &SuiteOptions,
) -> Result<()> {
    if !suite.embeddings.is_empty() {
        // Under a launch rank 0 computes them while the others wait; the runs then load
        // them on every rank.
        crate::distributed::rank0::work("computing the suite's embeddings", || {
            compute_embeddings(suite, &configs[0], path, opts)
        })
        .map_err(|e| suite_interrupted(e, path, opts))?;
    }
    let talks = crate::distributed::is_writer();
    let mut pending = Vec::new();
    for (run, cfg) in suite.runs.iter().zip(configs) {
        let dir = RunDir::new(cfg.run_dir());
        if !opts.only.is_empty() && !opts.only.iter().any(|n| run.is_named(n)) {
            continue;
        }
        // A signal after the last run finished, or while the embeddings were reused (under
        // a launch: one that reached any rank, so that all of them stop here).
        if let Some(signal) = crate::distributed::sync::stop_requested()? {
            return Err(Error::interrupted(
                signal,
                format!(
                    "suite {}: interrupted by {signal} before run {}",
                    suite.name, run.name
                ),
                resume_hint(path, opts),
            ));
        }
        let start = launch::run_start(&run.name, &dir)?;
        if start == RunStart::Finished {
            if talks {
                println!(
                    "| run {}: finished, reused ({})",
                    run.name,
                    dir.path.display()
                );
            }
            continue;
        }
        let resume = start == RunStart::Resume;
        if opts.jobs > 1 {
            pending.push(jobs::Job {
                name: run.name.clone(),
                cfg: cfg.clone(),
                resume,
            });
            continue;
        }
        if talks {
            println!(
                "| run {}: {} ({})",
                run.name,
                if resume { "resuming" } else { "training" },
                dir.path.display()
            );
        }
        train(
            cfg,
            &TrainOptions {
                resume,
                // A folder without a checkpoint holds nothing worth keeping.
                force: !resume,
                quiet: opts.quiet,
            },
        )
        .map_err(|e| suite_interrupted(e, path, opts))?;
    }
    if let jobs::JobsOutcome::Interrupted(signal) = jobs::run_jobs(pending, opts.jobs)? {
        return Err(Error::interrupted(
            signal,
            format!(
                "suite {}: interrupted by {signal}; every run kept its checkpoint",
                suite.name
            ),
            resume_hint(path, opts),
        ));
    }
    Ok(())
}

/// The report of the suite's runs that have a folder (`--only` and a stop leave some
/// without), in `<reports_dir>/<name>`; `None` when no run has one yet.
fn write_suite_report(
    suite: &SuiteConfig,
    dirs: &[PathBuf],
) -> Result<Option<(PathBuf, crate::report::ReportTable)>> {
    let existing: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| RunDir::new(d).is_run())
        .cloned()
        .collect();
    if existing.is_empty() {
        return Ok(None);
    }
    let title = if suite.title.is_empty() {
        suite.name.clone()
    } else {
        suite.title.clone()
    };
    let out = suite.reports_dir.join(&suite.name);
    let table = crate::report::write_report(&existing, &out, &title)?;
    Ok(Some((out, table)))
}

/// The command that continues a suite: the same suite file, overrides and runs (finished
/// runs are reused, unfinished ones resumed, embeddings recomputed only when missing).
fn resume_hint(path: &Path, opts: &SuiteOptions) -> String {
    use crate::interrupt::shell_quote;
    let mut cmd = format!(
        "resume with: fixclf suite --config {}",
        shell_quote(&path.display().to_string())
    );
    for o in &opts.overrides {
        cmd.push_str(&format!(" --set {}", shell_quote(o)));
    }
    for n in &opts.only {
        cmd.push_str(&format!(" --only {}", shell_quote(n)));
    }
    if opts.jobs > 1 {
        cmd.push_str(&format!(" --jobs {}", opts.jobs));
    }
    if let Some(group) = crate::distributed::current() {
        cmd.push_str(&format!(
            ", launched as {} ranks again (torchrun or scripts/ranks.sh)",
            group.world_size
        ));
    }
    cmd
}

/// An interrupted run or embedding stops the suite, with the suite's resume command.
fn suite_interrupted(e: Error, path: &Path, opts: &SuiteOptions) -> Error {
    match e {
        Error::Interrupted { signal, what, .. } => {
            Error::interrupted(signal, what, resume_hint(path, opts))
        }
        e => e,
    }
}

#[cfg(test)]
mod tests;
