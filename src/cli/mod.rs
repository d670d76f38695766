//! The subcommands beyond the XOR demo, and what the command line's parts share.

pub mod evaluate;
pub mod playground;
pub mod predict;
pub mod sweep;
pub mod train;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use wgmlp::data::Table;
use wgmlp::{Error, Network, TrainConfig, quote};

/// How a command reads its table, flattened into each command that reads one.
#[derive(Args)]
pub struct TableFormat {
    /// The character between cells: , ; | tab, space, or another ASCII punctuation character (not " . - +)
    /// [default: whichever of , tab ; | splits the header into the most cells]
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
}

impl TableFormat {
    /// Reads the table at `path`, or standard input where it is `-`.
    pub fn read(&self, path: &Path) -> wgmlp::Result<Table> {
        Table::read(path, self.delimiter)
    }

    /// [`TableFormat::read`], where a header alone is a table of no rows.
    pub fn read_maybe_empty(&self, path: &Path) -> wgmlp::Result<Table> {
        Table::read_maybe_empty(path, self.delimiter)
    }
}

/// Parses a column's name in a list such as `--features a,b`: spaces around it are not part of it (the
/// header's names are read trimmed too), and an empty one is a slip.
pub fn parse_column_name(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("an empty column name; separate names with single commas, e.g. a,b".into()),
        name => Ok(name.to_string()),
    }
}

/// Which GPU adapter to open, flattened into each command that opens one.
#[derive(Args)]
pub struct AdapterChoice {
    /// The GPU adapter to open: the first whose name contains NAME (case-insensitive), in place of
    /// WGPU_ADAPTER_NAME; `wgmlp adapters` lists them
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
}

impl AdapterChoice {
    /// Opens the adapter chosen.
    pub fn open(&self) -> wgmlp::Result<wgmlp::Gpu> {
        pollster::block_on(wgmlp::Gpu::with_adapter(self.adapter.as_deref()))
    }
}

/// Parses `--delimiter`: `tab` (or `\t`), or one ASCII character that can separate cells.
fn parse_delimiter(text: &str) -> Result<u8, String> {
    wgmlp::data::parse_delimiter(text).map_err(|error| match error {
        Error::InvalidOption { reason, .. } => reason,
        error => error.to_string(),
    })
}

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
/// not names: a link or another spelling of the path is caught too. `-` is a standard stream, no file (not
/// even one called `-`).
pub fn check_outputs_spare_inputs(
    inputs: &[(&str, &PathBuf)],
    outputs: &[(&str, Option<&PathBuf>)],
) -> anyhow::Result<()> {
    let file = |path: &&PathBuf| path.as_path() != Path::new("-");
    for (output, path) in outputs {
        let Some(path) = path.filter(file) else {
            continue;
        };
        let clash = inputs
            .iter()
            .filter(|(_, input)| file(input))
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

/// Names `--layers` in a "does not fit in memory" error, the option to change. A "does not fit on the
/// device" error (`Error::TooLarge`) names its own option, which may be another (`--batch-size`, the rows).
pub fn layers_error(network: &Network) -> impl Fn(Error) -> anyhow::Error + '_ {
    move |error| match error {
        Error::OutOfMemory { .. } => anyhow::anyhow!("--layers {network}: {error}"),
        error => error.into(),
    }
}
