//! RFC 6455 §5.3 Client-to-Server Masking.
//!
//! > "The masking does not affect the length of the "Payload data". To convert masked data into
//! > unmasked data, or vice versa, the following algorithm is applied. [...]
//! > `j = i MOD 4`, `transformed-octet-i = original-octet-i XOR masking-key-octet-j`"
//!
//! Why clients mask at all (§10.3): so that a hostile page cannot choose the bytes that cross a
//! proxy and poison its cache. The server's job is only to undo it, and to do so fast: the
//! payload of every client frame goes through [`apply_mask`].

/// XORs `buf` in place with the masking key, as if `buf` started `offset` bytes into the payload.
///
/// The offset lets a payload that arrives in several reads be unmasked piece by piece: pass the
/// number of payload bytes already unmasked. Masking is its own inverse.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key rotated so that `rotated[0]` applies to `buf[0]`.
    let rotated = rotate(key, offset);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole words consumed a multiple of 4 key bytes, so the tail starts at `rotated[0]` again.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

/// The plain byte loop of §5.3, kept as the reference the word-at-a-time version is tested against.
#[cfg(test)]
fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let r = offset % 4;
    [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §5.7: "A single-frame masked text message": `Hello` under key 37 fa 21 3d.
    #[test]
    fn rfc_example_hello() {
        let mut data = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&data, b"Hello");
    }

    /// The fast path equals the byte loop at every alignment, offset and length up to 80.
    #[test]
    fn word_version_equals_byte_loop() {
        let key = [0x12, 0x9a, 0xfe, 0x07];
        let source: Vec<u8> = (0..96u8).map(|b| b.wrapping_mul(31).wrapping_add(7)).collect();
        for start in 0..8 {
            for len in 0..80 {
                for offset in 0..8 {
                    let mut fast = source.clone();
                    let mut slow = source.clone();
                    apply_mask(&mut fast[start..start + len], key, offset);
                    apply_mask_bytewise(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    /// Unmasking in pieces with running offsets equals unmasking all at once.
    #[test]
    fn split_unmasking_matches_whole() {
        let key = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..50).collect();
        let mut split = whole.clone();
        apply_mask(&mut whole, key, 0);
        let (a, b) = split.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(whole, split);
    }
}
