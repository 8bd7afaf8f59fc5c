//! For tests of the crates that make requests (the `testing` feature, for dev-dependencies
//! only): a server that never answers, to show that dropping a request closes its connection.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// A loopback server that accepts one connection, reads its request head and never answers.
#[derive(Debug)]
pub struct SilentServer {
    base_url: String,
    received: Option<tokio::sync::oneshot::Receiver<()>>,
    thread: JoinHandle<String>,
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
                return String::new();
            };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            // Up to the blank line that ends the request head (or the end of the stream).
            while reader.read_line(&mut head).unwrap_or(0) > 2 {}
            let _ = received.send(());
            // Returns when the client hangs up.
            let _ = reader.read_to_end(&mut Vec::new());
            head
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

    /// The request head, once the client has closed the connection.
    pub async fn head_after_hang_up(self) -> String {
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().expect("the silent server panicked"))
            .await
            .expect("the silent server's join finished")
    }
}
