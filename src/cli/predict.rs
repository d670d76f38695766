//! `predict`: a saved model applied to the rows of a CSV file, one prediction per row, as CSV.

use std::path::PathBuf;

use clap::Args;
use wgmlp::Loss;
use wgmlp::data::{Row, Table, class_of};
use wgmlp::model::Model;

#[derive(Args)]
pub struct PredictArgs {
    /// A model saved by `train --save`
    #[arg(long)]
    model: PathBuf,

    /// A CSV file with the feature columns the model was trained on (other columns are ignored)
    #[arg(long)]
    input: PathBuf,

    /// Where to write the predictions; - or none: standard output
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let inputs = [("--model", &args.model), ("--input", &args.input)];
    super::check_outputs_spare_inputs(&inputs, &[("--output", args.output.as_ref())])?;
    let model = Model::load(&args.model)?;
    let table = Table::read_csv(&args.input)?;
    let inputs = model.schema.features(&table)?;
    let outputs = model.predict(&inputs, table.rows.len())?;
    let bytes = predictions(&model, &outputs).csv_bytes()?;
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
                    let probabilities = if loss == Loss::Bce {
                        vec![1.0 - row[0], row[0]]
                    } else {
                        row.to_vec()
                    };
                    let best = class_of(loss, row).expect("a classifier's rows have a class");
                    std::iter::once(classes[best].clone())
                        .chain(probabilities.iter().map(|p| p.to_string()))
                        .collect()
                })
                .collect();
            (header, rows)
        }
        None => (
            vec![model.schema.target.clone()],
            outputs
                .chunks(width)
                .map(|row| row.iter().map(|v| v.to_string()).collect())
                .collect(),
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
