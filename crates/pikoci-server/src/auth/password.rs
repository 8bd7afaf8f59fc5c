//! Password hashes: argon2id for every new one (PHC strings, `$argon2id$...`), and bcrypt
//! (`$2a$`, `$2b$`, `$2y$`) accepted as well, for the hashes of upstream's `user-password`.
//! Both are slow on purpose, so they run on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use pikoci_core::secrets::Secret;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted: hashing is linear in it.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The highest bcrypt cost accepted in a given hash (upstream uses 14).
const MAX_BCRYPT_COST: u32 = 16;
/// The most memory an argon2id hash given may ask for, in KiB (256 MiB).
const MAX_ARGON2_KIB: u32 = 256 * 1024;

/// Hashes computed at once: each takes 19 MiB and a core, so a flood of logins queues here
/// instead of exhausting memory and the blocking pool.
fn hashing() -> &'static tokio::sync::Semaphore {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    HASHING.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores.max(2))
    })
}

/// Whether `password` may be set, and why not.
pub fn check_new(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the new password is empty".to_owned());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the new password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the new password is too long: use at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Whether `hash` is a hash this server can check a password against.
pub fn check_hash(hash: &str) -> Result<(), String> {
    if is_bcrypt(hash) {
        let parts = hash
            .parse::<bcrypt::HashParts>()
            .map_err(|error| format!("invalid bcrypt hash: {error}"))?;
        if !(4..=MAX_BCRYPT_COST).contains(&parts.get_cost()) {
            return Err(format!(
                "the bcrypt hash's cost {} is not between 4 and {MAX_BCRYPT_COST} (above it, \
                 every login would take too long)",
                parts.get_cost()
            ));
        }
        return Ok(());
    }
    match PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => {
            let params = argon2::Params::try_from(&parsed)
                .map_err(|error| format!("invalid argon2id parameters: {error}"))?;
            if params.m_cost() > MAX_ARGON2_KIB || params.t_cost() > 16 || params.p_cost() > 16 {
                return Err(format!(
                    "the argon2id hash's parameters (m={}, t={}, p={}) are above m={MAX_ARGON2_KIB}, \
                     t=16, p=16: every login would take too long",
                    params.m_cost(),
                    params.t_cost(),
                    params.p_cost()
                ));
            }
            Ok(())
        }
        Ok(parsed) => Err(format!(
            "unsupported password hash algorithm \"{}\": give an argon2id hash (as `pikoci \
             user-password` prints it) or a bcrypt one",
            parsed.algorithm
        )),
        Err(_) => Err(
            "not a password hash: give an argon2id hash (as `pikoci user-password` prints it) \
             or a bcrypt one"
                .to_owned(),
        ),
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

/// The argon2id hash of `password`, with a random salt (argon2's recommended parameters:
/// 19 MiB, 2 passes).
pub fn hash_blocking(password: &Secret) -> Secret {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes are a valid salt");
    let hash = argon2::Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password up to 1 KiB");
    Secret::new(hash.to_string())
}

/// Whether `password` matches `hash` (argon2id or bcrypt); an unreadable hash matches
/// nothing.
pub fn verify_blocking(password: &Secret, hash: &Secret) -> bool {
    let hash = hash.expose();
    if is_bcrypt(hash) {
        return bcrypt::verify(password.expose(), hash).unwrap_or(false);
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Runs `work` on the blocking pool once a [`hashing`] permit is free. The permit goes with
/// the work: a request dropped meanwhile does not free it early.
async fn on_hashing_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let permit = hashing()
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .expect("password hashing does not panic")
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: Secret) -> Secret {
    on_hashing_pool(move || hash_blocking(&password)).await
}

/// [`verify_blocking`] on the blocking pool. Without a hash (no such user, or a user without a
/// password), a dummy hash is checked all the same, so that the answer takes as long and does
/// not tell which names exist.
pub async fn verify(password: Secret, hash: Option<Secret>) -> bool {
    on_hashing_pool(move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            let _ = verify_blocking(&password, &dummy_hash());
            false
        }
    })
    .await
}

/// An argon2id hash of a random password, made once.
fn dummy_hash() -> Secret {
    static DUMMY: std::sync::OnceLock<Secret> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let mut random = [0u8; 16];
            rand::fill(&mut random);
            hash_blocking(&Secret::new(format!("{random:?}")))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let password = Secret::new("correct horse");
        let first = hash_blocking(&password);
        let second = hash_blocking(&password);
        assert!(
            first.expose().starts_with("$argon2id$"),
            "{}",
            first.expose()
        );
        assert_ne!(first, second, "a random salt each time");
        assert!(verify_blocking(&password, &first));
        assert!(!verify_blocking(&Secret::new("correct horsf"), &first));
        assert_eq!(check_hash(first.expose()), Ok(()));
    }

    #[test]
    fn upstream_bcrypt_hashes_verify() {
        // Made with cost 4 by `bcrypt::hash("secret123", 4)`: upstream's format, cheaper.
        let hash = Secret::new(bcrypt::hash("secret123", 4).unwrap());
        assert!(hash.expose().starts_with("$2b$04$"));
        assert!(verify_blocking(&Secret::new("secret123"), &hash));
        assert!(!verify_blocking(&Secret::new("secret124"), &hash));
        let upstream = hash.expose().replacen("$2b$", "$2a$", 1);
        assert!(verify_blocking(
            &Secret::new("secret123"),
            &Secret::new(upstream.clone())
        ));
        assert_eq!(check_hash(&upstream), Ok(()));
    }

    #[test]
    fn other_hashes_and_garbage_are_refused() {
        assert!(check_hash("plain text").is_err());
        assert!(check_hash("$2a$14$short").is_err());
        let expensive = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$31$", 1);
        assert!(check_hash(&expensive).unwrap_err().contains("cost 31"));
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$L2aE8xZqE2hN7J3jUK5zJgL2aE8xZqE2hN7J3jUK5zJg";
        assert!(
            check_hash(huge).unwrap_err().contains("m=4194304"),
            "{:?}",
            check_hash(huge)
        );
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$L2aE8xZqE2hN7J3jUK5zJg";
        assert!(check_hash(argon2i).unwrap_err().contains("argon2i"));
        assert!(!verify_blocking(&Secret::new("x"), &Secret::new("garbage")));
    }

    #[test]
    fn new_passwords_have_a_length() {
        assert!(check_new("").unwrap_err().contains("empty"));
        assert!(check_new("short").unwrap_err().contains("at least 8"));
        assert!(
            check_new(&"x".repeat(2000))
                .unwrap_err()
                .contains("too long")
        );
        assert_eq!(check_new("long enough"), Ok(()));
    }
}
