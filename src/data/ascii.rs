//! TYPE A line-ending conversion, chunk by chunk, remembering the one byte
//! of state a CR LF split across two chunks needs.

/// Converts bare LF to CR LF for sending. `prev_cr` carries whether the
/// previous chunk ended with CR, so an existing CR LF is not doubled.
pub fn to_network(input: &[u8], prev_cr: &mut bool, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len() + input.len() / 16 + 1);
    for &b in input {
        if b == b'\n' && !*prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        *prev_cr = b == b'\r';
    }
}

/// Converts CR LF to LF for storing. A CR at the end of a chunk is held back
/// in `pending_cr` until the next chunk shows whether an LF follows; call
/// [`from_network_finish`] at the end of the stream.
pub fn from_network(input: &[u8], pending_cr: &mut bool, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len() + 1);
    for &b in input {
        if *pending_cr {
            *pending_cr = false;
            if b != b'\n' {
                out.push(b'\r');
            }
        }
        if b == b'\r' {
            *pending_cr = true;
        } else {
            out.push(b);
        }
    }
}

/// Flushes a CR held back by [`from_network`] at the end of the stream.
pub fn from_network_finish(pending_cr: bool, out: &mut Vec<u8>) {
    out.clear();
    if pending_cr {
        out.push(b'\r');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut prev, mut all, mut out) = (false, Vec::new(), Vec::new());
        for c in chunks {
            to_network(c, &mut prev, &mut out);
            all.extend_from_slice(&out);
        }
        all
    }

    fn receive(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut pending, mut all, mut out) = (false, Vec::new(), Vec::new());
        for c in chunks {
            from_network(c, &mut pending, &mut out);
            all.extend_from_slice(&out);
        }
        from_network_finish(pending, &mut out);
        all.extend_from_slice(&out);
        all
    }

    #[test]
    fn lf_becomes_crlf_once() {
        assert_eq!(send(&[b"a\nb\r\nc\n"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(send(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
    }

    #[test]
    fn crlf_becomes_lf_across_chunks() {
        assert_eq!(receive(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(receive(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(receive(&[b"a\rb\r"]), b"a\rb\r");
    }
}
