//! Tables as they come (issue 10): other delimiters, detected or given, standard input and output, and
//! predictions as JSON lines.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{fails_with, json, scratch, text, wgmlp};
use wgmlp::data::{Table, parse_delimiter};

/// Runs the program in `dir` with `input` on its standard input.
fn with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgmlp"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_of(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn parse(text: &str, delimiter: Option<u8>) -> wgmlp::Result<Table> {
    Table::parse(text.as_bytes(), "t.txt", delimiter)
}

fn header(text: &str, delimiter: Option<u8>) -> Vec<String> {
    parse(text, delimiter).unwrap().header
}

#[test]
fn the_delimiter_is_the_one_that_splits_the_header_most() {
    for delimiter in [",", "\t", ";", "|"] {
        let table = parse(&"a,b,y\n1,2,0\n3,4,1\n".replace(',', delimiter), None).unwrap();
        assert_eq!(table.header, ["a", "b", "y"], "{delimiter:?}");
        assert_eq!(table.rows[1].cells, ["3", "4", "1"], "{delimiter:?}");
        assert_eq!(table.rows[1].line, 3);
    }
    // A tie goes to comma; otherwise the most cells win, whatever a name holds.
    assert_eq!(header("a;b,c\n1,2\n", None), ["a;b", "c"]);
    assert_eq!(header("a;x,b;y;c\n1;2;3;4\n", None), ["a", "x,b", "y", "c"]);
    // Quoted names are one cell each, delimiters inside them included.
    assert_eq!(
        header("\"x,1\";\"x,2\";y\n1;2;3\n", None),
        ["x,1", "x,2", "y"]
    );
    assert_eq!(header("\"a;b\",c\n1,2\n", None), ["a;b", "c"]);
    // A byte-order mark and CRLF line ends in a TSV: names as written, errors on the right line.
    let tsv = "\u{feff}a\tb\ty\r\n1\t2\t0\r\n3\t4\r\n";
    let error = parse(tsv, None).unwrap_err().to_string();
    assert!(
        error.contains("line 3") && error.contains("2 cells but the header has 3"),
        "{error}"
    );
    assert_eq!(header(&tsv.replace("3\t4\r\n", ""), None), ["a", "b", "y"]);
    // A delimiter given is used as it is, beyond the ones detected too.
    assert_eq!(header("a:b,c\n1:2\n", Some(b':')), ["a", "b,c"]);
    assert_eq!(header("a,b|c\n1,2|3\n", Some(b'|')), ["a,b", "c"]);
}

#[test]
fn a_table_read_as_one_column_names_the_delimiter_to_try() {
    let cases: &[(&str, Option<u8>, &str)] = &[
        ("a\tb\ty\n1\t2\t3\n", Some(b','), "--delimiter tab"),
        ("a;b;y\n1;2;3\n", Some(b'|'), "--delimiter ';'"),
        ("a:b:y\n1:2:3\n", None, "--delimiter ':'"),
        ("a b y\n1 2 3\n", None, "--delimiter ' '"),
    ];
    for &(text, delimiter, hint) in cases {
        let error = parse(text, delimiter).unwrap_err().to_string();
        assert!(
            error.contains("t.txt, line 1") && error.contains("one column") && error.contains(hint),
            "{text:?}: {error}"
        );
    }
    // One column whose name has a space, and values that do not split, is just one column.
    let table = parse("sale price\n1.5\n2\n", None).unwrap();
    assert_eq!(table.header, ["sale price"]);
}

#[test]
fn delimiters_are_named_or_one_ascii_punctuation_character() {
    for (text, byte) in [
        (",", b','),
        (";", b';'),
        ("|", b'|'),
        ("tab", b'\t'),
        ("\\t", b'\t'),
        ("\t", b'\t'),
        (":", b':'),
        (" ", b' '),
    ] {
        assert_eq!(parse_delimiter(text).unwrap(), byte, "{text:?}");
    }
    for (text, reason) in [
        ("", "one ASCII character"),
        (",,", "one ASCII character"),
        ("comma", "one ASCII character"),
        ("é", "one ASCII character"),
        ("\"", "the quote"),
        ("1", "numbers are written with it"),
        ("e", "numbers are written with it"),
        ("a", "a letter belongs to words"),
        ("Z", "a letter belongs to words"),
        (".", "numbers are written with it"),
        ("-", "numbers are written with it"),
        ("\n", "cannot separate cells"),
    ] {
        let error = parse_delimiter(text).unwrap_err().to_string();
        assert!(
            error.contains("--delimiter") && error.contains(reason),
            "{text:?}: {error}"
        );
    }
    // The library refuses them too where they come as a byte.
    let error = parse("a\"b\n1\"2\n", Some(b'"')).unwrap_err().to_string();
    assert!(error.contains("--delimiter"), "{error}");
}

#[test]
fn train_and_predict_read_other_delimiters() {
    let dir = scratch("delimiters");
    let csv = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n";
    let write = |name: &str, delimiter: &str| {
        let path = dir.join(name);
        std::fs::write(&path, csv.replace(',', delimiter)).unwrap();
        path
    };
    let (comma, tsv, semicolons, colons) = (
        write("xor.csv", ","),
        write("xor.tsv", "\t"),
        write("xor-semicolons.txt", ";"),
        write("xor-colons.txt", ":"),
    );
    let model = dir.join("m.safetensors");
    let report = json(&[
        "train",
        "--dataset",
        text(&tsv),
        "--backend",
        "cpu",
        "--epochs",
        "3",
        "--save",
        text(&model),
        "--json",
    ]);
    assert_eq!(report["layers"], serde_json::json!([2, 16, 16, 1]));
    assert_eq!(report["train_rows"], 4);
    let predict = |input: &Path, extra: &[&str]| {
        let args = [
            &["predict", "--model", text(&model), "--input", text(input)],
            extra,
        ]
        .concat();
        stdout_of(&args, wgmlp(&args))
    };
    let expected = predict(&comma, &[]);
    assert!(expected.starts_with("y\n"), "{expected}");
    assert_eq!(predict(&tsv, &[]), expected);
    assert_eq!(predict(&semicolons, &[]), expected);
    assert_eq!(predict(&tsv, &["--delimiter", "tab"]), expected);
    assert_eq!(predict(&colons, &["--delimiter", ":"]), expected);
    // The wrong delimiter, or one not detected, is named with the one to try.
    fails_with(
        &[
            "train",
            "--dataset",
            text(&tsv),
            "--delimiter",
            ";",
            "--backend",
            "cpu",
        ],
        &["xor.tsv", "line 1", "one column", "--delimiter tab"],
    );
    fails_with(
        &["predict", "--model", text(&model), "--input", text(&colons)],
        &["xor-colons.txt", "--delimiter ':'"],
    );
    for bad in ["", "ab", "\"", "7"] {
        for command in ["train", "predict"] {
            let args = match command {
                "train" => vec!["train", "--dataset", text(&comma), "--delimiter", bad],
                _ => vec![
                    "predict",
                    "--model",
                    text(&model),
                    "--input",
                    text(&comma),
                    "--delimiter",
                    bad,
                ],
            };
            fails_with(&args, &["--delimiter"]);
        }
    }
    fails_with(
        &["train", "--dataset", "xor", "--delimiter", ";"],
        &["--delimiter", "built-in dataset"],
    );
}

#[test]
fn predict_reads_standard_input_and_writes_standard_output() {
    let dir = scratch("streams");
    let data = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n";
    let (csv, model) = (dir.join("xor.csv"), dir.join("m.safetensors"));
    std::fs::write(&csv, data).unwrap();
    // A file called `-` is not what `-` means: it is neither read, written, nor taken for an input.
    let dash = dir.join("-");
    std::fs::write(&dash, "untouched").unwrap();
    // train --dataset - reads standard input too.
    let args = [
        "train",
        "--dataset",
        "-",
        "--backend",
        "cpu",
        "--epochs",
        "3",
        "--quiet",
        "--save",
        text(&model),
    ];
    stdout_of(&args, with_stdin(&dir, &args, data));
    let from_file = ["predict", "--model", text(&model), "--input", text(&csv)];
    let expected = stdout_of(&from_file, wgmlp(&from_file));
    assert!(
        expected.starts_with("y\n") && expected.lines().count() == 5,
        "{expected}"
    );
    for output in [&[][..], &["--output", "-"]] {
        let args = [
            &["predict", "--model", text(&model), "--input", "-"],
            output,
        ]
        .concat();
        assert_eq!(
            stdout_of(&args, with_stdin(&dir, &args, data)),
            expected,
            "{args:?}"
        );
    }
    let tsv = data.replace(',', "\t");
    let args = [
        "predict",
        "--model",
        text(&model),
        "--input",
        "-",
        "--output",
        "p.csv",
    ];
    assert_eq!(stdout_of(&args, with_stdin(&dir, &args, &tsv)), "");
    assert_eq!(
        std::fs::read_to_string(dir.join("p.csv")).unwrap(),
        expected
    );
    assert_eq!(std::fs::read_to_string(&dash).unwrap(), "untouched");

    // Errors name standard input as the source.
    for (input, fragment) in [
        ("", "it is empty"),
        ("x1,x2\n0,0\n1\n", "line 3"),
        ("x1,x3\n0,0\n", "no column \"x2\""),
    ] {
        let args = ["predict", "--model", text(&model), "--input", "-"];
        let out = with_stdin(&dir, &args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("standard input") && stderr.contains(fragment),
            "{input:?}: {stderr}"
        );
    }
}

#[test]
fn predict_json_writes_one_object_per_row() {
    let dir = scratch("json-lines");
    let (data, model, written) = (
        dir.join("spirals.csv"),
        dir.join("c.safetensors"),
        dir.join("p.jsonl"),
    );
    json(&[
        "train",
        "--dataset",
        "spirals",
        "--samples",
        "30",
        "--epochs",
        "20",
        "--backend",
        "cpu",
        "--export",
        text(&data),
        "--save",
        text(&model),
        "--json",
    ]);
    let args = [
        "predict",
        "--model",
        text(&model),
        "--input",
        text(&data),
        "--json",
        "--output",
        text(&written),
    ];
    assert_eq!(
        stdout_of(&args, wgmlp(&args)),
        "",
        "--output takes the lines"
    );
    let lines = std::fs::read_to_string(&written).unwrap();
    let csv_args = ["predict", "--model", text(&model), "--input", text(&data)];
    let csv = stdout_of(&csv_args, wgmlp(&csv_args));
    let csv_rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(lines.lines().count(), 30);
    assert_eq!(csv_rows.len(), 30);
    for (line, csv_row) in lines.lines().zip(&csv_rows) {
        let row: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        let probabilities = row["probabilities"].as_object().expect("probabilities");
        let classes: Vec<&str> = probabilities.keys().map(String::as_str).collect();
        assert_eq!(classes, ["0", "1", "2"], "{line}");
        let p: Vec<f64> = probabilities
            .values()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{line}");
        // The same class and probabilities as the CSV, as a string and as numbers.
        assert_eq!(row["class"].as_str(), Some(csv_row[0]), "{line}");
        for (value, cell) in p.iter().zip(&csv_row[1..]) {
            assert_eq!(*value as f32, cell.parse::<f32>().unwrap(), "{line}");
        }
    }

    // Regression: the value, keyed by the target's name, on standard output.
    let table = dir.join("line.csv");
    let rows: Vec<String> = (0..10).map(|i| format!("{i},{}", 2 * i)).collect();
    std::fs::write(&table, format!("x,price\n{}\n", rows.join("\n"))).unwrap();
    let regression = dir.join("r.safetensors");
    json(&[
        "train",
        "--dataset",
        text(&table),
        "--backend",
        "cpu",
        "--epochs",
        "3",
        "--save",
        text(&regression),
        "--json",
    ]);
    let args = [
        "predict",
        "--model",
        text(&regression),
        "--input",
        text(&table),
        "--json",
    ];
    let out = stdout_of(&args, wgmlp(&args));
    assert_eq!(out.lines().count(), 10);
    for line in out.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        let object = row.as_object().unwrap();
        assert!(object.len() == 1 && object["price"].is_f64(), "{line}");
    }
}

#[test]
fn evaluate_reads_other_delimiters_and_standard_input() {
    let dir = scratch("evaluate-streams");
    let data = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n";
    let (csv, model) = (dir.join("xor.csv"), dir.join("m.safetensors"));
    std::fs::write(&csv, data).unwrap();
    save_model(&csv, &model, &[]);
    let from_file = json(&[
        "evaluate",
        "--model",
        text(&model),
        "--input",
        text(&csv),
        "--json",
    ]);
    let tsv = data.replace(',', "\t");
    let args = [
        "evaluate",
        "--model",
        text(&model),
        "--input",
        "-",
        "--json",
    ];
    let from_stdin: serde_json::Value =
        serde_json::from_str(&stdout_of(&args, with_stdin(&dir, &args, &tsv))).unwrap();
    assert_eq!(from_stdin["rows"], 4);
    for key in ["loss", "accuracy", "confusion_matrix"] {
        assert_eq!(from_stdin[key], from_file[key], "{key}");
    }
}

#[test]
fn numbers_with_a_decimal_comma_are_named_as_such() {
    let dir = scratch("decimal-comma");
    let data = dir.join("prices.csv");
    let rows: Vec<String> = (0..30)
        .map(|i| format!("{i};{},5;{}", i % 4, 100 + i))
        .collect();
    std::fs::write(&data, format!("id;rating;price\n{}\n", rows.join("\n"))).unwrap();
    // Not text of too many categories to leave out with --ignore: numbers written the other way.
    let stderr = fails_with(
        &["train", "--dataset", text(&data), "--backend", "cpu"],
        &[
            "prices.csv, line 2",
            "column \"rating\" holds \"0,5\", a number with a decimal comma",
            "replace the commas with points",
        ],
    );
    assert!(!stderr.contains("--ignore"), "{stderr}");
    // The same in a target, and in a file that predict reads.
    fails_with(
        &[
            "train",
            "--dataset",
            text(&data),
            "--target",
            "rating",
            "--backend",
            "cpu",
        ],
        &["\"rating\" holds \"0,5\", a number with a decimal comma"],
    );
}

/// Trains a few epochs on the CPU on `csv` and saves the model to `model`.
fn save_model(csv: &Path, model: &Path, extra: &[&str]) {
    let args = [
        &["train", "--dataset", text(csv), "--backend", "cpu"][..],
        &["--epochs", "3", "--quiet", "--save", text(model)],
        extra,
    ]
    .concat();
    stdout_of(&args, wgmlp(&args));
}

#[test]
fn predict_answers_a_header_alone_with_a_header_alone() {
    let dir = scratch("header-only");
    let (csv, model) = (dir.join("xor.csv"), dir.join("m.safetensors"));
    std::fs::write(&csv, "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n").unwrap();
    for (loss, header) in [("mse", "y\n"), ("ce", "class,p_0,p_1\n")] {
        save_model(&csv, &model, &["--loss", loss]);
        let empty = dir.join("empty.csv");
        std::fs::write(&empty, "x1,x2\n").unwrap();
        let predict = ["predict", "--model", text(&model), "--input", text(&empty)];
        assert_eq!(stdout_of(&predict, wgmlp(&predict)), header, "{loss}");
        let args = [&predict[..], &["--json"]].concat();
        assert_eq!(
            stdout_of(&args, wgmlp(&args)),
            "",
            "{loss}: no rows, no JSON lines"
        );
        // The header is still checked, and evaluate and train still need rows.
        std::fs::write(&empty, "x1,x3\n").unwrap();
        fails_with(&predict, &["there is no column \"x2\""]);
        std::fs::write(&empty, "x1,x2,y\n").unwrap();
        fails_with(
            &["evaluate", "--model", text(&model), "--input", text(&empty)],
            &["empty.csv", "no data rows"],
        );
    }
}
