//! Settings of accounts and access: token lifetimes, rate limits, and an external identity
//! provider whose tokens are accepted beside Orderly's own. Flags and `ORDERLY_…` variables.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use orderly_auth::ExternalVerifier;
use orderly_auth::jwks::{ExternalIssuer, ExternalSettings};
use orderly_core::accounts::AuthSettings;

/// Accounts and access.
#[derive(Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// How long an access token lives, in seconds (default 900).
    #[arg(long, env = "ORDERLY_ACCESS_TOKEN_TTL_SECS")]
    pub access_token_ttl_secs: Option<u64>,
    /// How long a log-in lasts before the refresh token stops working, in seconds (default
    /// 30 days).
    #[arg(long, env = "ORDERLY_REFRESH_TOKEN_TTL_SECS")]
    pub refresh_token_ttl_secs: Option<u64>,
    /// Failed log-ins per account per 15 minutes before it must wait (default 5).
    #[arg(long, env = "ORDERLY_LOGIN_FAILURES_PER_ACCOUNT")]
    pub login_failures_per_account: Option<u32>,
    /// Log-in attempts per client address per 15 minutes (default 30).
    #[arg(long, env = "ORDERLY_LOGIN_ATTEMPTS_PER_ADDRESS")]
    pub login_attempts_per_address: Option<u32>,
    /// Orders a customer, or a guest's address, may place per minute; 0 turns the limit off
    /// (default 60). Staff and API keys are not limited.
    #[arg(long, env = "ORDERLY_ORDERS_PER_MINUTE")]
    pub orders_per_minute: Option<u32>,
    /// External identity provider (e.g. a Cognito user pool): the issuer its tokens carry.
    #[arg(long, env = "ORDERLY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// External identity provider: the audience (Cognito: the app client id).
    #[arg(long, env = "ORDERLY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// External identity provider: a file holding its JSON Web Key Set.
    #[arg(long, env = "ORDERLY_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
}

/// What the accounts run with.
pub struct AuthConfig {
    pub settings: AuthSettings,
    pub external: Option<Arc<dyn ExternalVerifier>>,
}

impl AuthArgs {
    /// Checks and resolves the settings.
    ///
    /// # Errors
    /// A message naming the setting that is wrong.
    pub fn resolve(&self) -> Result<AuthConfig, String> {
        let defaults = AuthSettings::default();
        let secs = |v: Option<u64>, d: i64, name: &str| -> Result<i64, String> {
            match v {
                None => Ok(d),
                Some(0) => Err(format!("{name} must be at least 1 second")),
                Some(s) => i64::try_from(s).map_err(|_| format!("{name} is too large")),
            }
        };
        let settings = AuthSettings {
            access_ttl_secs: secs(
                self.access_token_ttl_secs,
                defaults.access_ttl_secs,
                "--access-token-ttl-secs",
            )?,
            refresh_ttl_secs: secs(
                self.refresh_token_ttl_secs,
                defaults.refresh_ttl_secs,
                "--refresh-token-ttl-secs",
            )?,
            login_failures_per_account: self
                .login_failures_per_account
                .unwrap_or(defaults.login_failures_per_account),
            login_attempts_per_address: self
                .login_attempts_per_address
                .unwrap_or(defaults.login_attempts_per_address),
            orders_per_minute: self.orders_per_minute.unwrap_or(defaults.orders_per_minute),
            ..defaults
        };
        let external = match (&self.jwt_issuer, &self.jwt_audience, &self.jwks_file) {
            (None, None, None) => None,
            (Some(issuer), Some(audience), Some(file)) => {
                let jwks = std::fs::read_to_string(file).map_err(|e| {
                    format!(
                        "cannot read the key set {} (--jwks-file): {e}",
                        file.display()
                    )
                })?;
                let issuer =
                    ExternalIssuer::new(ExternalSettings::cognito(issuer, audience), &jwks)
                        .map_err(|e| format!("--jwks-file {}: {e}", file.display()))?;
                Some(Arc::new(issuer) as Arc<dyn ExternalVerifier>)
            }
            _ => {
                return Err(
                    "an external identity provider needs all of --jwt-issuer, --jwt-audience and --jwks-file"
                        .into(),
                );
            }
        };
        Ok(AuthConfig { settings, external })
    }
}
