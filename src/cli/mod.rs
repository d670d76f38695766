//! The subcommands beyond the XOR demo.

pub mod predict;
pub mod train;
