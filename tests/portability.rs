//! Every shader the crate builds, translated by naga to SPIR-V, MSL, HLSL and GLSL as wgpu translates it for
//! a Vulkan, Metal, DX12 or GL device, no GPU needed: the kernels with each pipeline's override constants,
//! and the fused engine generated for a table of networks and variants. Where `spirv-val` and
//! `glslangValidator` are installed they check the SPIR-V and the GLSL; with `CI` set a missing one is a
//! failure. MSL and HLSL are only written: no Metal or DXC compiler runs here.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{Module, ShaderStage};
use wgmlp::gpu::{
    Epilogue, FUSED_PRIVATE_FLOATS, Form, Kernel, MatmulVariant, SHADERS, Tier, Variant,
    fused_floats, fused_source,
};
use wgmlp::{Activation, Loss, Network, Optimizer, Schedule};

/// The networks the fused engine is generated for: the tutorial's XOR, the command line's defaults for moons
/// and spirals, one too wide for private memory, and a small softmax one that fits it.
const NETWORKS: [(&str, &[usize], Activation, Activation, Loss); 5] = [
    (
        "xor",
        &[2, 3, 1],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Loss::Sse,
    ),
    (
        "moons",
        &[2, 16, 16, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::Bce,
    ),
    (
        "spirals",
        &[2, 24, 24, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::Ce,
    ),
    (
        "wide",
        &[2, 64, 64, 1],
        Activation::Relu,
        Activation::Identity,
        Loss::Mse,
    ),
    (
        "softmax",
        &[4, 8, 3],
        Activation::LeakyRelu,
        Activation::Softmax,
        Loss::Ce,
    ),
];

const SGD: Optimizer = Optimizer::Sgd { momentum: 0.9 };
const ADAM: Optimizer = Optimizer::Adam { weight_decay: 0.01 };
const COSINE: Schedule = Schedule::Cosine { horizon: 1000 };
const WORKGROUP: Tier = Tier::Workgroup { threads: 64 };

/// The variant every row of FUSED starts from, so that a new field of `Variant` is one edit here (and a
/// row that wants another value of it names it).
const BASE: Variant = Variant {
    optimizer: SGD,
    tier: Tier::Private,
    shuffles: false,
    schedule: Schedule::Constant,
    form: Form::Unrolled,
    // XOR's four rows, a full batch: the loop over them with a constant bound.
    fixed_rows: 4,
};

/// The fused modules translated, a network of NETWORKS and a variant each. Together the rows take every tier
/// in both forms, both optimizers, shuffled and full-batch epochs, and a constant and a cosine schedule. A
/// row in the private or rows tier must fit private memory, as the engine requires (the unrolled code of one
/// that does not is longer than any use, and slow to translate).
const FUSED: &[(&str, Variant)] = &[
    ("xor", BASE),
    (
        "xor",
        Variant {
            tier: Tier::Rows { threads: 4 },
            shuffles: true,
            schedule: COSINE,
            fixed_rows: 0,
            ..BASE
        },
    ),
    (
        "xor",
        Variant {
            tier: WORKGROUP,
            optimizer: ADAM,
            ..BASE
        },
    ),
    (
        "moons",
        Variant {
            optimizer: ADAM,
            shuffles: true,
            schedule: COSINE,
            ..BASE
        },
    ),
    (
        "moons",
        Variant {
            optimizer: ADAM,
            form: Form::Looped,
            ..BASE
        },
    ),
    (
        "moons",
        Variant {
            tier: Tier::Rows { threads: 64 },
            optimizer: ADAM,
            shuffles: true,
            ..BASE
        },
    ),
    (
        "moons",
        Variant {
            tier: WORKGROUP,
            shuffles: true,
            ..BASE
        },
    ),
    (
        "spirals",
        Variant {
            tier: WORKGROUP,
            optimizer: ADAM,
            shuffles: true,
            form: Form::Looped,
            ..BASE
        },
    ),
    (
        "wide",
        Variant {
            tier: WORKGROUP,
            schedule: COSINE,
            form: Form::Looped,
            ..BASE
        },
    ),
    (
        "softmax",
        Variant {
            shuffles: true,
            ..BASE
        },
    ),
    (
        "softmax",
        Variant {
            tier: Tier::Rows { threads: 4 },
            optimizer: ADAM,
            schedule: COSINE,
            form: Form::Looped,
            ..BASE
        },
    ),
];

/// `matmul_fused` specialized beyond Kernel::ALL's two, as the layered engine uses it: a transposed operand
/// and each epilogue, so that the folded overrides take every branch of it somewhere.
const MATMUL_VARIANTS: [Kernel; 3] = [
    Kernel::MatmulFused(MatmulVariant {
        transpose_a: true,
        transpose_b: false,
        epilogue: Epilogue::None,
    }),
    Kernel::MatmulFused(MatmulVariant {
        transpose_a: false,
        transpose_b: false,
        epilogue: Epilogue::BiasActivation(Activation::Tanh),
    }),
    Kernel::MatmulFused(MatmulVariant {
        transpose_a: false,
        transpose_b: true,
        epilogue: Epilogue::Slope(Activation::LeakyRelu),
    }),
];

/// One module as the crate compiles it.
struct Shader {
    /// What a failure names: the shader file, or the network and the variant.
    name: String,
    source: String,
    build: Build,
    /// The pipelines built from it, an entry point with its override constants each; empty for every entry
    /// point of the module, without constants.
    pipelines: Vec<(&'static str, Vec<(&'static str, f64)>)>,
}

/// The runtime checks a module's pipelines are compiled with: src/gpu/mod.rs `compile` for the kernels,
/// src/gpu/fused.rs `compile` for the fused engine.
#[derive(Clone, Copy)]
struct Build {
    /// `ShaderRuntimeChecks::force_loop_bounding`, which the fused engine turns off.
    loop_bounding: bool,
    /// `PipelineCompilationOptions::zero_initialize_workgroup_memory`, which the kernels turn off.
    zero_workgroup_memory: bool,
}

fn kernel_shaders() -> Vec<Shader> {
    let build = Build {
        loop_bounding: true,
        zero_workgroup_memory: false,
    };
    SHADERS
        .iter()
        .enumerate()
        .map(|(index, (name, source))| Shader {
            name: format!("shaders/{name}.wgsl"),
            source: source.to_string(),
            build,
            pipelines: Kernel::ALL
                .iter()
                .chain(&MATMUL_VARIANTS)
                .filter(|kernel| kernel.shader() == index)
                .map(|kernel| (kernel.entry_point(), kernel.constants()))
                .collect(),
        })
        .collect()
}

fn fused_shaders() -> Vec<Shader> {
    FUSED
        .iter()
        .map(|&(name, variant)| {
            let &(_, sizes, hidden, output, loss) = NETWORKS
                .iter()
                .find(|network| network.0 == name)
                .unwrap_or_else(|| panic!("FUSED names {name}, which NETWORKS lacks"));
            let network = Network::build(sizes.to_vec(), hidden, output, loss).unwrap();
            if !matches!(variant.tier, Tier::Workgroup { .. }) {
                assert!(
                    fused_floats(&network, variant.optimizer) <= FUSED_PRIVATE_FLOATS,
                    "{name} {variant:?}: too large for private memory, so the engine never builds it"
                );
            }
            Shader {
                name: format!("fused {name} [{network}] {hidden}/{output}/{loss} {variant:?}"),
                source: fused_source(&network, variant),
                build: Build {
                    loop_bounding: false,
                    zero_workgroup_memory: true,
                },
                pipelines: Vec::new(),
            }
        })
        .collect()
}

#[test]
fn every_shader_translates_to_every_back_end_and_validates() {
    let started = Instant::now();
    let tools = Tools::find();
    let scratch = std::env::temp_dir().join(format!("wgmlp-portability-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();

    let shaders: Vec<Shader> = kernel_shaders()
        .into_iter()
        .chain(fused_shaders())
        .collect();
    // The modules are independent: each worker takes the next one, and the tallies add up at the end.
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Tally::default(), Vec::new()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(shader) = shaders.get(index) else {
                        break;
                    };
                    let mut tally = Tally::default();
                    let mut failures = Vec::new();
                    let files = scratch.join(index.to_string());
                    translate(shader, &tools, &files, &mut tally, &mut failures);
                    let mut results = results.lock().unwrap();
                    results.0.add(&tally);
                    results.1.extend(failures);
                }
            });
        }
    });
    let (tally, failures) = results.into_inner().unwrap();

    println!(
        "portability: {} modules, {} entry points; written: {} SPIR-V, {} MSL, {} HLSL, {} GLSL; validated: {} by \
         spirv-val, {} by glslangValidator; {:.1} s",
        tally.modules,
        tally.entry_points,
        tally.spirv,
        tally.msl,
        tally.hlsl,
        tally.glsl,
        tally.spirv_val,
        tally.glslang,
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        panic!(
            "{} translation(s) failed (outputs kept in {}):\n\n{}",
            failures.len(),
            scratch.display(),
            failures.join("\n\n")
        );
    }
}

#[derive(Default)]
struct Tally {
    modules: usize,
    entry_points: usize,
    spirv: usize,
    msl: usize,
    hlsl: usize,
    glsl: usize,
    spirv_val: usize,
    glslang: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.modules += other.modules;
        self.entry_points += other.entry_points;
        self.spirv += other.spirv;
        self.msl += other.msl;
        self.hlsl += other.hlsl;
        self.glsl += other.glsl;
        self.spirv_val += other.spirv_val;
        self.glslang += other.glslang;
    }
}

/// Parses and validates `shader`, then writes every pipeline of it in each language, and runs the external
/// validators on what they read. Outputs go under `files`; failures are pushed, not raised, so that one run
/// reports them all.
fn translate(
    shader: &Shader,
    tools: &Tools,
    files: &Path,
    tally: &mut Tally,
    failures: &mut Vec<String>,
) {
    let name = &shader.name;
    let module = match naga::front::wgsl::parse_str(&shader.source) {
        Ok(module) => module,
        Err(e) => {
            failures.push(format!(
                "{name}: does not parse:\n{}",
                e.emit_to_string(&shader.source)
            ));
            return;
        }
    };
    // WebGPU's baseline: the crate takes subgroups where a device has them, but no shader may need them.
    let info =
        match Validator::new(ValidationFlags::all(), Capabilities::default()).validate(&module) {
            Ok(info) => info,
            Err(e) => {
                failures.push(format!(
                    "{name}: is invalid:\n{}",
                    e.emit_to_string(&shader.source)
                ));
                return;
            }
        };
    tally.modules += 1;
    std::fs::create_dir_all(files).unwrap();

    let pipelines: Vec<(&str, Vec<(&str, f64)>)> = match shader.pipelines.is_empty() {
        true => module
            .entry_points
            .iter()
            .map(|entry| (entry.name.as_str(), Vec::new()))
            .collect(),
        false => shader.pipelines.clone(),
    };
    for (index, (entry, constants)) in pipelines.into_iter().enumerate() {
        tally.entry_points += 1;
        let mut fail = |back_end: &str, error: String| {
            failures.push(format!("{name}, entry point {entry}, {back_end}:\n{error}"))
        };
        let constants: naga::back::PipelineConstants = constants
            .iter()
            .map(|&(name, value)| (name.to_string(), value))
            .collect();
        // As wgpu does before each back end: the constants folded in, the module cut down to the entry point.
        let (module, info) = match naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((ShaderStage::Compute, entry)),
            &constants,
        ) {
            Ok(processed) => processed,
            Err(e) => {
                fail("override constants", describe(&e));
                continue;
            }
        };
        // An entry point may be built with several sets of constants, so the files are numbered too.
        let stem = files.join(format!("{index}-{entry}"));

        match write_spirv(&module, &info, entry, shader.build) {
            Ok(words) => {
                tally.spirv += 1;
                let path = stem.with_extension("spv");
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                std::fs::write(&path, bytes).unwrap();
                if tools.spirv_val {
                    match run("spirv-val", &["--target-env", "vulkan1.0"], &path) {
                        Ok(()) => tally.spirv_val += 1,
                        Err(e) => fail("SPIR-V (spirv-val)", e),
                    }
                }
            }
            Err(e) => fail("SPIR-V", e),
        }
        match write_msl(&module, &info, entry, shader.build) {
            Ok(text) => {
                tally.msl += 1;
                std::fs::write(stem.with_extension("metal"), text).unwrap();
            }
            Err(e) => fail("MSL", e),
        }
        match write_hlsl(&module, &info, entry, shader.build) {
            Ok(text) => {
                tally.hlsl += 1;
                std::fs::write(stem.with_extension("hlsl"), text).unwrap();
            }
            Err(e) => fail("HLSL", e),
        }
        match write_glsl(&module, &info, entry, shader.build) {
            Ok(text) => {
                tally.glsl += 1;
                let path = stem.with_extension("comp");
                std::fs::write(&path, text).unwrap();
                if tools.glslang {
                    match run("glslangValidator", &["-S", "comp"], &path) {
                        Ok(()) => tally.glslang += 1,
                        Err(e) => fail("GLSL (glslangValidator)", e),
                    }
                }
            }
            Err(e) => fail("GLSL", e),
        }
    }
}

/// SPIR-V for Vulkan 1.0 with the options wgpu's Vulkan back end sets: SPIR-V 1.0, only the capabilities
/// every Vulkan device has, and bounds checks that restrict indices, as on a device without
/// robustBufferAccess2. (A module that needed subgroups would take SPIR-V 1.3 for Vulkan 1.1, where they are
/// core, and the GroupNonUniform capabilities.)
fn write_spirv(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    build: Build,
) -> Result<Vec<u32>, String> {
    use spv::Capability as C;
    let capabilities = [
        C::Shader,
        C::Matrix,
        C::Sampled1D,
        C::Image1D,
        C::ImageQuery,
        C::DerivativeControl,
        C::StorageImageExtendedFormats,
    ];
    let options = spv::Options {
        lang_version: (1, 0),
        // Names in the SPIR-V, so that spirv-val's messages say which variable.
        flags: spv::WriterFlags::DEBUG,
        capabilities: Some(capabilities.into_iter().collect()),
        bounds_check_policies: restricted(),
        zero_initialize_workgroup_memory: match build.zero_workgroup_memory {
            true => spv::ZeroInitializeWorkgroupMemoryMode::Polyfill,
            false => spv::ZeroInitializeWorkgroupMemoryMode::None,
        },
        force_loop_bounding: build.loop_bounding,
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    spv::write_vec(module, info, &options, Some(&pipeline)).map_err(|e| describe(&e))
}

/// MSL as wgpu's Metal back end writes it: each resource bound to a buffer slot of the entry point, and a
/// buffer of array sizes after them for the bounds checks. MSL 2.0 (macOS 10.13, iOS 11).
fn write_msl(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    build: Build,
) -> Result<String, String> {
    let mut resources = msl::EntryPointResources::default();
    let mut slot = 0;
    for (_, global) in module.global_variables.iter() {
        let Some(binding) = global.binding else {
            continue;
        };
        let mutable = match global.space {
            naga::AddressSpace::Storage { access } => access.contains(naga::StorageAccess::STORE),
            _ => false,
        };
        let target = msl::BindTarget {
            buffer: Some(slot),
            mutable,
            ..Default::default()
        };
        resources.resources.insert(binding, target);
        slot += 1;
    }
    resources.sizes_buffer = Some(slot);
    let options = msl::Options {
        lang_version: (2, 0),
        per_entry_point_map: [(entry.to_string(), resources)].into(),
        fake_missing_bindings: false,
        bounds_check_policies: restricted(),
        zero_initialize_workgroup_memory: build.zero_workgroup_memory,
        force_loop_bounding: build.loop_bounding,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    let (text, translation) =
        msl::write_string(module, info, &options, &pipeline).map_err(|e| describe(&e))?;
    for name in translation.entry_point_names {
        name.map_err(|e| describe(&e))?;
    }
    Ok(text)
}

/// HLSL as wgpu's DX12 back end writes it: shader model 5.1 (what FXC compiles, where DXC is missing), each
/// resource in the register its binding names, and the number of workgroups, which HLSL has no
/// semantic for, in a constant buffer of its own.
fn write_hlsl(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    build: Build,
) -> Result<String, String> {
    let groups = module
        .global_variables
        .iter()
        .filter_map(|(_, global)| global.binding.map(|b| b.group + 1))
        .max()
        .unwrap_or(0);
    let options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V5_1,
        fake_missing_bindings: true,
        special_constants_binding: Some(hlsl::BindTarget {
            space: u8::try_from(groups).unwrap(),
            register: 0,
            ..Default::default()
        }),
        zero_initialize_workgroup_memory: build.zero_workgroup_memory,
        restrict_indexing: true,
        force_loop_bounding: build.loop_bounding,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut text = String::new();
    let reflection = hlsl::Writer::new(&mut text, &options, &pipeline)
        .write(module, info, None)
        .map_err(|e| describe(&e))?;
    for name in reflection.entry_point_names {
        name.map_err(|e| describe(&e))?;
    }
    Ok(text)
}

/// GLSL as wgpu's GL back end writes it: ES 3.1, the first with compute shaders (wgpu's GL back end runs on
/// OpenGL ES), uniform and storage blocks each numbered from slot 0, and no bounds checks but GL's own.
fn write_glsl(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    build: Build,
) -> Result<String, String> {
    let mut binding_map = glsl::BindingMap::default();
    let (mut uniforms, mut storage) = (0, 0);
    for (_, global) in module.global_variables.iter() {
        let Some(binding) = global.binding else {
            continue;
        };
        let counter = match global.space {
            naga::AddressSpace::Uniform => &mut uniforms,
            _ => &mut storage,
        };
        binding_map.insert(binding, *counter);
        *counter += 1;
    }
    let options = glsl::Options {
        version: glsl::Version::new_gles(310),
        writer_flags: glsl::WriterFlags::ADJUST_COORDINATE_SPACE,
        binding_map,
        zero_initialize_workgroup_memory: build.zero_workgroup_memory,
    };
    let pipeline = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
        multiview: None,
    };
    let unchecked = naga::proc::BoundsCheckPolicies {
        index: naga::proc::BoundsCheckPolicy::Unchecked,
        buffer: naga::proc::BoundsCheckPolicy::Unchecked,
        image_load: naga::proc::BoundsCheckPolicy::Unchecked,
        binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
    };
    let mut text = String::new();
    glsl::Writer::new(&mut text, module, info, &options, &pipeline, unchecked)
        .and_then(|mut writer| writer.write())
        .map_err(|e| describe(&e))?;
    Ok(text)
}

/// The bounds checks wgpu's Vulkan and Metal back ends ask for with runtime checks on.
fn restricted() -> naga::proc::BoundsCheckPolicies {
    naga::proc::BoundsCheckPolicies {
        index: naga::proc::BoundsCheckPolicy::Restrict,
        buffer: naga::proc::BoundsCheckPolicy::Restrict,
        image_load: naga::proc::BoundsCheckPolicy::Restrict,
        binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
    }
}

/// An error with the errors it wraps.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text += &format!(": {e}");
        source = e.source();
    }
    text
}

/// Which external validators are installed. With `CI` set a missing one fails the test: CI installs both
/// (spirv-tools, glslang-tools), and a check that quietly stops running checks nothing.
struct Tools {
    spirv_val: bool,
    glslang: bool,
}

impl Tools {
    fn find() -> Self {
        let ci = std::env::var_os("CI").is_some();
        let found = |program: &str, package: &str| {
            let found = Command::new(program).arg("--version").output().is_ok();
            if !found && ci {
                panic!("{program} is not on PATH, and CI is set: install {package}");
            }
            if !found {
                println!(
                    "portability: {program} is not on PATH, so its checks are skipped ({package})"
                );
            }
            found
        };
        Tools {
            spirv_val: found("spirv-val", "spirv-tools"),
            glslang: found("glslangValidator", "glslang-tools"),
        }
    }
}

/// Runs `program` with `args` on `path`; what it printed, if it refused the file.
fn run(program: &str, args: &[&str], path: &Path) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .map_err(|e| format!("{program} did not start: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    // glslangValidator reports on stdout, spirv-val on stderr.
    Err(format!(
        "{program} {} {} ({}):\n{}{}",
        args.join(" "),
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
