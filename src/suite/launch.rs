//! A suite under a launch (`torchrun ... fixclf suite`, `scripts/ranks.sh N suite ...`):
//! every rank runs the same runs in the same order, each of them data-parallel, and rank 0
//! alone looks at the run folders and embeddings, decides, and writes. Rank 0 decides for
//! each run whether it is finished (skipped), resumes or starts fresh and tells the others;
//! it computes stale embeddings while they wait; it writes the report. The process group
//! is built once, for the first run, and serves every run after it.
use super::SuiteOptions;
use crate::config::Config;
use crate::distributed::{self, rank0, sync, ProcessGroup};
use crate::engine::RunDir;
use crate::error::{Error, Result};

/// Joins the launch the environment describes, if any, for every run of the suite: the
/// group is built for the first run and must suit every other (same `[distributed]` and
/// device), and every rank must have the same suite. None for a process alone.
pub(super) fn join(
    configs: &[Config],
    opts: &SuiteOptions,
) -> Result<Option<&'static ProcessGroup>> {
    if distributed::Launch::from_env()?.is_none() {
        return Ok(None);
    }
    if opts.jobs > 1 {
        return Err(Error::arg(
            "--jobs",
            format!(
                "{} is refused under a launch (RANK and WORLD_SIZE are set): the ranks train \
                 the suite's runs one after the other, each on every rank; leave --jobs out",
                opts.jobs
            ),
        ));
    }
    let mut group = None;
    for cfg in configs {
        // The first builds the group; the others check that it suits them, before any run.
        group = crate::tasks::join_group(cfg)?.map(|(_, g)| g);
    }
    let Some(group) = group else {
        return Ok(None);
    };
    sync::check_same(
        group,
        "suite",
        suite_digest(configs, &opts.only),
        "launch every rank with the same suite file, --set and --only",
    )?;
    Ok(Some(group))
}

/// A digest of what every rank must share: the runs' configs (without the device, which
/// is the rank's own) and the runs picked.
fn suite_digest(configs: &[Config], only: &[String]) -> i64 {
    let mut text = String::new();
    for cfg in configs {
        let mut shared = cfg.clone();
        shared.train.device = String::new();
        text.push_str(&shared.to_toml());
        text.push('\0');
    }
    for name in only {
        text.push_str(name);
        text.push('\0');
    }
    sync::digest(text.as_bytes())
}

/// Where a run of the suite starts, as rank 0 found its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunStart {
    /// `summary.json`: nothing to train.
    Finished,
    /// `last.safetensors`: resume from it.
    Resume,
    /// Neither: train from the start (a folder without a checkpoint holds nothing worth
    /// keeping).
    Fresh,
}

impl RunStart {
    fn code(self) -> i64 {
        match self {
            RunStart::Finished => 0,
            RunStart::Resume => 1,
            RunStart::Fresh => 2,
        }
    }

    fn from_code(code: i64) -> Result<RunStart> {
        match code {
            0 => Ok(RunStart::Finished),
            1 => Ok(RunStart::Resume),
            2 => Ok(RunStart::Fresh),
            _ => Err(Error::distributed(
                distributed::rank(),
                "how a run starts",
                format!("rank 0 sent {code}, not 0-2: every rank must run the same fixclf"),
            )),
        }
    }

    fn of(dir: &RunDir) -> RunStart {
        if dir.is_finished() {
            RunStart::Finished
        } else if dir.has_last() {
            RunStart::Resume
        } else {
            RunStart::Fresh
        }
    }
}

/// How run `name` (folder `dir`) starts: rank 0 looks, every rank gets its answer (alone:
/// this process looks). Only rank 0 looks, so no rank sees a folder that rank 0 is
/// changing, and a run folder that is not on a file system every rank sees is found out
/// by the run itself (its resume is agreed on).
pub(super) fn run_start(name: &str, dir: &RunDir) -> Result<RunStart> {
    let code = rank0::choice(&format!("how run {name} starts"), || {
        Ok(RunStart::of(dir).code())
    })?;
    RunStart::from_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_start_survives_its_code() {
        for s in [RunStart::Finished, RunStart::Resume, RunStart::Fresh] {
            assert_eq!(RunStart::from_code(s.code()).unwrap(), s);
        }
        let e = RunStart::from_code(7).unwrap_err().to_string();
        assert!(e.contains("rank 0 sent 7"), "{e}");
    }

    #[test]
    fn a_folder_says_how_its_run_starts() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        assert_eq!(run_start("r", &run).unwrap(), RunStart::Fresh);
        run.create_fresh(false).unwrap();
        run.write_text("last.safetensors", "").unwrap();
        assert_eq!(run_start("r", &run).unwrap(), RunStart::Resume);
        run.write_text("summary.json", "{}").unwrap();
        assert_eq!(run_start("r", &run).unwrap(), RunStart::Finished);
    }

    /// The digest changes with any run's config and with `--only`, not with the device.
    #[test]
    fn the_suite_digest_covers_the_runs_and_only() {
        let text = "name = \"a\"\n[lm.data]\ndir = \"data\"\n";
        let a = crate::config::from_toml_str(text, "a.toml").unwrap();
        let mut b = a.clone();
        b.train.lr *= 2.0;
        let mut cuda = a.clone();
        cuda.train.device = "cuda:1".into();
        let d = suite_digest(std::slice::from_ref(&a), &[]);
        assert_eq!(d, suite_digest(&[cuda], &[]));
        assert_ne!(d, suite_digest(&[b], &[]));
        assert_ne!(d, suite_digest(std::slice::from_ref(&a), &["a".into()]));
        assert_ne!(d, suite_digest(&[a.clone(), a], &[]));
    }
}
