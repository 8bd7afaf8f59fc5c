//! How the server's loops are tuned. The defaults are the architecture's (section 4.2).

use std::time::Duration;

/// Timings and limits of the dispatcher, the lease keeper and the scheduler.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// This server's id (`server-<random>`), the `sender` of what it publishes.
    pub server_id: String,
    /// A worker silent this long is lost: its work is requeued (default 15 s, 3 heartbeats).
    pub worker_lost_after: Duration,
    /// How long a renewed lease lasts (default 15 s: a lease lapses with its worker).
    pub lease: Duration,
    /// An assignment not accepted within this time is dispatched again (default 10 s).
    pub assign_timeout: Duration,
    /// How many times a build that lost its worker is run again before it is `errored`
    /// (default 2).
    pub max_requeues: u32,
    /// How often the dispatcher looks for work without being woken (default 1 s).
    pub dispatch_interval: Duration,
    /// How long a worker has to report a cancelled build before it is fenced off and the
    /// build marked `cancelled` (default 30 s).
    pub cancel_grace: Duration,
    /// After the server starts, and while its event consumption is unhealthy, no lease is
    /// taken back for this long: workers get time to heartbeat again (default 15 s).
    pub requeue_grace: Duration,
    /// A build whose lease lapsed is taken back only this long after its worker was told to
    /// abort it: a worker that is alive after all (its heartbeats held up somewhere) stops it
    /// before it runs elsewhere (default 1 s).
    pub abort_grace: Duration,
    /// How long a worker's `build_finished` waits for log chunks of the build that it counts
    /// and the store does not have yet: a chunk held by a server that died comes back only
    /// when the broker gives it back (NATS: after its 30 s `ack_wait`). Past this, the build
    /// finishes with a note in its log that the log may be incomplete (default 35 s).
    pub log_patience: Duration,
    /// How long a login session lasts (default 30 days).
    pub session_lifetime: Duration,
    /// Users to create at start and after an import when they are missing: name and password
    /// hash (`pikoci server --users`; see [`Server::ensure_users`](crate::Server)).
    pub users: Vec<(String, pikoci_core::secrets::Secret)>,
    /// The global worker token, when the operator chose it (`pikoci server --worker-token`);
    /// otherwise the server makes one at its first start (see
    /// [`Server::ensure_worker_keys`](crate::Server)).
    pub worker_token: Option<pikoci_core::protocol::auth::MacKey>,
    /// The address users reach the server at (`https://ci.example.com`, no trailing slash):
    /// single sign-on's callback URLs are built on it, and the session cookie is marked
    /// `Secure` when it is `https`. `None`: each request's `Host`, over `http`.
    pub external_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            server_id: format!("server-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            worker_lost_after: Duration::from_secs(15),
            lease: Duration::from_secs(15),
            assign_timeout: Duration::from_secs(10),
            max_requeues: 2,
            dispatch_interval: Duration::from_secs(1),
            cancel_grace: Duration::from_secs(30),
            requeue_grace: Duration::from_secs(15),
            abort_grace: Duration::from_secs(1),
            log_patience: Duration::from_secs(35),
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            users: Vec::new(),
            worker_token: None,
            external_url: None,
        }
    }
}
