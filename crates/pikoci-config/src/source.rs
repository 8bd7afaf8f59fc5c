//! Fetching `http(s)://` sources of type definitions.

use std::time::Duration;

use pikoci_core::redact;
use pikoci_http::{ClientConfig, Redirects, describe, read_capped};

/// Fetches the HCL text behind an `http://` or `https://` `source`.
pub trait SourceFetcher: std::fmt::Debug + Send + Sync {
    /// The body of `url`, or a message saying why it could not be fetched.
    fn fetch(&self, url: &str) -> Result<String, String>;
}

/// Fetches over HTTP(S) with a timeout and a size cap.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    /// Gives up on a source after this long.
    pub timeout: Duration,
    /// Rejects bodies larger than this many bytes.
    pub max_bytes: u64,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        HttpFetcher {
            timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
        }
    }
}

impl HttpFetcher {
    /// The body of `url`, for async callers: dropping the future cancels the request.
    pub async fn get(&self, url: &str) -> Result<String, String> {
        let fail = |why: String| failed(url, &why);
        // Sources carry no credentials, and release downloads redirect to other servers.
        let client = ClientConfig::new(self.timeout)
            .with_redirects(Redirects::Any)
            .build_async()
            .await
            .map_err(|err| fail(err.to_string()))?;
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|err| fail(describe(&err)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("status {}", status.as_u16())));
        }
        let body = read_capped(response, self.max_bytes)
            .await
            .map_err(|err| fail(err.to_string()))?;
        String::from_utf8(body).map_err(|_| fail("the body is not UTF-8 text".to_owned()))
    }
}

/// The error of a fetch of `url` that failed for `why` (the URL without its credentials).
fn failed(url: &str, why: &str) -> String {
    format!("failed to fetch \"{}\": {why}", redact::url(url))
}

/// [`load`](crate::load) is synchronous, and a runtime cannot block inside another: so the
/// request runs on a thread of its own with a small runtime of its own, and this call blocks the
/// calling thread until it ends (at most the timeout). Async code (the server) calls `load`
/// under `spawn_blocking`, or fetches with [`HttpFetcher::get`], which can be cancelled.
impl SourceFetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<String, String> {
        let fail = |why: &str| failed(url, why);
        std::thread::scope(|scope| {
            let fetching = std::thread::Builder::new()
                .name("pikoci-source-fetch".to_owned())
                .spawn_scoped(scope, || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| fail(&format!("cannot start a runtime: {err}")))?;
                    runtime.block_on(self.get(url))
                })
                .map_err(|err| fail(&format!("cannot start a thread: {err}")))?;
            fetching
                .join()
                .unwrap_or_else(|_| Err(fail("the fetching thread stopped")))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Serves one canned HTTP response per connection on a loopback port.
    fn serve(response: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(response);
            }
        });
        format!("http://{addr}/type.hcl")
    }

    #[test]
    fn fetches_a_body() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        assert_eq!(HttpFetcher::default().fetch(&url).unwrap(), "hello");
    }

    #[test]
    fn reports_the_status() {
        let url =
            serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let err = HttpFetcher::default().fetch(&url).unwrap_err();
        assert!(err.ends_with("status 404"), "{err}");
    }

    #[test]
    fn caps_the_size_declared_or_not() {
        let declared: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789";
        // Without a length the body is refused while it is read.
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n8\r\n01234567\r\n8\r\n89012345\r\n0\r\n\r\n";
        let fetcher = HttpFetcher {
            max_bytes: 10,
            ..HttpFetcher::default()
        };
        for response in [declared, chunked] {
            let err = fetcher.fetch(&serve(response)).unwrap_err();
            assert!(err.contains("larger than 10 bytes"), "{err}");
        }
    }

    #[test]
    fn times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let fetcher = HttpFetcher {
            timeout: Duration::from_millis(200),
            ..HttpFetcher::default()
        };
        let err = fetcher.fetch(&url).unwrap_err();
        drop(listener);
        assert_eq!(
            err,
            format!("failed to fetch \"{url}\": the request timed out")
        );
    }

    #[test]
    fn errors_never_show_the_credentials_of_a_source_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://deploy:s3cr3t-token@{addr}/types.hcl");
        let err = HttpFetcher::default().fetch(&url).unwrap_err();
        assert!(!err.contains("s3cr3t-token"), "{err}");
        assert!(err.contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn refuses_text_that_is_not_utf8() {
        let url =
            serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n\xff\xfe");
        let err = HttpFetcher::default().fetch(&url).unwrap_err();
        assert!(err.ends_with("the body is not UTF-8 text"), "{err}");
    }

    // The server will load pipelines from async code: the synchronous fetch must work there,
    // on both kinds of runtime, without blocking inside the caller's runtime.
    #[tokio::test]
    async fn fetches_from_inside_a_current_thread_runtime() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        assert_eq!(HttpFetcher::default().fetch(&url).unwrap(), "hello");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fetches_from_inside_a_multi_thread_runtime() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        assert_eq!(HttpFetcher::default().fetch(&url).unwrap(), "hello");
    }

    #[tokio::test]
    async fn async_callers_can_await_the_fetch() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        assert_eq!(HttpFetcher::default().get(&url).await.unwrap(), "hello");
    }
}
