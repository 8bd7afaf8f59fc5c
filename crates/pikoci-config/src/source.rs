//! Fetching `http(s)://` sources of type definitions.

use std::io::Read;
use std::time::Duration;

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

impl SourceFetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<String, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .get(url)
            .call()
            .map_err(|err| format!("failed to fetch \"{url}\": {err}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "failed to fetch \"{url}\": status {}",
                status.as_u16()
            ));
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(self.max_bytes + 1)
            .read_to_end(&mut body)
            .map_err(|err| format!("failed to fetch \"{url}\": {err}"))?;
        if body.len() as u64 > self.max_bytes {
            return Err(format!(
                "failed to fetch \"{url}\": the body is larger than {} bytes",
                self.max_bytes
            ));
        }
        String::from_utf8(body)
            .map_err(|_| format!("failed to fetch \"{url}\": the body is not UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
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
    fn caps_the_size() {
        let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789");
        let fetcher = HttpFetcher {
            max_bytes: 10,
            ..HttpFetcher::default()
        };
        let err = fetcher.fetch(&url).unwrap_err();
        assert!(err.contains("larger than 10 bytes"), "{err}");
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
        assert!(err.starts_with("failed to fetch"), "{err}");
    }
}
