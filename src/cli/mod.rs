//! The `tessera` command line: offline token operations over files.
//!
//! This is an edge: it reads files, standard input and the clock, then calls
//! the pure token core.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use biscuit_auth::{KeyPair, PrivateKey};
use chrono::{DateTime, Utc};
use clap::{Args, FromArgMatches as _, Parser, Subcommand};

#[cfg(feature = "server")]
mod approvals;
#[cfg(feature = "server")]
mod audit;
#[cfg(feature = "server")]
mod audit_export;
#[cfg(feature = "server")]
mod audit_proof;
#[cfg(feature = "server")]
mod audit_verify;
#[cfg(feature = "server")]
mod budget;
mod help;
#[cfg(feature = "verifier")]
mod http;
#[cfg(feature = "server")]
mod issuer;
#[cfg(feature = "server")]
mod operator;
#[cfg(feature = "server")]
mod person;
#[cfg(feature = "verifier")]
mod verifier;
#[cfg(feature = "server")]
mod webhook;

use crate::token::{
    self, parse_duration, parse_public_key, Action, AgentId, Amount, Audience, Capability, KeySet,
    Lifetime, Limits, Narrowing, Request, Resource, ResourcePattern, RootKeyPair,
};

/// Capability tokens for AI agents and the tools they call.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
enum Command {
    /// Generate an Ed25519 key pair: writes the private key (PEM, mode 0600)
    /// and prints the public key.
    Keygen {
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Work with key files.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Mint, narrow, delegate, inspect and verify tokens, offline; request
    /// and revoke them at an issuer.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the issuer service.
    #[cfg(feature = "server")]
    Serve(issuer::ServeArgs),
    /// Operator commands.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Admin(issuer::AdminCommand),
    /// Register, list, show, update and disable agents at an issuer.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Agent(issuer::AgentCommand),
    /// List an issuer's revocations.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Revocations(operator::RevocationsCommand),
    /// Give people roles and record their consents for agents, at an issuer.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Person(person::PersonCommand),
    /// Read the issuer's audit log, by agent, person or token.
    #[cfg(feature = "server")]
    Audit(audit::AuditArgs),
    /// Check the signature of a webhook notice (the person's webhook).
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// List, show, approve and deny requests for a person's approval, at an issuer.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Show a cumulative budget as the issuer's ledger holds it.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Budget(budget::BudgetCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (or write one page per command with --out-dir).
    Man {
        /// Write `tessera.1`, `tessera-token.1`, … into this directory.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print the public key of a private key file.
    Public {
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Print a JWKS document (the verifier's key set) for root key files.
    Jwks {
        /// A root private key file, optionally `ID=FILE` (id 0 when omitted).
        #[arg(long = "root-key", value_name = "[ID=]FILE", required = true)]
        root_keys: Vec<String>,
    },
    /// Add a new active root key to an issuer's key ring; the previous one is
    /// retired but stays published (and verifying) for a while.
    #[cfg(feature = "server")]
    Rotate(operator::RotateArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a token offline with a root key (development and tests; in
    /// production the issuer mints).
    Mint(MintArgs),
    /// Narrow a token with a first-party block (no key needed).
    Attenuate {
        /// The token: the token itself, a file holding it, or `-` for standard input.
        #[arg(default_value = "-")]
        token: String,
        #[command(flatten)]
        narrowing: NarrowingArgs,
    },
    /// Hand a bound token to a sub-agent: a block signed by the current holder.
    Delegate {
        /// The token: the token itself, a file holding it, or `-` for standard input.
        #[arg(default_value = "-")]
        token: String,
        /// The current holder's private key file.
        #[arg(long, value_name = "FILE")]
        holder_key: PathBuf,
        /// The sub-agent's URI.
        #[arg(long, value_name = "URI")]
        to: AgentId,
        /// The sub-agent's public key, `ed25519/<hex>`.
        #[arg(long, value_name = "PUBKEY", value_parser = parse_public_key)]
        to_key: biscuit_auth::PublicKey,
        #[command(flatten)]
        narrowing: NarrowingArgs,
    },
    /// Show what a token says, block by block.
    Inspect {
        /// The token: the token itself, a file holding it, or `-` for standard input.
        #[arg(default_value = "-")]
        token: String,
        /// Verify the signatures against these root keys first (JWKS file,
        /// `ed25519/<hex>` for key id 0, or `ID:ed25519/<hex>`).
        #[arg(long, value_name = "FILE|PUBKEY")]
        keys: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decide whether a token allows one request. Exit 0 when allowed, 1 when denied.
    Verify(VerifyArgs),
    /// Ask an issuer for a token, authenticating with the agent's key.
    #[cfg(feature = "server")]
    Request(issuer::RequestArgs),
    /// Revoke a token at an issuer (as its agent, or as an operator).
    #[cfg(feature = "server")]
    Revoke(issuer::RevokeArgs),
}

#[derive(Debug, Args)]
struct MintArgs {
    /// The root private key file.
    #[arg(long, value_name = "FILE")]
    root_key: PathBuf,
    /// The root key id written into the token.
    #[arg(long, value_name = "N", default_value_t = 0)]
    root_key_id: u32,
    /// The agent the token is issued to.
    #[arg(long, value_name = "URI")]
    agent: AgentId,
    /// The one action it allows.
    #[arg(long, value_name = "ACTION")]
    action: Action,
    /// The resource, or a prefix written with a trailing `*`.
    #[arg(long, value_name = "R|PREFIX*")]
    resource: ResourcePattern,
    /// The tool server it is meant for.
    #[arg(long, value_name = "URI")]
    audience: Option<Audience>,
    /// How long it lives (`30s`, `5m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    ttl: Lifetime,
    /// Bind it to this agent public key (`ed25519/<hex>`).
    #[arg(long, value_name = "PUBKEY", value_parser = parse_public_key)]
    bind_key: Option<biscuit_auth::PublicKey>,
    /// Print JSON with the token id, expiry and revocation id.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct NarrowingArgs {
    /// Allow only this action.
    #[arg(long, value_name = "ACTION")]
    action: Option<Action>,
    /// Allow only this resource, or prefix with a trailing `*`.
    #[arg(long, value_name = "R|PREFIX*")]
    resource: Option<ResourcePattern>,
    /// Expire this long from now.
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    ttl: Option<String>,
    /// Expire at this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    expires_at: Option<DateTime<Utc>>,
    /// Allow only at this tool server.
    #[arg(long, value_name = "URI")]
    audience: Option<Audience>,
    /// Allow only operations whose amount is at most this, in this
    /// currency, as in `12.50EUR` (docs/token-schema.md).
    #[arg(long, value_name = "AMOUNT")]
    max_amount: Option<Amount>,
    /// Declare a cumulative budget, charged (with every budget before it in
    /// the chain) for each spend: `<id>:<amount>`, as in `trip:200.00EUR`
    /// (docs/budgets.md).
    #[arg(long, value_name = "ID:AMOUNT")]
    budget: Option<crate::token::Budget>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The token: the token itself, a file holding it, or `-` for standard input.
    #[arg(default_value = "-")]
    token: String,
    /// Root keys: a JWKS file, `ed25519/<hex>` (key id 0), or `ID:ed25519/<hex>`.
    #[arg(long, value_name = "FILE|PUBKEY")]
    keys: Option<String>,
    /// Root keys from a JWKS document: a file, or an http(s) URL fetched
    /// (and fetched again on an unknown key id). Checks with the Verifier.
    #[cfg(feature = "verifier")]
    #[arg(long, value_name = "FILE|URL")]
    jwks: Option<String>,
    /// The issuer's URL: its JWKS unless --keys or --jwks is given, and its
    /// revocation feed when --feed-token is given. Checks with the Verifier.
    #[cfg(feature = "verifier")]
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// Read-only feed token (`tessera admin token --feed`) to follow the
    /// issuer's revocations over HTTP.
    // (Declared like the admin token in cli/issuer.rs: a secret from a flag
    // or the environment, never shown in help.)
    #[cfg(feature = "verifier")]
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TESSERA_FEED_TOKEN",
        hide_env_values = true
    )]
    feed_token: Option<String>,
    /// Follow revocations from the issuer's Redis (the stream
    /// `tessera:{rev}:revocations`, docs/storage.md). Checks with the Verifier.
    #[cfg(feature = "verifier")]
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// The action requested.
    #[arg(long, value_name = "ACTION")]
    operation: Action,
    /// The resource requested.
    #[arg(long, value_name = "RESOURCE")]
    resource: Resource,
    /// This tool server's canonical URI (required for tokens with an audience).
    #[arg(long, value_name = "URI")]
    service: Option<Audience>,
    /// The operation's amount, as in `12.50EUR` (required by a token that
    /// caps amounts).
    #[arg(long, value_name = "AMOUNT")]
    amount: Option<Amount>,
    /// The presenting agent's private key file: possession is proven locally.
    #[arg(long, value_name = "FILE")]
    holder_key: Option<PathBuf>,
    /// Treat this revocation id (hex) as revoked; repeatable.
    #[arg(long, value_name = "HEX")]
    revoked: Vec<String>,
    /// Decide without following the issuer's revocations: a revoked token
    /// is allowed until it expires. Without a revocation source (--issuer
    /// with --feed-token, --redis-url, or --revoked ids) this flag is required.
    #[arg(long, conflicts_with = "revoked")]
    no_revocation_check: bool,
    /// Print the grant as JSON.
    #[arg(long)]
    json: bool,
}

/// A failure reported as one line on standard error.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 2,
        }
    }
}

impl From<token::TokenError> for Failure {
    fn from(e: token::TokenError) -> Self {
        Self::new(e)
    }
}

impl From<token::InvalidInput> for Failure {
    fn from(e: token::InvalidInput) -> Self {
        Self::new(e)
    }
}

/// Parses the command line and runs it. A usage error is clap's own (the
/// missing arguments, a similar argument, the usage line); the command's
/// own errors are one line on stderr.
pub fn main() -> ExitCode {
    // No panic is expected; if a dependency panics anyway, report one line
    // instead of a backtrace (and never the token or a key).
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(io::stderr(), "tessera: internal error{place}");
    }));
    let parsed = help::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            // A value refused by the project's own parser (an agent id, a
            // lifetime...): one line that names the argument and the reason.
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid value");
            let _ = writeln!(
                io::stderr(),
                "tessera: {}",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            // Help and version go to stdout (exit 0); usage errors, and a
            // group's help when no subcommand was given, to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let one_line = f.message.replace('\n', " ");
            let _ = writeln!(io::stderr(), "tessera: {one_line}");
            ExitCode::from(f.code)
        }
    }
}

/// The clock, read here at the edge and passed into the core.
#[allow(clippy::disallowed_methods)]
fn now() -> DateTime<Utc> {
    Utc::now()
}

fn run(cli: Cli) -> Result<(), Failure> {
    let limits = Limits::default();
    match cli.command {
        Command::Keygen { out, force } => {
            let kp = KeyPair::new();
            write_private_key(&out, &kp, force)?;
            emit(&format!("{}\n", kp.public()))?;
        }
        Command::Keys(KeysCommand::Public { key }) => {
            emit(&format!("{}\n", read_key_pair(&key)?.public()))?;
        }
        Command::Keys(KeysCommand::Jwks { root_keys }) => {
            let mut set = KeySet::new();
            for spec in root_keys {
                let (id, path) = match spec.split_once('=') {
                    Some((id, path)) => (
                        id.parse::<u32>()
                            .map_err(|_| Failure::new(format!("`{id}` is not a key id")))?,
                        path,
                    ),
                    None => (0, spec.as_str()),
                };
                set.insert(id, read_key_pair(Path::new(path))?.public())
                    .map_err(Failure::new)?;
            }
            emit(&format!("{}\n", to_json(&set.to_jwks())?))?;
        }
        Command::Token(TokenCommand::Mint(args)) => {
            let root = RootKeyPair::new(args.root_key_id, read_key_pair(&args.root_key)?);
            let cap = Capability {
                agent: args.agent,
                action: args.action,
                resource: args.resource,
                audience: args.audience,
                lifetime: args.ttl,
                holder_key: args.bind_key,
                on_behalf: None,
            };
            let minted = token::mint(&cap, &root, now())?;
            if args.json {
                emit(&format!("{}\n", to_json(&minted)?))?;
            } else {
                emit(&format!("{}\n", minted.token))?;
            }
        }
        Command::Token(TokenCommand::Attenuate { token, narrowing }) => {
            let t = read_token(&token)?;
            emit(&format!(
                "{}\n",
                token::attenuate(&t, &narrowing.into_narrowing()?, &limits)?
            ))?;
        }
        Command::Token(TokenCommand::Delegate {
            token,
            holder_key,
            to,
            to_key,
            narrowing,
        }) => {
            let t = read_token(&token)?;
            let holder = read_key_pair(&holder_key)?;
            let n = narrowing.into_narrowing()?;
            emit(&format!(
                "{}\n",
                token::delegate(&t, &holder, &to, &to_key, &n, &limits)?
            ))?;
        }
        Command::Token(TokenCommand::Inspect { token, keys, json }) => {
            let t = read_token(&token)?;
            let keys = keys.as_deref().map(read_keys).transpose()?;
            let inspection = token::inspect(&t, keys.as_ref(), &limits)?;
            if json {
                emit(&format!("{}\n", to_json(&inspection)?))?;
            } else {
                emit(&inspection.to_string())?;
            }
        }
        Command::Token(TokenCommand::Verify(args)) => verify(args, &limits)?,
        #[cfg(feature = "server")]
        Command::Token(TokenCommand::Request(args)) => issuer::request(args)?,
        #[cfg(feature = "server")]
        Command::Token(TokenCommand::Revoke(args)) => issuer::revoke(args)?,
        #[cfg(feature = "server")]
        Command::Keys(KeysCommand::Rotate(args)) => operator::rotate(args)?,
        #[cfg(feature = "server")]
        Command::Serve(args) => issuer::serve(args)?,
        #[cfg(feature = "server")]
        Command::Admin(cmd) => issuer::admin_token(cmd)?,
        #[cfg(feature = "server")]
        Command::Agent(cmd) => issuer::agent(cmd)?,
        #[cfg(feature = "server")]
        Command::Revocations(cmd) => operator::revocations(cmd)?,
        #[cfg(feature = "server")]
        Command::Person(cmd) => person::person(cmd)?,
        #[cfg(feature = "server")]
        Command::Audit(args) => audit::audit(args)?,
        #[cfg(feature = "server")]
        Command::Webhook(cmd) => webhook::webhook(cmd)?,
        #[cfg(feature = "server")]
        Command::Approvals(cmd) => approvals::approvals(cmd)?,
        #[cfg(feature = "server")]
        Command::Budget(cmd) => budget::budget(cmd)?,
        Command::Completions { shell } => help::completions(shell)?,
        Command::Man { out_dir } => help::man(out_dir.as_deref())?,
    }
    Ok(())
}

fn verify(args: VerifyArgs, limits: &Limits) -> Result<(), Failure> {
    #[cfg(feature = "verifier")]
    if args.jwks.is_some() || args.issuer.is_some() || args.redis_url.is_some() {
        return verifier::verify(args, limits);
    }
    let revocation = offline_revocation_check(&args)?;
    let t = read_token(&args.token)?;
    let keys = read_keys(
        args.keys
            .as_deref()
            .ok_or_else(|| Failure::new("give --keys (or --jwks / --issuer)"))?,
    )?;
    let proven_key = match &args.holder_key {
        Some(path) => Some(read_key_pair(path)?.public()),
        None => None,
    };
    let revoked = args
        .revoked
        .iter()
        .map(|h| hex::decode(h).map_err(|_| Failure::new(format!("`{h}` is not hex"))))
        .collect::<Result<Vec<_>, _>>()?;
    let req = Request {
        operation: args.operation,
        resource: args.resource,
        service: args.service,
        now: now(),
        proven_key,
        amount: args.amount,
    };
    let verdict = token::authorize(
        &t,
        &keys,
        &req,
        |id| revoked.iter().any(|r| r == id),
        limits,
    );
    report_verdict(
        verdict,
        |g| (g.custody(), &g.token_id, g.expires_at),
        (&req.operation, &req.resource),
        args.json,
        revocation,
    )
}

/// What `token verify` prints and returns for a verdict, offline
/// ([`token::Grant`]) or through the Verifier ([`crate::verify::Grant`]).
fn report_verdict<G: serde::Serialize, E: std::fmt::Display>(
    verdict: Result<G, E>,
    summary: impl FnOnce(&G) -> (token::Custody<'_>, &str, DateTime<Utc>),
    (operation, resource): (&Action, &Resource),
    json: bool,
    revocation: RevocationCheck,
) -> Result<(), Failure> {
    let grant = verdict.map_err(|refusal| Failure {
        message: format!("denied: {refusal}"),
        code: 1,
    })?;
    if json {
        emit(&format!("{}\n", to_json(&grant)?))?;
    } else {
        let (chain, token_id, expires_at) = summary(&grant);
        emit_allowed(chain, operation, resource, token_id, expires_at)?;
    }
    note_revocation(revocation);
    Ok(())
}

/// How far `token verify` looked at revocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RevocationCheck {
    /// Against the issuer's revocations (its feed or its Redis).
    Followed,
    /// Only against the ids given with --revoked.
    OnlyGiven,
    /// Not at all (--no-revocation-check).
    Skipped,
}

/// The revocation check of a verification without the issuer's
/// revocations: the ids given with --revoked, or none when the caller says
/// so with --no-revocation-check; an error otherwise, so that a revoked
/// token is never allowed silently.
fn offline_revocation_check(args: &VerifyArgs) -> Result<RevocationCheck, Failure> {
    match (args.revoked.is_empty(), args.no_revocation_check) {
        (false, _) => Ok(RevocationCheck::OnlyGiven),
        (true, true) => Ok(RevocationCheck::Skipped),
        (true, false) => Err(Failure::new(
            "no revocation source: give --issuer with --feed-token, or --redis-url, to follow \
             the issuer's revocations (or --revoked HEX), or --no-revocation-check to decide \
             without them",
        )),
    }
}

/// Says on standard error how far revocations were checked for an allowed
/// request (standard output keeps the one line or the JSON).
fn note_revocation(check: RevocationCheck) {
    let note = match check {
        RevocationCheck::Followed => return,
        RevocationCheck::OnlyGiven => {
            "tessera: note: revocation checked only against the ids given with --revoked"
        }
        RevocationCheck::Skipped => {
            "tessera: warning: revocation was not checked (--no-revocation-check): a revoked \
             token is allowed until it expires"
        }
    };
    let _ = writeln!(io::stderr(), "{note}");
}

/// The one line `token verify` prints for an allowed request:
/// `allowed: [for <subject> at <issuer> via ]a -> b -> c may …`.
fn emit_allowed(
    chain: token::Custody<'_>,
    operation: &Action,
    resource: &Resource,
    token_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), Failure> {
    emit(&format!(
        "allowed: {chain} may {operation} on {:?} (token {token_id}, expires {})\n",
        resource.as_str(),
        expires_at.to_rfc3339()
    ))
}

impl NarrowingArgs {
    fn into_narrowing(self) -> Result<Narrowing, Failure> {
        let expires_at = match (self.ttl, self.expires_at) {
            (Some(ttl), _) => {
                let d = chrono::Duration::from_std(parse_duration(&ttl)?)
                    .map_err(|_| Failure::new("ttl too large"))?;
                Some(
                    now()
                        .checked_add_signed(d)
                        .ok_or_else(|| Failure::new("ttl too large"))?,
                )
            }
            (None, at) => at,
        };
        Ok(Narrowing {
            action: self.action,
            resource: self.resource,
            expires_at,
            audience: self.audience,
            max_amount: self.max_amount,
            budget: self.budget,
        })
    }
}

/// Writes to standard output. A closed pipe (`tessera ... | head`) ends the
/// command quietly instead of panicking as `println!` would.
fn emit(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(v).map_err(Failure::new)
}

/// Reads a token given as itself, as a file, or as `-` (standard input).
fn read_token(arg: &str) -> Result<String, Failure> {
    let text = if arg == "-" {
        let mut s = String::new();
        io::stdin()
            .take(1 << 20)
            .read_to_string(&mut s)
            .map_err(|e| Failure::new(format!("cannot read the token from standard input: {e}")))?;
        s
    } else if Path::new(arg).is_file() {
        read_small_file(Path::new(arg), "token")?
    } else if Path::new(arg).is_dir() {
        return Err(Failure::new(format!(
            "{arg} is a directory, not a token file"
        )));
    } else if looks_like_a_path(arg) {
        return Err(Failure::new(format!(
            "no such file: {arg} (a token is one base64url word, without `/` or `.`)"
        )));
    } else {
        arg.to_owned()
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(Failure::new("no token given"));
    }
    Ok(t.to_owned())
}

/// Whether a file-or-token argument that is not a file was meant as one: a
/// token (base64url) never holds `/`, `\` or `.`, and a file name like
/// `bot.tok` or `keys/feed.token` does.
fn looks_like_a_path(arg: &str) -> bool {
    arg.contains(['/', '\\', '.'])
}

fn read_small_file(path: &Path, what: &str) -> Result<String, Failure> {
    let mut s = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_string(&mut s))
        .map_err(|e| Failure::new(format!("cannot read {what} file {}: {e}", path.display())))?;
    Ok(s)
}

/// Reads root keys: a JWKS file, `ed25519/<hex>`, or `ID:ed25519/<hex>`.
fn read_keys(arg: &str) -> Result<KeySet, Failure> {
    if Path::new(arg).is_file() {
        let json = read_small_file(Path::new(arg), "key set")?;
        KeySet::from_jwks_json(&json).map_err(Failure::new)
    } else if arg.contains("ed25519/") || arg.contains("secp256r1/") {
        KeySet::parse_inline(arg).map_err(Failure::new)
    } else if looks_like_a_path(arg) {
        Err(Failure::new(format!(
            "no such file: {arg} (--keys takes a JWKS file or `ed25519/<hex>`)"
        )))
    } else {
        Err(Failure::new(format!(
            "--keys `{arg}` is neither a JWKS file nor a public key"
        )))
    }
}

/// Reads a private key file: PEM (PKCS#8) or `ed25519-private/<hex>`.
fn read_key_pair(path: &Path) -> Result<KeyPair, Failure> {
    let text = read_small_file(path, "key")?;
    let text = text.trim();
    let bad = |e: &dyn std::fmt::Display| {
        Failure::new(format!("{} is not a private key: {e}", path.display()))
    };
    if text.starts_with("-----BEGIN") {
        KeyPair::from_private_key_pem(text).map_err(|e| bad(&e))
    } else {
        text.parse::<PrivateKey>()
            .map(|k| KeyPair::from(&k))
            .map_err(|e| bad(&e))
    }
}

fn write_private_key(path: &Path, kp: &KeyPair, force: bool) -> Result<(), Failure> {
    let pem = token::ed25519_private_key_pem(kp).map_err(Failure::new)?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode when truncated: tighten it.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Failure::new(format!("cannot set mode of {}: {e}", path.display())))?;
    }
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))
}
