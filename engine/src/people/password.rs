//! Password rules (OWASP ASVS 5.0 level 2) and argon2id hashing at OWASP's parameters.
//!
//! Rules: at least [`MIN_LEN`] characters (15 recommended), up to [`MAX_LEN`], no composition
//! rules, and not a common password nor one that contains the organization's name, the email's
//! local part or the product's name. Passwords are never truncated or case-folded.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use super::{Error, Result};

/// Fewer characters are refused.
pub const MIN_LEN: usize = 8;
/// What the refusal message recommends.
pub const RECOMMENDED_LEN: usize = 15;
/// More characters are refused (hashing is bounded; 64 and more are allowed as ASVS asks).
pub const MAX_LEN: usize = 1024;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// Context words that no password may contain besides the organization and the email.
const PRODUCT_WORDS: [&str; 2] = ["faultline", "sentry"];

/// Frequently used passwords of eight characters or more (shorter ones fail the length rule
/// anyway), compared case-insensitively. Compiled by us from the ranks published in public
/// password-frequency studies.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "123123123",
    "987654321",
    "87654321",
    "11111111",
    "111111111",
    "00000000",
    "88888888",
    "66666666",
    "12341234",
    "11223344",
    "12344321",
    "123456789a",
    "12345678a",
    "1234567a",
    "a1234567",
    "abc12345",
    "abcd1234",
    "abcdefgh",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty1234",
    "qwerty12345",
    "1qaz2wsx",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "zaq12wsx",
    "zaq1zaq1",
    "1qazxsw2",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "asdfghjkl",
    "asdfasdf",
    "zxcvbnm1",
    "qweasdzxc",
    "123qweasd",
    "1234qwer",
    "qwer1234",
    "iloveyou",
    "iloveyou1",
    "iloveyou2",
    "sunshine",
    "sunshine1",
    "princess",
    "princess1",
    "football",
    "football1",
    "baseball",
    "basketball",
    "welcome1",
    "welcome123",
    "letmein1",
    "letmein123",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "michelle",
    "jennifer",
    "computer",
    "corvette",
    "mercedes",
    "internet",
    "liverpool",
    "chelsea1",
    "arsenal1",
    "babygirl",
    "michael1",
    "jordan23",
    "shadow12",
    "master12",
    "killer12",
    "hunter12",
    "monkey123",
    "dragon123",
    "charlie1",
    "admin123",
    "admin1234",
    "administrator",
    "changeme",
    "changeme1",
    "secret123",
    "default1",
    "login123",
    "test1234",
    "testtest",
    "guest123",
    "root1234",
    "access14",
    "mustang1",
    "blink182",
    "pokemon1",
    "butterfly",
    "chocolate",
    "spiderman",
    "jesus123",
    "lovelove",
    "loveyou1",
    "myspace1",
    "samsung1",
    "google123",
    "qazwsxedc",
    "aa123456",
    "a12345678",
    "asd12345",
    "zxcvbnm123",
    "1234abcd",
    "abc123456",
    "0987654321",
    "98765432",
    "147258369",
    "159753456",
    "123654789",
    "789456123",
    "741852963",
    "summer2024",
    "winter2024",
    "spring2024",
    "autumn2024",
    "summer2025",
    "winter2025",
];

/// Checks a new password against the rules. `org` and `email` are the account's context.
pub fn check(password: &str, org: &str, email: &str) -> Result<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(Error::WeakPassword(format!(
            "the password has {len} characters: use at least {MIN_LEN} ({RECOMMENDED_LEN} or more recommended, e.g. a few unrelated words)"
        )));
    }
    if len > MAX_LEN {
        return Err(Error::WeakPassword(format!(
            "the password has {len} characters: at most {MAX_LEN} are accepted"
        )));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(Error::WeakPassword(
            "the password is one of the most common passwords: choose another (a few unrelated words work well)".to_owned(),
        ));
    }
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    let words = [org.to_lowercase(), local]
        .into_iter()
        .chain(PRODUCT_WORDS.iter().map(|w| (*w).to_owned()));
    for word in words {
        // Very short context words (e.g. an email "a@x") would refuse too much.
        if word.chars().count() >= 3 && lower.contains(&word) {
            return Err(Error::WeakPassword(format!(
                "the password contains {word:?} (the organization, your email address or the product): choose another"
            )));
        }
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` (argon2id, random salt). CPU-heavy: call from a blocking task.
pub fn hash(password: &str) -> Result<String> {
    let salt: [u8; 16] = rand::random();
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// True if `password` matches the PHC string `stored`. CPU-heavy: call from a blocking task.
pub fn verify(password: &str, stored: &str) -> bool {
    hasher()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// A hash of nothing anyone can type, verified when the account does not exist, so a login
/// with an unknown email takes as long as one with a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(password: &str) -> String {
        check(password, "acme", "jane.doe@example.com")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn length_is_checked_at_the_boundaries() {
        assert_eq!(
            refused("Tr0ub4d"),
            "the password has 7 characters: use at least 8 (15 or more recommended, e.g. a few unrelated words)"
        );
        check("Tr0ub4d!", "acme", "jane.doe@example.com").unwrap();
        // multi-byte characters count as one each
        check("ééééééé€", "acme", "jane.doe@example.com").unwrap();
        check(&"horse battery ".repeat(5), "acme", "j@example.com").unwrap();
        check(&"x7".repeat(MAX_LEN / 2), "acme", "j@example.com").unwrap();
        let long = format!("{}y", "x7".repeat(MAX_LEN / 2));
        assert_eq!(
            refused(&long),
            "the password has 1025 characters: at most 1024 are accepted"
        );
    }

    #[test]
    fn no_composition_rules_but_common_and_context_words_are_refused() {
        // all lowercase letters, no digits: fine
        check("correcthorsebatterystaple", "acme", "jane@example.com").unwrap();
        assert!(refused("Password1").contains("most common passwords"));
        assert!(refused("qwertyuiop").contains("most common passwords"));
        assert_eq!(
            refused("we-love-ACME-2026"),
            "the password contains \"acme\" (the organization, your email address or the product): choose another"
        );
        assert!(refused("jane.doe.is.great").contains("\"jane.doe\""));
        assert!(refused("my faultline password").contains("\"faultline\""));
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batter", &a));
        assert!(!verify("Correct horse battery", &a));
        assert!(!verify("x", "not a hash"));
    }
}
