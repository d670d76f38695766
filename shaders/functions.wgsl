// Pure functions shared by the layered kernels and the fused engine: the activations, their slopes, the
// learning rate's schedule, and the order in which an epoch visits the rows.

// Threads per workgroup of the one-dimensional kernels and of the fused engine; src/gpu/kernel.rs has the same
// number, checked through naga's reflection by tests/shaders.rs.
const WORKGROUP_SIZE: u32 = 64u;

// The number of a workgroup in a one-dimensional grid. Large grids spill into y, since a dispatch may have
// at most the device's max_compute_workgroups_per_dimension workgroups along each (`spill` in kernel.rs).
fn workgroup_index(workgroup: vec3<u32>, workgroups: vec3<u32>) -> u32 {
    return workgroup.y * workgroups.x + workgroup.x;
}

// The element a thread of a one-dimensional kernel owns.
fn thread_index(workgroup: vec3<u32>, local: u32, workgroups: vec3<u32>) -> u32 {
    return workgroup_index(workgroup, workgroups) * WORKGROUP_SIZE + local;
}

// Whether x is NaN, by its bits: a compiler with fast math (Metal's) may fold `x != x` to false.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// The worse of a largest error so far and a new one: a NaN makes it NaN, and it stays NaN.
fn worse(worst: f32, error: f32) -> f32 {
    if is_nan(worst) || is_nan(error) || error > worst {
        return select(error, worst, is_nan(worst));
    }
    return worst;
}

// Losses, numbered as `loss_code` in src/gpu/kernel.rs (checked by a test).
const SSE: u32 = 0u;
const MSE: u32 = 1u;
const BCE: u32 = 2u;
const CE: u32 = 3u;

// Element-wise activations, numbered as `activation_code` in src/gpu/kernel.rs (checked by a test).
const IDENTITY: u32 = 0u;
const SIGMOID: u32 = 1u;
const TANH: u32 = 2u;
const RELU: u32 = 3u;
const LEAKY_RELU: u32 = 4u;

const LEAKY_SLOPE: f32 = 0.01;

fn activate(z: f32, kind: u32) -> f32 {
    switch kind {
        case SIGMOID: {
            return 1.0 / (1.0 + exp(-z));
        }
        case TANH: {
            // Near 0, 1 − e^(−2|z|) cancels and loses the relative precision a small z has: there the series
            // z − z³/3 + 2z⁵/15 − 17z⁷/315, whose next term is below f32's precision for |z| < 1/8.
            if (abs(z) < 0.125) {
                let z2 = z * z;
                return z * (1.0 + z2 * (-1.0 / 3.0 + z2 * (2.0 / 15.0 + z2 * (-17.0 / 315.0))));
            }
            // Through e^(−2|z|), which never overflows.
            let e = exp(-2.0 * abs(z));
            return sign(z) * (1.0 - e) / (1.0 + e);
        }
        case RELU: {
            // NaN stays NaN, as on the CPU, so that a diverged run shows in its loss.
            return select(z, 0.0, z < 0.0);
        }
        case LEAKY_RELU: {
            return select(LEAKY_SLOPE * z, z, z > 0.0);
        }
        default: {
            return z;
        }
    }
}

// f′ in terms of the activation's output a.
fn slope(a: f32, kind: u32) -> f32 {
    switch kind {
        case SIGMOID: {
            return a * (1.0 - a);
        }
        case TANH: {
            return 1.0 - a * a;
        }
        case RELU: {
            return select(0.0, 1.0, a > 0.0);
        }
        case LEAKY_RELU: {
            return select(LEAKY_SLOPE, 1.0, a > 0.0);
        }
        default: {
            return 1.0;
        }
    }
}

// Learning-rate schedules, numbered as `schedule_code` in src/gpu/kernel.rs (checked by a test).
const CONSTANT_SCHEDULE: u32 = 0u;
const STEP_SCHEDULE: u32 = 1u;
const COSINE_SCHEDULE: u32 = 2u;

// What the base learning rate is multiplied by at `epoch`: `Schedule::factor` in src/train.rs, operation for
// operation. step: parameter^⌊epoch/period⌋; cosine, with parameter = π/(2·period): ½(1 + cos(π·epoch/period)).
fn schedule_factor(kind: u32, period: u32, parameter: f32, epoch: u32) -> f32 {
    switch kind {
        case STEP_SCHEDULE: {
            return power(parameter, epoch / period);
        }
        case COSINE_SCHEDULE: {
            return cosine_factor(epoch, period, parameter);
        }
        default: {
            return 1.0;
        }
    }
}

// base^exponent by squaring, from the exponent's lowest bit up, as `power` in src/train.rs: only
// multiplications, rounded alike everywhere. Written out a byte at a time so that no loop runs.
fn power(base: f32, exponent: u32) -> f32 {
    var powers = vec2<f32>(1.0, base);
    powers = power_byte(powers, exponent);
    powers = power_byte(powers, exponent >> 8u);
    powers = power_byte(powers, exponent >> 16u);
    return power_byte(powers, exponent >> 24u).x;
}

// Eight bits of `power`: (the result so far, base^(2^bit)) with the lowest eight bits of `bits` multiplied in.
fn power_byte(powers: vec2<f32>, bits: u32) -> vec2<f32> {
    var result = powers.x;
    var square = powers.y;
    result = select(result, result * square, (bits & 1u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 2u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 4u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 8u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 16u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 32u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 64u) != 0u);
    square *= square;
    result = select(result, result * square, (bits & 128u) != 0u);
    square *= square;
    return vec2<f32>(result, square);
}

// ½(1 + cos(π·epoch/horizon)), 0 from the horizon on, with `angle` = π/(2·horizon): 1 − sin²(angle·epoch) near
// the start, sin²(angle·(horizon − epoch)) near the end, the sine by a series exact to f32 up to π/4 (a GPU's
// `cos` may be off by 2^-11, all of the rate near the end); `cosine_factor` in src/train.rs.
fn cosine_factor(epoch: u32, horizon: u32, angle: f32) -> f32 {
    let left = horizon - min(epoch, horizon);
    let near = min(left, horizon - left);
    let x = f32(near) * angle;
    let x2 = x * x;
    let sine = x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0)))));
    let sine2 = sine * sine;
    return select(1.0 - sine2, sine2, left <= horizon - left);
}

// The row that `position` of an epoch visits: 24 rounds of the swap-or-not shuffle keyed by (seed, epoch), the
// twin of `shuffled_row` in src/train.rs, bit for bit: integer arithmetic only. Written out round by round so
// that no loop runs (llvmpipe counts every loop iteration of an invocation against a limit).
fn shuffled_row(seed_lo: u32, seed_hi: u32, epoch: u32, rows: u32, position: u32) -> u32 {
    let key = hash32(hash32(hash32(seed_lo) ^ seed_hi) ^ epoch);
    var x = eight_rounds(position, rows, key, 0u);
    x = eight_rounds(x, rows, key, 8u);
    return eight_rounds(x, rows, key, 16u);
}

fn eight_rounds(position: u32, rows: u32, key: u32, first: u32) -> u32 {
    var x = swap_or_not(position, rows, key, first);
    x = swap_or_not(x, rows, key, first + 1u);
    x = swap_or_not(x, rows, key, first + 2u);
    x = swap_or_not(x, rows, key, first + 3u);
    x = swap_or_not(x, rows, key, first + 4u);
    x = swap_or_not(x, rows, key, first + 5u);
    x = swap_or_not(x, rows, key, first + 6u);
    return swap_or_not(x, rows, key, first + 7u);
}

// One round: x is paired with k − x (mod rows), and a bit keyed on the pair decides whether both swap.
fn swap_or_not(x: u32, rows: u32, key: u32, round: u32) -> u32 {
    let k = hash32(key ^ (round * 0x9E3779B9u)) % rows;
    let partner = select(k + (rows - x), k - x, k >= x);
    let pair = max(x, partner);
    return select(x, partner, (hash32(pair ^ key ^ (round * 0x85EBCA6Bu)) & 1u) == 1u);
}

// lowbias32, the order's keyed hash.
fn hash32(value: u32) -> u32 {
    var x = value;
    x ^= x >> 16u;
    x *= 0x7FEB352Du;
    x ^= x >> 15u;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16u);
}
