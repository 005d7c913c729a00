//! The suite file: parsing, runs, seeds, names.
use super::*;

/// Every config shipped in `configs/` parses, resolves and validates.
#[test]
fn shipped_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut suites = 0;
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("vision")).unwrap());
    for entry in files {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("[[runs]]") {
            let suite = SuiteConfig::load(&path).unwrap();
            let origin = path.display().to_string();
            let cfgs = suite.run_configs(&origin, &[]).unwrap();
            assert_eq!(cfgs.len(), suite.runs.len());
            for job in &suite.embeddings {
                job.spec
                    .clone()
                    .with_default_threads()
                    .validate(33_278)
                    .unwrap();
            }
            suites += 1;
        } else {
            config::load(&path, &[]).unwrap();
        }
    }
    assert_eq!(suites, 12);
}

const BASE: &str = "[base]\nname = \"x\"\n[base.lm.data]\ndir = \"data\"\n";

fn suite(head: &str, runs: &str) -> Result<Vec<Config>> {
    let text = format!("{head}\n{BASE}{runs}");
    SuiteConfig::from_bytes(text.as_bytes(), "s.toml")?.run_configs("s.toml", &[])
}

/// A run's name is set as a value: quotes and spaces stay in the name, and the run
/// lands in the suite's runs folder.
#[test]
fn run_names_are_taken_as_they_are_written() {
    let cfgs = suite(
        "name = \"my suite\"\nruns_dir = \"out\"",
        "[[runs]]\nname = 'say \"hi\" = 1'\n",
    )
    .unwrap();
    assert_eq!(cfgs[0].name, "say \"hi\" = 1");
    assert_eq!(cfgs[0].runs_dir, Path::new("out/my suite"));
}

/// `..` as a suite or run name would put runs above their folder: refused, naming the
/// field, as names with a slash.
#[test]
fn names_that_leave_the_runs_folder_are_refused() {
    let ok = "name = \"s\"";
    for (head, runs, field) in [
        (
            "name = \"..\"",
            "[[runs]]\nname = \"a\"\n",
            "s.toml: field `name`:",
        ),
        (
            ok,
            "[[runs]]\nname = \"..\"\n",
            "s.toml: field `runs.name`:",
        ),
        (
            ok,
            "[[runs]]\nname = \"a/b\"\n",
            "s.toml: field `runs.name`:",
        ),
        (
            ok,
            "[[runs]]\nname = \"a\\nb\"\n",
            "s.toml: field `runs.name`:",
        ),
    ] {
        let msg = suite(head, runs).unwrap_err().to_string();
        assert!(msg.starts_with(field), "{msg}");
        assert!(msg.contains("is not a folder name"), "{msg}");
    }
}

/// A bad `set` entry of a run names the suite file and the run, not `--set`.
#[test]
fn a_bad_run_override_names_the_file_and_run() {
    let runs = "[[runs]]\nname = \"a\"\nset = [\"train.lr\"]\n";
    let msg = suite("name = \"s\"", runs).unwrap_err().to_string();
    assert!(
        msg.starts_with("s.toml: field `runs.set`: run `a`: "),
        "{msg}"
    );
    assert!(msg.contains("`train.lr` is not key=value"), "{msg}");
}

/// `seeds` trains each entry once per seed, named and seeded so; `--only` takes the
/// entry's name for all its seeds.
#[test]
fn seeds_expand_every_run() {
    let head = "name = \"s\"\nseeds = [7, 3]";
    let runs = "[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\nset = [\"train.lr=0.5\"]\n";
    let cfgs = suite(head, runs).unwrap();
    let got: Vec<(&str, u64)> = cfgs
        .iter()
        .map(|c| (c.name.as_str(), c.train.seed))
        .collect();
    assert_eq!(
        got,
        [
            ("a-seed7", 7),
            ("a-seed3", 3),
            ("b-seed7", 7),
            ("b-seed3", 3)
        ]
    );
    assert_eq!(cfgs[3].train.lr, 0.5);
    let text = format!("{head}\n{BASE}{runs}");
    let s = SuiteConfig::from_bytes(text.as_bytes(), "s.toml").unwrap();
    let picked: Vec<&str> = s
        .runs
        .iter()
        .filter(|r| r.is_named("b"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(picked, ["b-seed7", "b-seed3"]);
    assert!(s.runs.iter().filter(|r| r.is_named("a-seed3")).count() == 1);
    // A seed twice, or a run that sets its own seed as well: refused, naming the field.
    let msg = suite("name = \"s\"\nseeds = [1, 1]", runs)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("s.toml: field `seeds`: seed 1 appears twice"),
        "{msg}"
    );
    let runs = "[[runs]]\nname = \"a\"\nset = [\"train.seed = 5\"]\n";
    let msg = suite(head, runs).unwrap_err().to_string();
    assert!(
        msg.starts_with("s.toml: field `runs.set`: run `a` sets train.seed"),
        "{msg}"
    );
    let msg = s
        .run_configs("s.toml", &["train.seed=9".into()])
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("--set: train.seed: s.toml gives every run its seeds"),
        "{msg}"
    );
}

#[test]
fn not_utf8_or_not_toml_names_the_file_and_line() {
    let msg = SuiteConfig::from_bytes(b"name = \"s\"\n\xff", "s.toml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("s.toml: field `line 2`: not UTF-8"),
        "{msg}"
    );
    let msg = SuiteConfig::from_bytes(b"name = ", "s.toml")
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("s.toml: "), "{msg}");
}
