//! `moa_core::http::http_date` (hand-written to keep the browser module small) reads
//! every well-formed date as `httpdate` does, and never reads a damaged one differently:
//! it refuses some damaged text `httpdate` lets through (a letter where the space before
//! the time should be), which RFC 9110 allows (an unreadable `Retry-After` is ignored).

use moa_core::http::http_date;
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

fn oracle(text: &str) -> Option<u64> {
    httpdate::parse_http_date(text).ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

/// The same instant in the three forms RFC 9110 has recipients accept.
fn forms(secs: u64) -> [String; 3] {
    let imf = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    // `Sun, 06 Nov 1994 08:49:37 GMT`
    let (wday, rest) = imf.split_once(", ").expect("imf");
    let p: Vec<&str> = rest.split(' ').collect();
    let long = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
        .into_iter()
        .find(|d| d.starts_with(wday))
        .expect("weekday");
    let rfc850 = format!("{long}, {}-{}-{} {} GMT", p[0], p[1], &p[2][2..], p[3]);
    let day: u32 = p[0].parse().expect("day");
    let asctime = format!("{wday} {} {day:>2} {} {}", p[1], p[3], p[2]);
    [imf, rfc850, asctime]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn every_form_of_every_date_reads_as_httpdate_reads_it(secs in 0u64..253_402_300_800) {
        for form in forms(secs) {
            prop_assert_eq!(http_date(&form), oracle(&form), "{}", form);
        }
        // The IMF form is exact; the RFC 850 form's two-digit year is within a century.
        prop_assert_eq!(http_date(&forms(secs)[0]), Some(secs));
    }

    #[test]
    fn damaged_dates_are_never_read_differently(secs in 0u64..253_402_300_800, at in 0usize..40, with in any::<char>(), form in 0usize..3) {
        let text = &forms(secs)[form];
        let mut chars: Vec<char> = text.chars().collect();
        let i = at % chars.len();
        chars[i] = with;
        let broken: String = chars.iter().collect();
        if let Some(ours) = http_date(&broken) {
            prop_assert_eq!(Some(ours), oracle(&broken), "{}", broken);
        }
        let short: String = text.chars().take(i).collect();
        prop_assert_eq!(http_date(&short), None, "{}", short);
    }
}

#[test]
fn the_rfcs_examples_and_wrong_weekdays() {
    assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
    assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
    assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
    assert_eq!(http_date("Mon, 06 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    assert_eq!(http_date("Sat, 29 Feb 2025 00:00:00 GMT"), None);
}
