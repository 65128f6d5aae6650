//! The issuer's budget API (`POST /v1/budgets/reserve|commit|release`) as a
//! [`BudgetLedger`], for tool servers without Redis (docs/budgets.md).
//!
//! One [`HttpBudgetLedger`] speaks for one token: the issuer authenticates
//! each call by the token being spent and derives the budgets to charge,
//! and their limits, from its signed blocks. So the `charges` of a
//! [`ReserveRequest`] are not sent; the ledger only checks that the issuer
//! held the amount on exactly those budgets. The issuer reads its own
//! clock: the `now` arguments are not sent either.
//!
//! Whatever goes wrong on the way (the issuer down, a timeout, an answer
//! that is not the API's) is [`StoreError::Unavailable`] or
//! [`StoreError::Backend`], which [`Grant::reserve`](super::Grant::reserve)
//! turns into a denial: the tool must not act (fail closed).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::store::budget::{BudgetLedger, BudgetState, ReserveRequest, Reserved, Settled};
use crate::store::StoreError;
use crate::token::Amount;

/// How long one call may take before the spend is denied.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The issuer's budget API for one token.
#[derive(Clone)]
pub struct HttpBudgetLedger {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for HttpBudgetLedger {
    // Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBudgetLedger")
            .field("issuer", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpBudgetLedger {
    /// The ledger at `issuer` (its base URL) for `token`, with
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(issuer: &str, token: &str) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StoreError::Backend(format!("HTTP client: {e}")))?;
        Ok(Self::with_client(http, issuer, token))
    }

    /// The same over a client of the caller's (shared connection pool,
    /// other timeouts).
    pub fn with_client(http: reqwest::Client, issuer: &str, token: &str) -> Self {
        Self {
            http,
            base: issuer.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// POSTs `body` to `/v1/budgets/<what>`; the status and the JSON body.
    async fn call(&self, what: &str, body: &Value) -> Result<(u16, Value), StoreError> {
        let resp = self
            .http
            .post(format!("{}/v1/budgets/{what}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(if e.is_timeout() {
                    "the issuer's budget API did not answer in time".into()
                } else {
                    "the issuer's budget API could not be reached".into()
                })
            })?;
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 500 {
            return Err(StoreError::Unavailable(format!(
                "the issuer's budget API answered {status}"
            )));
        }
        Ok((status, json))
    }
}

/// The API's refusal as a store error (the verifier denies).
fn refused(status: u16, body: &Value) -> StoreError {
    let code = body["error"].as_str().unwrap_or("error");
    let text = body["error_description"].as_str().unwrap_or("");
    let text: String = text.chars().take(200).collect();
    StoreError::Backend(format!(
        "the issuer's budget API refused the spend: {status} {code}: {text}"
    ))
}

#[async_trait]
impl BudgetLedger for HttpBudgetLedger {
    async fn reserve(
        &self,
        req: &ReserveRequest,
        _now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        req.validate()?;
        let amount =
            Amount::new(&req.currency, req.amount).map_err(|e| StoreError::Limit(e.to_string()))?;
        let ttl_ms = u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX);
        let body = json!({
            "token": self.token,
            "amount": amount.to_string(),
            "idempotency_key": req.idempotency_key,
            "ttl_ms": ttl_ms,
        });
        let (status, json) = self.call("reserve", &body).await?;
        if !matches!(status, 200 | 409) || json.get("outcome").is_none() {
            return Err(refused(status, &json));
        }
        let outcome: Reserved = serde_json::from_value(json)
            .map_err(|e| StoreError::Backend(format!("the issuer's answer: {e}")))?;
        if let Reserved::Reserved(r) = &outcome {
            let mut held = r.keys.clone();
            let mut asked: Vec<String> = req.charges.iter().map(|c| c.key.clone()).collect();
            held.sort();
            asked.sort();
            if held != asked || r.amount != req.amount || r.currency != req.currency {
                return Err(StoreError::Backend(
                    "the issuer held the spend on other budgets than the token declares".into(),
                ));
            }
        }
        Ok(outcome)
    }

    async fn commit(&self, id: &str, _now: DateTime<Utc>) -> Result<Settled, StoreError> {
        self.settle("commit", id).await
    }

    async fn release(&self, id: &str, _now: DateTime<Utc>) -> Result<Settled, StoreError> {
        self.settle("release", id).await
    }

    /// Not offered by the spend API (`GET /v1/budgets/{key}` takes the
    /// admin token): always an error.
    async fn show(
        &self,
        _key: &str,
        _now: DateTime<Utc>,
    ) -> Result<Option<BudgetState>, StoreError> {
        Err(StoreError::Backend(
            "the spend API does not show budgets: use `tessera budget show` with an admin token"
                .into(),
        ))
    }
}

impl HttpBudgetLedger {
    async fn settle(&self, what: &str, id: &str) -> Result<Settled, StoreError> {
        let body = json!({ "token": self.token, "reservation": id });
        let (status, json) = self.call(what, &body).await?;
        match status {
            404 => Ok(Settled::Unknown),
            200 | 409 => serde_json::from_value(json["settled"].clone())
                .map_err(|e| StoreError::Backend(format!("the issuer's answer: {e}"))),
            _ => Err(refused(status, &json)),
        }
    }
}
