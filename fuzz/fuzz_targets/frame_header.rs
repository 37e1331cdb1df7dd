//! `frame::decode_header` on arbitrary bytes. See fuzz/README.md for the oracles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rfc6455::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, decode_header};

fuzz_target!(|input: &[u8]| {
    let result = decode_header(input);
    match result {
        Ok(Some((header, n))) => {
            assert!(n <= input.len(), "consumed {n} of {}", input.len());
            assert_eq!(n, header.encoded_len(), "{header:?}");
            // Lengths are minimal (non-minimal ones are refused), so encoding gives back the
            // bytes exactly.
            let mut encoded = Vec::new();
            header.encode(&mut encoded);
            assert_eq!(encoded, input[..n], "{header:?}");
            if header.opcode.is_control() {
                assert!(header.fin, "fragmented control frame accepted: {header:?}");
                assert!(header.payload_len <= MAX_CONTROL_PAYLOAD, "{header:?}");
            }
            assert!(header.payload_len >> 63 == 0, "{header:?}");
        }
        Ok(None) => assert!(input.len() < MAX_HEADER_LEN, "need more with {} bytes", input.len()),
        // Every variant is a documented refusal; reaching here without a panic is the check.
        Err(_) => {}
    }
    // Streaming agrees with one shot: a prefix either needs more, or is decided exactly as the
    // whole input is (the connection re-decodes a stashed partial header as bytes arrive).
    for k in 0..input.len().min(MAX_HEADER_LEN) {
        let partial = decode_header(&input[..k]);
        assert!(partial == Ok(None) || partial == result, "prefix {k}: {partial:?} vs {result:?}");
    }
});
