//! A build followed live: `GET …/builds/{bn}/events` (Server-Sent Events), reconnecting with
//! `Last-Event-ID` when the connection drops, so that no log line is missed or repeated.

use std::time::{Duration, Instant};

use pikoci_http::reqwest::{self, Method, header};
use serde_json::Value;

use crate::model::{Build, LogChunk};
use crate::{Client, ClientError, api_error};

/// The server sends a comment every 15 s while nothing happens: a connection silent for this
/// long is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// How long reconnecting is tried before giving up.
const RECONNECT_FOR: Duration = Duration::from_secs(300);

/// The most bytes held without a complete event: a peer that never ends one is not the API.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One event of a followed build.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// The build as it is now (sent first, then on every change).
    Status(Box<Build>),
    /// Output of a step.
    Log(LogChunk),
    /// The build finished with this status and every line was sent; the stream is over.
    End {
        /// The build's final status.
        status: String,
    },
}

/// The events of one build, in order.
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    path: String,
    /// The id of the last event with one: where a reconnection resumes.
    last_id: Option<String>,
    response: Option<reqwest::Response>,
    /// Bytes received and not yet parsed into events.
    buffer: Vec<u8>,
    ended: bool,
    /// Reconnections in a row since the last event.
    failures: u32,
    /// When the connection was first lost, while reconnecting.
    lost_since: Option<Instant>,
    /// A connection has answered with a stream: later failures are reconnected, not
    /// reported.
    connected_once: bool,
    /// The current connection gave an event.
    heard: bool,
}

impl EventStream {
    pub(crate) fn new(client: Client, path: String) -> EventStream {
        EventStream {
            client,
            path,
            last_id: None,
            response: None,
            buffer: Vec::new(),
            ended: false,
            failures: 0,
            lost_since: None,
            connected_once: false,
            heard: false,
        }
    }

    /// The next event, `None` after `End`. The first connection failing is an error at once;
    /// after that, a connection that drops or goes silent is made again, for up to 5 minutes
    /// in a row. An error when the server refuses the stream (the build does not exist), or
    /// answers with something that is not one.
    pub async fn next(&mut self) -> Result<Option<BuildEvent>, ClientError> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if let Some(event) = self.parse_one()? {
                self.heard = true;
                self.failures = 0;
                self.lost_since = None;
                return Ok(Some(event));
            }
            if self.buffer.len() > MAX_EVENT_BYTES {
                return Err(ClientError::Unexpected {
                    status: None,
                    detail: format!("{MAX_EVENT_BYTES} bytes of a stream without a whole event"),
                });
            }
            let Some(response) = self.response.as_mut() else {
                self.connect().await?;
                continue;
            };
            match tokio::time::timeout(IDLE_TIMEOUT, response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                // The end of the body, an error or silence: the connection is gone.
                Ok(Ok(None) | Err(_)) | Err(_) => self.lose(),
            }
        }
    }

    /// Whether the connection was lost and is being made again (for a "reconnecting" note).
    pub fn reconnecting(&self) -> bool {
        self.lost_since.is_some()
    }

    /// Forgets the connection (and any half-received event: the server sends it again). A
    /// connection that gave no event counts as a failed one, so that a peer answering and
    /// hanging up at once is retried with pauses, not in a tight loop.
    fn lose(&mut self) {
        self.response = None;
        self.buffer.clear();
        if !self.heard {
            self.failures += 1;
        }
        self.lost_since.get_or_insert_with(Instant::now);
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        loop {
            if let Some(lost_since) = self.lost_since
                && lost_since.elapsed() > RECONNECT_FOR
            {
                return Err(ClientError::Unreachable {
                    server: self.client.server.clone(),
                    reason: format!(
                        "the build's stream was lost and could not be made again within {} s",
                        RECONNECT_FOR.as_secs()
                    ),
                });
            }
            if self.failures > 0 {
                let pause = Duration::from_millis(500 * u64::from(self.failures.min(10)));
                tokio::time::sleep(pause).await;
            }
            let mut request = self
                .client
                .request(&self.client.streams, Method::GET, &self.path)?
                .header(header::ACCEPT, "text/event-stream");
            if let Some(id) = &self.last_id {
                request = request.header("Last-Event-ID", id);
            }
            let error = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let stream = response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|value| value.to_str().ok())
                        .is_some_and(|value| value.starts_with("text/event-stream"));
                    if !stream {
                        return Err(ClientError::Unexpected {
                            status: Some(response.status().as_u16()),
                            detail: "an answer that is not an event stream".to_owned(),
                        });
                    }
                    self.response = Some(response);
                    self.connected_once = true;
                    self.heard = false;
                    return Ok(());
                }
                Ok(response) => {
                    self.client.refuse_redirect(&response)?;
                    let status = response.status();
                    let bytes = self.client.body(response).await.unwrap_or_default();
                    api_error(status, &bytes)
                }
                Err(error) => self.client.unreachable(&error),
            };
            if !self.connected_once || !error.is_unavailable() {
                return Err(error);
            }
            self.failures += 1;
        }
    }

    /// Parses the first complete event of the buffer, skipping comments and events of no
    /// interest; `None` when no complete event is there.
    fn parse_one(&mut self) -> Result<Option<BuildEvent>, ClientError> {
        loop {
            let Some(end) = find_event_end(&self.buffer) else {
                return Ok(None);
            };
            let raw: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&raw[..end.0]);
            let mut name = "message";
            let mut data = String::new();
            for line in text.lines() {
                let (field, value) = match line.split_once(':') {
                    Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                    None => (line, ""),
                };
                match field {
                    "event" => name = value,
                    "data" => {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(value);
                    }
                    // An empty id resets it (the Server-Sent Events format).
                    "id" => self.last_id = Some(value.to_owned()).filter(|id| !id.is_empty()),
                    _ => {}
                }
            }
            let event = match name {
                "status" => BuildEvent::Status(Box::new(parse(&data)?)),
                "log" => BuildEvent::Log(parse(&data)?),
                "end" => {
                    self.ended = true;
                    let end: Value = parse(&data)?;
                    BuildEvent::End {
                        status: end["status"].as_str().unwrap_or("unknown").to_owned(),
                    }
                }
                "error" => {
                    self.ended = true;
                    let error: Value = parse(&data)?;
                    return Err(ClientError::Api {
                        status: 404,
                        code: error["code"].as_str().unwrap_or("unknown").to_owned(),
                        message: error["message"]
                            .as_str()
                            .unwrap_or("the build's stream ended with an error")
                            .to_owned(),
                        details: None,
                    });
                }
                // A comment (keep-alive) or an event this client does not know.
                _ => continue,
            };
            return Ok(Some(event));
        }
    }
}

/// Where the first event of `buffer` ends: its length and the length of the blank line after
/// it.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| (at, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, ClientError> {
    serde_json::from_str(data).map_err(|error| ClientError::Unexpected {
        status: None,
        detail: format!("an event that is not the API's: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stream(bytes: &str) -> EventStream {
        let client = Client::new("http://127.0.0.1:9", None).await.unwrap();
        let mut stream = EventStream::new(client, "/x".to_owned());
        stream.buffer = bytes.as_bytes().to_vec();
        stream
    }

    #[tokio::test]
    async fn events_are_parsed_with_their_ids_and_comments_skipped() {
        let mut stream = stream(concat!(
            ": keep-alive\n\n",
            "event: log\nid: 7/1.0.1\ndata: {\"attempt\":1,\"step\":0,\"seq\":0,\"text\":\"hi\\n\"}\n\n",
            "event: end\r\ndata: {\"status\":\"succeeded\"}\r\n\r\n",
            "event: log\ndata: {\"attempt\":1,\"st"
        ))
        .await;
        let Some(BuildEvent::Log(chunk)) = stream.parse_one().unwrap() else {
            panic!("a log event");
        };
        assert_eq!(chunk.text, "hi\n");
        assert_eq!(stream.last_id.as_deref(), Some("7/1.0.1"));
        // An empty id resets it (a reconnection would start over); the event without a name
        // this client knows is skipped.
        stream.buffer.splice(0..0, b": x\nid:\n\n".iter().copied());
        let Some(BuildEvent::End { status }) = stream.parse_one().unwrap() else {
            panic!("the end");
        };
        assert_eq!(stream.last_id, None);
        assert_eq!(status, "succeeded");
        assert!(stream.ended);
        // An incomplete event waits for more bytes.
        assert!(stream.parse_one().unwrap().is_none());
    }

    /// Reads a request's head from `socket`.
    async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut head = Vec::new();
        let mut byte = [0; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).to_lowercase()
    }

    #[tokio::test]
    async fn a_dropped_stream_resumes_after_the_last_event() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            // The first connection sends one event, then drops.
            let (mut socket, _) = listener.accept().await.unwrap();
            let first = read_head(&mut socket).await;
            socket
                .write_all(
                    concat!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
                        "event: log\nid: 7/1.0.1\n",
                        "data: {\"attempt\":1,\"step\":0,\"seq\":0,\"text\":\"one\\n\"}\n\n",
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
            drop(socket);
            // The second one is asked to resume after it, and ends the stream.
            let (mut socket, _) = listener.accept().await.unwrap();
            let second = read_head(&mut socket).await;
            socket
                .write_all(
                    concat!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
                        "event: log\nid: 7/1.0.2\n",
                        "data: {\"attempt\":1,\"step\":0,\"seq\":1,\"text\":\"two\\n\"}\n\n",
                        "event: end\ndata: {\"status\":\"succeeded\"}\n\n",
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
            (first, second)
        });
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None)
            .await
            .unwrap();
        let mut events = client.events("/teams/main/pipelines/p/jobs/j/builds/1");
        let mut texts = Vec::new();
        let status = loop {
            match events.next().await.unwrap() {
                Some(BuildEvent::Log(chunk)) => texts.push(chunk.text),
                Some(BuildEvent::End { status }) => break status,
                Some(BuildEvent::Status(_)) => {}
                None => panic!("the stream ended before its end event"),
            }
        };
        assert_eq!(texts, ["one\n", "two\n"]);
        assert_eq!(status, "succeeded");
        assert!(events.next().await.unwrap().is_none());
        let (first, second) = server.await.unwrap();
        assert!(first.starts_with("get /api/v1/teams/main/pipelines/p/jobs/j/builds/1/events "));
        assert!(!first.contains("last-event-id"), "{first}");
        assert!(second.contains("last-event-id: 7/1.0.1\r\n"), "{second}");
    }

    #[tokio::test]
    async fn a_stream_that_never_connected_fails_at_once() {
        // A port nobody listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None)
            .await
            .unwrap();
        let started = Instant::now();
        let error = client.events("/x").next().await.unwrap_err();
        assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_error_event_is_an_error() {
        let mut stream = stream(
            "event: error\ndata: {\"code\":\"not_found\",\"message\":\"build 3 was deleted\"}\n\n",
        )
        .await;
        let error = stream.parse_one().unwrap_err();
        assert_eq!(error.to_string(), "build 3 was deleted");
    }
}
