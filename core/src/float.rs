//! Floats written for people, without the standard library's float formatting.
//!
//! `f64`'s `Display` brings two float-to-decimal algorithms (Grisu and Dragon4, with
//! big-number arithmetic and tables): about 8 KB of the browser module, there only for the
//! numbers in a few messages. `serde_json` already carries a shortest-digits writer for
//! the JSON it writes; [`Shortest`] uses it.

use std::fmt;

/// Writes a float as `f64`'s `Display` does for the numbers a recipe holds (`0.7`, `2`,
/// `604800`, `NaN`, `inf`): the shortest digits that read back to it. Only where
/// `Display` writes long runs of zeros is it different: from 10¹⁶ up and below 10⁻⁵ it
/// writes an exponent (`1e+16`, `1e-7`).
pub(crate) struct Shortest(pub f64);

impl fmt::Display for Shortest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let x = self.0;
        if x.is_nan() {
            f.write_str("NaN")
        } else if x.is_infinite() {
            f.write_str(if x > 0.0 { "inf" } else { "-inf" })
        } else if x.fract() == 0.0 && x.abs() < 1e16 {
            // `-0.0` too keeps its sign, as `Display` does.
            let sign = if x.is_sign_negative() && x == 0.0 { "-" } else { "" };
            write!(f, "{sign}{}", x as i64)
        } else {
            match serde_json::Number::from_f64(x) {
                Some(n) => fmt::Display::fmt(&n, f),
                None => f.write_str("NaN"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shortest;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_recipes_numbers_read_as_display_writes_them(
            digits in 0_u64..10_000_000,
            scale in -5_i32..=9,
            negative in any::<bool>(),
        ) {
            let x = digits as f64 * 10f64.powi(scale) * if negative { -1.0 } else { 1.0 };
            prop_assume!(x == 0.0 || (1e-5..1e16).contains(&x.abs()));
            prop_assert_eq!(Shortest(x).to_string(), x.to_string());
        }
    }

    #[test]
    fn the_edges_read_as_display_writes_them() {
        for x in [
            0.0,
            -0.0,
            1.0,
            2.0,
            0.7,
            0.1 + 0.2,
            604_800.0,
            1e15,
            9_007_199_254_740_993.0,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
        ] {
            assert_eq!(Shortest(x).to_string(), x.to_string(), "{x:?}");
        }
        assert_eq!(Shortest(1e16).to_string(), "1e+16");
        assert_eq!(Shortest(1e-7).to_string(), "1e-7");
    }
}
