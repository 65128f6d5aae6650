//! `tessera person ...`: a person's explicit roles and standing consents,
//! over the issuer's admin API (`/v1/people`, see docs/people.md).
//!
//! The person is given as `--idp <issuer URL> --subject <sub>`; `--issuer`
//! stays the Tessera issuer, as in every other command that talks to it.

use clap::{Args, Subcommand};
use serde_json::json;

use super::issuer::{admin_token_text, check, client, runtime, send_err, url, AdminConn};
use super::{emit, to_json, Failure};
use crate::people::RoleName;
use crate::token::{AgentId, Person};

/// Who: the person's identity provider and subject there.
#[derive(Debug, Args)]
pub struct PersonArgs {
    /// The person's identity provider: its issuer URL (`iss` of their ID token).
    #[arg(long, value_name = "URL", alias = "person-issuer")]
    idp: String,
    /// The person's subject at that identity provider (`sub`).
    #[arg(long, value_name = "SUB", alias = "person")]
    subject: String,
}

impl PersonArgs {
    /// Checked here, so that bad input is one line before any request.
    fn person(&self) -> Result<Person, Failure> {
        Ok(Person::parse(&self.idp, &self.subject)?)
    }
}

/// `tessera person ...`.
#[derive(Debug, Subcommand)]
pub enum PersonCommand {
    /// Give a person a role defined in the issuer's configuration (`[[role]]`).
    Grant {
        #[command(flatten)]
        conn: AdminConn,
        #[command(flatten)]
        who: PersonArgs,
        /// The role's name.
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// Take a role back from a person.
    Revoke {
        #[command(flatten)]
        conn: AdminConn,
        #[command(flatten)]
        who: PersonArgs,
        /// The role's name.
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// Show a person's explicit roles (with their definitions) and consents.
    Show {
        #[command(flatten)]
        conn: AdminConn,
        #[command(flatten)]
        who: PersonArgs,
    },
    /// Record the person's standing consent for a registered agent to act for them.
    Consent {
        #[command(flatten)]
        conn: AdminConn,
        #[command(flatten)]
        who: PersonArgs,
        /// The agent URI.
        #[arg(long, value_name = "URI")]
        agent: AgentId,
    },
    /// Withdraw that consent.
    Withdraw {
        #[command(flatten)]
        conn: AdminConn,
        #[command(flatten)]
        who: PersonArgs,
        /// The agent URI.
        #[arg(long, value_name = "URI")]
        agent: AgentId,
    },
}

impl PersonCommand {
    /// Where the issuer is, whichever the command.
    fn conn(&self) -> &AdminConn {
        match self {
            Self::Grant { conn, .. }
            | Self::Revoke { conn, .. }
            | Self::Show { conn, .. }
            | Self::Consent { conn, .. }
            | Self::Withdraw { conn, .. } => conn,
        }
    }
}

fn role(text: &str) -> Result<RoleName, Failure> {
    RoleName::parse(text).map_err(Failure::new)
}

/// `tessera person ...`.
pub fn person(cmd: PersonCommand) -> Result<(), Failure> {
    let issuer = cmd.conn().issuer.clone();
    runtime()?.block_on(async move {
        let http = client()?;
        let request = match cmd {
            PersonCommand::Grant { conn, who, role: r } => {
                let person = who.person()?;
                let body = json!({
                    "issuer": person.issuer(), "subject": person.subject(),
                    "role": role(&r)?.as_str(),
                });
                http.post(url(&conn.issuer, "/v1/people/roles"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .json(&body)
            }
            PersonCommand::Revoke { conn, who, role: r } => {
                let person = who.person()?;
                let role = role(&r)?;
                http.delete(url(&conn.issuer, "/v1/people/roles"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .query(&[
                        ("issuer", person.issuer()),
                        ("subject", person.subject()),
                        ("role", role.as_str()),
                    ])
            }
            PersonCommand::Show { conn, who } => {
                let person = who.person()?;
                http.get(url(&conn.issuer, "/v1/people"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .query(&[("issuer", person.issuer()), ("subject", person.subject())])
            }
            PersonCommand::Consent { conn, who, agent } => {
                let person = who.person()?;
                let body = json!({
                    "issuer": person.issuer(), "subject": person.subject(),
                    "agent": agent.as_str(),
                });
                http.post(url(&conn.issuer, "/v1/people/consents"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .json(&body)
            }
            PersonCommand::Withdraw { conn, who, agent } => {
                let person = who.person()?;
                http.delete(url(&conn.issuer, "/v1/people/consents"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .query(&[
                        ("issuer", person.issuer()),
                        ("subject", person.subject()),
                        ("agent", agent.as_str()),
                    ])
            }
        };
        let resp = request.send().await.map_err(send_err(&issuer))?;
        emit(&format!("{}\n", to_json(&check(resp).await?)?))
    })
}
