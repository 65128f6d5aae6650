//! `[console]`: who may open the operator console.

use serde::{Deserialize, Serialize};

use crate::web::config::WebConfigError;

/// `[console]`: the operator console's settings.
///
/// ```toml
/// [console]
/// operator_role = "tessera-operators"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The group, in the groups claim of the `[login]` IdP, whose members
    /// may open the console. Without `[login]`, operators sign in with an
    /// admin token instead.
    pub operator_role: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            operator_role: "tessera-operators".into(),
        }
    }
}

impl ConsoleConfig {
    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<(), WebConfigError> {
        let r = &self.operator_role;
        if r.is_empty() || r.len() > 255 || r.chars().any(char::is_control) {
            return Err(WebConfigError(
                "[console] operator_role must be 1 to 255 bytes without control characters".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_role_has_a_default_and_must_be_a_plain_name() {
        let c: ConsoleConfig = toml::from_str("").unwrap();
        assert_eq!(c.operator_role, "tessera-operators");
        assert!(c.check().is_ok());
        assert!(ConsoleConfig {
            operator_role: String::new()
        }
        .check()
        .is_err());
        assert!(ConsoleConfig {
            operator_role: "a\nb".into()
        }
        .check()
        .is_err());
        assert!(toml::from_str::<ConsoleConfig>("operator = \"x\"").is_err());
    }
}
