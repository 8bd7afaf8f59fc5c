use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// A loopback server answering the n-th connection with `answers[n]` (then closing), and
/// recording each request's head.
struct Canned {
    base: String,
    heads: Arc<Mutex<Vec<String>>>,
}

fn serve(answers: Vec<String>) -> Canned {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let record = heads.clone();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            record.lock().unwrap().push(head);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    Canned { base, heads }
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn redirect(to: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn client(redirects: Redirects) -> reqwest::Client {
    ClientConfig::new(std::time::Duration::from_secs(10))
        .with_redirects(redirects)
        .build()
        .unwrap()
}

#[tokio::test]
async fn requests_carry_the_pikoci_user_agent() {
    let server = serve(vec![ok("hi")]);
    let response = client(Redirects::Any)
        .get(&server.base)
        .send()
        .await
        .unwrap();
    assert_eq!(read_capped(response, 10).await.unwrap(), b"hi");
    let heads = server.heads.lock().unwrap();
    let head = heads[0].to_ascii_lowercase();
    assert!(
        head.contains(&format!("user-agent: {}", USER_AGENT.to_ascii_lowercase())),
        "{head}"
    );
    assert!(USER_AGENT.starts_with("pikoci/"), "{USER_AGENT}");
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_while_streaming() {
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                   6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n"
        .to_owned();
    let server = serve(vec![chunked.clone(), chunked, ok("0123456789")]);
    let get = || client(Redirects::Any).get(&server.base).send();
    let error = read_capped(get().await.unwrap(), 10).await.unwrap_err();
    assert_eq!(error.to_string(), "the body is larger than 10 bytes");
    assert_eq!(
        read_capped(get().await.unwrap(), 12).await.unwrap(),
        b"012345678901"
    );
    // Exactly the cap is fine; the declared length is checked before reading.
    assert_eq!(
        read_capped(get().await.unwrap(), 10).await.unwrap(),
        b"0123456789"
    );
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_reading() {
    let server = serve(vec![ok("0123456789")]);
    let response = client(Redirects::Any)
        .get(&server.base)
        .send()
        .await
        .unwrap();
    let error = read_capped(response, 9).await.unwrap_err();
    assert!(
        matches!(error, BodyError::TooLarge { max_bytes: 9 }),
        "{error}"
    );
}

#[tokio::test]
async fn same_origin_clients_do_not_follow_redirects_to_other_servers() {
    let elsewhere = serve(vec![ok("elsewhere"), ok("elsewhere")]);
    let target = format!("{}/page", elsewhere.base);
    let server = serve(vec![
        redirect(&target),
        redirect(&target),
        redirect("/same"),
        ok("same"),
    ]);

    let response = client(Redirects::SameOrigin)
        .get(&server.base)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert!(elsewhere.heads.lock().unwrap().is_empty());

    let response = client(Redirects::Any)
        .get(&server.base)
        .send()
        .await
        .unwrap();
    assert_eq!(read_capped(response, 100).await.unwrap(), b"elsewhere");

    let response = client(Redirects::SameOrigin)
        .get(&server.base)
        .send()
        .await
        .unwrap();
    assert_eq!(read_capped(response, 100).await.unwrap(), b"same");
    assert!(server.heads.lock().unwrap()[3].starts_with("GET /same "));
}

#[tokio::test]
async fn redirects_to_other_servers_carry_no_referer() {
    let elsewhere = serve(vec![ok("elsewhere")]);
    let server = serve(vec![redirect(&format!("{}/page", elsewhere.base))]);
    let response = client(Redirects::Any)
        .get(format!("{}/source?token=s3cret", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(read_capped(response, 100).await.unwrap(), b"elsewhere");
    let heads = elsewhere.heads.lock().unwrap();
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /page "), "{head}");
    assert!(!head.contains("referer"), "{head}");
}

#[tokio::test]
async fn errors_are_one_line_without_the_url() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    drop(listener);
    let error = client(Redirects::Any).get(&url).send().await.unwrap_err();
    let text = describe(&error);
    assert!(text.starts_with("error sending request"), "{text}");
    assert!(!text.contains(&url), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn ca_files_without_certificates_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let error = CaCertificates::from_pem_file(&path)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("no PEM certificates found in"), "{error}");
    let missing = CaCertificates::from_pem_file(&dir.path().join("missing.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("cannot read the certificates in"),
        "{missing}"
    );
}

#[test]
fn clients_build_for_both_kinds_of_roots() {
    let config = ClientConfig::new(std::time::Duration::from_secs(1));
    assert_eq!(config.connect_timeout, std::time::Duration::from_secs(1));
    assert_eq!(
        ClientConfig::new(std::time::Duration::from_secs(60)).connect_timeout,
        std::time::Duration::from_secs(10)
    );
    config.build().unwrap();
}

#[test]
fn secret_headers_are_sensitive_and_refuse_line_breaks() {
    let header = secret_header("s3cret").unwrap();
    assert!(header.is_sensitive());
    assert_eq!(header.to_str().unwrap(), "s3cret");
    assert!(!format!("{header:?}").contains("s3cret"), "{header:?}");
    assert!(secret_header("s3cret\nX-Other: 1").is_err());
}

#[tokio::test]
async fn failed_requests_are_unavailable_or_timed_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    drop(listener);
    let refused = client(Redirects::Any).get(&url).send().await.unwrap_err();
    assert_eq!(error_kind(&refused), pikoci_core::ErrorKind::Unavailable);

    // Accepts (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", silent.local_addr().unwrap());
    let slow = ClientConfig::new(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let timed_out = slow.get(&url).send().await.unwrap_err();
    assert_eq!(error_kind(&timed_out), pikoci_core::ErrorKind::Timeout);
    drop(silent);
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn the_silent_server_sees_hang_ups_and_held_connections() {
    use crate::testing::SilentServer;

    let request = b"GET /x HTTP/1.1\r\nHost: here\r\n\r\n";
    let mut server = SilentServer::start();
    let mut stream = std::net::TcpStream::connect(&server.base_url()[7..]).unwrap();
    stream.write_all(request).unwrap();
    server.request_received().await;
    drop(stream);
    let head = server.head_after_hang_up().await.unwrap();
    assert!(head.starts_with("GET /x "), "{head}");

    let mut server = SilentServer::start();
    let mut stream = std::net::TcpStream::connect(&server.base_url()[7..]).unwrap();
    stream.write_all(request).unwrap();
    server.request_received().await;
    let error = server.head_after_hang_up().await.unwrap_err();
    assert!(error.starts_with("the client did not close"), "{error}");
    drop(stream);
}
