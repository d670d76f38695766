//! `predict`: a saved model applied to the rows of a table, one prediction per row, as CSV or JSON lines.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde::{Serialize, Serializer};
use wgmlp::Loss;
use wgmlp::data::{Row, Table, class_of};
use wgmlp::model::Model;

use super::TableFormat;

#[derive(Args)]
pub struct PredictArgs {
    /// A model saved by `train --save`
    #[arg(long)]
    model: PathBuf,

    /// A table with the feature columns the model was trained on (other columns are ignored); - reads
    /// standard input
    #[arg(long)]
    input: PathBuf,

    #[command(flatten)]
    format: TableFormat,

    /// Where to write the predictions; - or none: standard output
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(args: &PredictArgs, json: bool) -> anyhow::Result<()> {
    let inputs = [("--model", &args.model), ("--input", &args.input)];
    super::check_outputs_spare_inputs(&inputs, &[("--output", args.output.as_ref())])?;
    let model = Model::load(&args.model)?;
    let width = model.network.outputs();
    if model.schema.classes.is_none() && width != 1 {
        bail!(
            "--model {}: a regression model has one output for its one target, and this one has {width}",
            args.model.display()
        );
    }
    // A header alone has no rows to predict: the answer is a header alone too (or no JSON lines).
    let table = args.format.read_maybe_empty(&args.input)?;
    let inputs = model.schema.features(&table)?;
    let outputs = model.predict(&inputs, table.rows.len())?;
    let bytes = if json {
        json_lines(&model, &outputs)?
    } else {
        predictions(&model, &outputs).csv_bytes()?
    };
    let stdout = PathBuf::from("-");
    super::write_output("--output", args.output.as_ref().unwrap_or(&stdout), &bytes)
}

/// Classifiers: the class label, then the probability of each class. Regression: the predicted value.
fn predictions(model: &Model, outputs: &[f32]) -> Table {
    let loss = model.network.loss();
    let width = model.network.outputs();
    let (header, rows): (Vec<String>, Vec<Vec<String>>) = match &model.schema.classes {
        Some(classes) => {
            let header = std::iter::once("class".to_string())
                .chain(classes.iter().map(|c| format!("p_{c}")))
                .collect();
            let rows = outputs
                .chunks(width)
                .map(|row| {
                    std::iter::once(classes[best_class(loss, row)].clone())
                        .chain(probabilities(loss, row).iter().map(|p| p.to_string()))
                        .collect()
                })
                .collect();
            (header, rows)
        }
        None => (
            vec![model.schema.target.clone()],
            outputs.iter().map(|v| vec![v.to_string()]).collect(),
        ),
    };
    Table {
        source: "predictions".into(),
        header,
        rows: rows
            .into_iter()
            .enumerate()
            .map(|(i, cells)| Row {
                line: i as u64 + 2,
                cells,
            })
            .collect(),
    }
}

/// One JSON object a line: `{"class": label, "probabilities": {label: p, ...}}` for classifiers,
/// `{target: value}` for regression.
fn json_lines(model: &Model, outputs: &[f32]) -> anyhow::Result<Vec<u8>> {
    let loss = model.network.loss();
    let mut bytes = Vec::new();
    for row in outputs.chunks(model.network.outputs()) {
        match &model.schema.classes {
            Some(classes) => {
                let prediction = ClassPrediction {
                    class: &classes[best_class(loss, row)],
                    probabilities: Named(classes, &probabilities(loss, row)),
                };
                serde_json::to_writer(&mut bytes, &prediction)?;
            }
            None => {
                let target = std::slice::from_ref(&model.schema.target);
                serde_json::to_writer(&mut bytes, &Named(target, row))?;
            }
        }
        bytes.push(b'\n');
    }
    Ok(bytes)
}

#[derive(Serialize)]
struct ClassPrediction<'a> {
    class: &'a str,
    probabilities: Named<'a>,
}

/// Names and their values as one JSON object, in their order; an f32 is written as its shortest decimal.
struct Named<'a>(&'a [String], &'a [f32]);

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().zip(self.1))
    }
}

/// The index of the class a classifier's output row stands for.
fn best_class(loss: Loss, row: &[f32]) -> usize {
    class_of(loss, row).expect("a classifier's rows have a class")
}

/// A classifier's probability of each class: bce's one output is the second class's.
fn probabilities(loss: Loss, row: &[f32]) -> Vec<f32> {
    if loss == Loss::Bce {
        vec![1.0 - row[0], row[0]]
    } else {
        row.to_vec()
    }
}
