//! The command line as a user meets it: the XOR demo's JSON report, and clear errors for bad options.

mod common;

use common::{json, wgmlp};
use std::process::Command;

fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[test]
fn json_report_has_every_key_and_gpu_agrees_with_cpu() {
    let report = json(&[
        "--json", "--epochs", "500", "--layers", "2,4,1", "--seed", "3",
    ]);
    for key in [
        "adapter",
        "engine",
        "layers",
        "epochs",
        "lr",
        "seed",
        "gpu_outputs",
        "cpu_outputs",
        "max_abs_diff",
        "gpu_loss",
        "cpu_loss",
        "gpu_setup_ms",
        "gpu_train_ms",
        "cpu_train_ms",
    ] {
        assert!(!report[key].is_null(), "{key} missing from {report:#}");
    }
    for key in ["name", "backend", "device_type"] {
        assert!(
            report["adapter"][key].is_string(),
            "adapter.{key} in {report:#}"
        );
    }
    assert_eq!(report["layers"], serde_json::json!([2, 4, 1]));
    assert_eq!(report["epochs"], 500);
    assert_eq!(report["lr"], serde_json::json!([0.1]));
    assert_eq!(report["engine"], "fused", "the demo's default engine");
    assert_eq!(report["seed"], 3);
    let (gpu, cpu) = (
        numbers(&report["gpu_outputs"]),
        numbers(&report["cpu_outputs"]),
    );
    assert_eq!((gpu.len(), cpu.len()), (4, 4));
    let worst = gpu
        .iter()
        .zip(&cpu)
        .map(|(g, c)| (g - c).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "GPU {gpu:?} vs CPU {cpu:?}");
    assert!((report["max_abs_diff"].as_f64().unwrap() - worst).abs() < 1e-9);
}

#[test]
fn a_sweep_reports_every_run_and_how_many_converged() {
    let report = json(&[
        "--json", "--runs", "6", "--lr", "0.5,2", "--epochs", "3000", "--seed", "20",
    ]);
    assert_eq!(report["engine"], "fused");
    assert_eq!(report["lr"], serde_json::json!([0.5, 2.0]));
    let runs = report["runs"].as_array().expect("a runs array");
    assert_eq!(runs.len(), 12, "6 runs at each of 2 rates");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run["seed"], 20 + (i % 6) as u64, "{run}");
        assert_eq!(run["lr"], if i < 6 { 0.5 } else { 2.0 }, "{run}");
        assert!(
            run["loss"].as_f64().is_some() && run["converged"].is_boolean(),
            "{run}"
        );
    }
    // Run 0 is the single run with the first seed and rate: the CPU trains it beside the sweep.
    let single = json(&["--json", "--lr", "0.5", "--epochs", "3000", "--seed", "20"]);
    assert_eq!(
        report["gpu_outputs"], single["gpu_outputs"],
        "run 0 is the single run"
    );
    assert!(
        report["max_abs_diff"].as_f64().unwrap() < 1e-5,
        "{report:#}"
    );
    let converged = runs.iter().filter(|r| r["converged"] == true).count();
    assert!(
        converged >= 6,
        "most XOR runs at these rates converge: {report:#}"
    );
    for run in runs.iter().filter(|r| r["converged"] == true) {
        assert!(run["loss"].as_f64().unwrap() < 0.02, "{run}");
    }
}

#[test]
fn the_layered_engine_can_be_forced_and_agrees() {
    let report = json(&["--json", "--engine", "layered", "--epochs", "300"]);
    assert_eq!(report["engine"], "layered");
    assert!(
        report["max_abs_diff"].as_f64().unwrap() < 1e-5,
        "{report:#}"
    );
}

#[test]
fn cpu_backend_needs_no_gpu_and_converges_with_the_defaults() {
    let report = json(&["--backend", "cpu", "--json"]);
    assert!(
        report["adapter"].is_null() && report["gpu_outputs"].is_null(),
        "{report:#}"
    );
    let outputs = numbers(&report["cpu_outputs"]);
    assert!(
        outputs[0] < 0.1 && outputs[1] > 0.9 && outputs[2] > 0.9 && outputs[3] < 0.1,
        "{outputs:?}"
    );
}

#[test]
fn table_names_the_adapter_and_every_row() {
    let out = wgmlp(&["--epochs", "50"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("adapter: ") && text.contains(" · "),
        "{text}"
    );
    let software = text
        .lines()
        .next()
        .unwrap()
        .ends_with("software: the CPU emulates a GPU");
    assert_eq!(
        software,
        common::gpu().is_software(),
        "a software adapter is named as such:\n{text}"
    );
    for row in [
        "0 0     0",
        "0 1     1",
        "1 0     1",
        "1 1     0",
        "max |GPU − CPU|",
        "GPU (fused engine): loss",
        "CPU: loss",
    ] {
        assert!(text.contains(row), "{row:?} missing from:\n{text}");
    }
}

#[test]
fn bad_options_fail_with_a_message_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["--epochs", "0"], "--epochs"),
        (&["--epochs", "-3"], "--epochs"),
        (&["--lr", "0"], "--lr"),
        (&["--lr", "-0.5"], "--lr"),
        (&["--lr", "nan"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--lr", "fast"], "--lr"),
        (&["--layers", "2"], "--layers"),
        (&["--layers", "2,0,1"], "--layers"),
        (&["--layers", ""], "--layers"),
        (&["--layers", "2,three,1"], "--layers"),
        (&["--layers", "3,3,1"], "--layers"),
        (&["--layers", "2,3,2"], "--layers"),
        (&["--backend", "tpu"], "--backend"),
        (&["--runs", "0"], "--runs"),
        (&["--engine", "warp"], "--engine"),
        (&["--engine", "fused", "--backend", "cpu"], "--engine"),
        (&["--lr", "0.1,fast"], "--lr"),
        (
            &["--layers", "2,100000000,1", "--backend", "gpu"],
            "--layers",
        ),
    ];
    for (args, option) in cases {
        let out = wgmlp(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(option),
            "{args:?}: stderr does not name {option}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    }
}

#[test]
fn an_adapter_name_that_matches_none_lists_the_adapters_found() {
    let found = &common::gpu().adapter().name;
    let out = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .env("WGPU_ADAPTER_NAME", "no such adapter anywhere")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for hint in [
        "WGPU_ADAPTER_NAME",
        "no such adapter anywhere",
        found,
        "wgmlp adapters",
        "--backend cpu",
    ] {
        assert!(stderr.contains(hint), "{hint:?} missing:\n{stderr}");
    }
    // Every command that opens a GPU says the same for --adapter; train's auto backend does not fall back.
    let commands: [&[&str]; 6] = [
        &["--epochs", "1"],
        &["train", "--dataset", "xor", "--epochs", "1"],
        &[
            "train",
            "--dataset",
            "xor",
            "--epochs",
            "1",
            "--backend",
            "gpu",
        ],
        &["bench", "--epochs", "1"],
        &["adapters"],
        &["playground", "--port", "0"],
    ];
    for args in commands {
        let args = [args, &["--adapter", "no such adapter anywhere"]].concat();
        common::fails_with(&args, &["--adapter", "no such adapter anywhere", found]);
    }
    // A backend's name is not part of an adapter's: the error says how to choose one.
    common::fails_with(
        &["--epochs", "1", "--adapter", "gl"],
        &[
            "--adapter \"gl\" matches no adapter's name",
            "the backend in brackets is not part of the name",
            "WGPU_BACKEND=gl",
        ],
    );
    // The flag overrides the variable.
    let flag = found.to_uppercase();
    let out = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args(["--json", "--epochs", "1", "--adapter", &flag])
        .env("WGPU_ADAPTER_NAME", "no such adapter anywhere")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["adapter"]["name"].as_str(), Some(found.as_str()));
    // Where no GPU is opened, --adapter cannot apply.
    common::fails_with(
        &["--backend", "cpu", "--adapter", found],
        &["--adapter", "--backend cpu"],
    );
    common::fails_with(
        &[
            "train",
            "--dataset",
            "xor",
            "--backend",
            "cpu",
            "--adapter",
            found,
        ],
        &["--adapter", "--backend cpu"],
    );
    common::fails_with(
        &[
            "predict",
            "--model",
            "m",
            "--input",
            "-",
            "--adapter",
            found,
        ],
        &["unexpected argument '--adapter'"],
    );
}

#[test]
fn adapters_lists_what_wgpu_finds_and_marks_the_chosen_one() {
    let opened = common::gpu().adapter();
    let report = json(&["adapters", "--json"]);
    let adapters = report["adapters"].as_array().expect("an adapters array");
    let chosen: Vec<&serde_json::Value> = adapters.iter().filter(|a| a["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1, "{report:#}");
    assert_eq!(chosen[0]["name"].as_str(), Some(opened.name.as_str()));
    assert_eq!(chosen[0]["backend"].as_str(), Some(opened.backend.as_str()));
    assert_eq!(chosen[0]["software"], opened.is_software(), "{report:#}");
    for adapter in adapters {
        for key in ["name", "backend", "device_type"] {
            assert!(adapter[key].is_string(), "{key} in {adapter}");
        }
        assert!(adapter["software"].is_boolean(), "{adapter}");
    }
    // The text: one line per adapter, a star on the chosen one, which --adapter can change.
    let out = wgmlp(&["adapters", "--adapter", &opened.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let starred: Vec<&str> = text.lines().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(starred.len(), 2, "the chosen adapter and the key:\n{text}");
    assert!(starred[0].ends_with(&opened.to_string()), "{text}");
    assert_eq!(text.lines().count(), adapters.len() + 1, "{text}");
}

#[test]
fn bench_prints_every_figure_as_json() {
    let report = json(&[
        "bench",
        "--json",
        "--epochs",
        "20",
        "--sweeps",
        "1,3",
        "--moons-epochs",
        "2",
        "--sizes",
        "70,33",
        "--predict-rows",
        "5000",
    ]);
    assert!(report["adapter"]["name"].is_string(), "{report:#}");
    for key in [
        "fused_epochs_per_s",
        "layered_epochs_per_s",
        "cpu_epochs_per_s",
        "cpu_reference_train_ms",
        "fused_setup_ms",
        "layered_dispatches_per_epoch",
    ] {
        assert!(
            report["xor"][key].as_f64().is_some_and(|v| v > 0.0),
            "xor.{key} in {report:#}"
        );
    }
    let sweeps = report["sweeps"].as_array().unwrap();
    assert_eq!(sweeps.len(), 2);
    for (sweep, networks) in sweeps.iter().zip([1, 3]) {
        assert_eq!(sweep["networks"], networks);
        assert!(
            sweep["network_epochs_per_s"].as_f64().unwrap() > 0.0,
            "{sweep}"
        );
    }
    let networks = report["networks"].as_array().unwrap();
    let names: Vec<&str> = networks
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["2,3,1", "2,16,16,1", "2,24,24,3", "2,64,64,1"]);
    for n in networks {
        for key in ["layered_setup_ms", "layered_train_ms", "cpu_train_ms"] {
            assert!(n[key].as_f64().unwrap() > 0.0, "{key} in {n}");
        }
        // Each either has the fused engine's compile and training times, or says why it is not taken.
        match n["fused"]["Ok"].as_str() {
            Some(_) => {
                for key in ["fused_compile_ms", "fused_train_ms"] {
                    assert!(n[key].as_f64().unwrap() > 0.0, "{key} in {n}");
                }
            }
            None => assert!(!n["fused"]["Err"].as_str().unwrap().is_empty(), "{n}"),
        }
    }
    assert!(
        networks[0]["fused"]["Ok"].is_string(),
        "XOR trains fused everywhere: {}",
        networks[0]
    );
    for key in [
        "gpu_samples_per_s",
        "gpu_dispatches_per_step",
        "cpu_samples_per_s",
        "cpu_reference_samples_per_s",
    ] {
        assert!(report["mlp"][key].as_f64().unwrap() > 0.0, "mlp.{key}");
    }
    // Every dispatch of a step (the epoch's last, one more than the others) timed by itself.
    let profile = report["mlp"]["gpu_profile"].as_array().unwrap();
    assert!(
        profile.len() as f64 >= report["mlp"]["gpu_dispatches_per_step"].as_f64().unwrap(),
        "{profile:?}"
    );
    assert!(
        profile.iter().all(|op| op["ms"].as_f64().unwrap() > 0.0
            && op["kernel"].is_string()
            && op["shape"].as_array().unwrap().len() == 3),
        "{profile:?}"
    );
    assert!(profile.iter().any(|op| op["kernel"] == "matmul_fused_nt"));
    assert_eq!(report["predict"]["rows"], 5000);
    assert!(report["predict"]["ms"].as_f64().unwrap() > 0.0);
    let sizes: Vec<u64> = report["matmul"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [70, 33]);
    for m in report["matmul"].as_array().unwrap() {
        assert!(
            ["gpu_gflops", "cpu_fast_gflops", "cpu_gflops"]
                .iter()
                .all(|key| m[key].as_f64().unwrap() > 0.0),
            "{m}"
        );
        // The kernel's result is checked before its speed is reported.
        assert!(m["max_abs_diff"].as_f64().unwrap() < 1e-3, "{m}");
        let versions = m["gpu_versions"].as_array().unwrap();
        let kernels: Vec<&str> = versions
            .iter()
            .map(|v| v["kernel"].as_str().unwrap())
            .collect();
        assert_eq!(
            kernels,
            [
                "matmul",
                "matmul_blocked",
                "matmul_registers",
                "matmul_fused"
            ],
            "{m}"
        );
        for v in versions {
            assert!(v["gflops"].as_f64().unwrap() > 0.0, "{v}");
            assert!(v["max_abs_diff"].as_f64().unwrap() < 1e-3, "{v}");
        }
    }
}

#[test]
fn train_opens_with_one_summary_line_of_the_network_and_where_it_trains() {
    let adapter = common::gpu().adapter().to_string();
    let args = [
        "train",
        "--dataset",
        "moons",
        "--samples",
        "40",
        "--layers",
        "2,16,16,1",
        "--epochs",
        "2",
        "--engine",
        "fused",
    ];
    let out = wgmlp(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    for part in [
        "network 2,16,16,1 (337 parameters) · tanh hidden",
        "40 training rows, 0 held out",
        &format!("fused engine on {adapter}"),
    ] {
        assert!(first.contains(part), "{part:?} missing from:\n{text}");
    }
    assert_eq!(
        text.matches(&adapter).count(),
        1,
        "the adapter once:\n{text}"
    );
    assert!(
        text.contains("; compiling the fused engine took "),
        "the fused engine's compile time:\n{text}"
    );
    let on_cpu = wgmlp(&[
        "train",
        "--dataset",
        "xor",
        "--epochs",
        "2",
        "--backend",
        "cpu",
    ]);
    let text = String::from_utf8(on_cpu.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("network 2,3,1 (13 parameters) · ") && first.ends_with(" · on the CPU"),
        "{text}"
    );
    let report = json(&[&args[..], &["--json"]].concat());
    assert_eq!(report["parameters"], 337, "{report:#}");
    assert!(report["compile_ms"].as_f64().is_some(), "{report:#}");
    let on_cpu = json(&["train", "--dataset", "xor", "--backend", "cpu", "--json"]);
    assert!(
        on_cpu["compile_ms"].is_null(),
        "no shader on the CPU: {on_cpu:#}"
    );
}

#[test]
fn each_command_s_help_says_what_its_options_do_there() {
    let help = |args: &[&str]| common::succeeds(&[args, &["--help"]].concat());
    // --json is shared: its own line says nothing of predict, and predict says what it writes.
    for command in [
        &[][..],
        &["train"],
        &["evaluate"],
        &["adapters"],
        &["predict"],
    ] {
        let text = help(command);
        assert!(
            text.contains("Print the results as JSON instead of text")
                && !text.contains("one per row"),
            "{command:?}:\n{text}"
        );
    }
    assert!(help(&["predict"]).contains("a JSON object per row"));
    // Space is a delimiter too.
    for command in ["train", "predict", "evaluate"] {
        let text = help(&[command]);
        assert!(text.contains(", ; | tab, space,"), "{command}:\n{text}");
    }
}
