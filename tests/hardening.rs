//! What a hostile user tried (issue 8): outputs that must not replace what they name, closed pipes and full
//! disks, sizes from untrusted numbers, messages that say what went wrong once, briefly and as typed, and
//! library calls and GPU faults that panicked.

mod common;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails_with, scratch, succeeds, text};
use wgmlp::cpu::MatmulShape;
use wgmlp::gpu::{Kernel, Op};
use wgmlp::{Activation, DEFAULT_SEED, Dataset, Gpu, GpuTrainer, Network, TrainConfig};

/// The XOR rows as a CSV file and a model trained on them (CPU, a few epochs).
fn data_and_model(dir: &Path) -> (PathBuf, PathBuf) {
    let (data, model) = (dir.join("data.csv"), dir.join("model.safetensors"));
    std::fs::write(&data, "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n").unwrap();
    train_and_save(&data, &model);
    (data, model)
}

/// Trains a few epochs on `data` on the CPU and saves the model to `model`.
fn train_and_save(data: &Path, model: &Path) {
    succeeds(&[
        "train",
        "--dataset",
        text(data),
        "--backend",
        "cpu",
        "--epochs",
        "3",
        "--quiet",
        "--save",
        text(model),
    ]);
}

fn predict_to(data: &Path, model: &Path, output: &Path) -> String {
    succeeds(&[
        "predict",
        "--model",
        text(model),
        "--input",
        text(data),
        "--output",
        text(output),
    ])
}

#[cfg(unix)]
#[test]
fn outputs_write_through_links_and_fifos_keep_the_mode_and_dash_is_stdout() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = scratch("outputs");
    let (data, model) = data_and_model(&dir);
    let expected = succeeds(&["predict", "--model", text(&model), "--input", text(&data)]);
    assert!(expected.starts_with("y\n"), "{expected}");

    // A link is followed: its target gets the predictions, keeps its 600 mode, and the link stays a link.
    let (target, link) = (dir.join("target.csv"), dir.join("link.csv"));
    std::fs::write(&target, "old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("target.csv", &link).unwrap();
    predict_to(&data, &model, &link);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the replaced file keeps its mode");
    // A dangling link names the file to create.
    let (absent, dangling) = (dir.join("absent.csv"), dir.join("dangling.csv"));
    std::os::unix::fs::symlink(&absent, &dangling).unwrap();
    predict_to(&data, &model, &dangling);
    assert_eq!(std::fs::read_to_string(&absent).unwrap(), expected);

    // A FIFO is written into, not replaced: its reader gets the data.
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    predict_to(&data, &model, &fifo);
    assert_eq!(reader.join().unwrap(), expected);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // `-` is standard output for --output and --export.
    assert_eq!(predict_to(&data, &model, Path::new("-")), expected);
    let exported = succeeds(&[
        "train",
        "--dataset",
        "xor",
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--quiet",
        "--json",
        "--export",
        "-",
    ]);
    assert!(exported.starts_with("x1,x2,y\n0,0,0\n"), "{exported}");
    assert!(!dir.join("-").exists());
}

/// Runs the XOR demo with an environment variable set, expects failure, and checks stderr mentions every
/// fragment.
fn fails_in_environment((name, value): (&str, &str), fragments: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args(["--epochs", "1"])
        .env(name, value)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name}={value} succeeded");
    for fragment in fragments {
        assert!(
            stderr.contains(fragment),
            "{fragment:?} missing from:\n{stderr}"
        );
    }
}

/// Runs `args` with standard output on /dev/full: opened for writing, the device itself is never replaced.
fn on_full_disk(args: &[&str]) -> (bool, String) {
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args(args)
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_error_and_a_closed_pipe_ends_quietly() {
    let dir = scratch("full");
    let (data, model) = data_and_model(&dir);
    for args in [
        &["--backend", "cpu", "--epochs", "10"][..],
        &[
            "predict",
            "--model",
            text(&model),
            "--input",
            text(&data),
            "--output",
            "-",
        ],
        &[
            "train",
            "--dataset",
            "xor",
            "--backend",
            "cpu",
            "--epochs",
            "1",
            "--quiet",
            "--export",
            "-",
        ],
    ] {
        let (success, stderr) = on_full_disk(args);
        assert!(!success, "{args:?} succeeded on a full disk");
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
        assert!(
            stderr.contains("standard output") && stderr.contains("No space left"),
            "{args:?}:\n{stderr}"
        );
    }

    // `train … --log-every 1 | head -3`: the reader leaves after three lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args([
            "train",
            "--dataset",
            "xor",
            "--backend",
            "cpu",
            "--epochs",
            "200000",
            "--log-every",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next().unwrap().unwrap();
    }
    drop(lines);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        stderr.is_empty(),
        "a closed pipe is not an error:\n{stderr}"
    );
    assert!(status.success(), "{status}");
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = scratch("inputs");
    let (data, model) = data_and_model(&dir);
    let before = std::fs::read(&data).unwrap();
    for option in ["--save", "--plot", "--export"] {
        fails_with(
            &[
                "train",
                "--dataset",
                text(&data),
                "--backend",
                "cpu",
                "--epochs",
                "1",
                option,
                text(&data),
            ],
            &[option, "--dataset", "destroy"],
        );
    }
    // Another spelling of the same file is the same file.
    let spelled = dir.join(".").join("data.csv");
    fails_with(
        &[
            "train",
            "--dataset",
            "xor",
            "--init",
            text(&model),
            "--plot",
            text(&model),
            "--backend",
            "cpu",
        ],
        &["--plot", "--init"],
    );
    fails_with(
        &[
            "predict",
            "--model",
            text(&model),
            "--input",
            text(&data),
            "--output",
            text(&spelled),
        ],
        &["--output", "--input"],
    );
    #[cfg(unix)]
    {
        let hard = dir.join("hard.csv");
        std::fs::hard_link(&data, &hard).unwrap();
        fails_with(
            &[
                "predict",
                "--model",
                text(&model),
                "--input",
                text(&data),
                "--output",
                text(&hard),
            ],
            &["--output", "--input"],
        );
    }
    assert_eq!(std::fs::read(&data).unwrap(), before);
}

#[cfg(target_os = "linux")]
#[test]
fn a_save_removes_what_a_killed_save_left_behind() {
    let dir = scratch("partials");
    let (data, model) = data_and_model(&dir);
    // A process that has ended, as a killed save's has.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = dir.join(format!(".model.safetensors.{dead}.partial"));
    // Process 1 always runs: its partial may be a save in progress, and stays.
    let running = dir.join(".model.safetensors.1.partial");
    let other = dir.join(format!(".other.safetensors.{dead}.partial"));
    for file in [&stale, &running, &other] {
        std::fs::write(file, vec![0u8; 1000]).unwrap();
    }
    train_and_save(&data, &model);
    assert!(
        !stale.exists(),
        "the stale partial of the same target is removed"
    );
    assert!(running.exists() && other.exists(), "other partials stay");
}

#[test]
fn sizes_from_untrusted_numbers_are_checked_before_allocating() {
    fails_with(
        &["train", "--dataset", "moons", "--samples", "100000000"],
        &["--samples", "1000000"],
    );
    fails_with(
        &["train", "--dataset", "spirals", "--classes", "1000"],
        &["--classes", "--samples (400)"],
    );
    fails_with(
        &[
            "train",
            "--dataset",
            "spirals",
            "--classes",
            "5000",
            "--samples",
            "10000",
        ],
        &["--classes", "at most 1000"],
    );
    fails_with(
        &["--backend", "cpu", "--layers", "2,100000000,1"],
        &["--layers", "400000001 parameters"],
    );
    // Few parameters, but activations for every row beyond any machine's memory.
    fails_with(
        &[
            "train",
            "--dataset",
            "moons",
            "--backend",
            "cpu",
            "--layers",
            "2,1000000,1",
            "--samples",
            "200000",
        ],
        &["--layers", "of memory", "available"],
    );

    // Small model files whose metadata claims layers of 65536 × 65535 (17 GB as f32), or of 16384 × 16383
    // (1 GB): the first is refused by its size, the second by its tensors, before anything that size is
    // allocated.
    let dir = scratch("sizes");
    let (data, model) = data_and_model(&dir);
    for (layers, fragment) in [
        ([65536, 65535], "4294967295 parameters"),
        ([16384, 16383], "layers.0.weight"),
    ] {
        let crafted = dir.join("crafted.safetensors");
        std::fs::write(&crafted, with_layers(&model, &layers)).unwrap();
        fails_with(
            &["predict", "--model", text(&crafted), "--input", text(&data)],
            &[text(&crafted), fragment],
        );
    }
}

/// The bytes of the model file at `path` with its metadata's layer sizes replaced by `layers`.
fn with_layers(path: &Path, layers: &[usize]) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let key = wgmlp::model::METADATA_KEY.to_string();
    let mut json: serde_json::Value = serde_json::from_str(&metadata[&key]).unwrap();
    json["layers"] = serde_json::json!(layers);
    metadata.insert(key, json.to_string());
    safetensors::serialize(tensors.tensors(), Some(metadata)).unwrap()
}

#[test]
fn quoted_values_are_cut_to_a_readable_length() {
    let dir = scratch("long");
    let huge = "z".repeat(5_000_000);
    let cell = dir.join("cell.csv");
    std::fs::write(&cell, format!("x1,y\n1,0\n{huge},1\n")).unwrap();
    let stderr = fails_with(
        &["train", "--dataset", text(&cell), "--backend", "cpu"],
        &["line 3", "\"x1\"", "5000000 bytes in all"],
    );
    assert!(stderr.len() < 1000, "{} bytes of message", stderr.len());

    let classes = dir.join("classes.csv");
    let rows: String = (0..10_000).map(|i| format!("{i}.5,class{i}\n")).collect();
    std::fs::write(&classes, format!("x1,y\n{rows}")).unwrap();
    let stderr = fails_with(
        &[
            "train",
            "--dataset",
            text(&classes),
            "--backend",
            "cpu",
            "--loss",
            "bce",
        ],
        &["10000", "\"class0\"", "9990 more"],
    );
    assert!(stderr.len() < 1000, "{} bytes of message", stderr.len());
}

#[test]
fn messages_say_each_thing_once_and_as_typed() {
    let dir = scratch("messages");
    let missing = dir.join("missing.csv");
    let stderr = fails_with(
        &["train", "--dataset", text(&missing)],
        &[text(&missing), "os error 2"],
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");

    fails_with(
        &["--lr", "1e-50", "--backend", "cpu"],
        &["1e-50", "too small"],
    );
    fails_with(
        &["train", "--dataset", "xor", "--lr", "1e-50"],
        &["1e-50", "too small"],
    );
    fails_with(
        &["train", "--dataset", "moons", "--noise", "1e60"],
        &["1e60", "beyond"],
    );

    fails_in_environment(
        ("WGPU_BACKEND", "nonsense"),
        &["WGPU_BACKEND", "\"nonsense\" is not a backend"],
    );

    // Line 4 of the file, whatever its line ends.
    for end in ["\n", "\r\n"] {
        let file = dir.join("ends.csv");
        std::fs::write(
            &file,
            ["x1,x2,y", "1,2,0", "3,4,1", "5,abc,0", ""].join(end),
        )
        .unwrap();
        fails_with(
            &["train", "--dataset", text(&file), "--backend", "cpu"],
            &["line 4", "\"abc\""],
        );
        std::fs::write(&file, ["x1,x2,y", "1,2,0", "3,4,1", "5,6", ""].join(end)).unwrap();
        fails_with(
            &["train", "--dataset", text(&file), "--backend", "cpu"],
            &["line 4", "2 cells"],
        );
    }
}

#[test]
fn a_wide_header_is_handled_in_linear_time() {
    let dir = scratch("wide");
    let columns = 100_000;
    let names: Vec<String> = (0..columns).map(|c| format!("c{c}")).collect();
    let file = dir.join("wide.csv");
    let row = vec!["1"; columns].join(",");
    std::fs::write(&file, format!("{}\n{row}\n{row}\n", names.join(","))).unwrap();
    let start = Instant::now();
    let table = wgmlp::data::Table::read_csv(&file).unwrap();
    let schema = wgmlp::data::Schema::infer(
        &table,
        None,
        &wgmlp::data::FeatureColumns::AllButTarget,
        wgmlp::Loss::Mse,
    )
    .unwrap();
    let features = schema.raw_features(&table).unwrap();
    assert_eq!(features.len(), 2 * (columns - 1));
    // A repeated name at the very end is found.
    let repeated = dir.join("repeated.csv");
    std::fs::write(&repeated, format!("{},c0\n{row},1\n", names.join(","))).unwrap();
    let err = wgmlp::data::Table::read_csv(&repeated)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"c0\" twice"), "{err}");
    // Linear work takes a fraction of a second; the quadratic header took most of a minute.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn standardization_statistics_of_huge_values_are_saved_and_load_again() {
    let dir = scratch("standardize");
    let data = dir.join("huge.csv");
    std::fs::write(
        &data,
        "x1,x2,y\n1e20,3e38,0\n-1e20,-3e38,1\n1e20,-3e38,0\n-1e20,3e38,1\n",
    )
    .unwrap();
    let model = dir.join("m.safetensors");
    succeeds(&[
        "train",
        "--dataset",
        text(&data),
        "--backend",
        "cpu",
        "--epochs",
        "20",
        "--standardize",
        "--loss",
        "bce",
        "--quiet",
        "--save",
        text(&model),
    ]);
    let loaded = wgmlp::model::Model::load(&model).unwrap();
    let scaling = loaded.schema.standardize.unwrap();
    assert_eq!(scaling.std, vec![1e20, 3e38]);
    assert_eq!(scaling.mean, vec![0.0, 0.0]);
}

#[test]
fn options_that_cannot_apply_are_refused() {
    fails_with(
        &["train", "--dataset", "xor", "--weight-decay", "0.1"],
        &["--weight-decay", "adam"],
    );
    fails_with(
        &[
            "train",
            "--dataset",
            "xor",
            "--optimizer",
            "adam",
            "--momentum",
            "0.9",
        ],
        &["--momentum", "sgd"],
    );
    fails_in_environment(
        ("WGPU_POWER_PREF", "bogus"),
        &["WGPU_POWER_PREF", "low, high"],
    );
}

#[test]
fn numeric_labels_are_classes_by_value() {
    let dir = scratch("labels");
    let data = dir.join("labels.csv");
    std::fs::write(&data, "x1,y\n0.1,1\n0.2,1.0\n0.9,-0\n0.8,0\n0.7,0.0\n").unwrap();
    let model = dir.join("m.safetensors");
    succeeds(&[
        "train",
        "--dataset",
        text(&data),
        "--backend",
        "cpu",
        "--loss",
        "bce",
        "--epochs",
        "5",
        "--quiet",
        "--save",
        text(&model),
    ]);
    let loaded = wgmlp::model::Model::load(&model).unwrap();
    assert_eq!(loaded.schema.classes, Some(vec!["0".into(), "1".into()]));
    let predictions = succeeds(&["predict", "--model", text(&model), "--input", text(&data)]);
    assert!(predictions.starts_with("class,p_0,p_1\n"), "{predictions}");
}

#[test]
fn demo_options_before_a_subcommand_are_refused_not_dropped() {
    fails_with(
        &["--epochs", "5", "train", "--dataset", "moons"],
        &["--epochs", "train", "after"],
    );
    // Moving an option after the subcommand helps only where the subcommand has it.
    fails_with(
        &["--adapter", "x", "train", "--dataset", "moons"],
        &["--adapter before `train`", "put it after `train`"],
    );
    let stderr = fails_with(
        &["--adapter", "x", "predict", "--model", "m", "--input", "-"],
        &[
            "--adapter before `predict`",
            "`predict` has no --adapter; leave it out",
        ],
    );
    assert!(!stderr.contains("put it after"), "{stderr}");
    // --json is shared by every subcommand, wherever it stands.
    let out = succeeds(&[
        "--json",
        "train",
        "--dataset",
        "xor",
        "--backend",
        "cpu",
        "--epochs",
        "2",
    ]);
    assert!(out.trim_start().starts_with('{'), "{out}");
}

#[test]
fn divergence_is_caught_and_its_cause_named() {
    // The XOR demo's outputs pin at 1 and its bounded loss only doubles.
    fails_with(
        &["--lr", "1e30", "--backend", "cpu"],
        &["diverged", "pinned at 0 or 1", "--lr (now 1e30)"],
    );
    // The bce loss grows without bound.
    fails_with(
        &[
            "train",
            "--dataset",
            "moons",
            "--lr",
            "1e30",
            "--backend",
            "cpu",
        ],
        &["diverged by epoch 10", "grew", "--lr (now 1e30)"],
    );
    // Other causes are named, not blamed on the learning rate.
    fails_with(
        &[
            "train",
            "--dataset",
            "xor",
            "--optimizer",
            "adam",
            "--weight-decay",
            "1e30",
        ],
        &["--weight-decay", "1/lr = 100"],
    );
    let dir = scratch("divergence");
    let data = dir.join("huge.csv");
    std::fs::write(&data, "x1,y\n3e38,0\n-3e38,1\n1,0\n").unwrap();
    let stderr = fails_with(
        &[
            "train",
            "--dataset",
            text(&data),
            "--backend",
            "cpu",
            "--activation",
            "identity",
        ],
        &["diverged", "3e38", "--standardize"],
    );
    assert!(!stderr.contains("--lr"), "{stderr}");
    succeeds(&[
        "train",
        "--dataset",
        text(&data),
        "--backend",
        "cpu",
        "--activation",
        "identity",
        "--standardize",
        "--quiet",
    ]);
}

#[test]
fn library_calls_that_panicked_return_errors() {
    let softmax = [
        Op::activation_forward(0..4, 4..8, Activation::Softmax),
        Op::activation_backward(0..4, 4..8, 8..12, Activation::Softmax),
    ];
    for result in softmax {
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("softmax") && error.contains("softmax_forward"),
            "{error}"
        );
    }
    let error = Op::matmul_with(Kernel::BiasAdd, 0..1, 1..2, 2..3, MatmulShape::new(1, 1, 1))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("BiasAdd") && error.contains("Kernel::Matmul"),
        "{error}"
    );
    // Offsets past u32, and a grid of more elements than the shaders can count.
    let error = Op::advance_counter(1 << 32, 1.0).unwrap_err().to_string();
    assert!(
        error.contains("advance_counter") && error.contains("4294967296"),
        "{error}"
    );
    let huge = Op::bias_add(0..1 << 33, 0..1 << 16, 1 << 17).unwrap();
    let error = huge.workgroups(65535).unwrap_err().to_string();
    assert!(error.contains("bias_add over 131072×65536"), "{error}");
}

/// A device of its own, so that the errors a test provokes reach no other test.
fn own_gpu() -> Gpu {
    pollster::block_on(Gpu::new()).expect("GPU tests need an adapter")
}

#[test]
fn a_gpu_error_outside_a_scope_is_returned_not_a_panic() {
    let gpu = own_gpu();
    // Mapped buffers must be a multiple of 4 bytes long: wgpu's default handler panics on this one.
    let _buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("odd"),
        size: 3,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: true,
    });
    let error = gpu.wait().unwrap_err().to_string();
    assert!(
        error.contains("GPU error") && error.contains("odd"),
        "{error}"
    );
    gpu.wait().expect("an error is reported once");
}

#[test]
fn a_lost_device_is_an_error_from_train_and_reads() {
    let gpu = own_gpu();
    let network = Network::new(vec![2, 3, 1]).unwrap();
    let params = network.init_params(DEFAULT_SEED);
    let data = Dataset::xor();
    let config = TrainConfig::sgd(0.1);
    let mut trainer =
        pollster::block_on(GpuTrainer::new(&gpu, &network, &params, &data, config)).unwrap();
    trainer.train(10).unwrap();
    // wgpu tells of the loss once the device is next polled: the wait reports it, and every call after.
    gpu.device.destroy();
    for error in [
        gpu.wait().unwrap_err(),
        trainer.train(10).unwrap_err(),
        pollster::block_on(trainer.params()).unwrap_err(),
    ] {
        let error = error.to_string();
        assert!(
            error.contains("device was lost") && error.contains("--backend cpu"),
            "{error}"
        );
    }
}

#[test]
fn a_resumed_run_near_a_perfect_fit_is_not_called_diverged() {
    use wgmlp::train::{divergence, saturation};
    // From a loss of 1e-7 to 1e-3 is a step back, not a divergence; a loss grown 10⁴-fold over 1 is.
    assert_eq!(divergence(1e-7, 1e-3), None);
    assert!(divergence(1e-7, 2e4).is_some());
    assert!(divergence(0.5, f64::NAN).is_some());
    // Outputs exactly 0 and 1 with a loss of 0 are a perfect fit.
    let network = wgmlp::Network::new(vec![2, 3, 1]).unwrap();
    assert_eq!(saturation(&network, 0.0, 0.0, &[0.0, 1.0, 1.0, 0.0]), None);
    assert!(saturation(&network, 0.6, 1.0, &[1.0, 1.0, 1.0, 1.0]).is_some());
}

#[test]
fn a_checkpoint_resumes_in_place() {
    let dir = scratch("in-place");
    let model = dir.join("m.safetensors");
    let train = |extra: &[&str]| {
        let args = [
            &[
                "train",
                "--dataset",
                "xor",
                "--backend",
                "cpu",
                "--epochs",
                "4",
            ][..],
            &["--save", text(&model), "--quiet"],
            extra,
        ]
        .concat();
        succeeds(&args);
    };
    train(&[]);
    train(&["--init", text(&model)]);
    let checkpoint = wgmlp::model::Model::load(&model)
        .unwrap()
        .checkpoint
        .unwrap();
    assert_eq!(checkpoint.epoch, 8);
}
