//! The subcommands beyond the XOR demo, and what the command line's parts share.

pub mod predict;
pub mod sweep;
pub mod train;

use wgmlp::{Error, Network};

/// Names `--layers` in a "does not fit on the device" error, the option to change.
pub fn layers_error(network: &Network) -> impl Fn(Error) -> anyhow::Error + '_ {
    move |error| match error {
        Error::TooLarge { .. } => anyhow::anyhow!("--layers {network}: {error}"),
        error => error.into(),
    }
}
