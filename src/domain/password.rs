//! Admin passwords: the policy and Argon2id hashing (PHC strings). CPU-heavy: callers on an
//! async runtime run these on a blocking thread.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted for an admin account.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Checks a new password against the policy; the error is the reason in words.
pub fn check_policy(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password too short: {chars} characters, at least {MIN_PASSWORD_CHARS} needed"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "password too long: at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    if password.trim() != password {
        return Err("password must not start or end with whitespace".into());
    }
    Ok(())
}

/// Argon2id hash (default parameters, random salt) as a PHC string.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password failed: {e}"))
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a random password, verified against when the username is unknown so that a
/// login takes the same time whether or not the account exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
        hash(&text).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert_ne!(a, b, "salts must differ");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse battery!", &a));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", decoy_hash()));
    }

    #[test]
    fn policy() {
        assert!(check_policy("short").is_err());
        assert!(check_policy(" leading-space-pass").is_err());
        assert!(check_policy("twelve chars").is_ok());
        assert!(check_policy(&"x".repeat(2000)).is_err());
    }
}
