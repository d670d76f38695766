//! Scores a person can read: accuracy and a confusion matrix for classifiers, RMSE and R² for regression
//! in the target's own units.

use std::fmt;

use serde::Serialize;

use crate::cpu::Evaluation;
use crate::data::{Schema, accuracy, class_of};
use crate::network::{Loss, Network};

/// The root mean squared error of `predictions` against `targets`.
pub fn rmse(predictions: &[f32], targets: &[f32]) -> f64 {
    (squared_error(predictions, targets) / targets.len().max(1) as f64).sqrt()
}

/// The coefficient of determination, 1 − Σ(y − p)² / Σ(y − ȳ)²: 1 for a perfect fit, 0 for predicting the
/// mean, below 0 for worse. None where the targets do not vary: there is no spread to explain.
pub fn r_squared(predictions: &[f32], targets: &[f32]) -> Option<f64> {
    let mean = targets.iter().map(|&y| f64::from(y)).sum::<f64>() / targets.len().max(1) as f64;
    let spread: f64 = targets.iter().map(|&y| (f64::from(y) - mean).powi(2)).sum();
    (spread > 0.0).then(|| 1.0 - squared_error(predictions, targets) / spread)
}

/// Σ(y − p)², in f64.
fn squared_error(predictions: &[f32], targets: &[f32]) -> f64 {
    predictions
        .iter()
        .zip(targets)
        .map(|(&p, &y)| (f64::from(p) - f64::from(y)).powi(2))
        .sum()
}

/// How many rows of each true class (a row of the matrix) a classifier put in each class (a column), from
/// its output rows and target rows of `cols` values.
pub fn confusion_matrix(
    loss: Loss,
    outputs: &[f32],
    targets: &[f32],
    cols: usize,
    classes: usize,
) -> Vec<Vec<usize>> {
    let mut matrix = vec![vec![0; classes]; classes];
    for (output, target) in outputs.chunks(cols).zip(targets.chunks(cols)) {
        if let (Some(predicted), Some(actual)) = (class_of(loss, output), class_of(loss, target)) {
            matrix[actual][predicted] += 1;
        }
    }
    matrix
}

/// How well a network's outputs fit a table's targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub rows: usize,
    /// The loss the network is trained on (on the scaled target, where `--standardize` scaled it).
    pub loss: f64,
    /// Classifiers: the share of rows whose class is right.
    pub accuracy: Option<f64>,
    /// Regression: the root mean squared error, in the target's units.
    pub rmse: Option<f64>,
    /// Regression: the coefficient of determination (see [`r_squared`]).
    pub r2: Option<f64>,
}

impl Scores {
    /// The scores of `evaluation`, `network`'s outputs and loss on rows whose `targets` `schema` read.
    pub fn new(
        schema: &Schema,
        network: &Network,
        evaluation: &Evaluation,
        targets: &[f32],
    ) -> Scores {
        let (loss, cols) = (network.loss(), network.outputs());
        let accuracy = accuracy(loss, &evaluation.outputs, targets, cols);
        let (rmse, r2) = match accuracy {
            Some(_) => (None, None),
            None => {
                let predictions = schema.in_target_units(evaluation.outputs.clone());
                let targets = schema.in_target_units(targets.to_vec());
                (
                    Some(rmse(&predictions, &targets)),
                    r_squared(&predictions, &targets),
                )
            }
        };
        Scores {
            rows: targets.len() / cols.max(1),
            loss: evaluation.loss,
            accuracy,
            rmse,
            r2,
        }
    }
}

/// "loss 0.123456, accuracy 97.5%" for a classifier, "loss 0.123456, RMSE 1234, R² 0.9512" for regression.
impl fmt::Display for Scores {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "loss {:.6}", self.loss)?;
        if let Some(accuracy) = self.accuracy {
            write!(f, ", accuracy {:.1}%", 100.0 * accuracy)?;
        }
        if let Some(rmse) = self.rmse {
            write!(f, ", RMSE {}", significant(rmse))?;
        }
        match (self.r2, self.rmse) {
            (Some(r2), _) => write!(f, ", R² {r2:.4}"),
            (None, Some(_)) => write!(f, ", R² undefined (the target does not vary)"),
            (None, None) => Ok(()),
        }
    }
}

/// A value to four significant digits, plain where that is short (a whole number below 1e7 keeps all its
/// digits: 19265, not 1.927e4), with an exponent otherwise (1.500e10).
fn significant(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() {
        value.to_string()
    } else if (1e-4..1e7).contains(&magnitude) {
        let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
        format!("{value:.decimals$}")
    } else {
        format!("{value:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_fit_has_r_squared_1_and_rmse_0() {
        let y = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(r_squared(&y, &y), Some(1.0));
        assert_eq!(rmse(&y, &y), 0.0);
    }

    #[test]
    fn predicting_the_mean_has_r_squared_0() {
        let y = [1.0, 2.0, 4.0, 9.0];
        assert_eq!(r_squared(&[4.0; 4], &y), Some(0.0));
        // Worse than the mean is below 0.
        assert!(r_squared(&[9.0, 4.0, 2.0, 1.0], &y).unwrap() < 0.0);
    }

    #[test]
    fn rmse_is_in_the_targets_units() {
        // Errors 3 and 4 (and 0, 0): √((9 + 16) / 4) = 2.5.
        let rmse = rmse(&[103.0, 96.0, 50.0, 0.0], &[100.0, 100.0, 50.0, 0.0]);
        assert!((rmse - 2.5).abs() < 1e-12, "{rmse}");
    }

    #[test]
    fn a_constant_target_has_no_r_squared() {
        assert_eq!(r_squared(&[1.0, 2.0], &[3.0, 3.0]), None);
    }

    #[test]
    fn the_confusion_matrix_has_true_classes_in_rows() {
        // ce rows of 3: true 0 predicted 0, true 1 predicted 2, true 2 predicted 2, true 1 predicted 1.
        let outputs = [0.8, 0.1, 0.1, 0.1, 0.2, 0.7, 0.0, 0.1, 0.9, 0.2, 0.6, 0.2];
        let targets = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let matrix = confusion_matrix(Loss::Ce, &outputs, &targets, 3, 3);
        assert_eq!(matrix, vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        // bce: one output against 0.5.
        let matrix = confusion_matrix(Loss::Bce, &[0.9, 0.2, 0.4], &[1.0, 1.0, 0.0], 1, 2);
        assert_eq!(matrix, vec![vec![1, 0], vec![1, 1]]);
    }

    #[test]
    fn values_show_four_significant_digits() {
        assert_eq!(significant(12345.678), "12346");
        assert_eq!(significant(0.012344), "0.01234");
        assert_eq!(significant(2.5), "2.500");
        assert_eq!(significant(1.5e10), "1.500e10");
    }
}
