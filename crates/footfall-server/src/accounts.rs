//! Dashboard users and login sessions: argon2id password hashes, random session tokens
//! kept (hashed) in the store so logins survive a restart, a one-time setup token for the
//! first user, and a brake on password guessing.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use footfall_store::{MetadataStore, SessionRecord, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

/// How long a login lasts.
pub const SESSION_TTL_MS: i64 = 30 * 86_400_000;
/// Failed logins allowed in [`FAILURE_WINDOW_MS`] for one user name from one client, and for
/// one client across all names, before refusing for a while. Keyed by client as well as name,
/// so guessing from one place can't lock the owner out everywhere.
const MAX_FAILURES_PER_USER: u32 = 10;
const MAX_FAILURES_PER_CLIENT: u32 = 30;
const FAILURE_WINDOW_MS: i64 = 15 * 60_000;

/// A client for the login brake: its IPv4 address, or its IPv6 /64 (one subscriber's block).
fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("too many failed logins for this user; try again in a few minutes")]
    Throttled,
    #[error("the setup token is wrong or was already used")]
    BadSetupToken,
    #[error("too many password checks at once; try again in a moment")]
    Busy,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub csrf: String,
    pub expires_at: i64,
}

pub fn validate_username(name: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            "username: 1–64 characters of letters, digits and . _ @ -".into(),
        ))
    }
}

pub fn validate_password(pw: &str) -> Result<(), AccountError> {
    // The upper bound keeps a hostile request from making argon2 hash megabytes.
    if (8..=1024).contains(&pw.chars().count()) && pw.len() <= 4096 {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            "password: 8 to 1024 characters".into(),
        ))
    }
}

/// An argon2id PHC string (argon2's defaults: 19 MiB, 2 passes) with a random salt.
pub fn hash_password(pw: &str) -> Result<String, AccountError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

pub fn verify_password(phc: &str, pw: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// 128 random bits as hex: session cookies, CSRF tokens, share and setup tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn token_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Validates a new user name and password and hashes the password.
fn checked_hash(username: &str, password: &str) -> Result<String, AccountError> {
    validate_username(username)?;
    validate_password(password)?;
    hash_password(password)
}

/// Checks a user name and password offline (the CLI) and stores the user.
pub fn add_user(
    store: &dyn MetadataStore,
    username: &str,
    password: &str,
    now_ms: i64,
) -> Result<bool, AccountError> {
    let created = store.put_user(username, &checked_hash(username, password)?, now_ms)?;
    if !created {
        store.delete_user_sessions(username)?;
    }
    Ok(created)
}

pub struct Accounts {
    store: Mutex<Box<dyn MetadataStore>>,
    /// username → PHC hash.
    users: RwLock<HashMap<String, String>>,
    /// SHA-256 of the cookie value → session.
    sessions: RwLock<HashMap<String, Session>>,
    setup_token: Mutex<Option<String>>,
    failures: Mutex<HashMap<String, (u32, i64)>>,
    /// Verified against when the user doesn't exist, so both cases take as long.
    decoy: String,
    /// Password hashing at once: each argon2 run takes 19 MiB and a core, so a burst of
    /// logins must queue rather than take the machine's memory.
    pub hashing: tokio::sync::Semaphore,
    /// Called after this cache changed the store (cluster: other nodes reload).
    pub on_change: crate::changes::OnChange,
    /// Cluster mode: failure counters every node shares. Unset: this node's own.
    pub shared_brake: std::sync::OnceLock<std::sync::Arc<dyn LoginBrake>>,
}

/// The login brake's counters when they live outside this node.
pub trait LoginBrake: Send + Sync {
    /// Counts an attempt against every `(counter, limit)` unless one is at its limit
    /// (then false, nothing counted). None: the counters could not be asked.
    fn attempt(&self, counters: &[(String, u32)], window_ms: i64) -> Option<bool>;
    /// Takes an attempt back from each counter (the password was right).
    fn forgive(&self, counters: &[String]);
}

type Users = HashMap<String, String>;
type Sessions = HashMap<String, Session>;

/// Users (name → password hash) and live sessions (token hash → session) as stored.
fn read_accounts(
    store: &dyn MetadataStore,
    now_ms: i64,
) -> Result<(Users, Sessions), AccountError> {
    let users = store
        .users()?
        .into_iter()
        .map(|u| (u.username, u.password_hash))
        .collect();
    let sessions = store
        .live_sessions(now_ms)?
        .into_iter()
        .map(|s: SessionRecord| {
            (
                s.token_hash,
                Session {
                    username: s.username,
                    csrf: s.csrf,
                    expires_at: s.expires_at,
                },
            )
        })
        .collect();
    Ok((users, sessions))
}

impl Accounts {
    pub fn load(store: Box<dyn MetadataStore>, now_ms: i64) -> Result<Self, AccountError> {
        let (users, sessions) = read_accounts(store.as_ref(), now_ms)?;
        let setup_token = users.is_empty().then(random_token);
        Ok(Accounts {
            store: Mutex::new(store),
            users: RwLock::new(users),
            sessions: RwLock::new(sessions),
            setup_token: Mutex::new(setup_token),
            failures: Mutex::new(HashMap::new()),
            decoy: hash_password(&random_token())?,
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            on_change: Default::default(),
            shared_brake: Default::default(),
        })
    }

    /// Reads users and live sessions from the store again (another node changed them).
    pub fn reload(&self, now_ms: i64) -> Result<(), AccountError> {
        let (users, sessions) = read_accounts(self.store().as_ref(), now_ms)?;
        if !users.is_empty() {
            *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = users;
        *self.sessions.write().unwrap_or_else(|p| p.into_inner()) = sessions;
        Ok(())
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Box<dyn MetadataStore>> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token that lets the first user be created, while there are no users.
    pub fn setup_token(&self) -> Option<String> {
        self.setup_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn setup_required(&self) -> bool {
        self.setup_token().is_some()
    }

    /// Adds (or re-passwords) a user. Slow: hashes a password.
    pub fn add_user(
        &self,
        username: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<bool, AccountError> {
        let phc = checked_hash(username, password)?;
        let created = {
            let store = self.store();
            let created = store.put_user(username, &phc, now_ms)?;
            if !created {
                // A new password ends every login made with the old one.
                store.delete_user_sessions(username)?;
            }
            created
        };
        if !created {
            self.sessions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, s| s.username != username);
        }
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(username.to_string(), phc);
        // Once anyone can log in, the setup door closes.
        *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.on_change.fire();
        Ok(created)
    }

    /// Creates the first user with the one-time setup token and logs them in.
    pub fn setup(
        &self,
        token: &str,
        username: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<(String, Session), AccountError> {
        validate_username(username)?;
        validate_password(password)?;
        {
            // Taken under the lock: two concurrent setups can't both succeed.
            let mut guard = self.setup_token.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_deref() {
                Some(t) if crate::auth::same(t, token) => *guard = None,
                _ => return Err(AccountError::BadSetupToken),
            }
        }
        if let Err(e) = self.add_user(username, password, now_ms) {
            // Let the owner try again with the same token, unless a user appeared meanwhile.
            if self
                .users
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(token.to_string());
            }
            return Err(e);
        }
        self.open_session(username, now_ms)
    }

    /// Checks a password and opens a session. Slow: verifies a password hash.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
        now_ms: i64,
    ) -> Result<(String, Session), AccountError> {
        // A name that can't exist fails at once (and keeps junk out of the failure map).
        if validate_username(username).is_err() {
            return Err(AccountError::BadCredentials);
        }
        let client = client_key(client);
        let keys = [
            (
                format!("{}@{client}", username.to_ascii_lowercase()),
                MAX_FAILURES_PER_USER,
            ),
            (client, MAX_FAILURES_PER_CLIENT),
        ];
        if let Some(brake) = self.shared_brake.get() {
            // Counted before the (slow) check, atomically with the limit test, on every
            // node's shared counters. Unreachable counters refuse: a brake that opens
            // when its store is down would invite guessing then.
            if brake.attempt(&keys, FAILURE_WINDOW_MS) != Some(true) {
                return Err(AccountError::Throttled);
            }
        } else {
            // The attempt is counted before the (slow) check, under the same lock as the
            // limit test, so parallel guesses can't all slip through; success takes it back.
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            f.retain(|_, (_, since)| now_ms - *since < FAILURE_WINDOW_MS);
            if keys
                .iter()
                .any(|(k, max)| f.get(k).is_some_and(|(n, _)| n >= max))
            {
                return Err(AccountError::Throttled);
            }
            for (k, _) in &keys {
                f.entry(k.clone()).or_insert((0, now_ms)).0 += 1;
            }
        }
        let phc = self
            .users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(username)
            .cloned();
        let ok = match &phc {
            Some(h) => verify_password(h, password),
            None => {
                let _ = verify_password(&self.decoy, password);
                false
            }
        };
        if !ok {
            return Err(AccountError::BadCredentials);
        }
        if let Some(brake) = self.shared_brake.get() {
            let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
            brake.forgive(&names);
        } else {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            for (k, _) in &keys {
                if let Some(e) = f.get_mut(k) {
                    e.0 = e.0.saturating_sub(1);
                }
            }
        }
        self.open_session(username, now_ms)
    }

    fn open_session(&self, username: &str, now_ms: i64) -> Result<(String, Session), AccountError> {
        let token = random_token();
        let session = Session {
            username: username.to_string(),
            csrf: random_token(),
            expires_at: now_ms + SESSION_TTL_MS,
        };
        let record = SessionRecord {
            token_hash: token_key(&token),
            username: session.username.clone(),
            csrf: session.csrf.clone(),
            expires_at: session.expires_at,
        };
        self.store().put_session(&record, now_ms)?;
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.token_hash, session.clone());
        self.on_change.fire();
        Ok((token, session))
    }

    /// The session a cookie value belongs to, if it is valid now and its user still exists.
    pub fn session(&self, token: &str, now_ms: i64) -> Option<Session> {
        let s = self
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token_key(token))
            .cloned()?;
        let user_exists = self
            .users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&s.username);
        (s.expires_at > now_ms && user_exists).then_some(s)
    }

    pub fn logout(&self, token: &str) -> Result<(), AccountError> {
        let key = token_key(token);
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        self.store().delete_session(&key)?;
        self.on_change.fire();
        Ok(())
    }
}
