//! Stop sequences, enforced on streamed text: the answer ends before the first one even
//! when a provider ignores `stop`. Text that might be the start of a stop sequence is held
//! back until the next piece shows whether it is.

/// Filters one attempt's stream against its stop sequences.
#[derive(Debug, Default)]
pub(super) struct StopFilter {
    held: String,
}

impl StopFilter {
    /// Takes the next piece of text; returns what may be shown now and whether a stop
    /// sequence was reached (then nothing after it is ever shown).
    pub(super) fn push(&mut self, piece: &str, stops: &[String]) -> (String, bool) {
        if stops.is_empty() {
            return (piece.to_owned(), false);
        }
        self.held.push_str(piece);
        let first = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first {
            let shown = self.held[..at].to_owned();
            self.held.clear();
            return (shown, true);
        }
        // Hold back the longest tail that some stop sequence starts with.
        let keep = stops
            .iter()
            .flat_map(|s| s.char_indices().skip(1).map(move |(i, _)| &s[..i]))
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let shown = self.held[..cut].to_owned();
        self.held.drain(..cut);
        (shown, false)
    }

    /// The stream ended without a stop sequence: what was held back is text after all.
    pub(super) fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str], stops: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter::default();
        let mut out = String::new();
        for p in pieces {
            let (shown, hit) = f.push(p, &stops);
            out.push_str(&shown);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&f.flush());
        (out, false)
    }

    #[test]
    fn a_stop_split_across_pieces_is_caught_and_nothing_after_it_shows() {
        assert_eq!(run(&["Hello EN", "D and more"], &["END"]), ("Hello ".into(), true));
        assert_eq!(run(&["a", "b", "\n", "\n", "c"], &["\n\n"]), ("ab".into(), true));
        assert_eq!(run(&["xEND"], &["END", "x"]), ("".into(), true), "the earliest stop wins");
    }

    #[test]
    fn a_near_miss_is_released_and_no_stop_means_the_whole_text() {
        assert_eq!(run(&["EN", "JOY"], &["END"]), ("ENJOY".into(), false));
        assert_eq!(run(&["héllo wörld"], &["ö!"]), ("héllo wörld".into(), false));
        assert_eq!(run(&["plain"], &[]), ("plain".into(), false));
    }

    #[test]
    fn every_split_of_a_text_gives_the_same_answer() {
        let text = "one two STOP three";
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let pieces = [&text[..i], &text[i..j], &text[j..]];
                assert_eq!(run(&pieces, &["STOP"]), ("one two ".into(), true), "{pieces:?}");
            }
        }
    }
}
