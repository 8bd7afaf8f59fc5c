//! For tests of the crates that make requests (the `testing` feature, for dev-dependencies
//! only): a server that never answers, to show that dropping a request closes its connection.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long [`SilentServer::head_after_hang_up`] waits for the client to hang up: far less than
/// the 30-second request timeouts of the clients under test, so a client that holds its
/// connection until the timeout fails the test instead of passing late.
pub const HANG_UP_DEADLINE: Duration = Duration::from_secs(5);

/// A loopback server that accepts one connection, reads its request head and never answers.
#[derive(Debug)]
pub struct SilentServer {
    base_url: String,
    received: Option<tokio::sync::oneshot::Receiver<()>>,
    thread: JoinHandle<(String, bool)>,
}

impl SilentServer {
    /// Listens on a free loopback port.
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let base_url = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("a bound listener has an address")
        );
        let (received, on_receive) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return (String::new(), false);
            };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            // Up to the blank line that ends the request head (or the end of the stream).
            while reader.read_line(&mut head).unwrap_or(0) > 2 {}
            let _ = received.send(());
            // Returns at once when the client hangs up, with an error at the deadline.
            let deadline_set = reader
                .get_ref()
                .set_read_timeout(Some(HANG_UP_DEADLINE))
                .is_ok();
            let hung_up = deadline_set && reader.read_to_end(&mut Vec::new()).is_ok();
            (head, hung_up)
        });
        SilentServer {
            base_url,
            received: Some(on_receive),
            thread,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Waits until a request head has arrived (forever if none comes).
    pub async fn request_received(&mut self) {
        if let Some(received) = self.received.take()
            && received.await.is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// The request head, once the client has closed the connection; an error when the client
    /// still held it open [`HANG_UP_DEADLINE`] after its request arrived.
    pub async fn head_after_hang_up(self) -> Result<String, String> {
        let thread = self.thread;
        let (head, hung_up) =
            tokio::task::spawn_blocking(move || thread.join().expect("the silent server panicked"))
                .await
                .expect("the silent server's join finished");
        if hung_up {
            Ok(head)
        } else {
            Err(format!(
                "the client did not close its connection within {HANG_UP_DEADLINE:?}: {head}"
            ))
        }
    }
}
