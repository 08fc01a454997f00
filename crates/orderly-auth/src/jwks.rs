//! Tokens of an external identity provider: the access and ID tokens an Amazon Cognito user
//! pool issues (RS256 JWTs), verified offline against the pool's published keys (its JWKS,
//! served at `{issuer}/.well-known/jwks.json`), its issuer and the app client, and mapped to a
//! [`Principal`].
//!
//! # Layout
//! - [`ExternalSettings`]: which pool and app client to trust, and which claims carry the staff
//!   groups and the customer id.
//! - [`ExternalIssuer`]: the verifier. It holds the pool's current keys and swaps them when the
//!   pool rotates them.
//! - [`token_key_id`]: the `kid` a token names, so the caller can tell a rotation from a forgery.
//!
//! # How the caller uses it
//! This module does no I/O. The caller fetches the JWKS once at start and builds an
//! [`ExternalIssuer`]. For each bearer token, [`ExternalIssuer::claims_to_be_mine`] routes it
//! here rather than to Orderly's own HS256 verifier. When [`ExternalIssuer::knows_key`] is false
//! for the token's `kid`, the pool may have rotated its keys: the caller fetches the set again
//! and calls [`ExternalIssuer::replace_keys`] — at most every few minutes, since anyone can send
//! a token naming a `kid` that does not exist.
//!
//! # What is trusted
//! - Only RS256 signatures by a key of the configured set, whatever the token's header asks
//!   for: `none`, HMAC (which would let the public key serve as a shared secret) and every other
//!   algorithm are refused before any key is touched.
//! - Staff roles come from Cognito groups, which only the pool's administrators can assign.
//! - The customer id comes from a custom attribute (`custom:customer_id` by default). The app
//!   client must not be allowed to write that attribute, or users could name any customer.
//!   Cognito puts custom attributes in ID tokens only; an access token maps to its `sub` unless
//!   a pre-token-generation trigger adds the attribute to it too.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use orderly_domain::CustomerId;
use serde_json::{Map, Value};

use crate::{AuthError, Principal, Role};

/// The one signing algorithm accepted, as the JOSE header spells it.
const ALGORITHM: &str = "RS256";
/// Leeway for clocks that disagree a little, in seconds.
const LEEWAY_SECS: i64 = 30;
/// Longer tokens are refused unread: Cognito's stay far below this even with many groups, and
/// a limit keeps a hostile token from costing much.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The smallest RSA modulus accepted, in bits (the verifier refuses smaller ones anyway; the
/// key set is refused up front so the cause is clear).
const MIN_RSA_BITS: usize = 2048;
/// Staff roles from the most to the least powerful: a member of several groups gets the first.
const ROLE_PRECEDENCE: [Role; 4] = [Role::Admin, Role::Manager, Role::Engineer, Role::Support];
/// A group named after a role, with this prefix, also grants it (`orderly-admin`), for pools
/// shared with other applications.
const GROUP_PREFIX: &str = "orderly-";

/// Base64url as JWKS publishers write it: usually unpadded, sometimes padded.
const JWK_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which external issuer to trust, and where its tokens carry what Orderly needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalSettings {
    /// The `iss` the tokens must carry, exactly; for Cognito
    /// `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`.
    pub issuer: String,
    /// The app client id: the `aud` of ID tokens and the `client_id` of access tokens.
    pub audience: String,
    /// The claim listing the user's groups, whose names grant staff roles.
    pub groups_claim: String,
    /// The claim holding a customer's Orderly customer id; `sub` is used when it is absent.
    pub customer_claim: String,
}

impl ExternalSettings {
    /// Settings for a Cognito user pool: groups in `cognito:groups`, the customer id in the
    /// custom attribute `custom:customer_id`.
    #[must_use]
    pub fn cognito(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        ExternalSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            groups_claim: "cognito:groups".to_owned(),
            customer_claim: "custom:customer_id".to_owned(),
        }
    }
}

/// The usable keys of one JWKS, by `kid`.
type KeySet = HashMap<String, DecodingKey>;

/// Verifies the tokens of one external issuer against its current signing keys.
///
/// Shared by every request (it is `Send + Sync`); the keys sit behind a lock so that a
/// rotation can replace them while requests are being verified.
pub struct ExternalIssuer {
    /// What to trust.
    settings: ExternalSettings,
    /// The current keys. Readers clone the `Arc` and let go of the lock before verifying.
    keys: RwLock<Arc<KeySet>>,
}

impl ExternalIssuer {
    /// A verifier for `settings`, with the keys of `jwks_json` (the issuer's JWKS document).
    ///
    /// Keys that cannot verify RS256 signatures (other key types, encryption keys, keys for
    /// other algorithms, keys without a `kid`) are skipped.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] if the document is not a JWKS, holds no usable key, names a `kid`
    /// twice, or holds an RSA signing key that is malformed or shorter than 2048 bits.
    pub fn new(settings: ExternalSettings, jwks_json: &str) -> Result<Self, AuthError> {
        let keys = parse_key_set(jwks_json)?;
        Ok(ExternalIssuer {
            settings,
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    /// Replaces the keys with those of `jwks_json`, after the issuer rotated its keys. Tokens
    /// signed by keys no longer in the set stop verifying.
    ///
    /// # Errors
    /// As for [`ExternalIssuer::new`]; the current keys are then kept.
    pub fn replace_keys(&self, jwks_json: &str) -> Result<(), AuthError> {
        let keys = Arc::new(parse_key_set(jwks_json)?);
        // A writer only swaps the `Arc`, so a poisoned lock still holds a whole key set.
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// True if the current set holds a usable key named `kid`. When false for a token's `kid`
    /// (see [`token_key_id`]), the caller fetches the JWKS again.
    #[must_use]
    pub fn knows_key(&self, kid: &str) -> bool {
        self.current_keys().contains_key(kid)
    }

    /// The issuer whose tokens this verifies.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// True if the token (unverified header/claims peek) claims to come from this issuer: alg
    /// RS256 and iss == issuer. Cheap; used to route a bearer token to this verifier rather
    /// than Orderly's own HS256 one. Proves nothing: [`ExternalIssuer::verify`] decides.
    #[must_use]
    pub fn claims_to_be_mine(&self, token: &str) -> bool {
        let Some(parts) = Parts::split(token) else {
            return false;
        };
        let Ok(header) = decode_json_segment(parts.header) else {
            return false;
        };
        if header.get("alg").and_then(Value::as_str) != Some(ALGORITHM) {
            return false;
        }
        decode_json_segment(parts.claims).is_ok_and(|claims| {
            claims.get("iss").and_then(Value::as_str) == Some(self.settings.issuer.as_str())
        })
    }

    /// Verifies `token` at time `now_unix_secs` and says who it names.
    ///
    /// The token must be an RS256 JWT signed by a key of the current set and carry this
    /// issuer's `iss`. An ID token (`token_use` `id`, or no `token_use`) must carry the app
    /// client in `aud`; an access token (`token_use` `access`) in `client_id`. It must carry an
    /// `exp` not more than 30 seconds past, any `nbf` not more than 30 seconds ahead and any
    /// `iat` not more than 30 seconds ahead.
    ///
    /// A member of a group named `admin`, `manager`, `engineer` or `support` (or the same with
    /// an `orderly-` prefix) is [`Principal::Staff`] with the most powerful of those roles, in
    /// that order; anyone else is [`Principal::Customer`].
    ///
    /// # Errors
    /// - [`AuthError::Expired`] if the token is genuine but its `exp` has passed.
    /// - [`AuthError::Invalid`] for anything else, with a message saying what was wrong (it
    ///   never quotes the token): not a JWT, another algorithm, an unknown `kid`, a bad
    ///   signature, another issuer or audience, not valid yet, no subject, a malformed groups
    ///   claim, or a customer id Orderly cannot hold.
    pub fn verify(&self, token: &str, now_unix_secs: i64) -> Result<Principal, AuthError> {
        let parts = Parts::split(token).ok_or_else(|| invalid(NOT_A_JWT))?;
        let header = decode_json_segment(parts.header).map_err(|()| invalid(NOT_A_JWT))?;
        match header.get("alg") {
            Some(Value::String(alg)) if alg == ALGORITHM => {}
            Some(Value::String(alg)) => {
                return Err(invalid(format!(
                    "the signing algorithm {} is not accepted; only RS256 is",
                    quoted(alg)
                )));
            }
            _ => {
                return Err(invalid(
                    "the token's header names no signing algorithm (alg)",
                ));
            }
        }
        // RFC 7515 §4.1.11: extensions marked critical must be understood; none are.
        if header.contains_key("crit") {
            return Err(invalid(
                "the token's header marks extensions as critical (crit); none are supported",
            ));
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) => kid,
            _ => return Err(invalid("the token's header names no signing key (kid)")),
        };
        let keys = self.current_keys();
        let key = keys.get(kid).ok_or_else(|| {
            invalid(format!(
                "unknown signing key {}: it is not in the issuer's key set",
                quoted(kid)
            ))
        })?;

        // The library checks the algorithm and the signature; the claims are checked below,
        // against the caller's clock and with messages that say what was wrong.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| describe_decode_error(e.kind()))?
            .claims;

        self.check_issuer(&claims)?;
        self.check_audience(&claims)?;
        check_times(&claims, now_unix_secs)?;
        self.principal(&claims)
    }

    /// The current key set; the lock is held only while the `Arc` is cloned.
    fn current_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// `iss` must equal the configured issuer exactly.
    fn check_issuer(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        match string_claim(claims, "iss")? {
            Some(iss) if iss == self.settings.issuer => Ok(()),
            Some(iss) => Err(invalid(format!(
                "the token was issued by {}, not by {}",
                quoted(iss),
                quoted(&self.settings.issuer)
            ))),
            None => Err(invalid("the token names no issuer (iss)")),
        }
    }

    /// ID tokens name the app client in `aud`, Cognito access tokens in `client_id`.
    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let audience = self.settings.audience.as_str();
        match string_claim(claims, "token_use")? {
            Some("access") => match string_claim(claims, "client_id")? {
                Some(client) if client == audience => Ok(()),
                Some(_) => Err(invalid(
                    "the access token is for another app client (client_id)",
                )),
                None => Err(invalid("the access token names no app client (client_id)")),
            },
            Some("id") | None => {
                let matches = match claims.get("aud") {
                    None => return Err(invalid("the token names no audience (aud)")),
                    Some(Value::String(aud)) => aud == audience,
                    Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
                    Some(_) => return Err(invalid("the token's aud claim is malformed")),
                };
                if matches {
                    Ok(())
                } else {
                    Err(invalid("the token is for another audience (aud)"))
                }
            }
            Some(other) => Err(invalid(format!(
                "the token's token_use {} is neither id nor access",
                quoted(other)
            ))),
        }
    }

    /// Who the verified claims name.
    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let sub = match string_claim(claims, "sub")? {
            Some(sub) if !sub.is_empty() => sub,
            _ => return Err(invalid("the token names no subject (sub)")),
        };
        let email = string_claim(claims, "email")?.filter(|e| !e.is_empty());
        if let Some(role) = self.staff_role(claims)? {
            // ID tokens carry `cognito:username`, access tokens `username`.
            let name = match email {
                Some(email) => email,
                None => non_empty_claim(claims, "cognito:username")?
                    .or(non_empty_claim(claims, "username")?)
                    .unwrap_or(sub),
            };
            return Ok(Principal::Staff {
                user_id: sub.to_owned(),
                email: name.to_owned(),
                role,
            });
        }
        let claim = self.settings.customer_claim.as_str();
        let (claim, id) = match string_claim(claims, claim)? {
            Some(id) => (claim, id),
            None => ("sub", sub),
        };
        let customer_id = CustomerId::parse(id).map_err(|e| {
            invalid(format!(
                "the {claim} claim is not a customer id Orderly can hold: {e}"
            ))
        })?;
        Ok(Principal::Customer {
            customer_id,
            email: email.unwrap_or_default().to_owned(),
        })
    }

    /// The most powerful role the groups claim grants, if any.
    fn staff_role(&self, claims: &Map<String, Value>) -> Result<Option<Role>, AuthError> {
        let claim = self.settings.groups_claim.as_str();
        let groups: Vec<&str> = match claims.get(claim) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().ok_or_else(|| {
                        invalid(format!("the {claim} claim is not a list of group names"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(format!(
                    "the {claim} claim is not a list of group names"
                )));
            }
        };
        Ok(ROLE_PRECEDENCE.into_iter().find(|role| {
            groups.iter().any(|group| {
                let name = group.strip_prefix(GROUP_PREFIX).unwrap_or(group);
                name == role.as_str()
            })
        }))
    }
}

impl fmt::Debug for ExternalIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current_keys();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("ExternalIssuer")
            .field("settings", &self.settings)
            .field("kids", &kids)
            .finish()
    }
}

/// The `kid` a token's header names, read without verifying anything: for the caller to ask
/// [`ExternalIssuer::knows_key`] before deciding to fetch the key set again.
#[must_use]
pub fn token_key_id(token: &str) -> Option<String> {
    let header = decode_json_segment(Parts::split(token)?.header).ok()?;
    match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        _ => None,
    }
}

/// The message for anything that is not a compact JWS.
const NOT_A_JWT: &str = "the token is not a JWT (three base64url parts, the first a JSON header)";

/// The three parts of a compact JWS, still encoded.
struct Parts<'a> {
    /// The JOSE header.
    header: &'a str,
    /// The claims.
    claims: &'a str,
}

impl<'a> Parts<'a> {
    /// Splits `token` into its parts; `None` if it is too long or has not exactly three.
    fn split(token: &'a str) -> Option<Self> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Parts { header, claims })
    }
}

/// Decodes one base64url part holding a JSON object, unverified.
fn decode_json_segment(segment: &str) -> Result<Map<String, Value>, ()> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| ())?;
    serde_json::from_slice(&bytes).map_err(|_| ())
}

/// Parses a JWKS document into its usable RS256 verification keys.
fn parse_key_set(jwks_json: &str) -> Result<KeySet, AuthError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<Map<String, Value>>,
    }
    let document: Document = serde_json::from_str(jwks_json)
        .map_err(|_| invalid("the key set is not a JWKS (a JSON object with a list of keys)"))?;
    let mut keys = KeySet::new();
    for jwk in &document.keys {
        let Some(kid) = usable_rsa_signing_key(jwk) else {
            continue;
        };
        let key = rsa_key(kid, jwk)?;
        if keys.insert(kid.to_owned(), key).is_some() {
            return Err(invalid(format!(
                "the key set names the key {} twice",
                quoted(kid)
            )));
        }
    }
    if keys.is_empty() {
        return Err(invalid(
            "the key set holds no RSA signing key for RS256 with a kid",
        ));
    }
    Ok(keys)
}

/// The `kid` of `jwk` if it is an RSA key meant to verify RS256 signatures; `None` for keys
/// meant for something else, which a JWKS may also publish.
fn usable_rsa_signing_key(jwk: &Map<String, Value>) -> Option<&str> {
    let field = |name: &str| jwk.get(name).map(|v| v.as_str());
    if field("kty")? != Some("RSA") {
        return None;
    }
    if field("use").is_some_and(|u| u != Some("sig")) {
        return None;
    }
    if field("alg").is_some_and(|a| a != Some(ALGORITHM)) {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return None;
        }
    }
    jwk.get("kid")?.as_str()
}

/// The verification key of an RSA JWK.
fn rsa_key(kid: &str, jwk: &Map<String, Value>) -> Result<DecodingKey, AuthError> {
    let component = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|text| JWK_BASE64.decode(text).ok())
            .filter(|bytes| bytes.iter().any(|&b| b != 0))
            .ok_or_else(|| {
                invalid(format!(
                    "the key {} has no valid {name} (base64url big-endian integer)",
                    quoted(kid)
                ))
            })
    };
    let n = component("n")?;
    let e = component("e")?;
    let bits = significant_bits(&n);
    if bits < MIN_RSA_BITS {
        return Err(invalid(format!(
            "the key {} has a {bits}-bit modulus; at least {MIN_RSA_BITS} bits are required",
            quoted(kid)
        )));
    }
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

/// The number of bits of a big-endian unsigned integer, leading zeros not counted.
fn significant_bits(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&b| b != 0) {
        Some(first) => (big_endian.len() - first) * 8 - big_endian[first].leading_zeros() as usize,
        None => 0,
    }
}

/// `exp` (required), `nbf` and `iat` against the caller's clock, with [`LEEWAY_SECS`].
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), AuthError> {
    let exp = time_claim(claims, "exp")?.ok_or_else(|| invalid("the token has no expiry (exp)"))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && now.saturating_add(LEEWAY_SECS) < nbf
    {
        return Err(invalid("the token is not valid yet (nbf)"));
    }
    if let Some(iat) = time_claim(claims, "iat")?
        && iat > now.saturating_add(LEEWAY_SECS)
    {
        return Err(invalid("the token was issued in the future (iat)"));
    }
    Ok(())
}

/// A NumericDate claim, in whole seconds (fractions, which RFC 7519 allows, are dropped).
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    // In range and finite: the cast is exact after `floor`.
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| invalid(format!("the {name} claim is not a time in seconds"))),
        Some(_) => Err(invalid(format!(
            "the {name} claim is not a time in seconds"
        ))),
    }
}

/// A claim that must be a string if present.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(format!("the {name} claim is not a string"))),
    }
}

/// A string claim, with an empty string taken as absent.
fn non_empty_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    Ok(string_claim(claims, name)?.filter(|text| !text.is_empty()))
}

/// What a verification failure of the library means, in words that quote nothing from the
/// token.
fn describe_decode_error(kind: &ErrorKind) -> AuthError {
    invalid(match kind {
        ErrorKind::InvalidSignature => "the signature does not match the signing key",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "the signing algorithm is not accepted; only RS256 is"
        }
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => NOT_A_JWT,
        ErrorKind::Json(_) => "the token's header or claims are not the JSON a JWT holds",
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "the issuer's signing key is not a usable RSA key"
        }
        _ => "the token could not be verified",
    })
}

/// A value taken from a token or key set, quoted and cut short, for an error message.
fn quoted(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let start: String = text.chars().take(MAX_CHARS).collect();
        format!("{start:?}…")
    }
}

/// Shorthand for [`AuthError::Invalid`].
fn invalid(message: impl Into<String>) -> AuthError {
    AuthError::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::engine::general_purpose::STANDARD;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC";
    const CLIENT: &str = "5f1ghq2tm0example0client";
    const SUB: &str = "8a0f7c1e-33c4-4b5e-9d0a-1c2b3d4e5f60";
    /// A fixed "now", so that no test depends on the system clock.
    const NOW: i64 = 1_800_000_000;

    /// An RSA key pair made for the tests, with what a token signer and a JWKS need.
    struct TestKey {
        /// The private key, for signing.
        signing: EncodingKey,
        /// The public key as a JWKS publishes it, without `kid`.
        n: String,
        /// The public exponent, base64url.
        e: String,
        /// The public key as SPKI PEM: what an attacker would try as an HMAC secret.
        public_pem: String,
    }

    /// The key Cognito signs with, an impostor's key, and the key Cognito rotates to.
    struct TestKeys {
        current: TestKey,
        impostor: TestKey,
        rotated: TestKey,
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn generate_key() -> TestKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let private: Pkcs8V1Der<'_> = pair.as_der().unwrap();
        let public = pair.public_key();
        let spki: PublicKeyX509Der<'_> = public.as_der().unwrap();
        TestKey {
            signing: EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())
                .unwrap(),
            n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
        }
    }

    /// Generated once per test binary, three at a time.
    fn keys() -> &'static TestKeys {
        static KEYS: OnceLock<TestKeys> = OnceLock::new();
        KEYS.get_or_init(|| {
            std::thread::scope(|s| {
                let current = s.spawn(generate_key);
                let impostor = s.spawn(generate_key);
                let rotated = s.spawn(generate_key);
                TestKeys {
                    current: current.join().unwrap(),
                    impostor: impostor.join().unwrap(),
                    rotated: rotated.join().unwrap(),
                }
            })
        })
    }

    fn jwk(key: &TestKey, kid: &str) -> Value {
        json!({"alg": "RS256", "e": key.e, "kid": kid, "kty": "RSA", "n": key.n, "use": "sig"})
    }

    fn jwks(entries: &[(&TestKey, &str)]) -> String {
        let keys: Vec<Value> = entries.iter().map(|(key, kid)| jwk(key, kid)).collect();
        json!({ "keys": keys }).to_string()
    }

    /// A verifier that knows the current key as `key-1`.
    fn issuer() -> ExternalIssuer {
        let settings = ExternalSettings::cognito(ISSUER, CLIENT);
        ExternalIssuer::new(settings, &jwks(&[(&keys().current, "key-1")])).unwrap()
    }

    fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = None;
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key.signing).unwrap()
    }

    /// Signed by the current key, as Cognito would.
    fn cognito_token(claims: &Value) -> String {
        sign(&keys().current, "key-1", claims)
    }

    /// The claims of a Cognito ID token for a customer.
    fn id_claims() -> Value {
        json!({
            "sub": SUB,
            "email_verified": true,
            "iss": ISSUER,
            "cognito:username": "ana",
            "custom:customer_id": "c-001",
            "origin_jti": "0b1c2d3e",
            "aud": CLIENT,
            "event_id": "5e6f7a8b",
            "token_use": "id",
            "auth_time": NOW - 60,
            "exp": NOW + 3600,
            "iat": NOW - 60,
            "jti": "9c8b7a6d",
            "email": "ana@shop.example",
        })
    }

    /// The claims of a Cognito access token.
    fn access_claims() -> Value {
        json!({
            "sub": SUB,
            "iss": ISSUER,
            "client_id": CLIENT,
            "origin_jti": "0b1c2d3e",
            "event_id": "5e6f7a8b",
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "auth_time": NOW - 60,
            "exp": NOW + 3600,
            "iat": NOW - 60,
            "jti": "1a2b3c4d",
            "username": "ana",
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    /// A compact JWS with the given parts, for tokens no honest library would make.
    fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// Asserts that the token is refused as invalid with a message containing `expected`, and
    /// that the message does not quote the token or its signature.
    fn assert_invalid(result: Result<Principal, AuthError>, token: &str, expected: &str) {
        match result {
            Err(AuthError::Invalid(message)) => {
                assert!(
                    message.contains(expected),
                    "{message:?} should mention {expected:?}"
                );
                assert!(!message.contains(token), "{message:?} quotes the token");
                if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 8) {
                    assert!(
                        !message.contains(signature),
                        "{message:?} quotes the signature"
                    );
                }
            }
            other => panic!("expected Invalid({expected:?}), got {other:?}"),
        }
    }

    fn customer(id: &str, email: &str) -> Principal {
        Principal::Customer {
            customer_id: CustomerId::parse(id).unwrap(),
            email: email.to_owned(),
        }
    }

    fn staff(email: &str, role: Role) -> Principal {
        Principal::Staff {
            user_id: SUB.to_owned(),
            email: email.to_owned(),
            role,
        }
    }

    #[test]
    fn cognito_settings_read_groups_and_the_customer_id_from_cognito_claims() {
        let settings = ExternalSettings::cognito(ISSUER, CLIENT);
        assert_eq!(settings.issuer, ISSUER);
        assert_eq!(settings.audience, CLIENT);
        assert_eq!(settings.groups_claim, "cognito:groups");
        assert_eq!(settings.customer_claim, "custom:customer_id");
        assert_eq!(issuer().issuer(), ISSUER);
    }

    #[test]
    fn the_verifier_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ExternalIssuer>();
    }

    #[test]
    fn a_customer_id_token_names_the_customer_of_its_custom_attribute() {
        let token = cognito_token(&id_claims());
        assert_eq!(
            issuer().verify(&token, NOW),
            Ok(customer("c-001", "ana@shop.example"))
        );
    }

    #[test]
    fn a_token_without_the_customer_attribute_names_the_customer_by_sub() {
        let token = cognito_token(&without(id_claims(), "custom:customer_id"));
        assert_eq!(
            issuer().verify(&token, NOW),
            Ok(customer(SUB, "ana@shop.example"))
        );
    }

    #[test]
    fn an_access_token_for_the_app_client_verifies_by_its_client_id() {
        let token = cognito_token(&access_claims());
        // Access tokens carry neither e-mail nor custom attributes.
        assert_eq!(issuer().verify(&token, NOW), Ok(customer(SUB, "")));
    }

    #[test]
    fn a_token_without_token_use_must_name_the_app_client_in_aud() {
        let verifier = issuer();
        let token = cognito_token(&without(id_claims(), "token_use"));
        assert_eq!(
            verifier.verify(&token, NOW),
            Ok(customer("c-001", "ana@shop.example"))
        );
        let listed = with(id_claims(), "aud", json!(["other", CLIENT]));
        let token = cognito_token(&without(listed, "token_use"));
        assert!(verifier.verify(&token, NOW).is_ok());
        let only_client_id = with(without(id_claims(), "aud"), "client_id", json!(CLIENT));
        let token = cognito_token(&without(only_client_id, "token_use"));
        assert_invalid(verifier.verify(&token, NOW), &token, "no audience (aud)");
    }

    #[test]
    fn members_of_a_role_group_are_staff_with_that_role() {
        let verifier = issuer();
        for (groups, role) in [
            (json!(["support"]), Role::Support),
            (json!(["manager"]), Role::Manager),
            (json!(["engineer"]), Role::Engineer),
            (json!(["admin"]), Role::Admin),
            (json!(["orderly-admin"]), Role::Admin),
            (json!(["beta-testers", "orderly-support"]), Role::Support),
        ] {
            let token = cognito_token(&with(id_claims(), "cognito:groups", groups.clone()));
            assert_eq!(
                verifier.verify(&token, NOW),
                Ok(staff("ana@shop.example", role)),
                "{groups}"
            );
        }
    }

    #[test]
    fn a_member_of_several_role_groups_gets_the_most_powerful_role() {
        let verifier = issuer();
        for (groups, role) in [
            (json!(["support", "orderly-admin", "manager"]), Role::Admin),
            (
                json!(["support", "engineer", "orderly-manager"]),
                Role::Manager,
            ),
            (json!(["orderly-support", "engineer"]), Role::Engineer),
        ] {
            let token = cognito_token(&with(id_claims(), "cognito:groups", groups.clone()));
            assert_eq!(
                verifier.verify(&token, NOW),
                Ok(staff("ana@shop.example", role)),
                "{groups}"
            );
        }
    }

    #[test]
    fn staff_without_an_email_are_named_by_username_then_by_sub() {
        let verifier = issuer();
        let id = with(
            without(id_claims(), "email"),
            "cognito:groups",
            json!(["admin"]),
        );
        assert_eq!(
            verifier.verify(&cognito_token(&id), NOW),
            Ok(staff("ana", Role::Admin))
        );
        let access = with(access_claims(), "cognito:groups", json!(["support"]));
        assert_eq!(
            verifier.verify(&cognito_token(&access), NOW),
            Ok(staff("ana", Role::Support))
        );
        let anonymous = without(without(id, "cognito:username"), "username");
        assert_eq!(
            verifier.verify(&cognito_token(&anonymous), NOW),
            Ok(staff(SUB, Role::Admin))
        );
    }

    #[test]
    fn groups_that_name_no_role_exactly_leave_the_user_a_customer() {
        let verifier = issuer();
        for groups in [
            json!([]),
            json!(["beta-testers"]),
            json!(["Admin", "ADMIN"]),
            json!(["xorderly-admin", "admins", "orderly-"]),
        ] {
            let token = cognito_token(&with(id_claims(), "cognito:groups", groups.clone()));
            assert_eq!(
                verifier.verify(&token, NOW),
                Ok(customer("c-001", "ana@shop.example")),
                "{groups}"
            );
        }
    }

    #[test]
    fn a_groups_claim_that_is_not_a_list_of_names_is_refused() {
        let verifier = issuer();
        for groups in [json!("admin"), json!([1, "admin"]), json!({"admin": true})] {
            let token = cognito_token(&with(id_claims(), "cognito:groups", groups));
            assert_invalid(verifier.verify(&token, NOW), &token, "cognito:groups");
        }
    }

    #[test]
    fn the_claims_named_in_the_settings_are_the_ones_read() {
        let mut settings = ExternalSettings::cognito(ISSUER, CLIENT);
        settings.groups_claim = "roles".to_owned();
        settings.customer_claim = "customer".to_owned();
        let verifier = ExternalIssuer::new(settings, &jwks(&[(&keys().current, "key-1")])).unwrap();
        let claims = with(id_claims(), "cognito:groups", json!(["admin"]));
        let token = cognito_token(&with(claims.clone(), "customer", json!("c-777")));
        assert_eq!(
            verifier.verify(&token, NOW),
            Ok(customer("c-777", "ana@shop.example"))
        );
        let token = cognito_token(&with(claims, "roles", json!(["manager"])));
        assert_eq!(
            verifier.verify(&token, NOW),
            Ok(staff("ana@shop.example", Role::Manager))
        );
    }

    #[test]
    fn a_customer_id_orderly_cannot_hold_is_refused() {
        let verifier = issuer();
        let token = cognito_token(&with(id_claims(), "custom:customer_id", json!("c 001/x")));
        assert_invalid(verifier.verify(&token, NOW), &token, "custom:customer_id");
        let token = cognito_token(&with(id_claims(), "custom:customer_id", json!("")));
        assert_invalid(verifier.verify(&token, NOW), &token, "custom:customer_id");
        let token = cognito_token(&with(id_claims(), "custom:customer_id", json!(42)));
        assert_invalid(verifier.verify(&token, NOW), &token, "custom:customer_id");
    }

    #[test]
    fn a_token_without_a_subject_is_refused() {
        let verifier = issuer();
        let token = cognito_token(&without(id_claims(), "sub"));
        assert_invalid(verifier.verify(&token, NOW), &token, "no subject (sub)");
        let token = cognito_token(&with(id_claims(), "sub", json!("")));
        assert_invalid(verifier.verify(&token, NOW), &token, "no subject (sub)");
    }

    #[test]
    fn a_token_from_another_issuer_is_refused() {
        let verifier = issuer();
        for iss in [
            json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),
            json!(format!("{ISSUER}/")),
            json!(ISSUER.to_uppercase()),
        ] {
            let token = cognito_token(&with(id_claims(), "iss", iss));
            assert_invalid(verifier.verify(&token, NOW), &token, "was issued by");
        }
        let token = cognito_token(&without(id_claims(), "iss"));
        assert_invalid(verifier.verify(&token, NOW), &token, "no issuer (iss)");
    }

    #[test]
    fn an_id_token_for_another_app_client_is_refused() {
        let verifier = issuer();
        let token = cognito_token(&with(id_claims(), "aud", json!("another-client")));
        assert_invalid(
            verifier.verify(&token, NOW),
            &token,
            "another audience (aud)",
        );
        // An ID token is judged by its aud, whatever client_id it also carries.
        let claims = with(id_claims(), "aud", json!("another-client"));
        let token = cognito_token(&with(claims, "client_id", json!(CLIENT)));
        assert_invalid(
            verifier.verify(&token, NOW),
            &token,
            "another audience (aud)",
        );
        let token = cognito_token(&without(id_claims(), "aud"));
        assert_invalid(verifier.verify(&token, NOW), &token, "no audience (aud)");
    }

    #[test]
    fn an_access_token_for_another_app_client_is_refused() {
        let verifier = issuer();
        let token = cognito_token(&with(access_claims(), "client_id", json!("another-client")));
        assert_invalid(
            verifier.verify(&token, NOW),
            &token,
            "another app client (client_id)",
        );
        // An access token is judged by its client_id, whatever aud it also carries.
        let claims = with(without(access_claims(), "client_id"), "aud", json!(CLIENT));
        let token = cognito_token(&claims);
        assert_invalid(
            verifier.verify(&token, NOW),
            &token,
            "no app client (client_id)",
        );
    }

    #[test]
    fn a_token_use_other_than_id_or_access_is_refused() {
        let verifier = issuer();
        let token = cognito_token(&with(id_claims(), "token_use", json!("refresh")));
        assert_invalid(verifier.verify(&token, NOW), &token, "token_use");
    }

    #[test]
    fn a_token_expires_thirty_seconds_after_its_exp() {
        let verifier = issuer();
        let token = cognito_token(&id_claims());
        let exp = NOW + 3600;
        assert!(verifier.verify(&token, exp).is_ok());
        assert!(verifier.verify(&token, exp + LEEWAY_SECS).is_ok());
        assert_eq!(
            verifier.verify(&token, exp + LEEWAY_SECS + 1),
            Err(AuthError::Expired)
        );
        let token = cognito_token(&with(id_claims(), "exp", json!(NOW - 31)));
        assert_eq!(verifier.verify(&token, NOW), Err(AuthError::Expired));
    }

    #[test]
    fn a_token_without_a_usable_exp_is_refused() {
        let verifier = issuer();
        let token = cognito_token(&without(id_claims(), "exp"));
        assert_invalid(verifier.verify(&token, NOW), &token, "no expiry (exp)");
        let token = cognito_token(&with(id_claims(), "exp", json!("tomorrow")));
        assert_invalid(verifier.verify(&token, NOW), &token, "exp claim");
        // RFC 7519 allows fractional seconds.
        let token = cognito_token(&with(id_claims(), "exp", json!(NOW as f64 + 0.5)));
        assert!(verifier.verify(&token, NOW).is_ok());
    }

    #[test]
    fn an_expired_token_with_a_bad_signature_is_invalid_rather_than_expired() {
        let claims = with(id_claims(), "exp", json!(NOW - 3600));
        let token = sign(&keys().impostor, "key-1", &claims);
        assert_invalid(issuer().verify(&token, NOW), &token, "signature");
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_beyond_the_leeway() {
        let verifier = issuer();
        let token = cognito_token(&with(id_claims(), "nbf", json!(NOW + LEEWAY_SECS)));
        assert!(verifier.verify(&token, NOW).is_ok());
        let token = cognito_token(&with(id_claims(), "nbf", json!(NOW + LEEWAY_SECS + 1)));
        assert_invalid(verifier.verify(&token, NOW), &token, "not valid yet (nbf)");
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused_beyond_the_leeway() {
        let verifier = issuer();
        let token = cognito_token(&with(id_claims(), "iat", json!(NOW + 20)));
        assert!(verifier.verify(&token, NOW).is_ok());
        let token = cognito_token(&with(id_claims(), "iat", json!(NOW + LEEWAY_SECS + 1)));
        assert_invalid(
            verifier.verify(&token, NOW),
            &token,
            "issued in the future (iat)",
        );
    }

    #[test]
    fn a_token_whose_claims_were_changed_after_signing_is_refused() {
        let token = cognito_token(&id_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = with(id_claims(), "cognito:groups", json!(["admin"]));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
            parts[2]
        );
        assert_invalid(issuer().verify(&forged, NOW), &forged, "signature");
    }

    #[test]
    fn a_token_whose_signature_was_changed_is_refused() {
        let token = cognito_token(&id_claims());
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 1;
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_invalid(issuer().verify(&forged, NOW), &forged, "signature");
        let truncated = format!("{message}.");
        assert!(matches!(
            issuer().verify(&truncated, NOW),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
        let token = sign(&keys().impostor, "key-1", &id_claims());
        assert_invalid(issuer().verify(&token, NOW), &token, "signature");
    }

    #[test]
    fn a_token_signed_by_an_unknown_key_verifies_once_the_rotated_set_is_loaded() {
        let verifier = issuer();
        let token = sign(&keys().rotated, "key-2", &id_claims());
        assert_eq!(token_key_id(&token).as_deref(), Some("key-2"));
        assert!(verifier.knows_key("key-1"));
        assert!(!verifier.knows_key("key-2"));
        assert_invalid(
            verifier.verify(&token, NOW),
            &token,
            "unknown signing key \"key-2\"",
        );

        let both = jwks(&[(&keys().current, "key-1"), (&keys().rotated, "key-2")]);
        verifier.replace_keys(&both).unwrap();
        assert!(verifier.knows_key("key-2"));
        assert_eq!(
            verifier.verify(&token, NOW),
            Ok(customer("c-001", "ana@shop.example"))
        );

        // Once the old key is retired, its tokens stop verifying.
        let old = cognito_token(&id_claims());
        verifier
            .replace_keys(&jwks(&[(&keys().rotated, "key-2")]))
            .unwrap();
        assert!(!verifier.knows_key("key-1"));
        assert_invalid(verifier.verify(&old, NOW), &old, "unknown signing key");
        assert!(verifier.verify(&token, NOW).is_ok());
    }

    #[test]
    fn a_token_naming_no_kid_is_refused() {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = None;
        let token = jsonwebtoken::encode(&header, &id_claims(), &keys().current.signing).unwrap();
        assert_eq!(token_key_id(&token), None);
        assert_invalid(issuer().verify(&token, NOW), &token, "no signing key (kid)");
    }

    #[test]
    fn an_unsigned_token_is_refused_whatever_alg_none_is_spelt() {
        let verifier = issuer();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = json!({"alg": alg, "kid": "key-1"});
            let token = raw_token(&header, &id_claims(), b"");
            assert_invalid(verifier.verify(&token, NOW), &token, "is not accepted");
            assert!(!verifier.claims_to_be_mine(&token));
        }
        let token = raw_token(&json!({"kid": "key-1"}), &id_claims(), b"");
        assert_invalid(verifier.verify(&token, NOW), &token, "no signing algorithm");
    }

    #[test]
    fn an_hmac_token_keyed_with_the_public_key_is_refused() {
        let verifier = issuer();
        let key = &keys().current;
        let public_jwk = jwk(key, "key-1").to_string();
        for secret in [key.public_pem.as_bytes(), public_jwk.as_bytes()] {
            for alg in [Algorithm::HS256, Algorithm::HS512] {
                let mut header = Header::new(alg);
                header.kid = Some("key-1".to_owned());
                let token =
                    jsonwebtoken::encode(&header, &id_claims(), &EncodingKey::from_secret(secret))
                        .unwrap();
                assert_invalid(verifier.verify(&token, NOW), &token, "is not accepted");
                assert!(!verifier.claims_to_be_mine(&token));
            }
        }
    }

    #[test]
    fn other_rsa_and_ec_algorithms_are_refused() {
        let verifier = issuer();
        for alg in ["RS384", "RS512", "PS256", "ES256", "EdDSA"] {
            let header = json!({"alg": alg, "kid": "key-1"});
            let token = raw_token(&header, &id_claims(), &[7; 256]);
            assert_invalid(verifier.verify(&token, NOW), &token, alg);
        }
    }

    #[test]
    fn a_token_marking_extensions_critical_is_refused() {
        let header = json!({"alg": "RS256", "kid": "key-1", "crit": ["exp"], "exp": NOW});
        let token = raw_token(&header, &id_claims(), &[7; 256]);
        assert_invalid(issuer().verify(&token, NOW), &token, "critical");
    }

    #[test]
    fn text_that_is_not_a_jwt_is_refused() {
        let verifier = issuer();
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.e30.",
            "e30.e30.e30",
            &long,
        ] {
            assert!(
                matches!(verifier.verify(token, NOW), Err(AuthError::Invalid(_))),
                "{token:.20}"
            );
            assert!(!verifier.claims_to_be_mine(token));
        }
    }

    #[test]
    fn only_rs256_tokens_naming_this_issuer_claim_to_be_mine() {
        let verifier = issuer();
        assert!(verifier.claims_to_be_mine(&cognito_token(&id_claims())));
        assert!(verifier.claims_to_be_mine(&cognito_token(&access_claims())));
        // Claiming costs nothing: an impostor's token claims too, and verify refuses it.
        assert!(verifier.claims_to_be_mine(&sign(&keys().impostor, "key-9", &id_claims())));

        let other_pool = with(
            id_claims(),
            "iss",
            json!("https://cognito-idp.example/other"),
        );
        assert!(!verifier.claims_to_be_mine(&cognito_token(&other_pool)));
        assert!(!verifier.claims_to_be_mine(&cognito_token(&without(id_claims(), "iss"))));
        let orderly = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"iss": "orderly", "aud": "orderly-api", "sub": "u1", "exp": NOW + 60}),
            &EncodingKey::from_secret(b"a secret of Orderly's own, 32 bytes+"),
        )
        .unwrap();
        assert!(!verifier.claims_to_be_mine(&orderly));
    }

    #[test]
    fn a_key_set_keeps_only_rsa_keys_for_verifying_rs256() {
        let key = &keys().current;
        let set = json!({"keys": [
            jwk(key, "key-1"),
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": key.n, "e": key.e},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": key.n, "e": key.e},
            {"kty": "RSA", "kid": "wrap", "key_ops": ["wrapKey"], "n": key.n, "e": key.e},
            {"kty": "RSA", "n": key.n, "e": key.e},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "bare", "n": key.n, "e": key.e},
        ]});
        let verifier =
            ExternalIssuer::new(ExternalSettings::cognito(ISSUER, CLIENT), &set.to_string())
                .unwrap();
        for kid in ["key-1", "bare"] {
            assert!(verifier.knows_key(kid), "{kid}");
        }
        for kid in ["enc", "ps", "wrap", "ec", "hmac"] {
            assert!(!verifier.knows_key(kid), "{kid}");
        }
        let token = sign(key, "hmac", &id_claims());
        assert_invalid(verifier.verify(&token, NOW), &token, "unknown signing key");
        assert!(format!("{verifier:?}").contains(r#"kids: ["bare", "key-1"]"#));
    }

    #[test]
    fn a_key_set_that_is_malformed_or_weak_is_refused_and_the_old_keys_stay() {
        let verifier = issuer();
        let key = &keys().current;
        let short_modulus = URL_SAFE_NO_PAD.encode([0xc5; 128]);
        for (set, expected) in [
            ("not json".to_owned(), "not a JWKS"),
            (json!({"kids": []}).to_string(), "not a JWKS"),
            (json!({"keys": []}).to_string(), "no RSA signing key"),
            (
                json!({"keys": [{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}]})
                    .to_string(),
                "no RSA signing key",
            ),
            (jwks(&[(key, "key-1"), (key, "key-1")]), "twice"),
            (
                json!({"keys": [{"kty": "RSA", "kid": "k", "n": "!!", "e": key.e}]}).to_string(),
                "no valid n",
            ),
            (
                json!({"keys": [{"kty": "RSA", "kid": "k", "n": key.n}]}).to_string(),
                "no valid e",
            ),
            (
                json!({"keys": [{"kty": "RSA", "kid": "k", "n": short_modulus, "e": key.e}]})
                    .to_string(),
                "1024-bit modulus",
            ),
        ] {
            match verifier.replace_keys(&set) {
                Err(AuthError::Invalid(message)) => {
                    assert!(message.contains(expected), "{message:?} for {set}");
                }
                other => panic!("expected Invalid for {set}, got {other:?}"),
            }
            assert!(ExternalIssuer::new(ExternalSettings::cognito(ISSUER, CLIENT), &set).is_err());
        }
        assert!(verifier.knows_key("key-1"));
        assert!(verifier.verify(&cognito_token(&id_claims()), NOW).is_ok());
    }

    #[test]
    fn a_padded_key_set_as_some_publishers_write_it_is_accepted() {
        let key = &keys().current;
        let padded = |text: &str| format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        let set = json!({"keys": [{
            "kty": "RSA", "kid": "key-1", "n": padded(&key.n), "e": padded(&key.e),
        }]});
        let verifier =
            ExternalIssuer::new(ExternalSettings::cognito(ISSUER, CLIENT), &set.to_string())
                .unwrap();
        assert!(verifier.verify(&cognito_token(&id_claims()), NOW).is_ok());
    }

    #[test]
    fn error_messages_cut_long_values_short() {
        let verifier = issuer();
        let kid = "k".repeat(500);
        let token = sign(&keys().current, &kid, &id_claims());
        match verifier.verify(&token, NOW) {
            Err(AuthError::Invalid(message)) => {
                assert!(message.len() < 200, "{message}");
                assert!(message.contains("unknown signing key"));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
