//! Passwords (argon2id, PHC strings) and the random secrets of sessions and tokens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// Password or randomness errors.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Hashing failed.
    #[error("Passwort-Hash: {0}")]
    Hash(String),
    /// The system's random source failed.
    #[error("Zufallsquelle: {0}")]
    Random(String),
    /// The password breaks the rules.
    #[error("{0}")]
    Weak(&'static str),
}

/// Shortest password a local account accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// `n` random bytes from the operating system, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, PasswordError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| PasswordError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// SHA-256 of a secret, hex: how sessions and tokens are stored (long random values need no
/// slow hash).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes) and a random salt.
/// CPU-heavy: call it off the async threads.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::Weak(
            "Das Passwort muss mindestens 10 Zeichen lang sein.",
        ));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash. A malformed hash matches nothing. CPU-heavy.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of no password, verified against when the account does not exist, so that an
/// unknown name takes as long to refuse as a wrong password.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash("kein-passwort-für-niemand").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("richtig-langes-passwort").expect("hash");
        let b = hash("richtig-langes-passwort").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("richtig-langes-passwort", &a));
        assert!(!verify("falsches-passwort", &a));
        assert!(!verify("richtig-langes-passwort", "kein hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash("kurz"), Err(PasswordError::Weak(_))));
    }

    #[test]
    fn random_values_are_long_and_fresh() {
        let a = random_hex(32).expect("random");
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32).expect("random"));
        assert_eq!(secret_hash("x").len(), 64);
    }
}
