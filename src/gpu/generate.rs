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
    /// One workgroup of `threads` invocations a network, each holding all of it in private memory as in the
    /// private tier and adding its share of every batch's rows (rows lane, lane + threads, ...). Their
    /// gradients are summed through workgroup memory in thread order, and every thread takes the same step.
    /// For single networks and small sweeps, which would leave most of the device idle one thread each.
    Rows { threads: u32 },
    /// One workgroup of `threads` threads a network, in workgroup memory, a unit a thread.
    Workgroup { threads: u32 },
}

/// How the generated functions are written. Unrolled, every index is a constant: a small network lives in
/// registers on a real GPU (one dynamic index puts a whole private array in memory), and llvmpipe, which cuts
/// an invocation's loops off after 65535 iterations in all, runs it without counting. But a compiler's time
/// grows faster than the code, and differently per driver, so beyond a budget of statements the loops over
/// units stay loops, with constant bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    Unrolled,
    Looped,
}

/// What the engine is compiled for besides the network: the optimizer, the tier, whether epochs visit the
/// rows in a shuffled order (so that a full-batch run carries no code for the order at all), the learning
/// rate's schedule (so that a constant rate carries no code for it), the code's form, and the rows of every
/// batch where they are a few fixed ones (0 otherwise), so that the loop over them has a constant bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    pub optimizer: Optimizer,
    pub tier: Tier,
    pub shuffles: bool,
    pub schedule: Schedule,
    pub form: Form,
    pub fixed_rows: u32,
}

/// The most rows a batch may have for [`Variant::fixed_rows`]: XOR's four, and a little more.
pub const FIXED_ROWS_LIMIT: usize = 16;

/// Floats of workgroup memory through which the rows tier sums its threads' gradients, a round of
/// `PARTIALS / threads` parameters at a time (4 KiB of WebGPU's guaranteed 16).
pub const PARTIALS: u32 = 1024;

/// The complete shader: generated constants and functions, the shared functions, shaders/fused*.wgsl.
pub fn fused_source(network: &Network, variant: Variant) -> String {
    let Variant { tier, form, .. } = variant;
    let shape = Shape::new(network);
    let mut sources = vec![
        constants(network, variant, &shape),
        forward(network, &shape, tier, form),
        backward(network, &shape, tier, form),
        measure_row(network, &shape),
    ];
    sources.extend(
        [
            include_str!("../../shaders/functions.wgsl"),
            include_str!("../../shaders/fused.wgsl"),
        ]
        .map(String::from),
    );
    match tier {
        Tier::Private | Tier::Rows { .. } => {
            sources.push(private_memory_moves(network, variant));
            sources.push(include_str!("../../shaders/fused_private.wgsl").into());
        }
        Tier::Workgroup { .. } => {
            sources.push(include_str!("../../shaders/fused_workgroup.wgsl").into())
        }
    }
    if let Tier::Rows { .. } = tier {
        sources.push(include_str!("../../shaders/fused_rows.wgsl").into());
    }
    sources.concat()
}

/// The statements of the unrolled code for `network`: the measure that compile budgets are set in.
pub fn unrolled_statements(network: &Network, variant: Variant) -> usize {
    let unrolled = Variant {
        form: Form::Unrolled,
        ..variant
    };
    let shape = Shape::new(network);
    let (tier, form) = (unrolled.tier, unrolled.form);
    let mut generated = forward(network, &shape, tier, form)
        + &backward(network, &shape, tier, form)
        + &measure_row(network, &shape);
    if !matches!(tier, Tier::Workgroup { .. }) {
        generated += &private_memory_moves(network, unrolled);
    }
    generated.lines().count()
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

/// A unit of a layer as the code for it names it: a constant, or a variable (the thread's own unit `lane` in
/// the workgroup tier, a loop's counter in the looped form).
#[derive(Clone, Copy)]
enum Unit {
    Fixed(usize),
    Var(&'static str),
}

impl Unit {
    /// The unit's number as a WGSL u32.
    fn number(self) -> String {
        match self {
            Unit::Fixed(u) => format!("{u}u"),
            Unit::Var(name) => name.into(),
        }
    }
}

/// `base + Σ stride · unit` as a WGSL index, the constant part folded.
fn index(base: usize, terms: &[(Unit, usize)]) -> String {
    let mut base = base;
    let mut parts = Vec::new();
    for &(unit, stride) in terms {
        match unit {
            Unit::Fixed(u) => base += stride * u,
            Unit::Var(name) if stride == 1 => parts.push(name.to_string()),
            Unit::Var(name) => parts.push(format!("{name} * {stride}u")),
        }
    }
    if parts.is_empty() {
        return base.to_string();
    }
    if base > 0 {
        parts.insert(0, format!("{base}u"));
    }
    parts.join(" + ")
}

/// `statement(t)` for each of `count` terms of a sum: one statement each unrolled, a loop over `t` looped.
fn terms(form: Form, count: usize, statement: impl Fn(Unit) -> String) -> Vec<String> {
    match form {
        Form::Looped if count > 1 => vec![
            format!("for (var t = 0u; t < {count}u; t++) {{"),
            format!("    {}", statement(Unit::Var("t"))),
            "}".into(),
        ],
        _ => (0..count).map(|t| statement(Unit::Fixed(t))).collect(),
    }
}

/// Writes one function's statements for a tier.
struct Emitter {
    f: String,
    tier: Tier,
    form: Form,
}

impl Emitter {
    fn new(tier: Tier, form: Form, signature: &str) -> Self {
        Emitter {
            f: format!("{signature} {{\n"),
            tier,
            form,
        }
    }

    fn line(&mut self, statement: String) {
        writeln!(self.f, "    {statement}").expect("writing to a String cannot fail");
    }

    fn lines(&mut self, statements: Vec<String>, indent: &str) {
        statements
            .into_iter()
            .for_each(|s| self.line(format!("{indent}{s}")));
    }

    /// The statements `body` gives for each of `count` units: in the workgroup tier the thread's own unit (if
    /// the layer has it); else every unit in turn, unrolled or in a loop over `u`.
    fn each_unit(&mut self, count: usize, body: impl Fn(Unit) -> Vec<String>) {
        match (self.tier, self.form) {
            (Tier::Workgroup { .. }, _) => {
                self.line(format!("if lane < {count}u {{"));
                self.lines(body(Unit::Var("lane")), "    ");
                self.line("}".into());
            }
            (_, Form::Looped) if count > 1 => {
                self.line(format!("for (var u = 0u; u < {count}u; u++) {{"));
                self.lines(body(Unit::Var("u")), "    ");
                self.line("}".into());
            }
            _ => (0..count).for_each(|u| self.lines(body(Unit::Fixed(u)), "")),
        }
    }

    /// Statements that one thread runs for the whole workgroup.
    fn one_thread(&mut self, statements: Vec<String>) {
        match self.tier {
            Tier::Workgroup { .. } => self.each_unit(1, |_| statements.clone()),
            _ => self.lines(statements, ""),
        }
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

/// How many loop iterations the generated functions run, and how many loops they enter, for one row's
/// `forward` and `backward`, one `update` and one dispatch's loads and stores: what llvmpipe's limit counts
/// (src/gpu/fused.rs). Counted here, beside the code that writes the loops.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Loops {
    pub forward: (u64, u64),
    pub backward: (u64, u64),
    pub update: (u64, u64),
    pub per_dispatch: (u64, u64),
}

pub fn loops(network: &Network, variant: Variant) -> Loops {
    let Variant {
        optimizer,
        tier,
        form,
        ..
    } = variant;
    let looped = form == Form::Looped;
    let across_threads = matches!(tier, Tier::Workgroup { .. });
    // (iterations, entries) of a loop over `count` that `each_unit` or `terms` writes, run `times` times.
    let unit_loop = |count: usize, times: usize| match looped && count > 1 && !across_threads {
        true => ((count * times) as u64, times as u64),
        false => (0, 0),
    };
    let term_loop = |count: usize, times: usize| match looped && count > 1 {
        true => ((count * times) as u64, times as u64),
        false => (0, 0),
    };
    let add = |a: (u64, u64), b: (u64, u64)| (a.0 + b.0, a.1 + b.1);
    // How many of `count` units one thread computes: in the workgroup tier its own, at most one.
    let units = |count: usize| if across_threads { count.min(1) } else { count };
    let mut forward = unit_loop(network.inputs(), 1);
    let mut backward = unit_loop(network.outputs(), 1);
    for (l, layer) in network.layout().layers.iter().enumerate() {
        let (inputs, outputs) = (layer.inputs, layer.outputs);
        forward = add(forward, unit_loop(outputs, 1));
        forward = add(forward, term_loop(inputs, units(outputs)));
        backward = add(backward, unit_loop(outputs, 1));
        backward = add(backward, term_loop(inputs, units(outputs)));
        if l > 0 {
            backward = add(backward, unit_loop(inputs, 2));
            backward = add(backward, term_loop(outputs, units(inputs)));
        }
    }
    let params = network.layout().len;
    let state = params * optimizer.state_per_param();
    let (update, per_dispatch) = match tier {
        // The threads' shares of shaders/fused_workgroup.wgsl's loops over parameters.
        Tier::Workgroup { threads } => {
            let share = |len: usize| (len.div_ceil(threads as usize) as u64, 1);
            // zero_grads and update each go over the parameters; the loads and the store over all values.
            let all = add(share(params), share(state));
            (add(share(params), share(params)), add(all, all))
        }
        Tier::Private | Tier::Rows { .. } => {
            let once = |len: usize| unit_loop(len, 1);
            let mut update = once(params);
            if let Tier::Rows { threads } = tier {
                // Each round, `sum_partials`' loop over this thread's parameters and the threads' terms.
                let (threads, chunk) = (threads as usize, (PARTIALS / threads) as usize);
                let rounds = params.div_ceil(chunk);
                for first in (0..params).step_by(chunk) {
                    let owned = chunk.min(params - first).div_ceil(threads);
                    update = add(update, ((owned * (1 + threads)) as u64, (1 + owned) as u64));
                }
                if looped {
                    update = add(update, ((rounds + params) as u64, (1 + rounds) as u64));
                }
            }
            let all = add(once(params), once(state));
            (update, add(all, all))
        }
    };
    Loops {
        forward,
        backward,
        update,
        per_dispatch,
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
        form,
        fixed_rows,
    } = variant;
    let params = network.layout().len;
    let loss = loss_code(network.loss());
    let (kind, momentum, weight_decay) = match optimizer {
        Optimizer::Sgd { momentum } => (0, momentum, 0.0),
        Optimizer::Adam { weight_decay } => (1, 0.0, weight_decay),
    };
    let (schedule_kind, period, parameter) = schedule_code(schedule);
    // THREADS: a workgroup's; ROW_SHARES: how many threads share a batch's rows.
    let (threads, row_shares) = match tier {
        Tier::Private => (1, 1),
        Tier::Rows { threads } => (threads, threads),
        Tier::Workgroup { threads } => (threads, 1),
    };
    format!(
        "// Generated by src/gpu/generate.rs for the network [{network}], {hidden} hidden, {output} output, \
         {loss_name} loss, {optimizer:?}, {schedule} schedule, {tier:?} tier, {form:?}.\n\
         const INPUTS: u32 = {inputs}u;\n\
         const OUTPUTS: u32 = {outputs}u;\n\
         const PARAMS: u32 = {params}u;\n\
         const STATE: u32 = {state}u;\n\
         const UNITS: u32 = {units}u;\n\
         const WIDEST: u32 = {widest}u;\n\
         const LOSS: u32 = {loss}u;\n\
         const THREADS: u32 = {threads}u;\n\
         const ROW_SHARES: u32 = {row_shares}u;\n\
         const FIXED_ROWS: u32 = {fixed_rows}u;\n\
         const PARTIALS: u32 = {PARTIALS}u;\n\
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
fn forward(network: &Network, shape: &Shape, tier: Tier, form: Form) -> String {
    let mut f = Emitter::new(tier, form, "fn forward(row: u32)");
    f.line("var acc: f32;\n    var z: f32;".into());
    f.barrier();
    f.each_unit(network.inputs(), |i| {
        vec![format!(
            "units[{}] = input_of(row, {});",
            index(0, &[(i, 1)]),
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
            body.extend(terms(form, layer.inputs, |i| {
                let a = index(layer.input_at, &[(i, 1)]);
                let w = index(layer.weight_at, &[(i, layer.outputs), (j, 1)]);
                format!("acc += units[{a}] * params[{w}];")
            }));
            body.push(format!(
                "z = acc + params[{}];",
                index(layer.bias_at, &[(j, 1)])
            ));
            if last {
                body.push(format!("logits[{}] = z;", index(0, &[(j, 1)])));
            }
            if activation != Activation::Softmax {
                let (out, kind) = (index(layer.output_at, &[(j, 1)]), kind(activation));
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
fn backward(network: &Network, shape: &Shape, tier: Tier, form: Form) -> String {
    let mut f = Emitter::new(tier, form, "fn backward(row: u32, scale: f32)");
    f.line("var acc: f32;".into());
    let out = shape.output_at();
    // bce and ce give dZ directly; sse and mse give dO, which the activation's slope turns into dZ.
    let through_output = !network.loss().includes_output_activation();
    f.each_unit(network.outputs(), |j| {
        let (o, d) = (index(out, &[(j, 1)]), index(0, &[(j, 1)]));
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
            let d = index(0, &[(j, 1)]);
            let mut body = terms(form, layer.inputs, |i| {
                let w = index(layer.weight_at, &[(i, layer.outputs), (j, 1)]);
                let a = index(layer.input_at, &[(i, 1)]);
                format!("grads[{w}] += units[{a}] * delta[{d}];")
            });
            let b = index(layer.bias_at, &[(j, 1)]);
            body.push(format!("grads[{b}] += delta[{d}];"));
            body
        });
        if l > 0 {
            let below = kind(network.activation(l - 1));
            f.each_unit(layer.inputs, |i| {
                let mut body = vec!["acc = 0.0;".to_string()];
                body.extend(terms(form, layer.outputs, |j| {
                    let w = index(layer.weight_at, &[(i, layer.outputs), (j, 1)]);
                    format!("acc += delta[{}] * params[{w}];", index(0, &[(j, 1)]))
                }));
                let (c, a) = (index(0, &[(i, 1)]), index(layer.input_at, &[(i, 1)]));
                body.push(format!("carry[{c}] = acc * slope(units[{a}], {below});"));
                body
            });
            f.barrier();
            f.each_unit(layer.inputs, |i| {
                vec![format!("delta[{0}] = carry[{0}];", index(0, &[(i, 1)]))]
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
    let mut f = Emitter::new(
        Tier::Private,
        Form::Unrolled,
        "fn measure_row(row: u32) -> vec3<f32>",
    );
    f.line("var loss = 0.0;\n    var worst = 0.0;\n    var y: f32;".into());
    for j in 0..outputs {
        let o = out + j;
        f.line(format!("y = target_of(row, {j}u);"));
        f.line(format!("worst = worse(worst, abs(units[{o}] - y));"));
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

/// The private and rows tiers' `load_params(network)`, `load_state(network)`, `store(network)` and
/// `update(lr, step)`: unrolled, one statement a value so that every index is a constant, or looped. In the
/// rows tier `update` first sums the threads' gradients (`sum_grads`, here too) and steps with the sums.
fn private_memory_moves(network: &Network, variant: Variant) -> String {
    let Variant {
        optimizer,
        tier,
        form,
        ..
    } = variant;
    let params = network.layout().len;
    let state = params * optimizer.state_per_param();
    let new = |signature| Emitter::new(Tier::Private, form, signature);
    let (mut load, mut load_state, mut store, mut update) = (
        new("fn load_params(network: u32)"),
        new("fn load_state(network: u32)"),
        new("fn store(network: u32)"),
        new("fn update(lr: f32, step: u32)"),
    );
    let at =
        |k: Unit, from: usize| format!("weights[weight_at(network, {})]", index(from, &[(k, 1)]));
    let mut sum = None;
    let gradient = match tier {
        Tier::Rows { threads } => {
            let mut f = new("fn sum_grads()");
            sum_grads(&mut f, params, threads as usize);
            sum = Some(f.finish());
            update.line("sum_grads();".into());
            "summed"
        }
        _ => "grads",
    };
    update.line("let correction = corrections(step);".into());
    load.each_unit(params, |k| {
        vec![format!("params[{}] = {};", index(0, &[(k, 1)]), at(k, 0))]
    });
    load_state.each_unit(state, |k| {
        vec![format!(
            "state[{}] = {};",
            index(0, &[(k, 1)]),
            at(k, params)
        )]
    });
    store.each_unit(params, |k| {
        vec![format!("{} = params[{}];", at(k, 0), index(0, &[(k, 1)]))]
    });
    store.each_unit(state, |k| {
        vec![format!(
            "{} = state[{}];",
            at(k, params),
            index(0, &[(k, 1)])
        )]
    });
    update.each_unit(params, |k| {
        let k = index(0, &[(k, 1)]);
        vec![format!(
            "update_param({k}, {gradient}[{k}], lr, correction);"
        )]
    });
    let moves = [load, load_state, store, update]
        .map(Emitter::finish)
        .concat();
    sum.unwrap_or_default() + &moves
}

/// The rows tier's sum of every thread's gradients into `summed`, in thread order: round by round, each
/// thread puts `PARTIALS / threads` of its gradients in `partials`, and `sum_partials`
/// (shaders/fused_rows.wgsl) adds each parameter's up. Two barriers a round: a thread writes `partials`
/// or `summed` only once every thread has passed the barrier after the last reads of them.
fn sum_grads(f: &mut Emitter, params: usize, threads: usize) {
    let chunk = PARTIALS as usize / threads;
    match f.form {
        Form::Unrolled => {
            for first in (0..params).step_by(chunk) {
                let count = chunk.min(params - first);
                if first > 0 {
                    f.line("workgroupBarrier();".into());
                }
                for c in 0..count {
                    f.line(format!(
                        "partials[{}u + lane] = grads[{}];",
                        c * threads,
                        first + c
                    ));
                }
                f.line("workgroupBarrier();".into());
                f.line(format!("sum_partials({first}u, {count}u);"));
            }
        }
        Form::Looped => f.lines(
            vec![
                format!("for (var first = 0u; first < {params}u; first += {chunk}u) {{"),
                format!("    let count = min({chunk}u, {params}u - first);"),
                "    if first > 0u {".into(),
                "        workgroupBarrier();".into(),
                "    }".into(),
                "    for (var c = 0u; c < count; c++) {".into(),
                format!("        partials[c * {threads}u + lane] = grads[first + c];"),
                "    }".into(),
                "    workgroupBarrier();".into(),
                "    sum_partials(first, count);".into(),
                "}".into(),
            ],
            "",
        ),
    }
    f.line("workgroupBarrier();".into());
}
