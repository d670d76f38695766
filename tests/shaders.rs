//! Every shader parses and validates with naga, no GPU needed, and declares the workgroup sizes the Rust side
//! dispatches with.

use std::mem::size_of;

use wgmlp::gpu::{
    Args, BIAS_TREE_COLUMNS, Form, Kernel, MATMUL_BLOCK, MATMUL_BLOCK_THREADS, MATMUL_NT_COLUMNS,
    MATMUL_REGISTER_THREADS, MATMUL_TILE, SHADERS, Tier, Variant, WORKGROUP_SIZE, activation_code,
    fused_source, loss_code, schedule_code,
};
use wgmlp::{Activation, Loss, Network, Optimizer, Schedule};

fn parse(name: &str, source: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
        panic!(
            "shaders/{name}.wgsl does not parse:\n{}",
            e.emit_to_string(source)
        )
    })
}

#[test]
fn every_shader_parses_and_validates() {
    for (name, source) in SHADERS {
        let module = parse(name, source);
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "shaders/{name}.wgsl is invalid:\n{}",
                e.emit_to_string(source)
            )
        });
    }
}

#[test]
fn every_kernel_has_its_entry_point_with_the_workgroup_size_rust_dispatches() {
    let modules: Vec<naga::Module> = SHADERS
        .iter()
        .map(|(name, source)| parse(name, source))
        .collect();
    for kernel in Kernel::ALL {
        let (name, _) = SHADERS[kernel.shader()];
        let entry = modules[kernel.shader()]
            .entry_points
            .iter()
            .find(|e| e.name == kernel.entry_point())
            .unwrap_or_else(|| {
                panic!(
                    "shaders/{name}.wgsl has no entry point {}",
                    kernel.entry_point()
                )
            });
        assert_eq!(
            entry.stage,
            naga::ShaderStage::Compute,
            "{}",
            kernel.entry_point()
        );
        assert_eq!(
            entry.workgroup_size,
            kernel.workgroup_size(),
            "{} in shaders/{name}.wgsl",
            kernel.entry_point()
        );
    }
}

/// The value of `const NAME: u32` in a parsed shader, read through naga's reflection: the module's named
/// constants and the value each is initialised with (naga evaluates a constant expression to its literal).
fn constant(module: &naga::Module, name: &str) -> u32 {
    let (_, constant) = module
        .constants
        .iter()
        .find(|(_, c)| c.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no `const {name}` in the module"));
    match module.global_expressions[constant.init] {
        naga::Expression::Literal(naga::Literal::U32(value)) => value,
        ref other => panic!("const {name} is {other:?}, not a u32 literal"),
    }
}

/// The parsed shader file that holds `kernel`.
fn module_of(kernel: Kernel) -> naga::Module {
    let (name, source) = SHADERS[kernel.shader()];
    parse(name, source)
}

#[test]
fn tile_and_workgroup_constants_match_the_rust_side() {
    for (name, source) in SHADERS {
        assert_eq!(
            constant(&parse(name, source), "WORKGROUP_SIZE"),
            WORKGROUP_SIZE,
            "{name}"
        );
    }
    let matmul = module_of(Kernel::Matmul);
    assert_eq!(constant(&matmul, "SMALL_TILE"), MATMUL_TILE);
    assert_eq!(constant(&matmul, "BLOCK"), MATMUL_BLOCK);
    assert_eq!(constant(&matmul, "BLOCK_THREADS"), MATMUL_BLOCK_THREADS);
    assert_eq!(
        constant(&matmul, "PER_THREAD") * MATMUL_BLOCK_THREADS,
        MATMUL_BLOCK
    );
    assert_eq!(
        constant(&matmul, "REGISTER_THREADS"),
        MATMUL_REGISTER_THREADS
    );
    // matmul_registers: 8 rows a thread, and as many columns.
    assert_eq!(8 * MATMUL_REGISTER_THREADS, MATMUL_BLOCK);
    assert_eq!(constant(&matmul, "NT_COLUMNS"), MATMUL_NT_COLUMNS);
    let bias = module_of(Kernel::BiasBackwardTree);
    assert_eq!(constant(&bias, "TREE_COLUMNS"), BIAS_TREE_COLUMNS);
    assert_eq!(
        constant(&bias, "TREE_COLUMNS") * constant(&bias, "TREE_SLICES"),
        WORKGROUP_SIZE
    );
}

#[test]
fn a_missing_or_mistyped_constant_is_caught() {
    let module = parse(
        "test",
        "const A: u32 = 3u;\nconst B: u32 = A * 2u;\nconst C: f32 = 1.0;",
    );
    assert_eq!(constant(&module, "A"), 3);
    assert_eq!(
        constant(&module, "B"),
        6,
        "a constant expression is evaluated"
    );
    for name in ["C", "D"] {
        let caught = std::panic::catch_unwind(|| constant(&module, name));
        assert!(caught.is_err(), "const {name} is no u32");
    }
}

#[test]
fn activation_numbers_match_the_rust_side() {
    let module = module_of(Kernel::ActivationForward);
    for f in Activation::ALL
        .iter()
        .filter(|&&f| f != Activation::Softmax)
    {
        let name = f.name().to_uppercase();
        assert_eq!(
            constant(&module, &name),
            activation_code(*f).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn loss_numbers_match_the_rust_side_in_the_kernels_and_the_fused_engine() {
    let module = module_of(Kernel::MeasureRows);
    for &loss in Loss::ALL {
        let name = loss.name().to_uppercase();
        assert_eq!(constant(&module, &name), loss_code(loss), "{name}");
        let (output, outputs) = match loss {
            Loss::Sse | Loss::Bce => (Activation::Sigmoid, 1),
            Loss::Mse => (Activation::Identity, 2),
            Loss::Ce => (Activation::Softmax, 2),
        };
        let network = Network::build(vec![2, 3, outputs], Activation::Relu, output, loss).unwrap();
        let variant = Variant {
            optimizer: Optimizer::Sgd { momentum: 0.0 },
            tier: Tier::Private,
            shuffles: false,
            schedule: Schedule::Constant,
            form: Form::Unrolled,
            fixed_rows: 0,
        };
        let fused = parse("fused", &fused_source(&network, variant));
        assert_eq!(constant(&fused, "LOSS"), constant(&fused, &name), "{name}");
    }
}

#[test]
fn schedule_numbers_match_the_rust_side() {
    let module = module_of(Kernel::NextEpoch);
    for (name, schedule) in [
        ("CONSTANT_SCHEDULE", Schedule::Constant),
        (
            "STEP_SCHEDULE",
            Schedule::Step {
                every: 3,
                factor: 0.5,
            },
        ),
        ("COSINE_SCHEDULE", Schedule::Cosine { horizon: 9 }),
    ] {
        assert_eq!(constant(&module, name), schedule_code(schedule).0, "{name}");
    }
}

#[test]
fn every_entry_point_is_a_kernel() {
    for (name, source) in SHADERS {
        for entry in parse(name, source).entry_points {
            assert!(
                Kernel::ALL.iter().any(|k| k.entry_point() == entry.name),
                "shaders/{name}.wgsl has entry point {} that no Kernel runs",
                entry.name
            );
        }
    }
}

#[test]
fn args_struct_matches_rust_field_for_field() {
    let module = parse(SHADERS[0].0, SHADERS[0].1);
    let (_, args) = module
        .types
        .iter()
        .find(|(_, ty)| ty.name.as_deref() == Some("Args"))
        .expect("shaders/common.wgsl declares struct Args");
    let naga::TypeInner::Struct { span, ref members } = args.inner else {
        panic!("Args is not a struct")
    };
    assert_eq!(
        span as usize,
        size_of::<Args>(),
        "Args size in WGSL vs Rust"
    );
    // Rust's fields in order, as Debug prints them: `Args { out: 0, ..., lr: 0.0, ... }`, a float's zero
    // with a point.
    let debug = format!("{:?}", Args::default());
    let kind = |zero: &str| match zero.contains('.') {
        true => naga::ScalarKind::Float,
        false => naga::ScalarKind::Uint,
    };
    let rust: Vec<(&str, naga::ScalarKind)> = debug
        .trim_start_matches("Args {")
        .trim_end_matches('}')
        .split(',')
        .filter_map(|field| field.split_once(':'))
        .map(|(name, zero)| (name.trim(), kind(zero)))
        .collect();
    let wgsl: Vec<(&str, naga::ScalarKind)> = members
        .iter()
        .map(|member| {
            let name = member.name.as_deref().unwrap_or_default();
            match module.types[member.ty].inner {
                naga::TypeInner::Scalar(scalar) if scalar.width == 4 => (name, scalar.kind),
                ref other => panic!("Args.{name} is {other:?}, not a 4-byte scalar"),
            }
        })
        .collect();
    assert_eq!(wgsl, rust, "Args fields (name, kind) in WGSL vs Rust");
}

#[test]
fn the_generated_fused_engine_validates_for_every_activation_loss_optimizer_and_tier() {
    let networks = [
        Network::new(vec![2, 3, 1]).unwrap(),
        Network::build(
            vec![3, 8, 5, 4],
            Activation::Relu,
            Activation::Softmax,
            Loss::Ce,
        )
        .unwrap(),
        Network::build(vec![1, 1], Activation::Tanh, Activation::Sigmoid, Loss::Bce).unwrap(),
        Network::build(
            vec![4, 7, 2],
            Activation::LeakyRelu,
            Activation::Identity,
            Loss::Mse,
        )
        .unwrap(),
        Network::build(
            vec![2, 5, 1],
            Activation::Identity,
            Activation::Sigmoid,
            Loss::Mse,
        )
        .unwrap(),
    ];
    let schedules = [
        Schedule::Constant,
        Schedule::Step {
            every: 10,
            factor: 0.5,
        },
        Schedule::Cosine { horizon: 1000 },
    ];
    for (n, network) in networks.iter().enumerate() {
        for (i, (optimizer, tier)) in [
            (Optimizer::Sgd { momentum: 0.5 }, Tier::Private),
            (Optimizer::Adam { weight_decay: 0.1 }, Tier::Private),
            (
                Optimizer::Sgd { momentum: 0.5 },
                Tier::Workgroup { threads: 32 },
            ),
            (
                Optimizer::Adam { weight_decay: 0.1 },
                Tier::Workgroup { threads: 64 },
            ),
            (Optimizer::Sgd { momentum: 0.5 }, Tier::Rows { threads: 4 }),
            (
                Optimizer::Adam { weight_decay: 0.1 },
                Tier::Rows { threads: 64 },
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let shuffles = matches!(optimizer, Optimizer::Adam { .. });
            let schedule = schedules[(n + i) % schedules.len()];
            let form = [Form::Unrolled, Form::Looped][(n + i) % 2];
            let variant = Variant {
                optimizer,
                tier,
                shuffles,
                schedule,
                form,
                fixed_rows: if shuffles { 0 } else { 4 },
            };
            let source = fused_source(network, variant);
            let name = format!(
                "fused for [{network}] {} {optimizer:?} {schedule} {tier:?} {form:?}",
                network.loss()
            );
            let module = parse(&name, &source);
            // WebGPU's baseline: no subgroup operations or other optional capability.
            let capabilities = naga::valid::Capabilities::default();
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name} is invalid:\n{}", e.emit_to_string(&source)));
            let entries: Vec<(&str, u32)> = module
                .entry_points
                .iter()
                .map(|e| (e.name.as_str(), e.workgroup_size[0]))
                .collect();
            let expected = match tier {
                Tier::Private => vec![
                    ("fused_train", WORKGROUP_SIZE),
                    ("fused_measure", WORKGROUP_SIZE),
                    ("fused_evaluate", WORKGROUP_SIZE),
                ],
                Tier::Rows { threads } => vec![
                    ("fused_train", WORKGROUP_SIZE),
                    ("fused_measure", WORKGROUP_SIZE),
                    ("fused_evaluate", WORKGROUP_SIZE),
                    ("fused_train_rows", threads),
                ],
                Tier::Workgroup { threads } => vec![
                    ("fused_train", threads),
                    ("fused_measure", threads),
                    ("fused_evaluate", threads),
                ],
            };
            assert_eq!(entries, expected, "{name}");
        }
    }
}
