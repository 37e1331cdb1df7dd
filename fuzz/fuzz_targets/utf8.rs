//! `utf8::Utf8Validator` fed in pieces, against `std::str::from_utf8`. See fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::utf8::Utf8Validator;
use rfc6455_fuzz::split_points;

fuzz_target!(|input: &[u8]| {
    // The first byte says how many cut points follow (0..=7), then one byte each; the rest is
    // the text.
    let (cuts, text) = split_points(input, 7);
    let whole = std::str::from_utf8(text);
    // The offset by which the error is certain: the invalid sequence, plus the byte after it
    // that revealed a truncated sequence (when there is one).
    let must_fail_by = match whole {
        Err(e) => e.error_len().map(|len| (e.valid_up_to() + len + 1).min(text.len())),
        Ok(_) => None,
    };
    let mut v = Utf8Validator::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([text.len()]) {
        let fed = v.feed(&text[start..end]);
        start = end;
        // Fail fast, and exactly: the validator fails as soon as (and only once) the bytes so
        // far cannot begin valid UTF-8, i.e. std finds an invalid sequence in the prefix.
        let prefix_invalid =
            matches!(std::str::from_utf8(&text[..end]), Err(e) if e.error_len().is_some());
        assert_eq!(fed.is_err(), prefix_invalid, "after {end} of {} bytes: {text:x?}", text.len());
        if let Some(by) = must_fail_by {
            assert!(end < by || fed.is_err(), "not failed by offset {by}: {text:x?}");
        }
        if fed.is_err() {
            return;
        }
    }
    // Every piece passed: the whole is valid iff it did not stop inside a code point.
    assert_eq!(v.finish().is_ok(), whole.is_ok(), "{text:x?}");
    // `finish` resets the validator for the next message.
    assert_eq!(v.feed(b"ok"), Ok(()));
    assert_eq!(v.finish(), Ok(()));
});
