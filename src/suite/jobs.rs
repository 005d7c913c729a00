//! `fixclf suite --jobs N`: the suite's runs as up to N concurrent `fixclf train` processes.
//! A batch-20 LSTM leaves most of a GPU idle, so several runs share it; each process is a
//! plain `fixclf train` of the run's resolved config (written to `<runs>/.jobs/<run>.toml`,
//! its console output to `<runs>/.jobs/<run>.log`), so it checkpoints, resumes and stops
//! on a signal exactly as a run trained alone. Ctrl-C reaches every process of the group:
//! each saves its checkpoint and the suite stops with its resume command.
use crate::config::Config;
use crate::error::Signal;
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A run the suite has to train (or resume).
pub struct Job {
    pub name: String,
    pub cfg: Config,
    pub resume: bool,
}

/// How the processes ended, when not all well.
pub enum JobsOutcome {
    Done,
    Interrupted(Signal),
}

struct Running {
    name: String,
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// The folder of the processes' configs and logs, beside the run folders.
pub fn jobs_dir(jobs: &[Job]) -> Option<PathBuf> {
    let run = jobs.first()?.cfg.run_dir();
    Some(run.parent().unwrap_or(Path::new(".")).join(".jobs"))
}

/// Trains `jobs` with at most `parallel` processes at a time; returns when all ended. A
/// failed run does not stop the others; the error names every failed run and its log.
pub fn run_jobs(jobs: Vec<Job>, parallel: usize) -> Result<JobsOutcome> {
    let Some(dir) = jobs_dir(&jobs) else {
        return Ok(JobsOutcome::Done);
    };
    std::fs::create_dir_all(&dir).at(&dir)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("the fixclf executable", e))?;
    let mut queue = jobs.into_iter();
    let mut running: Vec<Running> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut signal = None;
    loop {
        while signal.is_none() && running.len() < parallel.max(1) {
            let Some(job) = queue.next() else { break };
            running.push(spawn(&exe, &dir, job)?);
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        signal = signal.or_else(crate::interrupt::requested);
        let mut i = 0;
        while i < running.len() {
            let Some(status) = running[i].child.try_wait().at(&running[i].log)? else {
                i += 1;
                continue;
            };
            let r = running.remove(i);
            let secs = r.started.elapsed().as_secs_f64();
            match status.code() {
                Some(0) => println!("| run {}: finished in {:.1} min", r.name, secs / 60.0),
                Some(130) | Some(143) => {
                    println!("| run {}: stopped by a signal, checkpoint kept", r.name);
                    signal = signal.or(Some(if status.code() == Some(143) {
                        Signal::TERM
                    } else {
                        Signal::INT
                    }));
                }
                _ => {
                    let why = last_line(&r.log);
                    println!("| run {}: failed: {why}", r.name);
                    failed.push(format!(
                        "run {} failed ({why}; log {})",
                        r.name,
                        r.log.display()
                    ));
                }
            }
        }
    }
    if let Some(s) = signal {
        return Ok(JobsOutcome::Interrupted(s));
    }
    if !failed.is_empty() {
        return Err(Error::arg("suite --jobs", failed.join("; ")));
    }
    Ok(JobsOutcome::Done)
}

fn spawn(exe: &Path, dir: &Path, job: Job) -> Result<Running> {
    let cfg_file = dir.join(format!("{}.toml", job.name));
    crate::fsutil::write_bytes_atomic(&cfg_file, job.cfg.to_toml().as_bytes())?;
    let log = dir.join(format!("{}.log", job.name));
    let out = std::fs::File::create(&log).at(&log)?;
    let err = out.try_clone().at(&log)?;
    let child = Command::new(exe)
        .arg("train")
        .arg("--config")
        .arg(&cfg_file)
        .arg(if job.resume { "--resume" } else { "--force" })
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::io(exe, e))?;
    println!(
        "| run {}: {} in process {} (log {})",
        job.name,
        if job.resume { "resuming" } else { "training" },
        child.id(),
        log.display()
    );
    Ok(Running {
        name: job.name,
        child,
        log,
        started: Instant::now(),
    })
}

/// The last non-empty line of a log (a failed run's one-line error).
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no output".into())
}
