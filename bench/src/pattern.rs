//! The bytes every transfer carries: a pseudo-random block repeated. Its
//! length is prime, so it never lines up with buffer or page sizes and a
//! misplaced, lost or duplicated chunk shows as a mismatch.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Length of the repeated block (a prime just above 1 MiB).
pub const BLOCK: usize = 1_048_583;

/// The repeated block (xorshift64*, fixed seed).
pub fn block() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(BLOCK + 8);
    while out.len() < BLOCK {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(BLOCK);
    out
}

/// Whether `data`, found at byte `offset` of a stream, is what the pattern has there.
pub fn matches(block: &[u8], mut offset: u64, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let at = (offset % block.len() as u64) as usize;
        let n = data.len().min(block.len() - at);
        if data[..n] != block[at..at + n] {
            return false;
        }
        data = &data[n..];
        offset += n as u64;
    }
    true
}

/// The slice of the pattern starting at `offset`, at most `max` bytes long.
pub fn slice_at(block: &[u8], offset: u64, max: u64) -> &[u8] {
    let at = (offset % block.len() as u64) as usize;
    let n = (block.len() - at).min(usize::try_from(max).unwrap_or(usize::MAX));
    &block[at..at + n]
}

/// Writes `size` bytes of the pattern to `path`, unless a file of that size is already there.
pub fn ensure_file(block: &[u8], path: &Path, size: u64) -> Result<()> {
    if std::fs::metadata(path).map(|m| m.len() == size).unwrap_or(false) {
        return Ok(());
    }
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut off = 0;
    while off < size {
        let s = slice_at(block, off, size - off);
        f.write_all(s).with_context(|| format!("writing {}", path.display()))?;
        off += s.len() as u64;
    }
    Ok(())
}

/// Checks that the file at `path` holds exactly `size` bytes of the pattern.
pub fn verify_file(block: &[u8], path: &Path, size: u64) -> Result<()> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        if !matches(block, off, &buf[..n]) {
            bail!("{}: wrong bytes near offset {off}", path.display());
        }
        off += n as u64;
    }
    if off != size {
        bail!("{}: {off} bytes, expected {size}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_matches_agree() {
        let b = block();
        let mut stream = Vec::new();
        let mut off = 0u64;
        while off < 3 * BLOCK as u64 + 17 {
            let s = slice_at(&b, off, 3 * BLOCK as u64 + 17 - off);
            stream.extend_from_slice(s);
            off += s.len() as u64;
        }
        assert!(matches(&b, 0, &stream));
        assert!(matches(&b, 1000, &stream[1000..]));
        assert!(!matches(&b, 1001, &stream[1000..]));
        let mut bad = stream.clone();
        bad[BLOCK + 5] ^= 1;
        assert!(!matches(&b, 0, &bad));
    }
}
