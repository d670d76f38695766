//! The WGSL of the fused engine for one network: its constants and the straight-line functions that
//! shaders/fused*.wgsl call, every loop over units unrolled and every index a constant.
//!
//! Unrolled, a small network lives in registers on a real GPU: private arrays indexed only by constants can,
//! one dynamic index puts the whole array in memory. It is also what lets the engine run on llvmpipe
//! (lavapipe), which ends every loop of an invocation once all its loops together have run 65535
//! iterations: the only loops left are over epochs, batches and rows, which the trainer can count.
//!
//! In the workgroup tier each thread computes one unit of a layer, so the same code is written once with the
//! unit taken from `lane`, and barriers go between the layers.
//!
//! Each function follows the CPU reference's order of operations, so that the two agree to rounding.

use std::fmt::Write;

use super::kernel::{loss_code, schedule_code};
use crate::network::{Activation, Loss, Network};
use crate::train::{Optimizer, Schedule};

/// Where the fused engine keeps a network while it trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// One invocation a network, in its private memory: thousands side by side.
    Private,
    /// One subgroup of `lanes` invocations a network, each holding all of it in private memory as in the
    /// private tier, and each adding one row of every batch (of at most `lanes` rows). The lanes' gradients
    /// are then summed in lane order, which is the reference's row order. For a few networks on small
    /// batches, which would leave most of the device idle.
    Subgroup { lanes: u32 },
    /// One workgroup of `threads` threads a network, in workgroup memory, a unit a thread.
    Workgroup { threads: u32 },
}

/// What the engine is compiled for besides the network: the optimizer, the tier, whether epochs visit the
/// rows in a shuffled order (so that a full-batch run carries no code for the order at all), and the learning
/// rate's schedule (so that a constant rate carries no code for it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    pub optimizer: Optimizer,
    pub tier: Tier,
    pub shuffles: bool,
    pub schedule: Schedule,
}

/// The complete shader: generated constants and functions, the shared functions, shaders/fused*.wgsl.
pub fn fused_source(network: &Network, variant: Variant) -> String {
    let Variant {
        optimizer, tier, ..
    } = variant;
    let shape = Shape::new(network);
    let mut sources = vec![
        constants(network, variant, &shape),
        forward(network, &shape, tier),
        backward(network, &shape, tier),
        measure_row(network, &shape),
    ];
    sources.extend(
        [
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/fused.wgsl"),
        ]
        .map(String::from),
    );
    let private = || {
        [
            private_memory_moves(network, optimizer, tier),
            include_str!("../../shaders/fused_private.wgsl").into(),
        ]
    };
    match tier {
        Tier::Private => sources.extend(private()),
        Tier::Subgroup { .. } => {
            sources.extend(private());
            sources.push(include_str!("../../shaders/fused_subgroup.wgsl").into());
        }
        Tier::Workgroup { .. } => {
            sources.push(include_str!("../../shaders/fused_workgroup.wgsl").into())
        }
    }
    sources.concat()
}

/// Where things sit: per weight layer its sizes, where its inputs and outputs start in `units`, and where its
/// weight and bias start in `params`.
struct Shape {
    layers: Vec<Layer>,
    units: usize,
    widest: usize,
}

struct Layer {
    inputs: usize,
    outputs: usize,
    input_at: usize,
    output_at: usize,
    weight_at: usize,
    bias_at: usize,
}

impl Shape {
    fn new(network: &Network) -> Self {
        let mut input_at = 0;
        let layers = network
            .layout()
            .layers
            .iter()
            .map(|l| {
                let layer = Layer {
                    inputs: l.inputs,
                    outputs: l.outputs,
                    input_at,
                    output_at: input_at + l.inputs,
                    weight_at: l.weight.start,
                    bias_at: l.bias.start,
                };
                input_at += l.inputs;
                layer
            })
            .collect();
        Shape {
            layers,
            units: network.sizes().iter().sum(),
            widest: network.sizes().iter().copied().max().unwrap_or(1),
        }
    }

    fn output_at(&self) -> usize {
        self.units - self.layers[self.layers.len() - 1].outputs
    }
}

/// A unit of a layer, as the code for it names it: a constant, or the thread's own in the workgroup tier.
#[derive(Clone, Copy)]
enum Unit {
    Fixed(usize),
    Lane,
}

impl Unit {
    /// `base + stride · unit` as a WGSL index.
    fn at(self, base: usize, stride: usize) -> String {
        match self {
            Unit::Fixed(u) => (base + stride * u).to_string(),
            Unit::Lane if stride == 1 => format!("{base}u + lane"),
            Unit::Lane => format!("{base}u + lane * {stride}u"),
        }
    }

    /// The unit's number as a WGSL u32.
    fn number(self) -> String {
        match self {
            Unit::Fixed(u) => format!("{u}u"),
            Unit::Lane => "lane".into(),
        }
    }
}

/// Writes one function's statements for a tier.
struct Emitter {
    f: String,
    tier: Tier,
}

impl Emitter {
    fn new(tier: Tier, signature: &str) -> Self {
        Emitter {
            f: format!("{signature} {{\n"),
            tier,
        }
    }

    fn line(&mut self, statement: String) {
        writeln!(self.f, "    {statement}").expect("writing to a String cannot fail");
    }

    /// The statements `body` gives for each of `count` units: every unit in turn in the private tier, the
    /// thread's own unit (if the layer has it) in the workgroup tier.
    fn each_unit(&mut self, count: usize, body: impl Fn(Unit) -> Vec<String>) {
        match self.tier {
            Tier::Private | Tier::Subgroup { .. } => {
                for u in 0..count {
                    body(Unit::Fixed(u)).into_iter().for_each(|s| self.line(s));
                }
            }
            Tier::Workgroup { .. } => {
                self.line(format!("if lane < {count}u {{"));
                body(Unit::Lane)
                    .into_iter()
                    .for_each(|s| self.line(format!("    {s}")));
                self.line("}".into());
            }
        }
    }

    /// Statements that one thread runs for the whole workgroup.
    fn one_thread(&mut self, statements: Vec<String>) {
        self.each_unit(1, |_| statements.clone());
    }

    /// In the workgroup tier: wait until every thread's writes are done.
    fn barrier(&mut self) {
        if matches!(self.tier, Tier::Workgroup { .. }) {
            self.line("workgroupBarrier();".into());
        }
    }

    fn finish(self) -> String {
        self.f + "}\n\n"
    }
}

/// The activation's number in `activate` and `slope` (shaders/functions.wgsl).
fn kind(f: Activation) -> String {
    let code = super::activation_code(f)
        .expect("Network::build keeps softmax to the output, where only ce (which skips its slope) takes it");
    format!("{code}u")
}

fn constants(network: &Network, variant: Variant, shape: &Shape) -> String {
    let Variant {
        optimizer,
        tier,
        shuffles,
        schedule,
    } = variant;
    let params = network.layout().len;
    let loss = loss_code(network.loss());
    let (kind, momentum, weight_decay) = match optimizer {
        Optimizer::Sgd { momentum } => (0, momentum, 0.0),
        Optimizer::Adam { weight_decay } => (1, 0.0, weight_decay),
    };
    let (schedule_kind, period, parameter) = schedule_code(schedule);
    let (threads, lanes) = match tier {
        Tier::Private => (1, 1),
        Tier::Subgroup { lanes } => (lanes, lanes),
        Tier::Workgroup { threads } => (threads, 1),
    };
    format!(
        "// Generated by src/gpu/generate.rs for the network [{network}], {hidden} hidden, {output} output, \
         {loss_name} loss, {optimizer:?}, {schedule} schedule, {tier:?} tier.\n\
         const INPUTS: u32 = {inputs}u;\n\
         const OUTPUTS: u32 = {outputs}u;\n\
         const PARAMS: u32 = {params}u;\n\
         const STATE: u32 = {state}u;\n\
         const UNITS: u32 = {units}u;\n\
         const WIDEST: u32 = {widest}u;\n\
         const LOSS: u32 = {loss}u;\n\
         const THREADS: u32 = {threads}u;\n\
         const LANES: u32 = {lanes}u;\n\
         const SHUFFLES: bool = {shuffles};\n\
         const SCHEDULE: u32 = {schedule_kind}u;\n\
         const SCHEDULE_PERIOD: u32 = {period}u;\n\
         const SCHEDULE_PARAMETER: f32 = {parameter:?};\n\
         const OPTIMIZER: u32 = {kind}u;\n\
         const MOMENTUM: f32 = {momentum:?};\n\
         const WEIGHT_DECAY: f32 = {weight_decay:?};\n\
         const BETA1: f32 = {beta1:?};\n\
         const BETA2: f32 = {beta2:?};\n\
         const EPSILON: f32 = {epsilon:?};\n\n",
        hidden = network.hidden_activation(),
        output = network.output_activation(),
        loss_name = network.loss(),
        inputs = network.inputs(),
        outputs = network.outputs(),
        state = params * optimizer.state_per_param(),
        units = shape.units,
        widest = shape.widest,
        beta1 = Optimizer::ADAM_BETA1,
        beta2 = Optimizer::ADAM_BETA2,
        epsilon = Optimizer::ADAM_EPSILON,
    )
}

/// units = every layer's output for `row`: z = a·W + b summed as the reference's matmul and bias_add do,
/// then f(z); logits keeps the output layer's z.
fn forward(network: &Network, shape: &Shape, tier: Tier) -> String {
    let mut f = Emitter::new(tier, "fn forward(row: u32)");
    f.line("var acc: f32;\n    var z: f32;".into());
    f.barrier();
    f.each_unit(network.inputs(), |i| {
        vec![format!(
            "units[{}] = input_of(row, {});",
            i.at(0, 1),
            i.number()
        )]
    });
    f.barrier();
    let depth = shape.layers.len();
    for (l, layer) in shape.layers.iter().enumerate() {
        let last = l + 1 == depth;
        let activation = network.activation(l);
        f.each_unit(layer.outputs, |j| {
            let mut body = vec!["acc = 0.0;".to_string()];
            for i in 0..layer.inputs {
                let (a, w) = (
                    layer.input_at + i,
                    j.at(layer.weight_at + i * layer.outputs, 1),
                );
                body.push(format!("acc += units[{a}] * params[{w}];"));
            }
            body.push(format!("z = acc + params[{}];", j.at(layer.bias_at, 1)));
            if last {
                body.push(format!("logits[{}] = z;", j.at(0, 1)));
            }
            if activation != Activation::Softmax {
                let (out, kind) = (j.at(layer.output_at, 1), kind(activation));
                body.push(format!("units[{out}] = activate(z, {kind});"));
            }
            body
        });
        f.barrier();
    }
    if network.output_activation() == Activation::Softmax {
        // Shifted by the largest logit, so that exp never overflows; as `softmax_forward`.
        let out = shape.output_at();
        let outputs = network.outputs();
        let mut body = vec!["var largest = logits[0];".to_string()];
        for j in 1..outputs {
            body.push(format!("largest = max(largest, logits[{j}]);"));
        }
        body.push("var sum = 0.0;".into());
        for j in 0..outputs {
            body.push(format!("units[{}] = exp(logits[{j}] - largest);", out + j));
            body.push(format!("sum += units[{}];", out + j));
        }
        for j in 0..outputs {
            body.push(format!("units[{}] /= sum;", out + j));
        }
        f.one_thread(body);
        f.barrier();
    }
    f.finish()
}

/// Adds `row`'s share of the gradient (after `forward(row)`): dZ of the output from the loss, then per layer
/// from the last dW += aᵀ·dZ, db += dZ, and dZ of the layer below = (dZ·Wᵀ) ⊙ f′.
fn backward(network: &Network, shape: &Shape, tier: Tier) -> String {
    let mut f = Emitter::new(tier, "fn backward(row: u32, scale: f32)");
    f.line("var acc: f32;".into());
    let out = shape.output_at();
    // bce and ce give dZ directly; sse and mse give dO, which the activation's slope turns into dZ.
    let through_output = !network.loss().includes_output_activation();
    f.each_unit(network.outputs(), |j| {
        let (o, d) = (j.at(out, 1), j.at(0, 1));
        let error = format!("scale * (units[{o}] - target_of(row, {}))", j.number());
        vec![if through_output {
            let output_kind = kind(network.output_activation());
            format!("delta[{d}] = {error} * slope(units[{o}], {output_kind});")
        } else {
            format!("delta[{d}] = {error};")
        }]
    });
    f.barrier();
    for (l, layer) in shape.layers.iter().enumerate().rev() {
        f.each_unit(layer.outputs, |j| {
            let mut body: Vec<String> = (0..layer.inputs)
                .map(|i| {
                    let (w, a) = (
                        j.at(layer.weight_at + i * layer.outputs, 1),
                        layer.input_at + i,
                    );
                    format!("grads[{w}] += units[{a}] * delta[{}];", j.at(0, 1))
                })
                .collect();
            body.push(format!(
                "grads[{}] += delta[{}];",
                j.at(layer.bias_at, 1),
                j.at(0, 1)
            ));
            body
        });
        if l > 0 {
            let below = kind(network.activation(l - 1));
            f.each_unit(layer.inputs, |i| {
                let mut body = vec!["acc = 0.0;".to_string()];
                for j in 0..layer.outputs {
                    let w = i.at(layer.weight_at + j, layer.outputs);
                    body.push(format!("acc += delta[{j}] * params[{w}];"));
                }
                let (c, a) = (i.at(0, 1), i.at(layer.input_at, 1));
                body.push(format!("carry[{c}] = acc * slope(units[{a}], {below});"));
                body
            });
            f.barrier();
            f.each_unit(layer.inputs, |i| {
                vec![format!("delta[{0}] = carry[{0}];", i.at(0, 1))]
            });
            f.barrier();
        }
    }
    f.finish()
}

/// For `row` (after `forward(row)`): its term of the loss before the mean over rows (`loss_value` in
/// src/cpu.rs), its largest |output − target|, and 1 if its class is the target's (bce and ce).
fn measure_row(network: &Network, shape: &Shape) -> String {
    let out = shape.output_at();
    let outputs = network.outputs();
    let mut f = Emitter::new(Tier::Private, "fn measure_row(row: u32) -> vec3<f32>");
    f.line("var loss = 0.0;\n    var worst = 0.0;\n    var y: f32;".into());
    for j in 0..outputs {
        let o = out + j;
        f.line(format!("y = target_of(row, {j}u);"));
        f.line(format!(
            "if worst == worst && !(abs(units[{o}] - y) <= worst) {{ worst = abs(units[{o}] - y); }}"
        ));
        f.line(match network.loss() {
            Loss::Sse => format!("loss += 0.5 * (y - units[{o}]) * (y - units[{o}]);"),
            Loss::Mse => format!("loss += (y - units[{o}]) * (y - units[{o}]);"),
            // From the logit: max(z, 0) − z·y + ln(1 + e^(−|z|)) never takes log(0).
            Loss::Bce => format!(
                "loss += max(logits[{j}], 0.0) - logits[{j}] * y + log(1.0 + exp(-abs(logits[{j}])));"
            ),
            Loss::Ce => format!("loss -= logits[{j}] * y;"),
        });
    }
    let correct = match network.loss() {
        Loss::Sse | Loss::Mse => "0.0".to_string(),
        Loss::Bce => format!("f32((units[{out}] >= 0.5) == (target_of(row, 0u) >= 0.5))"),
        Loss::Ce => {
            // log-sum-exp of the logits; the predicted and the target class are the largest of their row,
            // the last of equals as Rust's `max_by` picks.
            f.line("var largest = logits[0];".into());
            for j in 1..outputs {
                f.line(format!("largest = max(largest, logits[{j}]);"));
            }
            f.line("var exps = 0.0;".into());
            for j in 0..outputs {
                f.line(format!("exps += exp(logits[{j}] - largest);"));
            }
            f.line("loss += largest + log(exps);".into());
            f.line(format!("var best_output = units[{out}];"));
            f.line("var best_target = target_of(row, 0u);".into());
            f.line("var predicted = 0u;\n    var expected = 0u;".into());
            for j in 1..outputs {
                let o = out + j;
                f.line(format!(
                    "if units[{o}] >= best_output {{ best_output = units[{o}]; predicted = {j}u; }}"
                ));
                f.line(format!(
                    "if target_of(row, {j}u) >= best_target {{ best_target = target_of(row, {j}u); expected = {j}u; }}"
                ));
            }
            "f32(predicted == expected)".to_string()
        }
    };
    f.line(format!("return vec3<f32>(loss, worst, {correct});"));
    f.finish()
}

/// The private and subgroup tiers' `load_params(network)`, `load_state(network)`, `store(network)` and
/// `update(lr, step)`, one statement a value so that every index is a constant. In the subgroup tier
/// `update` first sums the lanes' gradients, lane 0 first, into every lane.
fn private_memory_moves(network: &Network, optimizer: Optimizer, tier: Tier) -> String {
    let params = network.layout().len;
    let state = params * optimizer.state_per_param();
    let at = |k: usize| format!("weights[weight_at(network, {k}u)]");
    let mut load = Emitter::new(Tier::Private, "fn load_params(network: u32)");
    let mut load_state = Emitter::new(Tier::Private, "fn load_state(network: u32)");
    let mut store = Emitter::new(Tier::Private, "fn store(network: u32)");
    let mut update = Emitter::new(Tier::Private, "fn update(lr: f32, step: u32)");
    if let Tier::Subgroup { lanes } = tier {
        update.line("let own = grads;".into());
        for k in 0..params {
            let sum = (1..lanes).fold(format!("subgroupBroadcast(own[{k}], 0u)"), |sum, lane| {
                format!("{sum} + subgroupBroadcast(own[{k}], {lane}u)")
            });
            update.line(format!("grads[{k}] = {sum};"));
        }
    }
    update.line("let correction = corrections(step);".into());
    for k in 0..params {
        load.line(format!("params[{k}] = {};", at(k)));
        store.line(format!("{} = params[{k}];", at(k)));
        update.line(format!("update_param({k}u, lr, correction);"));
    }
    for k in params..params + state {
        load_state.line(format!("state[{}] = {};", k - params, at(k)));
        store.line(format!("{} = state[{}];", at(k), k - params));
    }
    [load, load_state, store, update]
        .map(Emitter::finish)
        .concat()
}
