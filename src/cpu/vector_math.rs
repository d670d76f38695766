//! e^x, the sigmoid and tanh in f32 operations that compile to vector instructions (four or eight values at
//! once), where the C library's `expf` and `tanhf` are a call per value. The fast CPU paths take their
//! element-wise activations from here; the reference keeps the C library's, and the tests hold one to the
//! other.

use crate::network::Activation;

/// a[len] = f(z[len]) for an element-wise f: `super::activation_forward` with the sigmoid and tanh from
/// here. Inlined, so that the lane trainer's four values at a time stay in registers.
#[inline(always)]
pub fn activation_forward(a: &mut [f32], z: &[f32], f: Activation) {
    match f {
        Activation::Sigmoid => {
            for (a, &z) in a.iter_mut().zip(z) {
                *a = sigmoid(z);
            }
        }
        Activation::Tanh => {
            for (a, &z) in a.iter_mut().zip(z) {
                *a = tanh(z);
            }
        }
        f => super::activation_forward(a, z, f),
    }
}

/// ln of the smallest normal f32: n = −126 in [`exp`].
const EXP_LOWEST: f32 = -87.336_54;
/// Below ln of the largest f32, where x·log2(e) rounds to n = 127 at most in [`exp`].
const EXP_HIGHEST: f32 = 88.37;

/// e^x to within 1 ulp for x in [`EXP_LOWEST`, `EXP_HIGHEST`], in operations that compile to vector
/// instructions. Beyond that range it gives the value at
/// its end (about 1.2e-38 and 2.4e38, the ends of the normal floats that 2^n below can reach), which is
/// all a sigmoid needs; NaN stays NaN. x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, so that
/// n·ln 2 loses nothing); e^r is a degree-7 polynomial, Cephes's minimax coefficients; 2^n, n in
/// [-126, 127], is built in the exponent bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer, which then stands in the low bits of the sum.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HIGH: f32 = 0.693_359_4; // 0.693359375, 10 bits: n·LN2_HIGH is exact
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // `clamp` keeps NaN (where max and min would drop it).
    let x = x.clamp(EXP_LOWEST, EXP_HIGHEST);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let (r2, r4) = (r * r, r * r * r * r);
    // Estrin's scheme: three levels of products where Horner's rule chains six, and the chain of
    // sigmoids from layer to layer waits on each.
    let p01 = 0.5 + 1.666_666_5e-1 * r;
    let p23 = 4.166_579_6e-2 + 8.333_452e-3 * r;
    let p45 = 1.398_199_9e-3 + 1.987_569_1e-4 * r;
    let e_r = (p01 + r2 * p23 + r4 * p45) * r2 + r + 1.0;
    let biased = rounded
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    e_r * f32::from_bits(biased << 23)
}

/// 1 / (1 + e^−z)
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// tanh(x) to within 1.5 ulp, in vector instructions like [`exp`]: an odd polynomial (Cephes's
/// coefficients) below |x| = 0.625, where 1 − 2/(e^2|x| + 1) would lose the small result's digits to the
/// subtraction, and that formula above it, with x's sign; both are computed and one chosen, so no branch.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let (magnitude, x2) = (x.abs(), x * x);
    let odd = -5.704_988_7e-3;
    let odd = odd * x2 + 2.063_909e-2;
    let odd = odd * x2 - 5.373_971_6e-2;
    let odd = odd * x2 + 1.333_144_2e-1;
    let odd = odd * x2 - 3.333_328e-1;
    let small = x + x * x2 * odd;
    let large = (1.0 - 2.0 / (exp(2.0 * magnitude) + 1.0)).copysign(x);
    if magnitude < 0.625 { small } else { large }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_one_ulp_of_the_true_value() {
        let mut worst = (0.0f32, 0.0f64);
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = EXP_LOWEST + (EXP_HIGHEST - EXP_LOWEST) * i as f32 / steps as f32;
            let (got, truth) = (exp(x) as f64, (x as f64).exp());
            let ulp = f64::from(f32::EPSILON) * 2f64.powi(truth.log2().floor() as i32);
            let error = (got - truth).abs() / ulp;
            if error > worst.1 {
                worst = (x, error);
            }
        }
        assert!(worst.1 <= 1.0, "exp({}) is {} ulp off", worst.0, worst.1);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        // Past either end, the value at that end: finite, and the sigmoid's 0 and 1 from it.
        for (x, end) in [
            (-1000.0, EXP_LOWEST),
            (f32::NEG_INFINITY, EXP_LOWEST),
            (88.7, EXP_HIGHEST),
        ] {
            assert_eq!(exp(x), exp(end), "exp({x})");
        }
        assert!(exp(f32::INFINITY).is_finite() && exp(f32::INFINITY) > 2e38);
        assert!(exp(EXP_LOWEST) >= f32::MIN_POSITIVE * 0.99);
    }

    #[test]
    fn tanh_is_within_one_and_a_half_ulp_of_the_true_value_near_zero_too() {
        let mut worst = (0.0f32, 0.0f64);
        // Evenly over [-10, 10], and geometrically down to 1e-30, where a relative error shows.
        let even = (0..=400_000).map(|i| -10.0 + 20.0 * i as f32 / 400_000.0);
        let small = (0..=3000).map(|i| 10f32.powf(-30.0 + 30.0 * i as f32 / 3000.0));
        for x in even.chain(small).flat_map(|x| [x, -x]) {
            let (got, truth) = (tanh(x) as f64, (x as f64).tanh());
            if truth == 0.0 {
                assert_eq!(got, 0.0, "tanh({x})");
                continue;
            }
            let ulp = f64::from(f32::EPSILON) * 2f64.powi(truth.abs().log2().floor() as i32);
            let error = (got - truth).abs() / ulp;
            if error > worst.1 {
                worst = (x, error);
            }
        }
        assert!(worst.1 <= 1.5, "tanh({}) is {} ulp off", worst.0, worst.1);
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!((tanh(f32::INFINITY), tanh(f32::NEG_INFINITY)), (1.0, -1.0));
        assert_eq!((tanh(100.0), tanh(-100.0)), (1.0, -1.0));
    }
}
