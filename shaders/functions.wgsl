// Pure functions shared by the layered kernels and the fused engine: the activations, their slopes, and the
// order in which an epoch visits the rows.

// Threads per workgroup of the one-dimensional kernels and of the fused engine; src/gpu/kernel.rs has the same
// number, checked by a test.
const WORKGROUP_SIZE: u32 = 64u;

// The element a thread of a one-dimensional kernel owns. Large grids spill into y, since a dispatch may have at
// most 65535 workgroups per dimension.
fn thread_index(workgroup: vec3<u32>, local: u32, workgroups: vec3<u32>) -> u32 {
    return (workgroup.y * workgroups.x + workgroup.x) * WORKGROUP_SIZE + local;
}

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

// The row that `position` of an epoch visits: a four-round Feistel network keyed by (seed, epoch) over the
// smallest power-of-four domain holding `rows`, walking the cycle until it lands inside. The twin of
// `shuffled_row` in src/train.rs, bit for bit: integer arithmetic only.
fn shuffled_row(seed_lo: u32, seed_hi: u32, epoch: u32, rows: u32, position: u32) -> u32 {
    let half = (32u - countLeadingZeros(max(rows, 2u) - 1u) + 1u) / 2u;
    let mask = (1u << half) - 1u;
    let key = hash32(hash32(hash32(seed_lo) ^ seed_hi) ^ epoch);
    var x = position;
    loop {
        var left = x >> half;
        var right = x & mask;
        left ^= feistel_round(right, key, 0u) & mask;
        right ^= feistel_round(left, key, 1u) & mask;
        left ^= feistel_round(right, key, 2u) & mask;
        right ^= feistel_round(left, key, 3u) & mask;
        x = (left << half) | right;
        if x < rows {
            return x;
        }
    }
    return x; // not reached: the walk returns inside the loop
}

fn feistel_round(half_block: u32, key: u32, round: u32) -> u32 {
    return hash32(half_block ^ key ^ (round * 0x9E3779B9u));
}

// lowbias32, the round function of the order.
fn hash32(value: u32) -> u32 {
    var x = value;
    x ^= x >> 16u;
    x *= 0x7FEB352Du;
    x ^= x >> 15u;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16u);
}
