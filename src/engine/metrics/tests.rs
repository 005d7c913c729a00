use super::*;

/// Lines as fixclf 0.1 wrote them still parse, into the same fields.
#[test]
fn events_of_old_runs_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    std::fs::write(
        &p,
        concat!(
            r#"{"device":"Cpu","event":"start","params":{"fixed":0,"learned_emb_classifier_share":0.8,"learned_total":10,"share_removed":0.0,"total":10,"trainable":10}}"#,
            "\n",
            r#"{"alpha":null,"batch":50,"batches":120,"elapsed_s":12.0,"epoch":1,"event":"log","loss":6.5,"lr":0.002,"ms_per_batch":240.0,"ppl":665.1,"step":50,"tokens_per_s":2900.0}"#,
            "\n",
            r#"{"alpha":9.5,"asgd":false,"elapsed_s":30.0,"epoch":1,"epoch_s":29.0,"event":"epoch","lr":0.002,"peak_rss_mb":500.0,"step":120,"tokens_per_s":2900.0,"train_tokens":84000,"val_loss":6.0,"val_ppl":403.4}"#,
            "\n",
            r#"{"event":"test","test_loss":6.1,"test_ppl":445.9}"#,
            "\n",
            r#"{"event":"diverged","epoch":2,"step":130,"value":"NaN"}"#,
            "\n",
            r#"{"event":"resume","epoch":2,"step":120,"lr":0.002}"#,
            "\n",
            r#"{"event":"epo"#,
        ),
    )
    .unwrap();
    let events = read_events(&p).unwrap();
    assert_eq!(events.len(), 6, "the torn last line is skipped");
    match &events[0] {
        Event::Start { params, .. } => assert_eq!(params.classifier_share, 0.8),
        e => panic!("{e:?}"),
    }
    match &events[2] {
        Event::Epoch(e) => {
            assert_eq!(e.throughput.train_tokens, Some(84_000));
            assert_eq!(e.val_ppl, Some(403.4));
            assert_eq!(e.alpha, Some(9.5));
        }
        e => panic!("{e:?}"),
    }
    // A damaged line in the middle is an error naming the line.
    std::fs::write(&p, "{\"event\":\"test\",\"test_loss\":1}\nnot json\n{}\n").unwrap();
    let e = read_events(&p).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("metrics.jsonl"), "{e}");
}

/// A run killed in the middle of a line and resumed appends after the last whole line.
#[test]
fn reopening_cuts_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    let test = Event::Test {
        test_loss: 0.5,
        test_ppl: None,
        test_acc: None,
        test_top5: None,
    };
    let resume = Event::Resume {
        epoch: 1,
        step: 3,
        lr: 1.0,
    };
    let whole = serde_json::to_string(&test).unwrap() + "\n";
    for torn in ["", "{\"event\":\"lo", &"x".repeat(9000)] {
        std::fs::write(&p, format!("{whole}{torn}")).unwrap();
        MetricsLog::open(&p).unwrap().write(&resume).unwrap();
        assert_eq!(read_events(&p).unwrap(), vec![test.clone(), resume.clone()]);
    }
    // A file that is one torn line becomes empty.
    std::fs::write(&p, "{\"event\"").unwrap();
    MetricsLog::open(&p).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"");
}

#[test]
fn events_round_trip_without_absent_keys() {
    let e = Event::Test {
        test_loss: 0.5,
        test_ppl: None,
        test_acc: Some(0.9),
        test_top5: None,
    };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(s, r#"{"event":"test","test_loss":0.5,"test_acc":0.9}"#);
    assert_eq!(serde_json::from_str::<Event>(&s).unwrap(), e);
}

/// A `collapse` event round-trips; an undefined value (`null`) reads back as NaN; a
/// summary without diagnostics (older runs, the language model) has none.
#[test]
fn collapse_events_round_trip() {
    let c = Collapse {
        epoch: 3,
        nc1: 0.25,
        nc2_equinorm: 0.1,
        nc2_equiangular: 0.05,
        nc3: 0.3,
        ncc_acc: 0.97,
        classes: 10,
        samples: 60_000,
        nc2_w_equinorm: 0.0,
        nc2_w_equiangular: 0.01,
        nc2_etf_error: 0.2,
        nc3_duality_error: 0.4,
        nc4: 0.02,
        acc: 0.99,
        ..Collapse::undefined(3, 10, 60_000)
    };
    let s = serde_json::to_string(&Event::Collapse(c.clone())).unwrap();
    assert!(
        s.starts_with(r#"{"event":"collapse","epoch":3,"nc1":0.25"#),
        "{s}"
    );
    assert_eq!(
        serde_json::from_str::<Event>(&s).unwrap(),
        Event::Collapse(c)
    );
    let undefined = s.replace("0.25", "null");
    match serde_json::from_str::<Event>(&undefined).unwrap() {
        Event::Collapse(c) => assert!(c.nc1.is_nan() && c.nc3 == 0.3),
        e => panic!("{e:?}"),
    }
}

/// A NaN loss is written as `null` and read back as NaN, not as a damaged line.
#[test]
fn non_finite_losses_round_trip() {
    let e = Event::Test {
        test_loss: f64::NAN,
        test_ppl: Some(f64::NAN),
        test_acc: None,
        test_top5: None,
    };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(s, r#"{"event":"test","test_loss":null,"test_ppl":null}"#);
    match serde_json::from_str::<Event>(&s).unwrap() {
        Event::Test {
            test_loss,
            test_ppl,
            ..
        } => assert!(test_loss.is_nan() && test_ppl.is_none()),
        e => panic!("{e:?}"),
    }
}
