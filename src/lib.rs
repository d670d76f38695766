//! Train small multilayer perceptrons with WGSL compute shaders through wgpu, and check every GPU result
//! against a plain CPU reference.
//!
//! - [`network`]: the network as data (layer sizes, activations, loss), its parameter layout and initial
//!   weights;
//! - [`train`]: the optimizer, the learning rate and its schedule, and the order of mini-batches, shared by
//!   both trainers;
//! - [`cpu`]: the reference implementation, one function per kernel, and [`CpuTrainer`]; beside it the fast
//!   CPU paths that the CPU engine ([`cpu::CpuEngine`]) trains with ([`cpu::LaneTrainer`] for narrow
//!   networks, [`cpu::FastCpuTrainer`] for the rest) and [`cpu::predict`];
//! - [`gpu`]: the device, the kernels and the two GPU engines: [`GpuTrainer`] (layered), which mirrors
//!   [`CpuTrainer`] step by step, and [`gpu::FusedTrainer`], which trains whole networks in one dispatch;
//! - [`engine`]: [`Trainer`], one interface over the three, choosing the engine, for one run or a sweep;
//! - [`data`], [`model`], [`metrics`]: tables and their schema, models on disk, and the scores a person
//!   reads (accuracy, RMSE, R², a confusion matrix);
//! - [`bench`]: throughput figures: XOR, sweeps, moons, an MLP step, predict and the matmul versions.
//!
//! ```no_run
//! # fn main() -> wgmlp::Result<()> {
//! use wgmlp::{CpuTrainer, DEFAULT_SEED, Dataset, Gpu, GpuTrainer, Network, TrainConfig};
//!
//! let gpu = pollster::block_on(Gpu::new())?;
//! let network = Network::new(vec![2, 3, 1])?;
//! let params = network.init_params(DEFAULT_SEED);
//! let data = Dataset::xor();
//! let config = TrainConfig::sgd(0.1);
//! let mut on_gpu = pollster::block_on(GpuTrainer::new(&gpu, &network, &params, &data, config))?;
//! let mut on_cpu = CpuTrainer::<f32>::new(&network, &params, &data, config)?;
//! on_gpu.train(10_000)?;
//! on_cpu.train(10_000);
//! println!("{:?} vs {:?}", pollster::block_on(on_gpu.outputs())?, on_cpu.outputs());
//! # Ok(())
//! # }
//! ```
//!
//! [`Trainer`] picks the engine (the fused one where the network fits) and trains many runs at once:
//!
//! ```no_run
//! # fn main() -> wgmlp::Result<()> {
//! use wgmlp::{Dataset, Engine, Gpu, Network, Start, TrainConfig, Trainer};
//!
//! let gpu = pollster::block_on(Gpu::new())?;
//! let network = Network::new(vec![2, 3, 1])?;
//! let starts: Vec<Start> = (0..1024)
//!     .map(|seed| Start { params: network.init_params(seed), config: TrainConfig::sgd(0.1) })
//!     .collect();
//! let mut trainer = Trainer::new(Some(&gpu), Engine::Auto, &network, &starts, &Dataset::xor())?;
//! trainer.train(10_000)?;
//! let converged = trainer.progress()?.iter().filter(|p| p.converged()).count();
//! println!("{converged} of 1024 seeds converge on the {} engine", trainer.engine().name());
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod cpu;
pub mod data;
pub mod engine;
mod error;
pub mod gpu;
pub mod metrics;
pub mod model;
pub mod network;
pub mod output;
pub mod plot;
pub mod train;

pub use cpu::CpuTrainer;
pub use engine::{Engine, Progress, Start, Trainer};
pub use error::{Error, Result, quote, quote_list};
pub use gpu::{Gpu, GpuTrainer};
pub use network::{Activation, DEFAULT_SEED, Dataset, Init, Loss, Network};
pub use train::{Optimizer, Schedule, TrainConfig};
