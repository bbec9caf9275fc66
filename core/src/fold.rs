//! Case folding for comparing answers, without the standard library's case tables.
//!
//! `str::to_lowercase` brings Unicode's whole lowercase table (a pair of 32-bit values per
//! character) and the tables its final-sigma rule needs: 15 KB of the browser module,
//! 7.5 KB gzipped, for comparing short answers. The same mapping as runs of characters
//! that lowercase by one offset is under 1.5 KB. The test below holds it to the standard
//! library's, character by character; when a toolchain brings a newer Unicode, it fails
//! and prints the table to paste here.

/// `text` lowercased as Unicode lowercases each character, with the final sigma `ς` folded
/// to `σ` as well, so that `ΟΔΟΣ` and `οδος` compare equal (`str::to_lowercase` picks `ς`
/// or `σ` for `Σ` by context, which a comparison does not want).
pub fn fold_case(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // The one character whose lowercase is two: `İ` is `i` and a combining dot.
            '\u{130}' => out.push_str("i\u{307}"),
            '\u{3c2}' => out.push('\u{3c3}'),
            _ => out.push(lower(c)),
        }
    }
    out
}

/// The lowercase of `c` when it is one character (all but `İ`).
fn lower(c: char) -> char {
    let code = c as u32;
    // The last run starting at or before `c`.
    let at = LOWER.partition_point(|&(packed, _)| packed >> 8 <= code);
    let Some(&(packed, delta)) = at.checked_sub(1).map(|i| &LOWER[i]) else { return c };
    let (start, count, stride) = (packed >> 8, (packed >> 1) & 0x7f, (packed & 1) + 1);
    let offset = code - start;
    if offset < count * stride && offset.is_multiple_of(stride) {
        char::from_u32(code.wrapping_add_signed(delta)).unwrap_or(c)
    } else {
        c
    }
}

/// A run: `count` characters from `start`, every `stride`-th (1 or 2), each lowercasing
/// to itself plus `delta`; packed as `start << 8 | count << 1 | stride - 1`.
const fn run(start: u32, count: u32, stride: u32, delta: i32) -> (u32, i32) {
    (start << 8 | count << 1 | (stride - 1), delta)
}

#[rustfmt::skip]
const LOWER: [(u32, i32); 185] = [
    run(0x00041, 26, 1, 32), run(0x000c0, 23, 1, 32), run(0x000d8, 7, 1, 32),
    run(0x00100, 24, 2, 1), run(0x00132, 3, 2, 1), run(0x00139, 8, 2, 1),
    run(0x0014a, 23, 2, 1), run(0x00178, 1, 1, -121), run(0x00179, 3, 2, 1),
    run(0x00181, 1, 1, 210), run(0x00182, 2, 2, 1), run(0x00186, 1, 1, 206),
    run(0x00187, 1, 1, 1), run(0x00189, 2, 1, 205), run(0x0018b, 1, 1, 1),
    run(0x0018e, 1, 1, 79), run(0x0018f, 1, 1, 202), run(0x00190, 1, 1, 203),
    run(0x00191, 1, 1, 1), run(0x00193, 1, 1, 205), run(0x00194, 1, 1, 207),
    run(0x00196, 1, 1, 211), run(0x00197, 1, 1, 209), run(0x00198, 1, 1, 1),
    run(0x0019c, 1, 1, 211), run(0x0019d, 1, 1, 213), run(0x0019f, 1, 1, 214),
    run(0x001a0, 3, 2, 1), run(0x001a6, 1, 1, 218), run(0x001a7, 1, 1, 1),
    run(0x001a9, 1, 1, 218), run(0x001ac, 1, 1, 1), run(0x001ae, 1, 1, 218),
    run(0x001af, 1, 1, 1), run(0x001b1, 2, 1, 217), run(0x001b3, 2, 2, 1),
    run(0x001b7, 1, 1, 219), run(0x001b8, 1, 1, 1), run(0x001bc, 1, 1, 1),
    run(0x001c4, 1, 1, 2), run(0x001c5, 1, 1, 1), run(0x001c7, 1, 1, 2),
    run(0x001c8, 1, 1, 1), run(0x001ca, 1, 1, 2), run(0x001cb, 9, 2, 1),
    run(0x001de, 9, 2, 1), run(0x001f1, 1, 1, 2), run(0x001f2, 2, 2, 1),
    run(0x001f6, 1, 1, -97), run(0x001f7, 1, 1, -56), run(0x001f8, 20, 2, 1),
    run(0x00220, 1, 1, -130), run(0x00222, 9, 2, 1), run(0x0023a, 1, 1, 10795),
    run(0x0023b, 1, 1, 1), run(0x0023d, 1, 1, -163), run(0x0023e, 1, 1, 10792),
    run(0x00241, 1, 1, 1), run(0x00243, 1, 1, -195), run(0x00244, 1, 1, 69),
    run(0x00245, 1, 1, 71), run(0x00246, 5, 2, 1), run(0x00370, 2, 2, 1),
    run(0x00376, 1, 1, 1), run(0x0037f, 1, 1, 116), run(0x00386, 1, 1, 38),
    run(0x00388, 3, 1, 37), run(0x0038c, 1, 1, 64), run(0x0038e, 2, 1, 63),
    run(0x00391, 17, 1, 32), run(0x003a3, 9, 1, 32), run(0x003cf, 1, 1, 8),
    run(0x003d8, 12, 2, 1), run(0x003f4, 1, 1, -60), run(0x003f7, 1, 1, 1),
    run(0x003f9, 1, 1, -7), run(0x003fa, 1, 1, 1), run(0x003fd, 3, 1, -130),
    run(0x00400, 16, 1, 80), run(0x00410, 32, 1, 32), run(0x00460, 17, 2, 1),
    run(0x0048a, 27, 2, 1), run(0x004c0, 1, 1, 15), run(0x004c1, 7, 2, 1),
    run(0x004d0, 48, 2, 1), run(0x00531, 38, 1, 48), run(0x010a0, 38, 1, 7264),
    run(0x010c7, 1, 1, 7264), run(0x010cd, 1, 1, 7264), run(0x013a0, 80, 1, 38864),
    run(0x013f0, 6, 1, 8), run(0x01c89, 1, 1, 1), run(0x01c90, 43, 1, -3008),
    run(0x01cbd, 3, 1, -3008), run(0x01e00, 75, 2, 1), run(0x01e9e, 1, 1, -7615),
    run(0x01ea0, 48, 2, 1), run(0x01f08, 8, 1, -8), run(0x01f18, 6, 1, -8),
    run(0x01f28, 8, 1, -8), run(0x01f38, 8, 1, -8), run(0x01f48, 6, 1, -8),
    run(0x01f59, 4, 2, -8), run(0x01f68, 8, 1, -8), run(0x01f88, 8, 1, -8),
    run(0x01f98, 8, 1, -8), run(0x01fa8, 8, 1, -8), run(0x01fb8, 2, 1, -8),
    run(0x01fba, 2, 1, -74), run(0x01fbc, 1, 1, -9), run(0x01fc8, 4, 1, -86),
    run(0x01fcc, 1, 1, -9), run(0x01fd8, 2, 1, -8), run(0x01fda, 2, 1, -100),
    run(0x01fe8, 2, 1, -8), run(0x01fea, 2, 1, -112), run(0x01fec, 1, 1, -7),
    run(0x01ff8, 2, 1, -128), run(0x01ffa, 2, 1, -126), run(0x01ffc, 1, 1, -9),
    run(0x02126, 1, 1, -7517), run(0x0212a, 1, 1, -8383), run(0x0212b, 1, 1, -8262),
    run(0x02132, 1, 1, 28), run(0x02160, 16, 1, 16), run(0x02183, 1, 1, 1),
    run(0x024b6, 26, 1, 26), run(0x02c00, 48, 1, 48), run(0x02c60, 1, 1, 1),
    run(0x02c62, 1, 1, -10743), run(0x02c63, 1, 1, -3814), run(0x02c64, 1, 1, -10727),
    run(0x02c67, 3, 2, 1), run(0x02c6d, 1, 1, -10780), run(0x02c6e, 1, 1, -10749),
    run(0x02c6f, 1, 1, -10783), run(0x02c70, 1, 1, -10782), run(0x02c72, 1, 1, 1),
    run(0x02c75, 1, 1, 1), run(0x02c7e, 2, 1, -10815), run(0x02c80, 50, 2, 1),
    run(0x02ceb, 2, 2, 1), run(0x02cf2, 1, 1, 1), run(0x0a640, 23, 2, 1),
    run(0x0a680, 14, 2, 1), run(0x0a722, 7, 2, 1), run(0x0a732, 31, 2, 1),
    run(0x0a779, 2, 2, 1), run(0x0a77d, 1, 1, -35332), run(0x0a77e, 5, 2, 1),
    run(0x0a78b, 1, 1, 1), run(0x0a78d, 1, 1, -42280), run(0x0a790, 2, 2, 1),
    run(0x0a796, 10, 2, 1), run(0x0a7aa, 1, 1, -42308), run(0x0a7ab, 1, 1, -42319),
    run(0x0a7ac, 1, 1, -42315), run(0x0a7ad, 1, 1, -42305), run(0x0a7ae, 1, 1, -42308),
    run(0x0a7b0, 1, 1, -42258), run(0x0a7b1, 1, 1, -42282), run(0x0a7b2, 1, 1, -42261),
    run(0x0a7b3, 1, 1, 928), run(0x0a7b4, 8, 2, 1), run(0x0a7c4, 1, 1, -48),
    run(0x0a7c5, 1, 1, -42307), run(0x0a7c6, 1, 1, -35384), run(0x0a7c7, 2, 2, 1),
    run(0x0a7cb, 1, 1, -42343), run(0x0a7cc, 8, 2, 1), run(0x0a7dc, 1, 1, -42561),
    run(0x0a7f5, 1, 1, 1), run(0x0ff21, 26, 1, 32), run(0x10400, 40, 1, 40),
    run(0x104b0, 36, 1, 40), run(0x10570, 11, 1, 39), run(0x1057c, 15, 1, 39),
    run(0x1058c, 7, 1, 39), run(0x10594, 2, 1, 39), run(0x10c80, 51, 1, 64),
    run(0x10d50, 22, 1, 32), run(0x118a0, 32, 1, 32), run(0x16e40, 32, 1, 32),
    run(0x16ea0, 25, 1, 27), run(0x1e900, 34, 1, 34),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs of the standard library's mapping, as this file writes them.
    fn runs_from_std() -> Vec<(u32, u32, u32, i32)> {
        let single: Vec<(u32, i32)> = (0..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter_map(|c| {
                let mut l = c.to_lowercase();
                match (l.next(), l.next()) {
                    (Some(one), None) if one != c => Some((c as u32, one as i32 - c as i32)),
                    _ => None,
                }
            })
            .collect();
        let mut runs = Vec::new();
        let mut i = 0;
        while i < single.len() {
            let (start, delta) = single[i];
            let longest = |stride: u32| {
                (1..)
                    .take_while(|&n| {
                        single.get(i + n).is_some_and(|&(c, d)| c == start + stride * n as u32 && d == delta)
                    })
                    .count()
                    + 1
            };
            let (count, stride) = if longest(2) > longest(1) { (longest(2), 2) } else { (longest(1), 1) };
            runs.push((start, count as u32, stride, delta));
            i += count;
        }
        runs
    }

    #[test]
    fn the_table_is_the_standard_librarys() {
        let runs = runs_from_std();
        let ours: Vec<_> = LOWER.iter().map(|&(p, d)| (p >> 8, (p >> 1) & 0x7f, (p & 1) + 1, d)).collect();
        if ours != runs {
            let table: Vec<String> =
                runs.iter().map(|(s, n, st, d)| format!("run({s:#07x}, {n}, {st}, {d}),")).collect();
            panic!("this toolchain's Unicode differs; LOWER should be ({} runs):\n{}", runs.len(), table.join("\n"));
        }
    }

    #[test]
    fn every_character_lowercases_as_the_standard_librarys() {
        for c in (0..=0x10ffff_u32).filter_map(char::from_u32) {
            let want: String = if c == 'ς' { "σ".into() } else { c.to_lowercase().collect() };
            assert_eq!(fold_case(c.encode_utf8(&mut [0; 4])), want, "U+{:04X}", c as u32);
        }
    }

    proptest::proptest! {
        #[test]
        fn a_text_folds_as_the_standard_library_lowercases_it(text in "\\PC*|[a-zA-Z ΣσςİÀ-ÿ]*") {
            proptest::prop_assert_eq!(fold_case(&text), text.to_lowercase().replace('ς', "σ"));
        }
    }

    #[test]
    fn a_final_sigma_folds_like_any_other() {
        assert_eq!(fold_case("ΟΔΟΣ"), "οδοσ");
        assert_eq!(fold_case("οδος"), "οδοσ");
        assert_eq!(fold_case("Straße İst ÀÉ"), "straße i\u{307}st àé");
    }
}
