use super::*;

const LM: &str = "[lm]\n";

#[test]
fn defaults_are_the_paper_lm_recipe() {
    let c = from_toml_str(LM, "x.toml").unwrap();
    assert_eq!(c.train.lr, 20.0);
    assert_eq!(c.train.clip, 0.25);
    assert_eq!(c.train.batch_size, 20);
    assert_eq!(c.train.eval_batch_size, 10);
    let lm = lm_of(&c);
    assert_eq!(lm.bptt, 35);
    assert_eq!(lm.model.dropout_output, 0.5);
    assert_eq!(lm.model.hidden_size, 512);
    // Round trip through the resolved TOML.
    assert_eq!(from_toml_str(&c.to_toml(), "y").unwrap(), c);
    let e = from_toml_str("", "z.toml").unwrap_err().to_string();
    assert!(e.contains("z.toml") && e.contains("[lm]"), "{e}");
    let e = from_toml_str("[lm]\n[vision]\n", "z.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("one task"), "{e}");
}

#[test]
fn unknown_key_names_file_and_field() {
    let e = from_toml_str("[lm]\n[train]\nlrr = 3\n", "configs/a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("configs/a.toml") && e.contains("train.lrr") && e.contains("unknown field"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_field() {
    let e = from_toml_str("[lm.model]\nlayers = \"two\"\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lm.model.layers") && e.contains("invalid type"),
        "{e}"
    );
}

/// A bad enum value: the field named once (toml's message repeats the path), the choices.
#[test]
fn bad_variant_names_the_field_once() {
    let e = from_toml_str("[lm]\n[train]\nprecision = \"fp16\"\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(e.matches("train.precision").count(), 1, "{e}");
    assert!(e.contains("`fp32`, `tf32`, `bf16`"), "{e}");
}

#[test]
fn bad_values_name_the_field() {
    for (text, field) in [
        ("[lm.model]\nhidden_size = 0", "lm.model.hidden_size"),
        ("[lm.model]\nemb_size = -5", "lm.model.emb_size"),
        ("[lm]\n[train]\nbatch_size = 0", "train.batch_size"),
        ("[lm]\n[train]\nlr = -1.0", "train.lr"),
        ("[lm]\n[train]\nmomentum = 1.5", "train.momentum"),
        ("[lm]\n[train]\nnesterov = true", "train.nesterov"),
        (
            "[lm]\n[train]\nschedule = \"multi-step\"",
            "train.milestones",
        ),
        ("[lm]\n[train]\ndevice = \"cuda:x\"", "train.device"),
        (
            "[lm.model]\ndropout_output = 1.5",
            "lm.model.dropout_output",
        ),
        ("[lm]\nbptt = 0", "lm.bptt"),
        (
            "[head]\nmode = \"tied\"\n[lm.model]\nemb_size = 256",
            "head.mode",
        ),
        ("[lm]\n[head]\nmode = \"fixed-pmi\"", "head.embeddings"),
        ("[lm]\n[head]\nmode = \"nope\"", "head.mode"),
        ("[lm]\n[head]\nalpha_init = -1", "head.alpha_init"),
        ("[lm]\n[head]\nalpha_lr_scale = 0", "head.alpha_lr_scale"),
        ("[lm]\n[head]\nalpha_param = \"exp\"", "head.alpha_param"),
    ] {
        let e = from_toml_str(text, "c.toml").unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("c.toml"), "{text}: {e}");
    }
}

#[test]
fn overrides_set_nested_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "name = \"a\"\n[train]\nlr = 1.0\n[lm]\n").unwrap();
    let c = load(
        &p,
        &[
            "train.lr=0.5".into(),
            "head.mode=fixed-orthogonal".into(),
            "lm.model.layers=3".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.train.lr, 0.5);
    assert_eq!(c.head.mode, HeadMode::FixedOrthogonal);
    assert_eq!(lm_of(&c).model.layers, 3);
    let e = load(&p, &["train.bogus=1".into()]).unwrap_err().to_string();
    assert!(e.contains("train.bogus") && e.contains("--set"), "{e}");
    let e = load(&p, &["nonsense".into()]).unwrap_err().to_string();
    assert!(e.contains("--set"), "{e}");
    let e = load(&p, &["train.on_nonfinite=ignore".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.on_nonfinite") && e.contains("stop") && e.contains("skip"),
        "{e}"
    );
    let c = load(&p, &["train.on_nonfinite=skip".into()]).unwrap();
    assert_eq!(c.train.on_nonfinite, OnNonFinite::Skip);
}

/// A config file of the old layout is refused with the moves to make; a run folder's
/// config of that layout is migrated.
#[test]
fn legacy_layout_is_refused_in_files_and_migrated_in_run_folders() {
    let old = "name = \"r\"\n[data]\ndir = \"data/ptb\"\n[model]\nemb_size = 64\n\
               hidden_size = 64\n[output]\nmode = \"fixed-orthogonal\"\n\
               input_embedding = \"learned\"\n[train]\nlr = 2.0\nbptt = 12\nasgd = true\n";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(&p, old).unwrap();
    let e = load(&p, &[]).unwrap_err().to_string();
    assert!(
        e.contains("config.toml") && e.contains("[lm.data]") && e.contains("[head]"),
        "{e}"
    );
    let c = load_run_config(&p, &[]).unwrap();
    let lm = lm_of(&c);
    assert_eq!(lm.data.dir, PathBuf::from("data/ptb"));
    assert_eq!(lm.model.emb_size, 64);
    assert_eq!(lm.model.input_embedding, InputEmbedding::Learned);
    assert_eq!(lm.bptt, 12);
    assert!(lm.asgd);
    assert_eq!(c.head.mode, HeadMode::FixedOrthogonal);
    assert_eq!(c.train.lr, 2.0);
}

/// alpha's optimizer options parse; a run folder's config written before they existed
/// reads what those runs did (alpha's own learning rate, clipped, linear) and a file can
/// set them.
#[test]
fn alpha_options_parse_and_old_run_folders_keep_theirs() {
    use crate::classifier::AlphaParam;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(
        &p,
        "name = \"r\"\n[lm]\n[head]\nmode = \"fixed-orthogonal\"\n",
    )
    .unwrap();
    let old = load_run_config(&p, &[]).unwrap();
    assert_eq!(
        (
            old.head.alpha_lr_scale,
            old.head.alpha_clip,
            old.head.alpha_param
        ),
        (1.0, true, AlphaParam::Linear)
    );
    let set = [
        "head.alpha_lr_scale=0.02".to_string(),
        "head.alpha_clip=false".into(),
        "head.alpha_param=log".into(),
    ];
    let c = load(&p, &set).unwrap();
    assert_eq!(
        (c.head.alpha_lr_scale, c.head.alpha_clip, c.head.alpha_param),
        (0.02, false, AlphaParam::Log)
    );
    // Written and read back (the run folder's config.toml).
    std::fs::write(&p, c.to_toml()).unwrap();
    assert_eq!(load_run_config(&p, &[]).unwrap().head, c.head);
}

/// A run's name is its folder under `runs_dir`: `..` would train into the folder above.
#[test]
fn run_names_stay_inside_the_runs_folder() {
    for name in [
        "\"..\"",
        "\".\"",
        "\"\"",
        "\"a/b\"",
        "\"a\\\\b\"",
        "\"a\\tb\"",
    ] {
        let e = from_toml_str(&format!("name = {name}\n{LM}"), "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml: field `name`: `"), "{e}");
        assert!(e.contains("is not a folder name"), "{e}");
    }
    for name in ["\"wt2 learned\"", "\"..a\"", "\"fixed-orthogonal_2\""] {
        from_toml_str(&format!("name = {name}\n{LM}"), "a.toml").unwrap();
    }
}

/// The `[lm]` section of a config known to be a language model's.
fn lm_of(c: &Config) -> &LmConfig {
    match &c.task {
        TaskConfig::Lm(lm) => lm,
        TaskConfig::Vision(_) => panic!("not a language-model config"),
    }
}
