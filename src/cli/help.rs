//! The command definitions as the user meets them: the help of each group
//! when no subcommand is given, examples under `--help`, environment values
//! never shown, and the shell completions and man pages generated from the
//! same definitions.

use std::io;
use std::path::Path;

use clap::{Command, CommandFactory};

use super::{emit, Cli, Failure};

/// Examples shown at the end of `--help`, by command path.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "tessera",
        "Examples:\n  \
         tessera serve                                  # the issuer on 127.0.0.1:8080\n  \
         tessera admin token --data-dir tessera-data    # an operator token for /v1\n  \
         tessera keygen --out bot.key                   # an agent key\n  \
         tessera token inspect bot.tok                  # what a token says\n\n\
         `tessera <command> --help` shows each command's options and examples.",
    ),
    (
        "keygen",
        "Examples:\n  \
         tessera keygen --out root.key\n  \
         BOT_PUB=$(tessera keygen --out bot.key)",
    ),
    (
        "serve",
        "Examples:\n  \
         tessera serve\n  \
         tessera serve --listen 127.0.0.1:9090 --data-dir /var/lib/tessera --log-format json\n  \
         tessera serve --config tessera.toml --redis-url redis://127.0.0.1:6379\n\n\
         Then, in another shell: tessera admin token --data-dir tessera-data",
    ),
    (
        "admin token",
        "Examples:\n  \
         ADMIN=$(tessera admin token --data-dir tessera-data)\n  \
         tessera admin token --feed --data-dir tessera-data > feed.token",
    ),
    (
        "agent register",
        "Example:\n  \
         tessera agent register --issuer http://127.0.0.1:8080 --admin-token \"$ADMIN\" \\\n    \
         --id agent://acme/bot --public-key \"$BOT_PUB\" \\\n    \
         --action orders:create --resource 'order:*' --audience https://orders.example",
    ),
    (
        "token mint",
        "Example:\n  \
         tessera token mint --root-key root.key --agent agent://acme/planner \\\n    \
         --action docs:read --resource 'docs/team-a/*' --ttl 10m > planner.tok",
    ),
    (
        "token attenuate",
        "Example:\n  \
         tessera token attenuate planner.tok --ttl 5m --resource 'docs/team-a/reports/*' > narrow.tok",
    ),
    (
        "token delegate",
        "Example:\n  \
         tessera token delegate planner.tok --holder-key planner.key \\\n    \
         --to agent://acme/summarizer --to-key \"$SUMMARIZER_PUB\" > summarizer.tok",
    ),
    (
        "token inspect",
        "Examples:\n  \
         tessera token inspect planner.tok\n  \
         tessera token inspect planner.tok --keys jwks.json --json",
    ),
    (
        "token verify",
        "Examples:\n  \
         tessera token verify bot.tok --issuer http://127.0.0.1:8080 --feed-token feed.token \\\n    \
         --service https://orders.example --operation orders:create --resource order:123\n  \
         tessera token verify planner.tok --keys jwks.json --no-revocation-check \\\n    \
         --operation docs:read --resource docs/team-a/a.pdf",
    ),
    (
        "token request",
        "Example:\n  \
         tessera token request --issuer http://127.0.0.1:8080 --agent agent://acme/bot \\\n    \
         --key bot.key --action orders:create --resource order:123 --audience https://orders.example",
    ),
    (
        "token revoke",
        "Examples:\n  \
         tessera token revoke bot.tok --issuer http://127.0.0.1:8080 --agent agent://acme/bot --key bot.key\n  \
         tessera token revoke --issuer http://127.0.0.1:8080 --admin-token \"$ADMIN\" --token-id ID",
    ),
    (
        "completions",
        "Examples:\n  \
         tessera completions bash > ~/.local/share/bash-completion/completions/tessera\n  \
         tessera completions zsh > \"${fpath[1]}/_tessera\"",
    ),
    (
        "man",
        "Examples:\n  \
         tessera man > tessera.1 && man ./tessera.1\n  \
         tessera man --out-dir /usr/local/share/man/man1",
    ),
    (
        "approvals list",
        "Examples:\n  \
         tessera approvals list --issuer http://127.0.0.1:8080 --status pending\n  \
         tessera approvals list --idp https://login.acme.example --subject alice --json",
    ),
    (
        "approvals approve",
        "Examples:\n  \
         tessera approvals approve <ID> --operator carol   # [approval] operators_may_decide = true",
    ),
    (
        "budget show",
        "Examples:\n  \
         tessera budget show <KEY> --issuer http://127.0.0.1:8080\n  \
         tessera budget show <KEY> --json",
    ),
];

/// The `tessera` command: the derived definitions, with a group's help
/// shown when no subcommand is given, examples under `--help`, and
/// environment values hidden (a secret, or an empty `[env: X=]`, never
/// shows in help).
pub(super) fn command() -> Command {
    shape(Cli::command(), "")
}

fn shape(cmd: Command, parent: &str) -> Command {
    let path = if parent.is_empty() {
        "tessera".to_owned()
    } else if parent == "tessera" {
        cmd.get_name().to_owned()
    } else {
        format!("{parent} {}", cmd.get_name())
    };
    let mut cmd = cmd.mut_args(|a| {
        if a.get_env().is_some() {
            a.hide_env_values(true)
        } else {
            a
        }
    });
    if cmd.has_subcommands() {
        cmd = cmd.arg_required_else_help(true);
    }
    if let Some((_, text)) = EXAMPLES.iter().find(|(p, _)| *p == path) {
        cmd = cmd.after_help(*text);
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let p = path.clone();
        cmd = cmd.mut_subcommand(name, |s| shape(s, &p));
    }
    cmd
}

/// `tessera completions <shell>`: the completion script on standard output.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tessera", &mut out);
    emit(&String::from_utf8_lossy(&out))
}

/// `tessera man`: the page of `tessera` on standard output, or with
/// `out_dir` one page per command (`tessera.1`, `tessera-token-mint.1`, …).
pub(super) fn man(out_dir: Option<&Path>) -> Result<(), Failure> {
    let cmd = command();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cmd, dir))
                .map_err(|e| {
                    Failure::new(format!("cannot write man pages to {}: {e}", dir.display()))
                })?;
            emit(&format!("man pages written to {}\n", dir.display()))
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e: io::Error| Failure::new(format!("cannot render the man page: {e}")))?;
            emit(&String::from_utf8_lossy(&out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        command().debug_assert();
    }

    // The issuer's commands exist only with the `server` feature.
    #[cfg(feature = "server")]
    #[test]
    fn every_example_names_a_command_that_exists() {
        let cmd = command();
        for (path, _) in EXAMPLES {
            if *path == "tessera" {
                continue;
            }
            let mut c = &cmd;
            for word in path.split(' ') {
                c = c
                    .find_subcommand(word)
                    .unwrap_or_else(|| panic!("no command `{path}`"));
            }
            assert!(c.get_after_help().is_some(), "{path}");
        }
    }
}
