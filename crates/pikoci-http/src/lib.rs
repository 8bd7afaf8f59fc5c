//! The one HTTP client configuration of PikoCI. Every crate that speaks HTTP (pipeline
//! sources, the Vault client, the git providers' APIs) builds its client here, so timeouts,
//! redirects, the user agent, trusted certificate authorities and body size caps are decided
//! in one place.
//!
//! The client is `reqwest` (async, on hyper): dropping a request's future cancels the
//! request, so a cancelled build never holds a thread until a timeout. TLS is rustls with the
//! ring provider, given to each client (no process-wide provider is installed).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod body;
mod roots;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use pikoci_core::ErrorKind;
use reqwest::header::{HeaderValue, InvalidHeaderValue};

pub use body::{BodyError, describe, read_capped};
pub use reqwest;
pub use roots::{CaCertificates, CaError, Roots};

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("pikoci/", env!("CARGO_PKG_VERSION"));

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 10;

/// The longest time spent connecting, whatever the request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which redirects a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Up to 10, to any server: for requests that carry no credentials.
    Any,
    /// Up to 10, on the same scheme, host and port only: for requests with a token in a
    /// header, which must not be sent to another server. A redirect elsewhere is returned to
    /// the caller as the 3xx answer it is.
    SameOrigin,
}

/// How to build a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Gives up on a request (connecting, sending, reading the whole body) after this long.
    pub timeout: Duration,
    /// Gives up connecting after this long.
    pub connect_timeout: Duration,
    /// Which redirects are followed.
    pub redirects: Redirects,
    /// The certificate authorities trusted for `https://`.
    pub roots: Roots,
}

impl ClientConfig {
    /// Requests time out after `timeout` (connecting: after at most 10 seconds of it), follow
    /// redirects on the same server only, and trust the machine's certificate authorities.
    pub fn new(timeout: Duration) -> ClientConfig {
        ClientConfig {
            timeout,
            connect_timeout: timeout.min(MAX_CONNECT_TIMEOUT),
            redirects: Redirects::SameOrigin,
            roots: Roots::System,
        }
    }

    /// The same configuration with another redirect policy.
    pub fn with_redirects(mut self, redirects: Redirects) -> ClientConfig {
        self.redirects = redirects;
        self
    }

    /// The same configuration trusting `roots`.
    pub fn with_roots(mut self, roots: Roots) -> ClientConfig {
        self.roots = roots;
        self
    }

    /// [`build`](Self::build) for async code: the machine's certificate authorities, when
    /// used, are read on a thread where blocking is allowed, not on the runtime's.
    pub async fn build_async(&self) -> Result<reqwest::Client, ClientError> {
        self.roots.load().await?;
        self.build()
    }

    /// A client with this configuration. HTTP proxies come from `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY`, or their lowercase forms (the uppercase name wins). No
    /// `Referer` is sent. With [`Roots::System`], the first client of the process reads the
    /// machine's certificate authorities: async code uses [`build_async`](Self::build_async).
    pub fn build(&self) -> Result<reqwest::Client, ClientError> {
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(redirect_policy(self.redirects))
            // A `Referer` would carry the previous URL, query and all, to the next server.
            .referer(false)
            .tls_backend_preconfigured(self.roots.tls_config()?)
            .build()
            .map_err(|err| ClientError::Build(describe(&err)))
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration was refused.
    #[error("cannot configure TLS for HTTP requests: {0}")]
    Tls(String),
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// What a request that got no answer means for a retry: [`ErrorKind::Timeout`] when it ran out
/// of time, else [`ErrorKind::Unavailable`] (the server could not be reached or hung up).
pub fn error_kind(err: &reqwest::Error) -> ErrorKind {
    if err.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    }
}

/// A header value holding a credential (a token), marked sensitive so that it is left out of
/// `Debug` output and compressed safely. Fails when `value` holds a character not allowed in a
/// header (such as a line break).
pub fn secret_header(value: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut header = HeaderValue::from_str(value)?;
    header.set_sensitive(true);
    Ok(header)
}

fn redirect_policy(redirects: Redirects) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        match redirects {
            Redirects::SameOrigin if !same_origin => attempt.stop(),
            Redirects::Any | Redirects::SameOrigin => attempt.follow(),
        }
    })
}

#[cfg(test)]
mod tests;
