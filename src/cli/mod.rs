//! The subcommands beyond the XOR demo, and what the command line's parts share.

pub mod evaluate;
pub mod predict;
pub mod sweep;
pub mod train;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use wgmlp::{Error, Network, TrainConfig, quote};

/// A write to standard output that failed, as an error that says where.
pub fn stdout_failed(error: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(error).context("cannot write to standard output")
}

/// Writes an output file through [`wgmlp::output::write`], or to standard output where the path is `-`.
pub fn write_output(option: &str, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(stdout_failed)
            .with_context(|| format!("{option} -"));
    }
    wgmlp::output::write(path, bytes).with_context(|| format!("{option} {}", path.display()))
}

/// Refuses an output that is one of the run's inputs, which writing it would destroy. Files are compared,
/// not names: a link or another spelling of the path is caught too.
pub fn check_outputs_spare_inputs(
    inputs: &[(&str, &PathBuf)],
    outputs: &[(&str, Option<&PathBuf>)],
) -> anyhow::Result<()> {
    for (output, path) in outputs {
        let Some(path) = path else { continue };
        let clash = inputs
            .iter()
            .find(|(_, input)| wgmlp::output::same_file(input, path));
        if let Some((input, _)) = clash {
            bail!(
                "{output} {} is the file given to {input}; writing it would destroy that input, so choose \
                 another path",
                path.display()
            );
        }
    }
    Ok(())
}

/// Parses a number for an f32 option, refusing one that f32 cannot hold instead of rounding it to infinity
/// or to 0, so that a later message shows what was typed.
pub fn parse_f32(text: &str) -> Result<f32, String> {
    let wide: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} is not a number", quote(text)))?;
    let value = wide as f32;
    if wide.is_finite() && value.is_infinite() {
        return Err(format!(
            "{text} is beyond single precision (f32), whose largest value is {:e}",
            f32::MAX
        ));
    }
    if wide != 0.0 && value == 0.0 {
        return Err(format!(
            "{text} is too small for single precision (f32), where it would be 0"
        ));
    }
    Ok(value)
}

/// Parses one learning rate: a number f32 holds, finite and above 0.
pub fn parse_lr(text: &str) -> Result<f32, String> {
    let lr = parse_f32(text)?;
    match TrainConfig::sgd(lr).check() {
        Ok(()) => Ok(lr),
        Err(Error::InvalidOption { reason, .. }) => Err(reason),
        Err(error) => Err(error.to_string()),
    }
}

/// Names `--layers` in a "does not fit on the device" error, the option to change.
pub fn layers_error(network: &Network) -> impl Fn(Error) -> anyhow::Error + '_ {
    move |error| match error {
        Error::TooLarge { .. } | Error::OutOfMemory { .. } => {
            anyhow::anyhow!("--layers {network}: {error}")
        }
        error => error.into(),
    }
}
