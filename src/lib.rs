//! Train small multilayer perceptrons with WGSL compute shaders through wgpu, and check every GPU result
//! against a plain CPU reference.
//!
//! - [`network`]: the network as data (layer sizes), its parameter layout, initial weights and datasets;
//! - [`cpu`]: the reference implementation, one function per kernel, and [`CpuTrainer`];
//! - [`gpu`]: the device, the kernels and [`GpuTrainer`], which mirrors [`CpuTrainer`] step by step;
//! - [`bench`]: throughput figures for the XOR training and the matmul kernel.

pub mod bench;
pub mod cpu;
mod error;
pub mod gpu;
pub mod network;

pub use cpu::CpuTrainer;
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuTrainer};
pub use network::{DEFAULT_SEED, Dataset, Network};
