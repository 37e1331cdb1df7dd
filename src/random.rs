//! Masking keys a page's script cannot predict (RFC 6455 §5.3, §10.3).
//!
//! §5.3: "the masking key MUST be derived from a strong source of entropy, and the masking key
//! for a given frame MUST NOT make it simple for a server/proxy to predict the masking key for
//! a subsequent frame." §10.3: "Clients MUST choose a new masking key for each frame, using an
//! algorithm that cannot be predicted by end applications that provide data."
//!
//! [`Keys`] is the ChaCha20 stream cipher (RFC 8439) run as a generator: a 256-bit seed from the
//! operating system (`getrandom(2)`), then 64 bytes, sixteen masking keys, per block. Asking
//! the kernel for every key instead ([`os_mask`]) costs a system call per frame:
//! `cargo bench --bench mask_keys` compares the two (on the 2-core CI machine, 2026-12: 17 ns
//! per key from ChaCha20, 607 ns from `getrandom(2)`, when a whole 20-byte client frame costs
//! 69 ns). Both are unpredictable to the application; the generator is the one used. The
//! connection takes the seed as an input (sans-I/O): tests give it a fixed one, and the
//! client's drivers give it [`os_seed`].

/// A generator of unpredictable bytes: ChaCha20's keystream under a secret seed.
#[derive(Clone)]
pub struct Keys {
    /// The cipher's key (the seed), as eight little-endian words.
    key: [u32; 8],
    /// The block counter and nonce words of the state (RFC 8439 §2.3).
    counter: u64,
    /// The current block of keystream, and how much of it is used.
    block: [u8; 64],
    used: usize,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    /// A generator seeded with `seed` (which must be secret and random: [`os_seed`]).
    pub fn new(seed: [u8; 32]) -> Keys {
        let mut key = [0u32; 8];
        for (word, bytes) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        Keys { key, counter: 0, block: [0; 64], used: 64 }
    }

    /// The next four bytes: a fresh masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        let mut key = [0u8; 4];
        match self.block.get(self.used..self.used + 4) {
            // The common case: four bytes left in this block (`fill` handles the others).
            Some(bytes) => {
                key.copy_from_slice(bytes);
                self.used += 4;
            }
            None => self.fill(&mut key),
        }
        key
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == self.block.len() {
                self.block = block(&self.key, self.counter, [0; 2]);
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }
}

/// RFC 8439 §2.1: the quarter round.
fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// RFC 8439 §2.3: the ChaCha20 block function, with a 64-bit block counter (words 12-13) and a
/// 64-bit nonce (words 14-15), as in the original ChaCha.
fn block(key: &[u32; 8], counter: u64, nonce: [u32; 2]) -> [u8; 64] {
    // "expand 32-byte k"
    let mut state = [0u32; 16];
    state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    state[4..12].copy_from_slice(key);
    state[12] = counter as u32;
    state[13] = (counter >> 32) as u32;
    state[14..].copy_from_slice(&nonce);
    let mut working = state;
    for _ in 0..10 {
        quarter_round(&mut working, 0, 4, 8, 12);
        quarter_round(&mut working, 1, 5, 9, 13);
        quarter_round(&mut working, 2, 6, 10, 14);
        quarter_round(&mut working, 3, 7, 11, 15);
        quarter_round(&mut working, 0, 5, 10, 15);
        quarter_round(&mut working, 1, 6, 11, 12);
        quarter_round(&mut working, 2, 7, 8, 13);
        quarter_round(&mut working, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&working[i].wrapping_add(state[i]).to_le_bytes());
    }
    out
}

/// 32 bytes from the operating system's generator (`getrandom(2)`, blocking only until the
/// kernel's pool is first seeded, at boot).
pub fn os_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    let mut filled = 0;
    while filled < seed.len() {
        let rest = &mut seed[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into the buffer it is given,
        // which is valid and writable for that length during the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(seed)
}

/// Four bytes from the operating system, with one system call: the alternative to [`Keys`]
/// that the benchmark measures.
pub fn os_mask() -> std::io::Result<[u8; 4]> {
    let mut key = [0u8; 4];
    // SAFETY: as in `os_seed`: at most 4 bytes into a 4-byte buffer.
    let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
    if n == 4 { Ok(key) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.3.2's test vector for the block function (its 96-bit nonce and 32-bit
    /// counter, laid out as the same four state words).
    #[test]
    fn rfc_8439_block_function() {
        let key_bytes: Vec<u8> = (0u8..32).collect();
        let mut key = [0u32; 8];
        for (word, bytes) in key.iter_mut().zip(key_bytes.chunks_exact(4)) {
            *word = u32::from_le_bytes(bytes.try_into().unwrap());
        }
        // Counter = 1; nonce = 00:00:00:09:00:00:00:4a:00:00:00:00 (state words 13, 14, 15).
        let counter = 1u64 | (0x0900_0000u64 << 32);
        let out = block(&key, counter, [0x4a00_0000, 0]);
        let expected = "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e\
                        d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e";
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn keys_are_the_keystream_in_order_and_differ() {
        let mut a = Keys::new([7; 32]);
        let mut b = Keys::new([7; 32]);
        let mut stream = [0u8; 200];
        b.fill(&mut stream);
        let masks: Vec<[u8; 4]> = (0..50).map(|_| a.mask()).collect();
        assert_eq!(masks.concat(), stream, "keys are consecutive keystream, across blocks");
        let mut other = Keys::new([8; 32]);
        assert_ne!(other.mask(), Keys::new([7; 32]).mask(), "another seed, another stream");
        let distinct: std::collections::HashSet<[u8; 4]> = masks.iter().copied().collect();
        assert_eq!(distinct.len(), masks.len());
    }

    #[test]
    fn the_os_gives_seeds() {
        let (a, b) = (os_seed().unwrap(), os_seed().unwrap());
        assert_ne!(a, b);
        assert_ne!(os_mask().unwrap(), [0; 4]);
        assert_eq!(format!("{:?}", Keys::new(a)), "Keys { .. }", "the seed is never printed");
    }
}
