//! Passwords, hashed with argon2id (RFC 9106) at OWASP's recommended cost: 19 MiB of memory,
//! 2 passes, 1 lane. The PHC string keeps the parameters, so raising them later still verifies
//! old hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

/// Memory cost in KiB.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (in bytes), so hashing cost stays bounded.
pub const MAX_LEN: usize = 256;

fn hasher() -> Argon2<'static> {
    // The constants are within argon2's limits; `Params::new` cannot fail for them.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password's length.
///
/// # Errors
/// Says what is wrong in words for the person choosing it.
pub fn check_new(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(format!(
            "must be at least {MIN_LEN} characters long, got {chars}"
        ));
    }
    if password.len() > MAX_LEN {
        return Err(format!("must be at most {MAX_LEN} bytes long"));
    }
    Ok(())
}

/// Hashes `password` with a fresh random salt; the result is a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`). Costs tens of milliseconds: call it off the async
/// threads.
///
/// # Errors
/// [`AuthError::Crypto`] if no random salt could be drawn.
pub fn hash(password: &str) -> Result<String, AuthError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Crypto(e.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| AuthError::Crypto(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Crypto(e.to_string()))
}

/// True if `password` matches the PHC string `stored`. A malformed `stored` never matches.
#[must_use]
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if password.len() > MAX_LEN {
        return false;
    }
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one verification without an account, so a log-in for an unknown e-mail
/// takes as long as one with a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("not anyone's password").unwrap_or_default());
    let _ = verify(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_documented_cost() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(
            h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "unexpected parameters: {h}"
        );
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapl", &h));
    }

    #[test]
    fn the_same_password_gets_a_different_salt_each_time() {
        let a = hash("Ünïcødé pässwörd 🔑").unwrap();
        let b = hash("Ünïcødé pässwörd 🔑").unwrap();
        assert_ne!(a, b);
        assert!(verify("Ünïcødé pässwörd 🔑", &a) && verify("Ünïcødé pässwörd 🔑", &b));
    }

    #[test]
    fn malformed_hashes_never_match() {
        assert!(!verify("anything", ""));
        assert!(!verify("anything", "$argon2id$garbage"));
    }

    #[test]
    fn new_passwords_are_checked_for_length() {
        assert!(check_new("short").is_err());
        assert!(check_new("long enough!").is_ok());
        assert!(check_new(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
