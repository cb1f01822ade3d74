//! Informational commands: FEAT, HELP, OPTS, STAT (server status).

use super::Session;
use crate::proto::{Reply, TransferType};

/// Every verb the server understands, for HELP.
const COMMANDS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HELP",
    "HOST", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV",
    "PBSZ", "PORT", "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE",
    "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER", "XCUP", "XCWD", "XMKD", "XPWD", "XRMD",
];

pub fn help(topic: Option<&str>) -> Reply {
    if let Some(topic) = topic {
        let verb = topic.trim().to_ascii_uppercase();
        return if COMMANDS.contains(&verb.as_str()) {
            Reply::new(214, format!("{verb} is supported."))
        } else {
            Reply::new(502, format!("Unknown command {verb}."))
        };
    }
    let mut text = String::from("The following commands are recognized:\n");
    for row in COMMANDS.chunks(10) {
        text.push_str(&row.join(" "));
        text.push('\n');
    }
    text.push_str("Help OK.");
    Reply::new(214, text)
}

pub fn opts(args: &str) -> Reply {
    let mut words = args.split_whitespace();
    let option = words.next().unwrap_or("").to_ascii_uppercase();
    match option.as_str() {
        // Names are always UTF-8 (RFC 2640); the option is accepted for clients that ask.
        "UTF8" | "UTF-8" => Reply::new(200, "Always in UTF8 mode."),
        "MLST" => Reply::new(200, format!("MLST OPTS {}", MLST_FACTS.replace('*', ""))),
        _ => Reply::new(501, format!("Option {option} not understood.")),
    }
}

/// Facts offered by MLST/MLSD; all are always sent.
pub const MLST_FACTS: &str = "type*;size*;modify*;perm*;unique*;UNIX.mode*;";

impl Session {
    pub(super) fn cmd_feat(&self) -> Reply {
        let tls = self.shared.live().tls.is_some();
        // After login, MFMT is offered only where the account's root can set
        // times (an object store cannot; other paths answer 502).
        let set_modified = self
            .user
            .as_ref()
            .and_then(|u| u.vfs.resolve("/"))
            .is_none_or(|root| root.mount.storage.capabilities().set_modified);
        let mut features = vec![
            "EPRT".to_string(),
            "EPSV".to_string(),
            "HOST".to_string(),
            "MDTM".to_string(),
            "MFMT".to_string(),
            format!("MLST {MLST_FACTS}"),
            "PASV".to_string(),
            "REST STREAM".to_string(),
            "SIZE".to_string(),
            "TVFS".to_string(),
            "UTF8".to_string(),
        ];
        if !set_modified {
            features.retain(|f| f != "MFMT");
        }
        if tls {
            features.extend(["AUTH TLS".to_string(), "PBSZ".to_string(), "PROT".to_string()]);
            features.sort();
        }
        Reply::new(211, format!("Features:\n{}\nEnd", features.join("\n")))
    }

    pub(super) fn server_status(&self) -> Reply {
        let user = match &self.user {
            Some(u) => format!("Logged in as {}", u.account.name),
            None => "Not logged in".to_string(),
        };
        let ty = match self.params.ty {
            TransferType::Ascii => "ASCII",
            TransferType::Image => "BINARY",
        };
        let protection = match &self.tls {
            Some(t) if t.private => "Control connection protected (TLS), data protection Private",
            Some(_) => "Control connection protected (TLS), data protection Clear",
            None => "Control connection in clear text",
        };
        Reply::new(
            211,
            format!(
                "ferroftpd status:\nConnected to {}\n{}\n{}\nTYPE: {}, STRUcture: File, MODE: Stream\nNo data connection\nEnd of status",
                self.peer.ip(),
                user,
                protection,
                ty
            ),
        )
    }
}
