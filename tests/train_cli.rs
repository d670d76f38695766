//! `train` and `predict` as a user runs them: classifiers that learn, models that round-trip, and a clear
//! message for every kind of bad input.

mod common;

use common::{fails_with, json, scratch, succeeds, text, wgmlp};
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
        "--backend",
        "gpu",
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
        "--backend",
        "gpu",
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
    // A text column of free text (a value a row) is an error for training ...
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
        &["comment", "not numbers", "line 2", "--ignore comment"],
    );
    // ... so leave it out.
    let model = dir.join("line.safetensors");
    let report = json(&[
        "train",
        "--dataset",
        text(&data),
        "--target",
        "y",
        "--ignore",
        "comment",
        "--layers",
        "1,1",
        "--optimizer",
        "sgd",
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

/// `train` for `epochs` epochs with `options` (separated by spaces) on `backend`, then `extra`.
fn train_args<'a>(
    options: &'a str,
    backend: &'a str,
    epochs: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["train", "--epochs", epochs, "--backend", backend];
    args.extend(options.split(' '));
    args.extend(extra);
    args
}

/// The resume tests' run: mini-batches in a shuffled order and Adam's moments, which must both carry over.
const RESUMABLE: &str = "--dataset circles --samples 50 --optimizer adam --batch-size 16 --quiet";

/// Trains `epochs` epochs of the resume tests' run on `backend` with `extra` options; it must succeed.
fn train_resumable(backend: &str, epochs: &str, extra: &[&str]) {
    let args = train_args(RESUMABLE, backend, epochs, extra);
    let out = wgmlp(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let dir = scratch("resume");
    for backend in ["cpu", "gpu"] {
        let (whole, half, resumed) = (dir.join("whole"), dir.join("half"), dir.join("resumed"));
        let run = |epochs: &str, extra: &[&str]| train_resumable(backend, epochs, extra);
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

/// Moons exported from `seed` as a CSV file, `samples` rows; with `flipped` every label swapped, a validation
/// set that gets worse the better the training set is learnt.
fn moons_csv(path: &Path, seed: &str, samples: &str, flipped: bool) {
    json(&[
        "train",
        "--dataset",
        "moons",
        "--seed",
        seed,
        "--samples",
        samples,
        "--epochs",
        "1",
        "--backend",
        "cpu",
        "--export",
        text(path),
        "--json",
    ]);
    if flipped {
        let rows = std::fs::read_to_string(path).unwrap();
        let mut lines = rows.lines();
        let mut out = vec![lines.next().unwrap().to_string()];
        out.extend(lines.map(|line| {
            let (x, y) = line.rsplit_once(',').unwrap();
            format!("{x},{}", if y == "0" { 1 } else { 0 })
        }));
        std::fs::write(path, out.join("\n")).unwrap();
    }
}

/// The loss of `model` on a CSV file, read with the model's schema (its scaling included) and evaluated on
/// the CPU.
fn loss_on(model: &Model, path: &Path) -> f64 {
    let table = wgmlp::data::Table::read_csv(path).unwrap();
    let set = model.schema.dataset(&table, model.network.loss()).unwrap();
    wgmlp::cpu::evaluate(&model.network, &model.params, &set)
        .unwrap()
        .loss
}

#[test]
fn a_validation_file_is_scored_at_each_log_point_and_reported() {
    let dir = scratch("validation");
    let (validation, model_path) = (dir.join("validation.csv"), dir.join("m.safetensors"));
    moons_csv(&validation, "9", "50", false);
    let train = |extra: &[&str]| {
        let options = "--dataset moons --samples 80 --log-every 10 --standardize --optimizer adam";
        let args = train_args(options, "cpu", "40", extra);
        let out = wgmlp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = train(&["--validation", text(&validation)]);
    let logged: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("epoch "))
        .collect();
    assert_eq!(logged.len(), 4, "{printed}");
    for line in &logged {
        assert!(line.contains(" · validation loss "), "{line}");
        assert!(line.matches("accuracy").count() == 2, "{line}");
    }
    assert!(printed.contains("\nvalidation: loss "), "{printed}");
    assert!(
        printed.contains("80 training rows, 0 held out, 50 validation rows"),
        "{printed}"
    );

    // Both: the file is the validation set, the split's rows a test set scored at the end.
    let report: serde_json::Value = serde_json::from_str(&train(&[
        "--validation",
        text(&validation),
        "--test-split",
        "0.25",
        "--save",
        text(&model_path),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["validation_rows"], 50, "{report:#}");
    assert_eq!(report["test_rows"], 20, "{report:#}");
    assert!(report["test_loss"].is_number(), "{report:#}");
    assert!(report["validation_accuracy"].is_number(), "{report:#}");
    // The reported loss is the saved model's on the file, scaled with the training rows' statistics.
    let model = Model::load(&model_path).unwrap();
    assert!(model.schema.standardize.is_some());
    assert_eq!(
        report["validation_loss"].as_f64().unwrap(),
        loss_on(&model, &validation),
        "{report:#}"
    );
    let without: serde_json::Value =
        serde_json::from_str(&train(&["--test-split", "0.25", "--json"])).unwrap();
    assert_eq!(
        (&without["test_loss"], &without["validation_loss"]),
        (&report["test_loss"], &serde_json::Value::Null),
        "the file changes no training"
    );
    assert_eq!(without["validation_rows"], 0, "{without:#}");
}

/// Moons in mini-batches with Adam, for the early-stopping test.
const MOONS_BATCHES: &str = "--dataset moons --samples 60 --optimizer adam --batch-size 16";

#[test]
fn early_stopping_keeps_the_best_log_point_as_a_resumable_checkpoint() {
    let dir = scratch("early-stop");
    let flipped = dir.join("flipped.csv");
    moons_csv(&flipped, "9", "40", true);
    for backend in ["cpu", "gpu"] {
        let (stopped, best) = (dir.join("stopped"), dir.join("best"));
        let early = train_args(
            MOONS_BATCHES,
            backend,
            "400",
            &[
                "--early-stop",
                "3",
                "--log-every",
                "5",
                "--validation",
                text(&flipped),
                "--save",
                text(&stopped),
            ],
        );
        let report = json(&[&early[..], &["--json"]].concat());
        let stopped_at = report["stopped_epoch"].as_u64().expect("it stopped early");
        let best_epoch = report["best_epoch"].as_u64().unwrap();
        assert!(stopped_at < 400, "{backend}: {report:#}");
        assert_eq!(
            stopped_at,
            best_epoch + 3 * 5,
            "{backend}: three log points after the best"
        );
        assert_eq!(report["epochs"].as_u64(), Some(stopped_at), "{backend}");
        // What is kept is the run as it stood at the best epoch, optimizer state included, bit for bit.
        let best_epochs = best_epoch.to_string();
        json(&train_args(
            MOONS_BATCHES,
            backend,
            &best_epochs,
            &["--save", text(&best), "--json"],
        ));
        let (kept, uninterrupted) = (Model::load(&stopped).unwrap(), Model::load(&best).unwrap());
        assert_eq!(
            kept.checkpoint.as_ref().unwrap().epoch,
            best_epoch,
            "{backend}"
        );
        assert_eq!(kept, uninterrupted, "{backend}");
        assert_eq!(
            report["validation_loss"].as_f64().unwrap(),
            loss_on(&kept, &flipped),
            "{backend}: the summary is the kept model's"
        );
        // The summary says where it stopped and which epoch is kept.
        let printed = String::from_utf8(wgmlp(&early).stdout).unwrap();
        assert!(
            printed.contains(&format!("stopped early at epoch {stopped_at}: "))
                && printed.contains("3 log points in a row without a lower validation loss")
                && printed.contains(&format!("keeping epoch {best_epoch}'s model")),
            "{printed}"
        );
    }
}

#[test]
fn a_periodic_checkpoint_resumes_to_the_uninterrupted_result() {
    let dir = scratch("checkpoint-every");
    for backend in ["cpu", "gpu"] {
        let (every, plain) = (dir.join("every"), dir.join("plain"));
        let run = |epochs: &str, extra: &[&str]| train_resumable(backend, epochs, extra);
        // Checkpoints change nothing, and the final save still comes at the end.
        run("20", &["--save", text(&every), "--checkpoint-every", "6"]);
        run("20", &["--save", text(&plain)]);
        let saved = Model::load(&every).unwrap();
        assert_eq!(saved.checkpoint.as_ref().unwrap().epoch, 20, "{backend}");
        assert_eq!(saved, Model::load(&plain).unwrap(), "{backend}");

        // A run killed part way leaves its last checkpoint whole; resumed, it ends where an uninterrupted
        // run ends.
        let checkpoint = dir.join(format!("killed-{backend}"));
        let args = train_args(
            RESUMABLE,
            backend,
            "100000000",
            &["--checkpoint-every", "7", "--save", text(&checkpoint)],
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wgmlp"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The run is ended here whatever happens, so that a failure leaves no process behind.
        let waited = std::time::Instant::now();
        while !checkpoint.exists()
            && waited.elapsed().as_secs() < 120
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = child.kill();
        child.wait().unwrap();
        assert!(checkpoint.exists(), "{backend}: no checkpoint was written");
        let epoch = Model::load(&checkpoint).unwrap().checkpoint.unwrap().epoch;
        assert!(
            epoch > 0 && epoch.is_multiple_of(7),
            "{backend}: epoch {epoch}"
        );
        let (resumed, whole) = (dir.join("resumed"), dir.join("whole"));
        run(
            "12",
            &["--init", text(&checkpoint), "--save", text(&resumed)],
        );
        run(&(epoch + 12).to_string(), &["--save", text(&whole)]);
        assert_eq!(
            Model::load(&resumed).unwrap(),
            Model::load(&whole).unwrap(),
            "{backend}: resumed from epoch {epoch}"
        );
    }
}

#[test]
fn workflow_options_refuse_what_cannot_work() {
    let dir = scratch("workflow-options");
    let validation = dir.join("v.csv");
    std::fs::write(&validation, "x1,x2,y\n0.5,0.5,1\n").unwrap();
    let (wrong_columns, wrong_class) = (dir.join("columns.csv"), dir.join("class.csv"));
    std::fs::write(&wrong_columns, "x1,z,y\n0.5,0.5,1\n").unwrap();
    std::fs::write(&wrong_class, "x1,x2,y\n0.5,0.5,1\n0.1,0.2,7\n").unwrap();
    let (model, missing) = (dir.join("m.safetensors"), dir.join("missing.csv"));
    let (v, model_path) = (text(&validation), text(&model));
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--early-stop", "3"],
            &["--early-stop 3", "--validation", "--test-split"],
        ),
        (&["--early-stop", "0"], &["--early-stop"]),
        (
            &["--early-stop", "3", "--test-split", "0.2", "--runs", "2"],
            &["--early-stop 3", "--runs"],
        ),
        (
            &["--checkpoint-every", "5"],
            &["--checkpoint-every 5", "--save"],
        ),
        (
            &["--checkpoint-every", "0", "--save", model_path],
            &["--checkpoint-every"],
        ),
        (
            &[
                "--checkpoint-every",
                "5",
                "--save",
                model_path,
                "--lr",
                "0.1,0.2",
            ],
            &["--checkpoint-every 5", "--lr"],
        ),
        (
            &["--validation", text(&missing)],
            &["missing.csv", "cannot read"],
        ),
        (
            &["--validation", text(&wrong_columns)],
            &[
                "--validation",
                "columns.csv",
                "there is no column \"x2\", which the training table has",
                "its columns [\"x1\", \"x2\", \"y\"]",
            ],
        ),
        (
            &["--validation", text(&wrong_class)],
            &[
                "--validation",
                "class.csv",
                "line 3",
                "\"7\"",
                "not one of the classes",
            ],
        ),
        (
            &["--validation", v, "--save", v],
            &["--save", "--validation", "destroy"],
        ),
    ];
    for (args, fragments) in cases {
        let mut all = vec![
            "train",
            "--dataset",
            "moons",
            "--backend",
            "cpu",
            "--epochs",
            "2",
        ];
        all.extend(*args);
        let stderr = fails_with(&all, fragments);
        assert!(!stderr.contains("model was trained on"), "{stderr}");
    }
    assert!(!model.exists(), "nothing is saved by a refused run");
    // Standard input holds one table: it cannot be read twice.
    fails_with(
        &[
            "train",
            "--dataset",
            "-",
            "--validation",
            "-",
            "--backend",
            "cpu",
        ],
        &[
            "--dataset - and --validation - both read standard input",
            "save one of them to a file",
        ],
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
        "--layers",
        "2,6,1",
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
            &["words.csv", "line 3", "\"b\"", "not numbers"],
        ),
        ("empty.csv", "", &["empty.csv", "empty"]),
        ("header.csv", "a,b,y\n", &["header.csv", "no data rows"]),
        (
            "nan.csv",
            "a,b,y\n1,NaN,0\n",
            &["nan.csv", "\"NaN\" on line 2", "no number"],
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
            &["no column \"colour\", which --target names"],
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
    // Two inputs that are one text feature's categories are no plane of two features: no regions.
    let colours = dir.join("colours.csv");
    let rows: Vec<String> = (0..20)
        .map(|i| format!("{},{}", ["red", "blue"][i % 2], i % 2))
        .collect();
    std::fs::write(&colours, format!("colour,y\n{}\n", rows.join("\n"))).unwrap();
    let one_hot = dir.join("one-hot.png");
    let report = json(&[
        "train",
        "--dataset",
        text(&colours),
        "--loss",
        "bce",
        "--epochs",
        "5",
        "--backend",
        "cpu",
        "--plot",
        text(&one_hot),
        "--json",
    ]);
    assert_eq!(report["layers"][0], 2, "{report:#}");
    assert_eq!(png_size(&one_hot), (640, 480), "the loss curve alone");
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

/// The pixels of a PNG file, row by row, with its width.
fn png_pixels(path: &Path) -> (usize, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut bytes = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut bytes).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb, "{}", path.display());
    let pixels = bytes[..frame.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (frame.width as usize, pixels)
}

/// The columns, left of `right`, where `colour` is found.
fn columns_of(path: &Path, colour: [u8; 3], right: usize) -> Vec<usize> {
    let (width, pixels) = png_pixels(path);
    let columns = pixels.iter().enumerate().filter(|(_, p)| **p == colour);
    columns
        .map(|(i, _)| i % width)
        .filter(|&x| x < right)
        .collect()
}

#[test]
fn the_loss_curve_starts_before_training_and_is_drawn_for_one_epoch() {
    let dir = scratch("loss-curve");
    let (blue, red) = ([0, 0, 255], [255, 0, 0]);
    let plot = |name: &str, epochs: &str| {
        let path = dir.join(name);
        let options = "--dataset moons --samples 80 --test-split 0.25 --log-every 100 --plot";
        json(&train_args(
            options,
            "cpu",
            epochs,
            &[text(&path), "--json"],
        ));
        assert_eq!(png_size(&path), (1200, 520));
        path
    };
    // One epoch: a line from epoch 0 to epoch 1 across the panel, for either set of rows, not just the
    // legend's short stroke.
    let one = plot("one.png", "1");
    for colour in [blue, red] {
        let columns = columns_of(&one, colour, 600);
        let (left, right) = (columns.iter().min().unwrap(), columns.iter().max().unwrap());
        assert!(
            right - left > 400,
            "{colour:?} spans columns {left} to {right}"
        );
    }
    // Logged every 100 epochs, the curve still starts at epoch 0 on the axis's left end.
    let logged = plot("logged.png", "300");
    let left = *columns_of(&logged, blue, 600).iter().min().unwrap();
    assert!(left < 120, "the curve starts at column {left}");
}

#[test]
fn the_decision_regions_have_a_legend_of_classes_and_markers() {
    use wgmlp::plot::{LossCurve, Points, class_colour, draw, font_registered};
    let dir = scratch("regions");
    let curve = LossCurve {
        epochs: &[0, 1],
        train: &[0.7, 0.6],
        held_out: None,
    };
    let classes = ["a".to_string(), "b".to_string(), "c".to_string()];
    let everywhere_a = |grid: &[f32]| Ok(vec![0; grid.len() / 2]);
    // Every point and region is of class a; b and c show only in the legend.
    let draw_one = |name: &str, held_out: bool, names: [&str; 2]| {
        let path = dir.join(name);
        let points = Points {
            x1: &[0.0, 1.0],
            x2: &[0.0, 1.0],
            class: &[0, 0],
            held_out: &[false, held_out],
            classes: &classes,
            names,
        };
        draw(&path, &curve, Some((&points, &everywhere_a))).unwrap();
        path
    };
    let (circles, crossed) = (
        draw_one("circles.png", false, ["x1", "x2"]),
        draw_one("crossed.png", true, ["x1", "x2"]),
    );
    let count = |path: &Path, class: usize| {
        let c = class_colour(class, classes.len());
        columns_of(path, [c.0, c.1, c.2], usize::MAX).len()
    };
    for class in [1, 2] {
        assert_eq!(
            count(&circles, class) > 0,
            font_registered(),
            "class {class}'s swatch is in the legend where there is a font to name it"
        );
    }
    assert_ne!(
        count(&circles, 0),
        count(&crossed, 0),
        "a held-out point is marked apart from a training point"
    );
    // The axes are named after the features.
    let named = draw_one("named.png", false, ["sqft", "age"]);
    assert_eq!(
        png_pixels(&named) != png_pixels(&circles),
        font_registered(),
        "the axis titles are the names given, where there is a font to write them"
    );
}

#[test]
fn auto_backend_trains_on_the_cpu_where_the_adapter_is_software_but_for_small_sweeps() {
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
    // A sweep the fused engine holds one an invocation stays on the adapter whatever it is, where the
    // adapter compiles its code fast; a single network goes to the CPU on an emulated one, and so does a
    // sweep that needs the fused engine's workgroup tier.
    let moons = |extra: &[&str]| {
        let args = [
            &["train", "--dataset", "moons", "--epochs", "2", "--json"][..],
            extra,
        ]
        .concat();
        let report = json(&args);
        let chosen = (report["backend"].clone(), report["engine"].clone());
        (chosen, report)
    };
    let software = common::gpu().is_software();
    let on_gpu = (serde_json::json!("gpu"), serde_json::json!("fused"));
    let on_cpu = (serde_json::json!("cpu"), serde_json::json!("cpu"));
    let (chosen, report) = moons(&["--runs", "4", "--layers", "2,6,1"]);
    assert_eq!(chosen, on_gpu, "{report:#}");
    // moons' default 2-16-16-1: llvmpipe compiles its unrolled code in seconds, and takes no looped code.
    let slow_compile = matches!(
        common::gpu().code_budget(),
        wgmlp::gpu::CodeBudget::UnrolledOnly { .. }
    );
    let (chosen, report) = moons(&["--runs", "4"]);
    assert_eq!(
        chosen,
        if slow_compile { &on_cpu } else { &on_gpu }.clone(),
        "{report:#}"
    );
    let (chosen, report) = moons(&[]);
    assert_eq!(
        chosen,
        if software { &on_cpu } else { &on_gpu }.clone(),
        "{report:#}"
    );
    let (chosen, report) = moons(&["--runs", "2", "--layers", "2,64,64,1"]);
    assert_eq!(
        chosen,
        if software { &on_cpu } else { &on_gpu }.clone(),
        "{report:#}"
    );
}

#[test]
fn a_checkpoint_that_is_fine_tuned_says_why_and_a_cosine_is_never_run_past_its_end() {
    let dir = scratch("why-fine-tune");
    let half = dir.join("half");
    let train = |epochs: &str, extra: &[&str]| {
        let args = [
            &["train", "--dataset", "xor", "--backend", "cpu"][..],
            &["--epochs", epochs],
            extra,
        ]
        .concat();
        succeeds(&args)
    };
    train("8", &["--lr-schedule", "cosine:20", "--save", text(&half)]);
    let init = ["--init", text(&half)];
    // Twenty more would run past the cosine's end at 20: that is no resume, and the summary says what is.
    for schedule in ["cosine", "cosine:20"] {
        let out = train("20", &[&init[..], &["--lr-schedule", schedule]].concat());
        assert!(
            out.contains(
                "fine-tuning the --init model (its cosine ends at epoch 20: --epochs 12 resumes it)"
            ),
            "{schedule}: {out}"
        );
    }
    let out = train("12", &[&init[..], &["--lr-schedule", "cosine"]].concat());
    assert!(out.contains("resuming after epoch 8"), "{out}");
    let out = train("5", &[&init[..], &["--lr", "0.3"]].concat());
    assert!(
        out.contains(
            "(its checkpoint differs: lr 0.3, not 0.1; lr schedule constant, not cosine:20)"
        ),
        "{out}"
    );
}

#[test]
fn a_data_set_too_large_for_the_device_is_named_by_its_rows_not_its_layers() {
    // The layered engine keeps every layer's outputs for each row: 8007 values a row here, beyond one
    // buffer of any device; the remedy is the rows (or the layers), and no "--layers 2,4000,1:" prefix
    // blames the layers alone.
    let stderr = fails_with(
        &[
            "train",
            "--dataset",
            "moons",
            "--samples",
            "1000000",
            "--layers",
            "2,4000,1",
            "--backend",
            "gpu",
            "--epochs",
            "1",
        ],
        &["1000000 rows", "8007 values a row", "train on fewer rows"],
    );
    assert!(!stderr.contains("--layers 2,4000,1:"), "{stderr}");
}
