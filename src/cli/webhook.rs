//! `tessera webhook verify`: the receiver's check of a webhook notice's
//! `Tessera-Signature` (src/server/webhook.rs), for shell receivers and
//! for trying one out. Reads the body on standard input, prints `ok`, or
//! fails with one line naming the reason.

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{emit, now, Failure};
use crate::server::webhook;
use crate::token::parse_duration;

/// Largest body read, in bytes.
const MAX_BODY: u64 = 1 << 20;

/// `tessera webhook`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Check a notice's signature: the body on standard input.
    #[command(after_help = "Example:\n  \
        tessera webhook verify --secret-file webhook.secret \\\n    \
        --header \"Tessera-Signature: $SIG\" --tolerance 300s < body.json")]
    Verify(VerifyArgs),
}

/// `tessera webhook verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The file holding the shared secret (`[approval] webhook_secret_file`).
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// The header as received: `Tessera-Signature: t=...,v1=...`, or its value.
    #[arg(long, value_name = "HEADER")]
    header: String,
    /// How far the signing time may be from this clock (refuses replays).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    tolerance: std::time::Duration,
}

/// Runs `tessera webhook ...`.
pub fn webhook(cmd: WebhookCommand) -> Result<(), Failure> {
    let WebhookCommand::Verify(args) = cmd;
    let secret = webhook::read_secret(&args.secret_file).map_err(Failure::new)?;
    let mut body = Vec::new();
    std::io::stdin()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| Failure::new(format!("reading the body on standard input: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(Failure::new(format!(
            "the body is longer than {MAX_BODY} bytes"
        )));
    }
    webhook::verify(
        &secret,
        &args.header,
        &body,
        now().timestamp(),
        args.tolerance.as_secs(),
    )
    .map_err(|e| Failure {
        message: e.to_string(),
        code: 1,
    })?;
    emit("ok\n")
}
