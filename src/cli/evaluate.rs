//! `evaluate`: a saved model scored on a CSV file that has the target column: loss and accuracy with a
//! confusion matrix for classifiers, loss, RMSE and R² for regression.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use wgmlp::metrics::{Scores, confusion_matrix};
use wgmlp::model::Model;

#[derive(Args)]
pub struct EvaluateArgs {
    /// A model saved by `train --save`
    #[arg(long)]
    model: PathBuf,

    /// A table with the model's feature columns and its target column (other columns are ignored); - reads
    /// standard input
    #[arg(long)]
    input: PathBuf,

    #[command(flatten)]
    format: super::TableFormat,
}

pub fn run(args: &EvaluateArgs, json: bool) -> anyhow::Result<()> {
    let model = Model::load(&args.model)?;
    let table = args.format.read(&args.input)?;
    let network = &model.network;
    let data = model.schema.dataset(&table, network.loss())?;
    let evaluation = wgmlp::cpu::evaluate(network, &model.params, &data)?;
    let scores = Scores::new(&model.schema, network, &evaluation, &data.targets);
    let confusion = model.schema.classes.as_ref().map(|classes| {
        let counts = confusion_matrix(
            network.loss(),
            &evaluation.outputs,
            &data.targets,
            network.outputs(),
            classes.len(),
        );
        (classes, counts)
    });
    if json {
        let report = json!({
            "model": args.model,
            "input": args.input,
            "rows": scores.rows,
            "loss": scores.loss,
            "accuracy": scores.accuracy,
            "rmse": scores.rmse,
            "r2": scores.r2,
            "confusion_matrix": confusion.as_ref().map(|(classes, counts)| json!({
                "classes": classes,
                "counts": counts,
            })),
        });
        return say!("{report:#}");
    }
    say!("{} rows of {}: {scores}", scores.rows, table.source)?;
    if let Some((classes, counts)) = &confusion {
        say!("confusion matrix (rows: true class, columns: predicted class):")?;
        for line in matrix_lines(classes, counts) {
            say!("{line}")?;
        }
    }
    Ok(())
}

/// The confusion matrix as aligned text: a header of class names, then a row per true class.
fn matrix_lines(classes: &[String], counts: &[Vec<usize>]) -> Vec<String> {
    let label_width = classes.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    let cell_width = counts
        .iter()
        .flatten()
        .map(|n| n.to_string().len())
        .chain(classes.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(0);
    let row = |label: &str, cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().map(|c| format!("{c:>cell_width$}")).collect();
        format!("{label:<label_width$}  {}", cells.join("  "))
    };
    std::iter::once(row("", classes.to_vec()))
        .chain(
            classes
                .iter()
                .zip(counts)
                .map(|(class, counts)| row(class, counts.iter().map(usize::to_string).collect())),
        )
        .collect()
}
