//! Replies: a three-digit code and one or more lines of text.

use std::fmt::Write as _;

/// A reply to send on the control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Text; a `\n` inside makes a multi-line reply.
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, text: text.into() }
    }

    /// The reply as sent: single line `CODE text\r\n`; multi-line as
    /// `CODE-first\r\n`, continuation lines indented by a space (so a line
    /// starting with digits cannot end the reply early), `CODE last\r\n`.
    pub fn to_wire(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 8);
        let lines: Vec<&str> = self.text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        if lines.len() == 1 {
            let _ = write!(out, "{} {}\r\n", self.code, lines[0]);
            return out;
        }
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "{}-{}\r\n", self.code, line);
            } else if i == last {
                let _ = write!(out, "{} {}\r\n", self.code, line);
            } else {
                let _ = write!(out, " {}\r\n", line);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        assert_eq!(Reply::new(200, "OK").to_wire(), "200 OK\r\n");
        assert_eq!(
            Reply::new(211, "Features:\nMDTM\nEnd").to_wire(),
            "211-Features:\r\n MDTM\r\n211 End\r\n"
        );
    }
}
