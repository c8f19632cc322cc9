//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s, one step of clock skew) with
//! single-use codes, and ten single-use recovery codes stored as SHA-256 hashes.
//!
//! Enrolment shows the seed once (as an `otpauth://` URI and base32); a first valid code
//! confirms it and returns the recovery codes, also shown once.

use serde::Serialize;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::{Actor, Error, People, Result, TotpRecord, UserRecord, sha256};

/// Recovery codes handed out at confirmation.
pub const RECOVERY_CODES: usize = 10;

/// What enrolment shows, once.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrolment {
    pub otpauth_uri: String,
    pub secret: String,
}

fn totp(secret_b32: &str, account: &str) -> Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|_| Error::Hash("stored TOTP seed is not base32".to_owned()))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some("faultline"))
        .build()
        .map_err(|e| Error::Hash(format!("cannot build the TOTP: {e}")))
}

/// The step a code is valid for at `now` (Unix seconds), if any.
fn check(secret_b32: &str, account: &str, code: &str, now: u64) -> Result<Option<u64>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp(secret_b32, account)?.check(&code, now))
}

/// What enrolment shows for a seed: the seed and its `otpauth://` URI for `account`.
pub fn enrolment_of(secret_b32: &str, account: &str) -> Result<Enrolment> {
    let uri = totp(secret_b32, account)?
        .to_url()
        .map_err(|e| Error::Hash(format!("cannot build the otpauth URI: {e}")))?;
    Ok(Enrolment {
        otpauth_uri: uri,
        secret: secret_b32.to_owned(),
    })
}

fn recovery_code() -> String {
    // 16 characters from a 32-letter alphabet: 80 bits.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes: [u8; 16] = rand::random();
    let code: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!(
        "{}-{}-{}-{}",
        &code[..4],
        &code[4..8],
        &code[8..12],
        &code[12..]
    )
}

fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

impl People {
    fn unix_now(&self) -> u64 {
        u64::try_from(self.now().timestamp()).unwrap_or(0)
    }

    /// Starts TOTP enrolment for the actor: a fresh seed, shown once.
    pub async fn enrol_totp(&self, actor: &Actor) -> Result<Enrolment> {
        let mut user = self.user(&actor.user_id).await?;
        if user.totp.is_some() {
            return Err(Error::TotpEnabled);
        }
        let secret = Secret::from(rand::random::<[u8; 20]>().to_vec()).to_base32();
        let enrolment = enrolment_of(&secret, &user.email)?;
        user.totp_pending = Some(secret);
        self.put_user(&user).await?;
        Ok(enrolment)
    }

    /// Confirms enrolment with a first code; returns the recovery codes (shown once).
    pub async fn confirm_totp(&self, actor: &Actor, code: &str) -> Result<Vec<String>> {
        let mut user = self.user(&actor.user_id).await?;
        if user.totp.is_some() {
            return Err(Error::TotpEnabled);
        }
        let secret = user.totp_pending.clone().ok_or(Error::NoTotpEnrolment)?;
        let Some(step) = check(&secret, &user.email, code, self.unix_now())? else {
            return Err(Error::BadCode);
        };
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        user.totp = Some(TotpRecord {
            secret,
            last_step: step,
            recovery: codes
                .iter()
                .map(|c| sha256(&normalize_recovery(c)))
                .collect(),
        });
        user.totp_pending = None;
        self.put_user(&user).await?;
        self.forget_user(&user.id);
        Ok(codes)
    }

    /// Turns TOTP off (the password is required again).
    pub async fn disable_totp(&self, actor: &Actor, password: &str) -> Result<()> {
        let mut user = self.user(&actor.user_id).await?;
        if user.totp.is_none() {
            return Err(Error::TotpDisabled);
        }
        let stored = user.password.clone().unwrap_or_default();
        let typed = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || super::password::verify(&typed, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(Error::WrongPassword);
        }
        user.totp = None;
        self.put_user(&user).await?;
        self.forget_user(&user.id);
        Ok(())
    }

    /// Accepts a TOTP code (each step once) or a recovery code (each once), storing that it
    /// was used. False for a wrong or used code.
    pub(super) async fn use_code(&self, user: &mut UserRecord, code: &str) -> Result<bool> {
        let now = self.unix_now();
        let Some(record) = user.totp.as_mut() else {
            return Ok(false);
        };
        if let Some(step) = check(&record.secret, &user.email, code, now)? {
            if step <= record.last_step {
                return Ok(false);
            }
            record.last_step = step;
        } else {
            let hash = sha256(&normalize_recovery(code));
            let Some(i) = record.recovery.iter().position(|h| *h == hash) else {
                return Ok(false);
            };
            record.recovery.remove(i);
        }
        self.put_user(user).await?;
        Ok(true)
    }
}

/// The code an authenticator shows at `time` for a base32 seed (tests and tools).
pub fn code_at(secret_b32: &str, time: u64) -> Result<String> {
    Ok(totp(secret_b32, "x@example.com")?
        .generate(time)
        .to_string())
}
