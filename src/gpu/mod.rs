//! The GPU side: a [`Gpu`] holds the device, queue and one pipeline per kernel, built once; a [`Program`] is a
//! list of [`Op`]s bound to an arena buffer, ready to be encoded any number of times.

mod cache;
mod fused;
pub mod generate;
mod kernel;
mod trainer;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use wgpu::util::DeviceExt;

pub use crate::cpu::Metrics;
pub use fused::{
    FUSED_PRIVATE_FLOATS, Form, FusedKernels, FusedTrainer, Tier, Variant, fused_floats,
};
pub use generate::fused_source;
pub use kernel::{
    Args, BIAS_TREE_COLUMNS, Epilogue, Kernel, MATMUL_BLOCK, MATMUL_BLOCK_THREADS,
    MATMUL_NT_COLUMNS, MATMUL_REGISTER_THREADS, MATMUL_TILE, MatmulVariant, Op, RowOrder, SHADERS,
    WORKGROUP_SIZE, activation_code, groups, loss_code, schedule_code,
};
pub use trainer::GpuTrainer;

use crate::{Error, Result};

/// What a user needs to know about the device that trained their network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
}

impl AdapterSummary {
    /// Whether the adapter is a software rasterizer on the CPU (llvmpipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} · {} · ", self.name, self.backend)?;
        match self.is_software() {
            true => write!(f, "software: the CPU emulates a GPU"),
            false => write!(f, "{}", self.device_type),
        }
    }
}

/// An adapter wgpu finds, as `wgmlp adapters` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FoundAdapter {
    #[serde(flatten)]
    pub adapter: AdapterSummary,
    pub software: bool,
    /// Whether [`Gpu::with_adapter`] would open this one.
    pub chosen: bool,
}

/// Every adapter wgpu finds under WGPU_BACKEND, in the order they are tried, with the one that
/// [`Gpu::with_adapter`] would open for `name` marked.
pub async fn adapters(name: Option<&str>) -> Result<Vec<FoundAdapter>> {
    let chosen = choose_adapter(name).await?.get_info();
    let mut found = Vec::new();
    for backends in backend_tiers() {
        for adapter in instance(backends).enumerate_adapters(backends).await {
            let info = adapter.get_info();
            let adapter = AdapterSummary::from(&info);
            found.push(FoundAdapter {
                software: adapter.is_software(),
                adapter,
                chosen: info == chosen,
            });
        }
    }
    Ok(found)
}

/// A device with every kernel's pipeline compiled, shareable by many trainers.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    adapter: AdapterSummary,
    limits: wgpu::Limits,
    subgroup_lanes: Option<u32>,
    bind_group_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    modules: Vec<wgpu::ShaderModule>,
    /// Each kernel's pipeline from the first program that uses it: a software adapter takes about 6 ms to
    /// compile one, and a run that needs a few (the fused engine, XOR) should not wait for all of them.
    pipelines: Mutex<HashMap<Kernel, wgpu::ComputePipeline>>,
    /// The fused engine's pipelines by their WGSL source, which names everything they were compiled for.
    fused: Mutex<HashMap<String, Arc<FusedKernels>>>,
    /// Held while a pipeline compiles: wgpu's GL backend has one context, which any thread waits for at most
    /// a few seconds, so compiles from several threads take turns here rather than there.
    compiling: Mutex<()>,
    /// The driver's compiled pipelines, kept on disk between runs where the backend can (Vulkan).
    disk_cache: Option<cache::DiskCache>,
    compiler: Compiler,
    faults: Arc<Mutex<Faults>>,
}

/// How the fused engine writes code for an adapter's compiler ([`Gpu::code_budget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeBudget {
    /// Unrolled up to `statements`, with loops over units beyond.
    LoopedBeyond { statements: usize },
    /// Unrolled, and the fused engine takes no network with more than `statements` of it: loops are cut off
    /// and compile no faster.
    UnrolledOnly { statements: usize },
}

/// The shader compiler behind an adapter, where its appetite for code is known (see [`Gpu::code_budget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compiler {
    /// Mesa's llvmpipe (lavapipe on Vulkan, llvmpipe on GL): LLVM, with its loop limit.
    Llvmpipe,
    /// Google's SwiftShader: its own LLVM-based Reactor, very slow on long straight-line code.
    SwiftShader,
    /// A GPU's own compiler.
    Other,
}

impl Compiler {
    fn of(adapter: &AdapterSummary) -> Self {
        let name = adapter.name.to_lowercase();
        if name.contains("llvmpipe") {
            Compiler::Llvmpipe
        } else if name.contains("swiftshader") {
            Compiler::SwiftShader
        } else {
            Compiler::Other
        }
    }
}

/// What the device reported outside any error scope, where wgpu's default handler would panic: its loss
/// (for good) and the first error no scope caught (until [`Gpu::check_device`] reports it).
#[derive(Default)]
struct Faults {
    lost: Option<String>,
    uncaptured: Option<String>,
}

/// Error scopes that catch the validation errors and the out-of-memory of the work done between
/// [`ErrorScopes::push`] and [`ErrorScopes::pop`], on this thread (wgpu keeps error scopes per thread).
pub(crate) struct ErrorScopes {
    // Declared innermost first: dropped early (an error returned before `pop`), scopes must go in reverse.
    validation: wgpu::ErrorScopeGuard,
    out_of_memory: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    pub(crate) fn push(device: &wgpu::Device) -> Self {
        let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        ErrorScopes {
            validation: device.push_error_scope(wgpu::ErrorFilter::Validation),
            out_of_memory,
        }
    }

    /// The first error the scopes caught, as [`Error::Gpu`] during `during`.
    pub(crate) async fn pop(self, during: &'static str) -> Result<()> {
        let validation = self.validation.pop().await;
        let out_of_memory = self.out_of_memory.pop().await;
        match validation.or(out_of_memory) {
            Some(error) => Err(Error::Gpu {
                during,
                reason: error.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl Gpu {
    /// Opens the adapter that wgpu's environment variables select: WGPU_BACKEND (e.g. `vulkan`, `metal`,
    /// `dx12`, `gl`), WGPU_ADAPTER_NAME (a substring of the name) and WGPU_POWER_PREF (`low` or `high`).
    /// Without WGPU_BACKEND, Vulkan, Metal and DX12 come first and OpenGL only where none of them has one.
    pub async fn new() -> Result<Self> {
        Gpu::with_adapter(None).await
    }

    /// Opens the first adapter whose name contains `name` (case-insensitive, in place of WGPU_ADAPTER_NAME),
    /// or with None the one [`Gpu::new`] opens.
    pub async fn with_adapter(name: Option<&str>) -> Result<Self> {
        Gpu::from_adapter(&choose_adapter(name).await?).await
    }

    /// Opens a device on `adapter` with the adapter's own buffer limits, so that large layers fit where the
    /// hardware allows them.
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let supported = adapter.limits();
        // The fused engine's workgroup tier holds a network in workgroup memory, with a thread per unit.
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_buffer_size: supported.max_buffer_size,
            max_compute_workgroup_storage_size: supported.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: supported.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: supported.max_compute_workgroup_size_x,
            ..wgpu::Limits::downlevel_defaults()
        };
        Gpu::from_adapter_with_limits(adapter, limits).await
    }

    /// Opens a device on `adapter` held to `limits` (none above the adapter's own): WebGPU's defaults, say,
    /// to try what a browser would allow.
    pub async fn from_adapter_with_limits(
        adapter: &wgpu::Adapter,
        limits: wgpu::Limits,
    ) -> Result<Self> {
        let info = adapter.get_info();
        // Subgroup operations are reported (`wgmlp adapters`) and tried by the tests; pipelines are kept on
        // disk where the backend can.
        let features =
            adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::PIPELINE_CACHE);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgmlp"),
                required_limits: limits,
                required_features: features,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let summary = AdapterSummary::from(&info);
        let subgroup_lanes = features
            .contains(wgpu::Features::SUBGROUP)
            .then_some(info.subgroup_min_size);
        let disk_cache = match features.contains(wgpu::Features::PIPELINE_CACHE) {
            true => cache::DiskCache::open(&device, &info),
            false => None,
        };
        let mut gpu = Gpu::from_device(device, queue, summary, subgroup_lanes).await?;
        gpu.disk_cache = disk_cache;
        Ok(gpu)
    }

    /// Sets up the kernels (their shader modules; each pipeline is compiled when a program first uses it) on
    /// a device the caller already has, with `Features::SUBGROUP` where
    /// `subgroup_lanes` gives the adapter's smallest subgroup. Every size check follows the limits the device
    /// was opened with (`wgpu::Device::limits`), so a device opened with lower ones is held to them.
    pub async fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: AdapterSummary,
        subgroup_lanes: Option<u32>,
    ) -> Result<Self> {
        let limits = device.limits();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let record = Arc::clone(&faults);
        device.on_uncaptured_error(Arc::new(move |error| {
            lock(&record).uncaptured.get_or_insert(error.to_string());
        }));
        let record = Arc::clone(&faults);
        device.set_device_lost_callback(move |reason, message| {
            let reason = format!("{reason:?}").to_lowercase();
            lock(&record).lost = Some(if message.is_empty() {
                reason
            } else {
                format!("{message} ({reason})")
            });
        });
        let scopes = ErrorScopes::push(&device);
        let buffer_entry =
            |binding, ty, has_dynamic_offset, min_binding_size| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset,
                    min_binding_size,
                },
                count: None,
            };
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("arena + args"),
            entries: &[
                buffer_entry(
                    0,
                    wgpu::BufferBindingType::Storage { read_only: false },
                    false,
                    None,
                ),
                buffer_entry(1, wgpu::BufferBindingType::Uniform, true, Some(args_size())),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("kernels"),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let modules: Vec<wgpu::ShaderModule> = SHADERS
            .iter()
            .map(|(name, source)| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl((*source).into()),
                })
            })
            .collect();
        scopes.pop("parsing the kernels").await?;
        Ok(Gpu {
            device,
            queue,
            compiler: Compiler::of(&adapter),
            adapter,
            limits,
            subgroup_lanes,
            bind_group_layout,
            pipeline_layout,
            modules,
            pipelines: Mutex::default(),
            fused: Mutex::default(),
            compiling: Mutex::default(),
            disk_cache: None,
            faults,
        })
    }

    /// Reports what the device said outside any error scope since the last report: that it was lost, or the
    /// first error no scope caught (a validation error, or out of memory).
    pub fn check_device(&self) -> Result<()> {
        let mut faults = lock(&self.faults);
        if let Some(reason) = &faults.lost {
            return Err(Error::DeviceLost {
                reason: reason.clone(),
            });
        }
        match faults.uncaptured.take() {
            Some(reason) => Err(Error::Gpu {
                during: "earlier work on the device",
                reason,
            }),
            None => Ok(()),
        }
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The fewest lanes a subgroup of this device has, where the device has subgroup operations.
    pub fn subgroup_lanes(&self) -> Option<u32> {
        self.subgroup_lanes
    }

    /// Whether the adapter is a software rasterizer on the CPU (llvmpipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.adapter.is_software()
    }

    /// How many loop iterations one invocation may run, all its loops together, where the driver ends them
    /// after that many: llvmpipe does after 65535 (`LP_MAX_TGSI_LOOP_ITERATIONS` in Mesa's gallivm), here
    /// less a margin. No other driver has such a limit.
    pub fn loop_limit(&self) -> Option<u64> {
        (self.compiler == Compiler::Llvmpipe).then_some(65535 - 64)
    }

    /// How much unrolled code the fused engine gives this adapter's compiler, in the statements of
    /// [`generate::unrolled_statements`]. Measured on the 2-core machine with Mesa's shader cache off (the
    /// setup of the engine, which on llvmpipe compiles at the first dispatch): llvmpipe took 0.4 s for 243
    /// statements, 0.85 s for 430, 1.4 s for 617 and 5.2 s for 1,266, and its looped code was no faster to
    /// compile beyond that (it turns each dynamic index of a private array into a branch a value), besides
    /// running into its loop limit; SwiftShader took 0.3 s for 168 statements and 2.6 s for 1,266, and 0.2–0.6 s
    /// for moons' 2-16-16-1 looped. A GPU's own compiler is held to SwiftShader's growth, scaled by the few
    /// seconds that FXC, the slowest of them, is known to take on long straight-line HLSL.
    pub fn code_budget(&self) -> CodeBudget {
        match self.compiler {
            Compiler::Llvmpipe => CodeBudget::UnrolledOnly { statements: 450 },
            Compiler::SwiftShader => CodeBudget::LoopedBeyond { statements: 400 },
            Compiler::Other => CodeBudget::LoopedBeyond { statements: 1200 },
        }
    }

    /// What a statement of `tier`'s unrolled code costs this compiler, in statements of the private tier's:
    /// llvmpipe splits a function at each barrier of the workgroup tier (one a layer). Measured on the
    /// 2-core machine, Mesa's shader cache off: spirals' 2-24-24-3 in the workgroup tier, 238 statements,
    /// took 1.17 s, as some 600 of the other tiers do.
    pub fn statement_weight(&self, tier: Tier) -> f64 {
        match (self.compiler, tier) {
            (Compiler::Llvmpipe, Tier::Workgroup { .. }) => 2.5,
            _ => 1.0,
        }
    }

    /// Why the adapter's compiler cannot take the fused engine's rows tier, where it cannot: llvmpipe
    /// through wgpu's GL backend splits the code at the tier's barriers into coroutines whose frames hold
    /// every private array (LLVM's `CoroSplit`), which took 6.2 s for a 2-8-1 network against 0.9 s through
    /// Vulkan, and minutes for the tests' networks. Through Vulkan the arrays are lowered before that.
    pub fn rows_tier_refused(&self) -> Option<&'static str> {
        let gl = self.adapter.backend == format!("{:?}", wgpu::Backend::Gl);
        (self.compiler == Compiler::Llvmpipe && gl).then_some(
            "llvmpipe's GL compiler takes seconds to minutes on its barriers over private arrays; \
             the private and workgroup tiers train there",
        )
    }

    /// About how many threads the device runs at once: for a software adapter the CPU's cores times the
    /// eight f32 lanes of a 256-bit vector (llvmpipe's and SwiftShader's width on AVX2), for a GPU at least
    /// 16 compute units of 512 threads (a small integrated GPU; large ones run ten times more). The fused
    /// engine gives networks a workgroup each where they would not fill this one thread each.
    pub fn parallel_threads(&self) -> u64 {
        match self.is_software() {
            true => 8 * std::thread::available_parallelism().map_or(1, |n| n.get()) as u64,
            false => 16 * 512,
        }
    }

    /// The fused engine's pipelines for `source`, compiled by `compile` at the first use in this process;
    /// and whether this call compiled them.
    pub(crate) fn fused_kernels(
        &self,
        source: &str,
        compile: impl FnOnce() -> FusedKernels,
    ) -> (Arc<FusedKernels>, bool) {
        let mut fused = self.fused.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kernels) = fused.get(source) {
            return (Arc::clone(kernels), false);
        }
        let kernels = Arc::new({
            let _turn = self
                .compiling
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            compile()
        });
        fused.insert(source.to_string(), Arc::clone(&kernels));
        if let Some(disk) = &self.disk_cache {
            disk.save();
        }
        (kernels, true)
    }

    /// The driver's pipeline cache, where the backend has one: every pipeline names it, so that a pipeline
    /// compiled by an earlier run comes from disk.
    pub(crate) fn pipeline_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.disk_cache
            .as_ref()
            .map(cache::DiskCache::pipeline_cache)
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// Checks that an arena of `len` f32 values fits in one storage buffer binding of this device; `remedy`
    /// says what makes it smaller.
    pub fn check_fits(&self, what: &str, len: usize, remedy: &'static str) -> Result<()> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        let bytes = len as u64 * size_of::<f32>() as u64;
        if bytes > limit || u32::try_from(len).is_err() {
            return Err(Error::TooLarge {
                what: format!("{what} ({len} f32 values)"),
                needed: bytes,
                limit,
                unit: "bytes in one buffer",
                remedy,
            });
        }
        Ok(())
    }

    /// Creates a storage buffer holding `values`, after checking it fits the device's limits.
    pub fn create_arena(&self, what: &str, values: &[f32]) -> Result<wgpu::Buffer> {
        self.check_fits(what, values.len(), "use fewer or smaller tensors")?;
        // A binding may not be empty; one spare element keeps zero-sized problems valid.
        let bytes = (values.len().max(1) * size_of::<f32>()) as u64;
        let mut contents = bytemuck::cast_slice(values).to_vec();
        contents.resize(bytes as usize, 0);
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(what),
                contents: &contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            }))
    }

    /// Binds `ops` to `arena`: their arguments go into a uniform buffer now, once.
    pub fn program(&self, arena: &wgpu::Buffer, ops: &[Op]) -> Result<Program> {
        // Each op's arguments start at a multiple of the device's offset alignment (a power of two).
        let stride = args_size()
            .get()
            .next_multiple_of(u64::from(self.limits.min_uniform_buffer_offset_alignment));
        let mut slots = vec![0u8; (ops.len().max(1) as u64 * stride) as usize];
        let mut dispatches = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let offset = i as u64 * stride;
            slots[offset as usize..][..size_of::<Args>()]
                .copy_from_slice(bytemuck::bytes_of(&op.args));
            let offset = u32::try_from(offset).map_err(|_| Error::TooLarge {
                what: format!("a program of {} dispatches", ops.len()),
                needed: offset,
                limit: u64::from(u32::MAX),
                unit: "bytes of arguments",
                remedy: "use fewer layers (--layers)",
            })?;
            dispatches.push(Dispatch {
                pipeline: self.pipeline(op.kernel),
                offset,
                workgroups: op.workgroups(self.limits.max_compute_workgroups_per_dimension)?,
            });
        }
        let args = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("args"),
                contents: &slots,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("arena + args"),
            layout: &self.bind_group_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: arena.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &args,
                        offset: 0,
                        size: Some(args_size()),
                    }),
                },
            ],
        });
        Ok(Program {
            dispatches,
            bind_group,
        })
    }

    /// Runs each program the given number of times, in order, in one submission, without waiting.
    pub fn submit(&self, runs: &[(&Program, usize)]) {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for &(program, times) in runs {
                for _ in 0..times {
                    program.encode(&mut pass);
                }
            }
        }
        self.queue.submit([encoder.finish()]);
    }

    /// Reads `range` (in f32 elements) of `buffer` back once all submitted work is done.
    pub async fn read(&self, buffer: &wgpu::Buffer, range: Range<usize>) -> Result<Vec<f32>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let staging = self.staging(range.len());
        self.read_via(&staging, buffer, range).await
    }

    /// A buffer that [`Gpu::read_via`] can read `len` f32 values through; make it once for repeated reads.
    pub fn staging(&self, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (len.max(1) * size_of::<f32>()) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Reads `range` (in f32 elements) of `buffer` through `staging`, which must hold at least that many.
    pub async fn read_via(
        &self,
        staging: &wgpu::Buffer,
        buffer: &wgpu::Buffer,
        range: Range<usize>,
    ) -> Result<Vec<f32>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = (range.len() * size_of::<f32>()) as u64;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        let start = (range.start * size_of::<f32>()) as u64;
        encoder.copy_buffer_to_buffer(buffer, start, staging, 0, bytes);
        self.queue.submit([encoder.finish()]);

        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, ..bytes, move |result| {
            // The receiver is awaited below; if it were gone there would be no one left to tell.
            let _ = sender.send(result);
        });
        self.wait()?;
        receiver
            .receive()
            .await
            .ok_or_else(|| Error::Readback("the map callback was dropped".into()))?
            .map_err(|e| Error::Readback(e.to_string()))?;
        let values = {
            let view = staging
                .get_mapped_range(..bytes)
                .map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        staging.unmap();
        Ok(values)
    }

    /// Blocks until the device has finished all submitted work, and reports what went wrong on it.
    pub fn wait(&self) -> Result<()> {
        // wgpu panics when it polls a device it already knows is lost, so look first.
        self.check_device()?;
        let poll = |how| {
            self.device.poll(how).map_err(|e| Error::Gpu {
                during: "waiting for the device",
                reason: e.to_string(),
            })
        };
        if self.adapter.backend == format!("{:?}", wgpu::Backend::Gl) {
            // wgpu's GL backend holds its one context through a blocking wait, and any other thread that
            // needs the context for more than a few seconds meanwhile panics: so look, and sleep between.
            while !poll(wgpu::PollType::Poll)?.is_queue_empty() {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        } else {
            poll(wgpu::PollType::wait_indefinitely())?;
        }
        self.check_device()
    }

    /// Uploads `arena`, runs `ops` once and reads the whole arena back: the way to try a kernel by itself.
    pub async fn run(&self, arena: &[f32], ops: &[Op]) -> Result<Vec<f32>> {
        let buffer = self.create_arena("arena", arena)?;
        let program = self.program(&buffer, ops)?;
        self.submit(&[(&program, 1)]);
        self.read(&buffer, 0..arena.len()).await
    }

    /// Compiles the pipelines of `kernels` now, rather than at the first program that uses each, and reports
    /// what the device says of them: a check that every kernel builds on this device (a test does it for
    /// [`Kernel::ALL`]).
    pub async fn compile_kernels(&self, kernels: &[Kernel]) -> Result<()> {
        let scopes = ErrorScopes::push(&self.device);
        for &kernel in kernels {
            self.pipeline(kernel);
        }
        scopes.pop("compiling the kernels").await
    }

    /// The kernel's pipeline, compiled on its first use; errors in compiling it go to the caller's error
    /// scope.
    fn pipeline(&self, kernel: Kernel) -> wgpu::ComputePipeline {
        let mut pipelines = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pipelines
            .entry(kernel)
            .or_insert_with(|| {
                let _turn = self
                    .compiling
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                compile(
                    &self.device,
                    &self.pipeline_layout,
                    &self.modules,
                    kernel,
                    self.pipeline_cache(),
                )
            })
            .clone()
    }
}

/// The pipeline of `kernel`, with its override constants.
fn compile(
    device: &wgpu::Device,
    layout: &wgpu::PipelineLayout,
    modules: &[wgpu::ShaderModule],
    kernel: Kernel,
    cache: Option<&wgpu::PipelineCache>,
) -> wgpu::ComputePipeline {
    let constants = kernel.constants();
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(kernel.entry_point()),
        layout: Some(layout),
        module: &modules[kernel.shader()],
        entry_point: Some(kernel.entry_point()),
        // Every kernel writes its workgroup memory before it reads it.
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &constants,
            zero_initialize_workgroup_memory: false,
        },
        cache,
    })
}

/// A list of dispatches bound to one arena, their arguments already on the device.
pub struct Program {
    dispatches: Vec<Dispatch>,
    bind_group: wgpu::BindGroup,
}

struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    offset: u32,
    workgroups: [u32; 3],
}

impl Program {
    /// Records every dispatch into `pass`; wgpu orders them with barriers, since they share the arena.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for dispatch in &self.dispatches {
            let [x, y, z] = dispatch.workgroups;
            pass.set_pipeline(&dispatch.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[dispatch.offset]);
            pass.dispatch_workgroups(x, y, z);
        }
    }
}

/// Refuses a WGPU_BACKEND name or a WGPU_POWER_PREF that wgpu would pass over without a word.
fn check_environment() -> Result<()> {
    if let Ok(value) = std::env::var("WGPU_BACKEND") {
        let unknown = value
            .split(',')
            .find(|name| wgpu::Backends::from_comma_list(name).is_empty());
        if let Some(name) = unknown {
            return Err(Error::Environment {
                name: "WGPU_BACKEND",
                value: value.clone(),
                reason: format!(
                    "{} is not a backend's name; use vulkan, metal, dx12 or gl (several with commas)",
                    crate::quote(name.trim())
                ),
            });
        }
    }
    if let Ok(value) = std::env::var("WGPU_POWER_PREF")
        && wgpu::PowerPreference::from_env().is_none()
    {
        return Err(Error::Environment {
            name: "WGPU_POWER_PREF",
            value,
            reason: "use low, high or none".into(),
        });
    }
    Ok(())
}

/// The backends tried in turn: those WGPU_BACKEND names, or else Vulkan, Metal and DX12, then OpenGL.
fn backend_tiers() -> Vec<wgpu::Backends> {
    match wgpu::Backends::from_env() {
        Some(chosen) => vec![chosen],
        None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::SECONDARY],
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    })
}

/// The adapter to open, tier by tier: the first whose name contains `name` (or else WGPU_ADAPTER_NAME), or
/// without either the one wgpu prefers under WGPU_POWER_PREF.
async fn choose_adapter(name: Option<&str>) -> Result<wgpu::Adapter> {
    check_environment()?;
    let wanted = match name {
        Some(name) => Some(("--adapter", name.to_string())),
        None => std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .map(|name| ("WGPU_ADAPTER_NAME", name)),
    };
    let mut reasons = Vec::new();
    let mut found = Vec::new();
    for backends in backend_tiers() {
        let instance = instance(backends);
        match &wanted {
            None => {
                let options = wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
                    ..Default::default()
                };
                match instance.request_adapter(&options).await {
                    Ok(adapter) => return Ok(adapter),
                    Err(e) => reasons.push(format!("{backends:?}: {e}")),
                }
            }
            // wgpu's own helper for the variable panics when the name matches nothing, so look it up here.
            Some((_, wanted)) => {
                let wanted = wanted.to_lowercase();
                for adapter in instance.enumerate_adapters(backends).await {
                    let info = adapter.get_info();
                    if info.name.to_lowercase().contains(&wanted) {
                        return Ok(adapter);
                    }
                    found.push(format!("{} ({:?})", info.name, info.backend));
                }
            }
        }
    }
    Err(match wanted {
        Some((from, wanted)) => Error::AdapterNotFound {
            from,
            wanted,
            found,
        },
        None => Error::NoAdapter {
            reason: reasons.join("; "),
        },
    })
}

/// The faults, even after a panic elsewhere poisoned their lock: they are plain values, always whole.
fn lock(faults: &Mutex<Faults>) -> std::sync::MutexGuard<'_, Faults> {
    faults.lock().unwrap_or_else(PoisonError::into_inner)
}

fn args_size() -> NonZeroU64 {
    NonZeroU64::new(size_of::<Args>() as u64).expect("Args is not zero-sized")
}
