//! `train` and `predict` as a user runs them: classifiers that learn, models that round-trip, and a clear
//! message for every kind of bad input.

mod common;

use common::{fails_with, json, scratch, text, wgmlp};
use std::path::Path;

use wgmlp::Schedule;
use wgmlp::model::Model;

#[test]
fn moons_classifier_reaches_95_percent_on_held_out_rows_on_the_gpu() {
    let report = json(&[
        "train",
        "--dataset",
        "moons",
        "--layers",
        "2,16,16,1",
        "--activation",
        "tanh",
        "--loss",
        "bce",
        "--optimizer",
        "adam",
        "--test-split",
        "0.2",
        "--epochs",
        "300",
        "--json",
    ]);
    assert_eq!(report["backend"], "gpu");
    assert!(report["adapter"]["name"].is_string(), "{report:#}");
    let test_accuracy = report["test_accuracy"].as_f64().unwrap();
    assert!(
        test_accuracy >= 0.95,
        "test accuracy {test_accuracy} in {report:#}"
    );
    for key in [
        "epochs",
        "final_loss",
        "train_accuracy",
        "train_ms",
        "measure_ms",
    ] {
        assert!(!report[key].is_null(), "{key} in {report:#}");
    }
}

#[test]
fn spirals_with_softmax_reach_90_percent_train_accuracy_on_the_gpu() {
    let report = json(&[
        "train",
        "--dataset",
        "spirals",
        "--classes",
        "3",
        "--samples",
        "150",
        "--layers",
        "2,24,24,3",
        "--output-activation",
        "softmax",
        "--loss",
        "ce",
        "--optimizer",
        "adam",
        "--lr",
        "0.03",
        "--epochs",
        "300",
        "--seed",
        "3",
        "--json",
    ]);
    let train_accuracy = report["train_accuracy"].as_f64().unwrap();
    assert!(
        train_accuracy >= 0.9,
        "train accuracy {train_accuracy} in {report:#}"
    );
    assert!(
        report["test_accuracy"].is_null(),
        "no rows held out, no test accuracy"
    );
}

#[test]
fn a_csv_regression_trains_and_predicts_by_column_name() {
    let dir = scratch("regression");
    let data = dir.join("line.csv");
    let rows: Vec<String> = (0..40)
        .map(|i| {
            let x = i as f32 / 10.0;
            format!("{},{x},note{i}", 3.0 * x - 1.0)
        })
        .collect();
    std::fs::write(&data, format!("y,x,comment\n{}\n", rows.join("\n"))).unwrap();
    // A text column that is neither a feature nor the target is an error for training ...
    fails_with(
        &[
            "train",
            "--dataset",
            text(&data),
            "--target",
            "y",
            "--backend",
            "cpu",
        ],
        &["comment", "not a number", "line 2"],
    );
    // ... so drop it: features are every column but the target.
    let clean: Vec<String> = (0..40)
        .map(|i| {
            let x = i as f32 / 10.0;
            format!("{},{x}", 3.0 * x - 1.0)
        })
        .collect();
    std::fs::write(&data, format!("y,x\n{}\n", clean.join("\n"))).unwrap();
    let model = dir.join("line.safetensors");
    let report = json(&[
        "train",
        "--dataset",
        text(&data),
        "--target",
        "y",
        "--layers",
        "1,1",
        "--epochs",
        "500",
        "--standardize",
        "--backend",
        "cpu",
        "--save",
        text(&model),
        "--json",
    ]);
    assert_eq!(report["loss"], "mse");
    assert!(report["final_loss"].as_f64().unwrap() < 1e-4, "{report:#}");
    assert!(report["train_accuracy"].is_null());

    // predict reads the feature by name and ignores other columns, such as the target.
    let input = dir.join("new.csv");
    std::fs::write(&input, "extra,x\nfoo,0.5\nbar,2\n").unwrap();
    let out = wgmlp(&["predict", "--model", text(&model), "--input", text(&input)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text_out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text_out.lines().collect();
    assert_eq!(lines[0], "y");
    let values: Vec<f32> = lines[1..].iter().map(|l| l.parse().unwrap()).collect();
    assert!(
        (values[0] - 0.5).abs() < 0.02 && (values[1] - 5.0).abs() < 0.02,
        "{values:?}"
    );
}

#[test]
fn classifier_predictions_name_the_class_and_its_probabilities() {
    let dir = scratch("classes");
    let (model, data, predictions) = (
        dir.join("m.safetensors"),
        dir.join("moons.csv"),
        dir.join("p.csv"),
    );
    json(&[
        "train",
        "--dataset",
        "moons",
        "--samples",
        "60",
        "--epochs",
        "200",
        "--optimizer",
        "adam",
        "--backend",
        "cpu",
        "--export",
        text(&data),
        "--save",
        text(&model),
        "--json",
    ]);
    let out = wgmlp(&[
        "predict",
        "--model",
        text(&model),
        "--input",
        text(&data),
        "--output",
        text(&predictions),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&predictions).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("class,p_0,p_1"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 60);
    for row in rows {
        let (p0, p1): (f32, f32) = (row[1].parse().unwrap(), row[2].parse().unwrap());
        assert!(
            (p0 + p1 - 1.0).abs() < 1e-6 && row[0] == if p1 >= p0 { "1" } else { "0" },
            "{row:?}"
        );
    }
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let dir = scratch("resume");
    for backend in ["cpu", "gpu"] {
        let (whole, half, resumed) = (dir.join("whole"), dir.join("half"), dir.join("resumed"));
        let common = [
            "--dataset",
            "circles",
            "--samples",
            "50",
            "--optimizer",
            "adam",
            "--batch-size",
            "16",
            "--backend",
            backend,
            "--quiet",
        ];
        let run = |epochs: &str, extra: &[&str]| {
            let mut args = vec!["train", "--epochs", epochs];
            args.extend(common);
            args.extend(extra);
            let out = wgmlp(&args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // Along a learning-rate schedule too. A cosine anneals to the run's end: the first half names the
        // whole run's, which the second half's own end (8 + 12) is.
        for (schedule, first_half) in [
            ("constant", "constant"),
            ("step:5:0.5", "step:5:0.5"),
            ("cosine", "cosine:20"),
        ] {
            let with = |path| ["--lr-schedule", schedule, "--save", text(path)];
            run("20", &with(&whole));
            run("8", &["--lr-schedule", first_half, "--save", text(&half)]);
            run(
                "12",
                &[&with(&resumed)[..], &["--init", text(&half)]].concat(),
            );
            let (a, b) = (Model::load(&whole).unwrap(), Model::load(&resumed).unwrap());
            assert_eq!(b.checkpoint.as_ref().unwrap().epoch, 20, "{backend}");
            assert_eq!(
                a, b,
                "{backend}, {schedule}: the resumed run's parameters, optimizer state and epoch are \
                 bit-identical"
            );
        }
    }
}

#[test]
fn a_learning_rate_schedule_is_shown_and_saved_and_a_finished_cosine_fine_tunes() {
    let dir = scratch("schedule");
    let [whole, half, tuned] = ["whole", "half", "tuned"].map(|name| dir.join(name));
    let train = |epochs: &str, schedule: &str, extra: &[&str]| -> String {
        let mut args = vec!["train", "--dataset", "xor", "--backend", "cpu"];
        args.extend(["--epochs", epochs, "--lr-schedule", schedule]);
        args.extend(extra);
        let out = wgmlp(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let report = train("20", "cosine", &["--json", "--save", text(&whole)]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["lr_schedule"], "cosine:20");
    let checkpoint = Model::load(&whole).unwrap().checkpoint.unwrap();
    assert_eq!(checkpoint.schedule, Schedule::Cosine { horizon: 20 });

    train("8", "cosine:20", &["--save", text(&half)]);
    let summary = train("12", "cosine", &["--init", text(&half)]);
    assert!(
        summary.contains("· lr 0.1 · lr schedule cosine:20 ·")
            && summary.contains("resuming after epoch 8"),
        "{summary}"
    );

    // A finished cosine has reached 0: more epochs fine-tune, along a fresh cosine over them.
    let summary = train(
        "12",
        "cosine",
        &["--init", text(&whole), "--save", text(&tuned)],
    );
    assert!(
        summary.contains("lr schedule cosine:12") && summary.contains("fine-tuning"),
        "{summary}"
    );
    let checkpoint = Model::load(&tuned).unwrap().checkpoint.unwrap();
    assert_eq!(
        (checkpoint.epoch, checkpoint.schedule),
        (12, Schedule::Cosine { horizon: 12 })
    );
    // A constant rate, the default, adds nothing to the summary.
    let summary = train("3", "constant", &[]);
    assert!(!summary.contains("schedule"), "{summary}");
}

#[test]
fn a_malformed_learning_rate_schedule_is_named_with_an_example() {
    for (schedule, epochs, fragments) in [
        (
            "linear",
            "5",
            &[
                "--lr-schedule",
                "linear",
                "choose constant",
                "step:100:0.5",
                "cosine",
            ][..],
        ),
        (
            "step:0:0.5",
            "5",
            &["--lr-schedule", "EPOCHS", "from 1"][..],
        ),
        ("step:10", "5", &["--lr-schedule", "step:EPOCHS:FACTOR"][..]),
        (
            "step:10:2",
            "5",
            &["--lr-schedule", "FACTOR", "at most 1", "step:100:0.5"][..],
        ),
        (
            "cosine:10",
            "20",
            &["--lr-schedule", "ends at epoch 20", "--epochs"][..],
        ),
    ] {
        fails_with(
            &[
                "train",
                "--dataset",
                "xor",
                "--backend",
                "cpu",
                "--epochs",
                epochs,
                "--lr-schedule",
                schedule,
            ],
            fragments,
        );
    }
    let out = wgmlp(&["train", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--lr-schedule <SCHEDULE>") && help.contains("step:EPOCHS:FACTOR"),
        "{help}"
    );
}

#[test]
fn a_sweep_keeps_the_best_run_and_reports_every_one() {
    let dir = scratch("sweep");
    let best_path = dir.join("best.safetensors");
    let report = json(&[
        "train",
        "--dataset",
        "circles",
        "--samples",
        "60",
        "--optimizer",
        "adam",
        "--runs",
        "3",
        "--lr",
        "0.003,0.03",
        "--epochs",
        "60",
        "--batch-size",
        "16",
        "--save",
        text(&best_path),
        "--json",
    ]);
    assert_eq!(report["engine"], "fused");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    let best = report["best_run"].as_u64().unwrap() as usize;
    let lowest = runs
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(runs[best]["loss"].as_f64().unwrap(), lowest, "{report:#}");
    assert!(
        runs.iter().all(|r| r["accuracy"].is_number()),
        "a classifier's runs have accuracies"
    );

    // The saved model is the best run's: its checkpoint carries that run's seed and rate.
    let model = Model::load(&best_path).unwrap();
    let checkpoint = model.checkpoint.as_ref().unwrap();
    assert_eq!(
        checkpoint.shuffle_seed,
        runs[best]["seed"].as_u64().unwrap()
    );
    assert_eq!(checkpoint.lr.to_string(), runs[best]["lr"].to_string());
    assert_eq!(checkpoint.epoch, 60);
    fails_with(
        &[
            "train",
            "--dataset",
            "circles",
            "--init",
            text(&best_path),
            "--runs",
            "2",
        ],
        &["--init", "--runs"],
    );
}

#[test]
fn the_engine_can_be_chosen_and_is_reported() {
    for engine in ["fused", "layered"] {
        let report = json(&[
            "train",
            "--dataset",
            "xor",
            "--epochs",
            "50",
            "--engine",
            engine,
            "--json",
        ]);
        assert_eq!(report["engine"], engine);
    }
    let report = json(&[
        "train",
        "--dataset",
        "xor",
        "--epochs",
        "5",
        "--backend",
        "cpu",
        "--json",
    ]);
    assert_eq!(report["engine"], "cpu");
    fails_with(
        &[
            "train",
            "--dataset",
            "moons",
            "--layers",
            "2,200,200,1",
            "--engine",
            "fused",
            "--epochs",
            "1",
        ],
        &["--layers", "fused engine", "private memory"],
    );
}

#[test]
fn bad_data_files_are_named_with_their_line() {
    let dir = scratch("bad-data");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "ragged.csv",
            "a,b,y\n1,2,0\n3,1\n",
            &["ragged.csv", "line 3", "2 cells", "header has 3"],
        ),
        (
            "words.csv",
            "a,b,y\n1,2,0\n3,four,1\n",
            &["words.csv", "line 3", "\"b\"", "not a number"],
        ),
        ("empty.csv", "", &["empty.csv", "empty"]),
        ("header.csv", "a,b,y\n", &["header.csv", "no data rows"]),
        (
            "nan.csv",
            "a,b,y\n1,NaN,0\n",
            &["nan.csv", "line 2", "finite"],
        ),
        (
            "inf.csv",
            "a,b,y\n1,2,0\ninf,2,1\n",
            &["inf.csv", "line 3", "finite"],
        ),
    ];
    for (name, contents, fragments) in cases {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        fails_with(
            &["train", "--dataset", text(&path), "--backend", "cpu"],
            fragments,
        );
    }
    fails_with(
        &["train", "--dataset", text(&dir.join("missing.csv"))],
        &["missing.csv", "cannot read"],
    );
}

#[test]
fn options_that_do_not_fit_the_data_are_named() {
    let dir = scratch("bad-options");
    let data = dir.join("three.csv");
    std::fs::write(&data, "a,b,label\n1,2,red\n3,1,green\n0,0,blue\n").unwrap();
    let csv = text(&data);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--dataset", csv, "--target", "colour"],
            &["--target", "colour", "no such column"],
        ),
        (
            &["--dataset", csv, "--loss", "bce"],
            &["bce", "two classes", "3"],
        ),
        (
            &["--dataset", csv, "--loss", "ce", "--layers", "2,4,2"],
            &["--layers", "3 output"],
        ),
        (
            &["--dataset", "moons", "--layers", "3,4,1"],
            &["--layers", "first size must be 2"],
        ),
        (
            &["--dataset", "moons", "--batch-size", "0"],
            &["batch-size"],
        ),
        (
            &["--dataset", "moons", "--batch-size", "-4"],
            &["--batch-size"],
        ),
        (&["--dataset", "moons", "--epochs", "0"], &["--epochs"]),
        (&["--dataset", "moons", "--lr", "0"], &["lr"]),
        (&["--dataset", "moons", "--lr", "-1"], &["lr"]),
        (
            &["--dataset", "moons", "--loss", "hinge"],
            &["--loss", "sse, mse, bce, ce"],
        ),
        (
            &["--dataset", "moons", "--activation", "softmax"],
            &["softmax", "output"],
        ),
        (
            &["--dataset", "moons", "--optimizer", "rmsprop"],
            &["optimizer", "sgd or adam"],
        ),
        (&["--dataset", "moons", "--momentum", "1.5"], &["momentum"]),
        (
            &["--dataset", "moons", "--test-split", "1.5"],
            &["test-split"],
        ),
        (&["--dataset", "moons", "--noise", "-1"], &["noise"]),
        (&["--dataset", "spirals", "--classes", "1"], &["classes"]),
        (&["--dataset", "moons", "--runs", "0"], &["--runs"]),
        (&["--dataset", "moons", "--lr", "0.1,0"], &["lr"]),
        (
            &["--dataset", "moons", "--engine", "fused"],
            &["--engine", "GPU"],
        ),
        (
            &[
                "--dataset",
                "moons",
                "--save",
                "/nonexistent-dir/m.safetensors",
                "--epochs",
                "1",
            ],
            &["--save", "cannot write"],
        ),
    ];
    for (args, fragments) in cases {
        let mut all = vec!["train", "--backend", "cpu"];
        all.extend(*args);
        fails_with(&all, fragments);
    }
}

/// Caught at the first check, as the loss grows by orders of magnitude, before it overflows.
#[test]
fn a_diverging_run_stops_with_its_epoch_and_a_hint() {
    fails_with(
        &[
            "train",
            "--dataset",
            "circles",
            "--loss",
            "mse",
            "--activation",
            "identity",
            "--output-activation",
            "identity",
            "--lr",
            "1e6",
            "--epochs",
            "50",
            "--backend",
            "cpu",
        ],
        &["diverged by epoch 1:", "the loss grew", "smaller --lr"],
    );
}

#[test]
fn broken_model_files_and_predict_inputs_are_explained() {
    let dir = scratch("bad-models");
    let model = dir.join("m.safetensors");
    json(&[
        "train",
        "--dataset",
        "moons",
        "--samples",
        "20",
        "--epochs",
        "5",
        "--backend",
        "cpu",
        "--save",
        text(&model),
        "--json",
    ]);
    let good = std::fs::read(&model).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(&input, "x1,x2\n0.5,0.5\n").unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() - 10]).unwrap();
    let text_file = dir.join("text.safetensors");
    std::fs::write(&text_file, "this is not a model").unwrap();
    for broken in [&truncated, &text_file] {
        fails_with(
            &["predict", "--model", text(broken), "--input", text(&input)],
            &[text(broken), "not a usable model"],
        );
    }
    fails_with(
        &[
            "predict",
            "--model",
            text(&dir.join("none")),
            "--input",
            text(&input),
        ],
        &["cannot read"],
    );

    let wrong_columns = dir.join("wrong.csv");
    std::fs::write(&wrong_columns, "x1,z\n0.5,0.5\n").unwrap();
    fails_with(
        &[
            "predict",
            "--model",
            text(&model),
            "--input",
            text(&wrong_columns),
        ],
        &["no column \"x2\"", "x1"],
    );
    fails_with(
        &[
            "predict",
            "--model",
            text(&model),
            "--input",
            text(&input),
            "--output",
            "/nonexistent-dir/p.csv",
        ],
        &["--output", "cannot write"],
    );
    fails_with(
        &[
            "train",
            "--dataset",
            "moons",
            "--init",
            text(&model),
            "--layers",
            "2,3,1",
            "--backend",
            "cpu",
        ],
        &["--layers", "--init"],
    );
}

/// Width and height from a PNG file's header.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn plots_show_the_loss_and_for_two_features_the_decision_regions() {
    let dir = scratch("plots");
    let (classifier, regression) = (dir.join("moons.png"), dir.join("line.png"));
    json(&[
        "train",
        "--dataset",
        "moons",
        "--samples",
        "80",
        "--epochs",
        "50",
        "--optimizer",
        "adam",
        "--test-split",
        "0.25",
        "--backend",
        "cpu",
        "--plot",
        text(&classifier),
        "--json",
    ]);
    assert_eq!(
        png_size(&classifier),
        (1200, 520),
        "loss curve beside the decision regions"
    );
    let data = dir.join("line.csv");
    std::fs::write(&data, "x,y\n0,1\n1,3\n2,5\n3,7\n").unwrap();
    json(&[
        "train",
        "--dataset",
        text(&data),
        "--epochs",
        "20",
        "--backend",
        "cpu",
        "--plot",
        text(&regression),
        "--json",
    ]);
    assert_eq!(png_size(&regression), (640, 480), "the loss curve alone");
    fails_with(
        &[
            "train",
            "--dataset",
            "moons",
            "--epochs",
            "1",
            "--backend",
            "cpu",
            "--plot",
            "/nonexistent-dir/p.png",
        ],
        &["--plot", "cannot write"],
    );
}

#[test]
fn auto_backend_trains_a_large_network_on_the_cpu_where_the_adapter_is_software() {
    let args = |backend: &str| -> serde_json::Value {
        json(&[
            "train",
            "--dataset",
            "moons",
            "--layers",
            "2,200,200,1",
            "--epochs",
            "2",
            "--backend",
            backend,
            "--json",
        ])
    };
    // Too large for the fused engine: the layered engine on a real GPU, the CPU path on an emulated one.
    let auto = args("auto");
    let (backend, engine) = match common::gpu().is_software() {
        true => ("cpu", "cpu"),
        false => ("gpu", "layered"),
    };
    assert_eq!(
        (auto["backend"].as_str(), auto["engine"].as_str()),
        (Some(backend), Some(engine)),
        "{auto:#}"
    );
    assert_eq!(
        auto["note"].is_string(),
        backend == "cpu",
        "the switch is said: {auto:#}"
    );
    let forced = args("gpu");
    assert_eq!(forced["engine"], "layered", "{forced:#}");
    // A network the fused engine holds stays on the adapter whatever it is.
    let small = json(&["train", "--dataset", "moons", "--epochs", "2", "--json"]);
    assert_eq!(
        (small["backend"].as_str(), small["engine"].as_str()),
        (Some("gpu"), Some("fused")),
        "{small:#}"
    );
}
