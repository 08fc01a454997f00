//! Access tokens Orderly signs itself, and opaque secrets.
//!
//! An access token is a JWT (HS256) naming the subject, its kind (customer or staff), its role
//! and the session it belongs to; it lives minutes, so it is checked by signature alone.
//! Refresh tokens and API keys are opaque random secrets that the store keeps only as their
//! SHA-256: revocable, and useless to whoever reads the database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orderly_domain::CustomerId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AuthError, Principal, Role};

/// The `iss` of Orderly's tokens.
pub const ISSUER: &str = "orderly";
/// The `aud` of Orderly's tokens.
pub const AUDIENCE: &str = "orderly-api";
/// Leeway for clocks that disagree a little, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// Who a token was issued to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A customer account.
    Customer,
    /// A staff user.
    Staff,
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The customer id or the staff user id.
    pub sub: String,
    /// Customer or staff.
    pub kind: SubjectKind,
    /// The e-mail the subject logs in with.
    pub email: String,
    /// Staff only: the role when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The session (log-in) the token belongs to.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

impl AccessClaims {
    /// The caller the claims describe.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] if a customer id does not parse or a staff token has no role.
    pub fn principal(&self) -> Result<Principal, AuthError> {
        match self.kind {
            SubjectKind::Customer => Ok(Principal::Customer {
                customer_id: CustomerId::parse(&self.sub)
                    .map_err(|e| AuthError::Invalid(e.to_string()))?,
                email: self.email.clone(),
            }),
            SubjectKind::Staff => Ok(Principal::Staff {
                user_id: self.sub.clone(),
                email: self.email.clone(),
                role: self
                    .role
                    .ok_or_else(|| AuthError::Invalid("a staff token without a role".into()))?,
            }),
        }
    }
}

/// Signs and checks access tokens with one secret shared by every node.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: i64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("secret", &"***")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl TokenSigner {
    /// A signer with `secret` (at least 32 bytes) whose tokens live `ttl_secs`.
    ///
    /// # Errors
    /// [`AuthError::Crypto`] if the secret is too short to be safe.
    pub fn new(secret: &[u8], ttl_secs: i64) -> Result<Self, AuthError> {
        if secret.len() < 32 {
            return Err(AuthError::Crypto(
                "the token signing secret must be at least 32 bytes".into(),
            ));
        }
        Ok(TokenSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs: ttl_secs.max(1),
        })
    }

    /// How long tokens live, in seconds.
    #[must_use]
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A token for `claims` with `iss`, `aud`, `iat` and `exp` filled in from `now`.
    ///
    /// # Errors
    /// [`AuthError::Crypto`] if signing fails.
    pub fn issue(
        &self,
        kind: SubjectKind,
        subject: &str,
        email: &str,
        role: Option<Role>,
        session: &str,
        now_secs: i64,
    ) -> Result<(String, AccessClaims), AuthError> {
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: subject.to_owned(),
            kind,
            email: email.to_owned(),
            role,
            sid: session.to_owned(),
            iat: now_secs,
            exp: now_secs + self.ttl_secs,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Crypto(e.to_string()))?;
        Ok((token, claims))
    }

    /// The claims of a token this signer issued, if it is intact, for us, and not expired at
    /// `now_secs`.
    ///
    /// # Errors
    /// [`AuthError::Expired`] or [`AuthError::Invalid`].
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<AccessClaims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against the caller's clock, so tests can move time.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.exp + LEEWAY_SECS <= now_secs {
            return Err(AuthError::Expired);
        }
        if claims.iat > now_secs + LEEWAY_SECS {
            return Err(AuthError::Invalid(
                "the token was issued in the future".into(),
            ));
        }
        Ok(claims)
    }
}

/// `bytes` random bytes, base64url without padding.
///
/// # Errors
/// [`AuthError::Crypto`] if the system has no randomness to give.
pub fn random_secret(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Crypto(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// SHA-256 of `secret`, hex: how refresh tokens and API keys are stored.
#[must_use]
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two digests in constant time.
#[must_use]
pub fn digests_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The prefix of every API key, so scanners can recognise a leaked one.
pub const API_KEY_PREFIX: &str = "oak_";

/// A new API key: `(key_id, full_key)`. The key reads `oak_<id>_<secret>`; only the id and
/// the digest of the whole key are stored.
///
/// # Errors
/// [`AuthError::Crypto`] if the system has no randomness to give.
pub fn new_api_key() -> Result<(String, String), AuthError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| AuthError::Crypto(e.to_string()))?;
    let id = hex::encode(id);
    let secret = random_secret(32)?;
    let key = format!("{API_KEY_PREFIX}{id}_{secret}");
    Ok((id, key))
}

/// The id part of an API key, if `text` is shaped like one.
#[must_use]
pub fn api_key_id(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 32)
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(&[7u8; 32], 900).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_and_names_its_principal() {
        let (token, _) = signer()
            .issue(
                SubjectKind::Staff,
                "u1",
                "ana@shop.example",
                Some(Role::Manager),
                "s1",
                1_000,
            )
            .unwrap();
        let claims = signer().verify(&token, 1_100).unwrap();
        assert_eq!(
            claims.principal().unwrap(),
            Principal::Staff {
                user_id: "u1".into(),
                email: "ana@shop.example".into(),
                role: Role::Manager
            }
        );
        assert_eq!(claims.sid, "s1");
    }

    #[test]
    fn tokens_expire_after_their_lifetime_and_leeway() {
        let (token, _) = signer()
            .issue(
                SubjectKind::Customer,
                "001",
                "a@b.example",
                None,
                "s",
                1_000,
            )
            .unwrap();
        assert!(
            signer()
                .verify(&token, 1_000 + 900 + LEEWAY_SECS - 1)
                .is_ok()
        );
        assert_eq!(
            signer().verify(&token, 1_000 + 900 + LEEWAY_SECS),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn a_tampered_or_foreign_token_is_refused() {
        let (token, _) = signer()
            .issue(
                SubjectKind::Customer,
                "001",
                "a@b.example",
                None,
                "s",
                1_000,
            )
            .unwrap();
        // Swap the payload for one naming another customer; the signature no longer fits.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
                .unwrap()
                .replace("\"001\"", "\"002\""),
        );
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert!(matches!(
            signer().verify(&forged, 1_000),
            Err(AuthError::Invalid(_))
        ));
        let other = TokenSigner::new(&[8u8; 32], 900).unwrap();
        assert!(matches!(
            other.verify(&token, 1_000),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            signer().verify("not.a.token", 1_000),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenSigner::new(b"too short", 60).is_err());
    }

    #[test]
    fn api_keys_carry_their_id_and_only_their_digest_is_compared() {
        let (id, key) = new_api_key().unwrap();
        assert_eq!(api_key_id(&key), Some(id.as_str()));
        assert!(key.starts_with(API_KEY_PREFIX));
        assert!(digests_match(&digest(&key), &digest(&key)));
        assert!(!digests_match(
            &digest(&key),
            &digest("oak_0000000000000000_x")
        ));
        assert_eq!(api_key_id("oak_zz_short"), None);
        assert_eq!(api_key_id("Bearer something"), None);
    }
}
