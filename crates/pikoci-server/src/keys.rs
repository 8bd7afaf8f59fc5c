//! The keys that sign what crosses the broker (see [`pikoci_core::protocol::auth`]): the
//! servers' own, the global worker token's and each team's. The store keeps them sealed with
//! the secret store's master key when one is configured (`PIKOCI_SECRET_KEY`), in clear
//! otherwise; each server reads them again every [`KEY_TTL`], so that a regenerated token takes
//! effect on every server within that time.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use pikoci_core::ErrorKind;
use pikoci_core::protocol::auth::{self, AuthError, KeyScope, MacKey};
use pikoci_core::protocol::{self, Decoded, Envelope};
use pikoci_core::secrets::Secret;
use pikoci_core::store::{StoreError, StoreResult, TeamId, WorkerKeyScope};

use tokio::time::Instant;

use crate::state::lock;
use crate::{Server, ServerError, ServerResult};

/// How long a key read from the store is used before it is read again.
const KEY_TTL: Duration = Duration::from_secs(5);

/// How a stored key starts: in clear, or sealed with the master key.
const CLEAR: &str = "clear:";
const SEALED: &str = "sealed:";

/// The keys this server read, with when.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: std::sync::Mutex<HashMap<KeyScope, (Option<MacKey>, Instant)>>,
    /// The team each worker registered for and the scope of its key, with when read.
    workers: std::sync::Mutex<HashMap<String, Registration>>,
    /// When the newest heartbeat read from each worker was sent (its clock, ms).
    heartbeats: std::sync::Mutex<HashMap<String, i64>>,
}

/// A worker's team and the scope of its key, with when this server read them.
type Registration = (Option<TeamId>, KeyScope, Instant);

/// A message whose signature was checked: the envelope and the scope of the key that signed it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) scope: KeyScope,
    pub(crate) decoded: Result<Decoded, protocol::ProtocolError>,
}

/// Why a payload was dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("it is signed with {0}, which this server does not know (a deleted team's?)")]
    UnknownKey(KeyScope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new random global worker token (`pikoci worker-token`), for `--worker-token` of a server
/// and its workers.
pub fn new_global_worker_token() -> Secret {
    random_key(KeyScope::Global)
        .token()
        .unwrap_or_else(|| Secret::new(String::new()))
}

fn random_key(scope: KeyScope) -> MacKey {
    let mut bytes = [0u8; auth::KEY_BYTES];
    rand::fill(&mut bytes);
    MacKey::new(scope, bytes)
}

impl Server {
    /// Makes the servers' key and the global worker token's when they are missing. With
    /// [`ServerConfig::worker_token`](crate::ServerConfig), the global key is that token's,
    /// whatever was stored: the global token changes only with it (an embedded worker holds
    /// it from its start). Returns the global worker token's key.
    pub async fn ensure_worker_keys(&self) -> ServerResult<MacKey> {
        self.stored_or_new(WorkerKeyScope::Server, KeyScope::Server)
            .await?;
        let global = match &self.config().worker_token {
            Some(token) => {
                if token.scope() != &KeyScope::Global {
                    return Err(ServerError::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "--worker-token is {}, not the global one: give the server a global worker token (`pikoci worker-token` makes one)",
                            token.scope()
                        ),
                    ));
                }
                let stored = self.store().worker_key(WorkerKeyScope::Global).await?;
                // One that does not open (another master key) is replaced all the same.
                let current = stored.and_then(|stored| {
                    self.open_stored(&stored, KeyScope::Global, WorkerKeyScope::Global)
                        .ok()
                });
                if current.as_ref() != Some(token) {
                    let sealed = self.seal_key(token, WorkerKeyScope::Global)?;
                    self.store()
                        .replace_worker_key(WorkerKeyScope::Global, &sealed, self.now())
                        .await?;
                    tracing::info!("global worker token set from --worker-token");
                }
                token.clone()
            }
            None => {
                self.stored_or_new(WorkerKeyScope::Global, KeyScope::Global)
                    .await?
            }
        };
        lock(&self.inner.keys.keys).clear();
        lock(&self.inner.keys.workers).clear();
        Ok(global)
    }

    /// The worker token of `team` (`None`: the global one), made when it has none.
    pub async fn worker_token(&self, team: Option<TeamId>) -> ServerResult<Secret> {
        let (stored, scope) = self.key_scopes(team).await?;
        let key = self.stored_or_new(stored, scope).await?;
        key.token().ok_or_else(|| {
            ServerError::new(
                ErrorKind::Internal,
                "the servers' key is not a worker token",
            )
        })
    }

    /// Makes a new worker token for `team`: its workers that hold the old one are refused from
    /// now on (by every server within a few seconds), lose their work and must be given the
    /// new one. (The global token changes with `--worker-token` only.)
    pub async fn regenerate_worker_token(&self, team: TeamId) -> ServerResult<Secret> {
        let (stored, scope) = self.key_scopes(Some(team)).await?;
        let key = random_key(scope.clone());
        let sealed = self.seal_key(&key, stored)?;
        self.store()
            .regenerate_worker_key(stored, &sealed, self.now())
            .await?;
        lock(&self.inner.keys.keys).remove(&scope);
        tracing::info!(scope = %stored, "worker token regenerated");
        key.token().ok_or_else(|| {
            ServerError::new(
                ErrorKind::Internal,
                "the servers' key is not a worker token",
            )
        })
    }

    async fn key_scopes(&self, team: Option<TeamId>) -> ServerResult<(WorkerKeyScope, KeyScope)> {
        Ok(match team {
            None => (WorkerKeyScope::Global, KeyScope::Global),
            Some(id) => {
                let team = self.store().team_by_id(id).await?;
                (WorkerKeyScope::Team(id), KeyScope::Team(team.name))
            }
        })
    }

    /// The stored key of `stored`, or a new one stored (the first server's, when several
    /// start at once).
    async fn stored_or_new(&self, stored: WorkerKeyScope, scope: KeyScope) -> ServerResult<MacKey> {
        if let Some(value) = self.store().worker_key(stored).await? {
            return self.open_upgraded(&value, scope, stored).await;
        }
        let key = random_key(scope.clone());
        let sealed = self.seal_key(&key, stored)?;
        let value = self
            .store()
            .create_worker_key(stored, &sealed, self.now())
            .await?;
        self.open_stored(&value, scope, stored)
    }

    /// What the store keeps of `key`.
    fn seal_key(&self, key: &MacKey, stored: WorkerKeyScope) -> ServerResult<Secret> {
        self.seal_for_store(&key.to_hex(), &context(stored))
    }

    /// What the store keeps of `value`: sealed with the secret store's master key (bound to
    /// `context`) when the server has one, in clear otherwise.
    pub(crate) fn seal_for_store(&self, value: &Secret, context: &str) -> ServerResult<Secret> {
        match self.secrets().master_cipher() {
            None => Ok(Secret::new(format!("{CLEAR}{}", value.expose()))),
            Some(cipher) => {
                let sealed = cipher
                    .seal(value, context.as_bytes())
                    .map_err(|err| ServerError::new(err.kind(), err.to_string()))?;
                Ok(Secret::new(format!(
                    "{SEALED}{}",
                    base64::engine::general_purpose::STANDARD.encode(sealed)
                )))
            }
        }
    }

    /// The value [`Server::seal_for_store`] kept as `stored` for `context`; `what` names it in
    /// errors.
    pub(crate) fn open_from_store(
        &self,
        stored: &Secret,
        context: &str,
        what: &str,
    ) -> ServerResult<Secret> {
        let corrupt = || {
            ServerError::new(
                ErrorKind::Internal,
                format!("the stored {what} is not readable: set it again"),
            )
        };
        if let Some(clear) = stored.expose().strip_prefix(CLEAR) {
            return Ok(Secret::new(clear));
        }
        let Some(sealed) = stored.expose().strip_prefix(SEALED) else {
            return Err(corrupt());
        };
        let Some(cipher) = self.secrets().master_cipher() else {
            return Err(ServerError::new(
                ErrorKind::Internal,
                format!(
                    "the {what} is encrypted with the secret store's master key, and this server \
                     has none: start it with the same {} as the others",
                    pikoci_secrets::KEY_VARIABLE
                ),
            ));
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| corrupt())?;
        cipher
            .open(&sealed, context.as_bytes())
            .map_err(|err| ServerError::new(err.kind(), err.to_string()))
    }

    /// Like [`Server::open_stored`]; a key kept in clear is sealed now when the server has a
    /// master key (one configured since the key was made).
    async fn open_upgraded(
        &self,
        value: &Secret,
        scope: KeyScope,
        stored: WorkerKeyScope,
    ) -> ServerResult<MacKey> {
        let key = self.open_stored(value, scope, stored)?;
        if value.expose().starts_with(CLEAR) && self.secrets().master_cipher().is_some() {
            let sealed = self.seal_key(&key, stored)?;
            self.store()
                .replace_worker_key(stored, &sealed, self.now())
                .await?;
            tracing::info!(scope = %stored, "a worker key kept in clear is now sealed with the master key");
        }
        Ok(key)
    }

    /// The key of `scope` the store kept as `value` (under `stored`).
    fn open_stored(
        &self,
        value: &Secret,
        scope: KeyScope,
        stored: WorkerKeyScope,
    ) -> ServerResult<MacKey> {
        let what = format!("worker key of scope {stored}");
        let hex = self.open_from_store(value, &context(stored), &what)?;
        MacKey::from_hex(scope, hex.expose()).ok_or_else(|| {
            ServerError::new(
                ErrorKind::Internal,
                format!("the stored {what} is not a key: regenerate it"),
            )
        })
    }

    /// The key of `scope`, from what this server read in the last [`KEY_TTL`] or from the
    /// store; `None` when there is none (a team that does not exist, or has no token yet).
    pub(crate) async fn key(&self, scope: &KeyScope) -> StoreResult<Option<MacKey>> {
        if let Some((key, read)) = lock(&self.inner.keys.keys).get(scope)
            && read.elapsed() < KEY_TTL
        {
            return Ok(key.clone());
        }
        let stored = match scope {
            KeyScope::Server => Some(WorkerKeyScope::Server),
            KeyScope::Global => Some(WorkerKeyScope::Global),
            KeyScope::Team(name) => match self.store().team(name).await {
                Ok(team) => Some(WorkerKeyScope::Team(team.id)),
                Err(err) if err.kind() == ErrorKind::NotFound => None,
                Err(err) => return Err(err),
            },
        };
        let key = match stored {
            None => None,
            Some(stored) => match self.store().worker_key(stored).await? {
                None => None,
                Some(value) => Some(
                    self.open_upgraded(&value, scope.clone(), stored)
                        .await
                        .map_err(|err| StoreError::new(err.kind, err.message))?,
                ),
            },
        };
        let mut keys = lock(&self.inner.keys.keys);
        if keys.len() > 10_000 {
            // Made-up key ids are many; the real keys are kept.
            keys.retain(|_, (key, _)| key.is_some());
        }
        keys.insert(scope.clone(), (key.clone(), Instant::now()));
        Ok(key)
    }

    /// Checks the signature of a payload read from `topic` and decodes it.
    pub(crate) async fn verify(&self, topic: &str, payload: &[u8]) -> Result<Verified, Refused> {
        let signed = auth::Signed::read(payload)?;
        let key = self
            .key(&signed.scope)
            .await?
            .ok_or_else(|| Refused::UnknownKey(signed.scope.clone()))?;
        let body = signed.verify(&key, topic)?;
        Ok(Verified {
            scope: signed.scope,
            decoded: protocol::decode(body),
        })
    }

    /// `envelope`, encoded and signed with the key of `scope` for `topic`.
    pub(crate) async fn sign(
        &self,
        scope: &KeyScope,
        topic: &str,
        envelope: &Envelope,
    ) -> Result<Vec<u8>, String> {
        self.signing_key(scope)
            .await?
            .encode(topic, envelope)
            .map_err(|err| err.to_string())
    }

    /// The key to sign an assignment to `worker` with: its registration's, when that is still
    /// for the team the worker was chosen for (`Err` inside: why not).
    pub(crate) async fn assignment_key(
        &self,
        worker: &pikoci_core::store::Worker,
    ) -> StoreResult<Result<MacKey, String>> {
        Ok(match self.worker_scope(&worker.worker_id).await? {
            Some((team, scope)) if team == worker.team_id => self.signing_key(&scope).await,
            Some(_) => Err(format!(
                "worker \"{}\" registered for another team meanwhile",
                worker.worker_id
            )),
            None => Err(format!("worker \"{}\" is not registered", worker.worker_id)),
        })
    }

    /// The key to sign with for `scope`; the error says why there is none.
    pub(crate) async fn signing_key(&self, scope: &KeyScope) -> Result<MacKey, String> {
        self.key(scope)
            .await
            .map_err(|err| format!("cannot read {scope}: {err}"))?
            .ok_or_else(|| format!("{scope} does not exist (its team was deleted meanwhile?)"))
    }
}

impl Server {
    /// Notes that `worker` registered for `team` with a key of `scope` (a heartbeat handled).
    pub(crate) fn remember_worker(&self, worker: &str, team: Option<TeamId>, scope: KeyScope) {
        let mut workers = lock(&self.inner.keys.workers);
        if workers.len() > 10_000 && !workers.contains_key(worker) {
            workers.clear();
        }
        workers.insert(worker.to_owned(), (team, scope, Instant::now()));
    }

    /// The team `worker` registered for and the scope of its key, as read in the last
    /// [`KEY_TTL`] or from the store; `None` when it is not registered.
    pub(crate) async fn worker_scope(
        &self,
        worker: &str,
    ) -> StoreResult<Option<(Option<TeamId>, KeyScope)>> {
        if let Some((team, scope, read)) = lock(&self.inner.keys.workers).get(worker)
            && read.elapsed() < KEY_TTL
        {
            return Ok(Some((*team, scope.clone())));
        }
        let registered = self.registered_scope(worker).await?;
        if let Some((team, scope)) = &registered {
            self.remember_worker(worker, *team, scope.clone());
        }
        Ok(registered)
    }

    /// The team `worker` registered for and the scope of its key, read from the store now;
    /// `None` when it is not registered (or its team is gone).
    async fn registered_scope(
        &self,
        worker: &str,
    ) -> StoreResult<Option<(Option<TeamId>, KeyScope)>> {
        let registered = match self.store().worker(worker).await {
            Ok(registered) => registered,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let scope = match registered.team_id {
            None => KeyScope::Global,
            Some(id) => match self.store().team_by_id(id).await {
                Ok(team) => KeyScope::Team(team.name),
                Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err),
            },
        };
        Ok(Some((registered.team_id, scope)))
    }

    /// Why a verified message from a sender with a key of `scope` is not taken, if it is not:
    /// probes come from servers; a heartbeat registers its sender for its key's team (global:
    /// every team), cannot take the name of a worker registered with another key, and is newer
    /// than the last one read from its worker; everything else comes from a worker registered
    /// with a key of this scope.
    pub(crate) async fn refusal(
        &self,
        scope: &KeyScope,
        envelope: &Envelope,
    ) -> StoreResult<Option<String>> {
        use pikoci_core::protocol::Message;
        let from_server = matches!(
            envelope.message,
            Message::Probe {}
                | Message::Assign(_)
                | Message::AssignCheck(_)
                | Message::Cancel { .. }
                | Message::Abort { .. }
                | Message::Leases { .. }
        );
        if from_server {
            return Ok((scope != &KeyScope::Server).then(|| {
                format!(
                    "a \"{}\" message signed with {scope}: only servers send those",
                    envelope.message.type_name()
                )
            }));
        }
        if scope == &KeyScope::Server {
            return Ok(Some(
                "a worker's message signed with the servers' key".to_owned(),
            ));
        }
        if let Message::Heartbeat(heartbeat) = &envelope.message {
            if heartbeat.worker != envelope.sender {
                return Ok(Some(format!(
                    "a heartbeat of worker \"{}\" sent as \"{}\"",
                    heartbeat.worker, envelope.sender
                )));
            }
            if heartbeat.team.as_deref() != scope.team() {
                return Ok(Some(match &heartbeat.team {
                    Some(team) => format!(
                        "worker \"{}\" serves team \"{team}\" with {scope}: a team's workers need the team's worker token",
                        heartbeat.worker
                    ),
                    None => format!(
                        "worker \"{}\" serves every team with {scope}: that takes the global worker token",
                        heartbeat.worker
                    ),
                }));
            }
            // A name stays with the scope it registered with, alive or not: taking it over
            // would take the work it still holds (leases outlive a worker for a while).
            // Read now, not from the cache: the name may have been forgotten meanwhile.
            if let Some((_, registered)) = self.registered_scope(&heartbeat.worker).await?
                && &registered != scope
            {
                return Ok(Some(format!(
                    "worker \"{}\" is registered with another worker token than {scope}: two workers share a name, or one moved to another team (forget it first: `pikoci workers delete {}`)",
                    heartbeat.worker, heartbeat.worker
                )));
            }
            // A heartbeat is newer than the last one read from its worker: a replayed one
            // would keep a dead worker's leases.
            let mut newest = lock(&self.inner.keys.heartbeats);
            if let Some(seen) = newest.get(&heartbeat.worker)
                && envelope.sent_at_ms <= *seen
            {
                return Ok(Some(format!(
                    "a heartbeat of worker \"{}\" no newer than one already read (a replay, or a redelivery)",
                    heartbeat.worker
                )));
            }
            if newest.len() > 10_000 && !newest.contains_key(&heartbeat.worker) {
                newest.clear();
            }
            newest.insert(heartbeat.worker.clone(), envelope.sent_at_ms);
            return Ok(None);
        }
        Ok(match self.worker_scope(&envelope.sender).await? {
            None => Some(format!(
                "worker \"{}\" is not registered (no heartbeat of it was handled)",
                envelope.sender
            )),
            Some((_, registered)) if &registered != scope => Some(format!(
                "worker \"{}\" registered with {registered}, and this message is signed with {scope}",
                envelope.sender
            )),
            Some(_) => None,
        })
    }
}

/// What a stored key is bound to when sealed.
fn context(stored: WorkerKeyScope) -> String {
    format!("pikoci worker key {stored}")
}
