//! Configuration and path rules, and the KV fallbacks against a canned HTTP server. The real
//! server is tested by `tests/vault.rs` (`cargo xtask it secrets`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use pikoci_core::{Origin, SecretType};
use pikoci_http::testing::SilentServer;

use super::*;

fn request(path: &str, config: &[(&str, &str)]) -> SecretRequest {
    SecretRequest {
        secret_type: "vault".to_owned(),
        definition: Some(SecretType {
            name: "vault".to_owned(),
            origin: Origin::Builtin,
            params: Vec::new(),
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            get: None,
            runner_override: None,
        }),
        path: path.to_owned(),
        keys: vec!["password".to_owned()],
    }
}

fn env(pairs: &'static [(&'static str, &'static str)]) -> EnvLookup {
    Arc::new(move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn mounts_come_from_the_config_or_the_first_segment() {
    let split = |mount, path| super::split(mount, path);
    assert_eq!(
        split(None, "secret/ci/db"),
        ("secret".into(), "ci/db".into())
    );
    assert_eq!(split(None, "secret"), ("secret".into(), String::new()));
    assert_eq!(
        split(Some("team/kv"), "team/kv/ci/db"),
        ("team/kv".into(), "ci/db".into())
    );
    assert_eq!(
        split(Some("team/kv"), "ci/db"),
        ("team/kv".into(), "ci/db".into())
    );
    // A mount that is only a prefix of the first segment is not stripped.
    assert_eq!(
        split(Some("team"), "teams/x"),
        ("team".into(), "teams/x".into())
    );
}

#[test]
fn settings_fall_back_to_the_environment_and_say_what_is_missing() {
    let source = VaultSource::new(env(&[]));
    let error = |config: &[(&str, &str)]| match source.settings(&request("secret/x", config)) {
        Ok(_) => panic!("expected an error for {config:?}"),
        Err(error) => error.to_string(),
    };
    assert_eq!(
        error(&[]),
        "secret type \"vault\" needs an address: set address, or the VAULT_ADDR environment variable"
    );
    assert_eq!(
        error(&[("address", "http://v")]),
        "secret type \"vault\" needs a token: set token, or the VAULT_TOKEN environment variable"
    );
    assert_eq!(
        error(&[
            ("address", "http://v"),
            ("auth_method", "approle"),
            ("role_id", "r")
        ]),
        "secret type \"vault\" needs secret_id for auth_method \"approle\""
    );
    assert!(
        error(&[("address", "a"), ("token", "t"), ("kv_version", "3")])
            .contains("kv_version \"3\"")
    );
    assert!(error(&[("address", "a"), ("auth_method", "ldap")]).contains("auth_method \"ldap\""));
    let source = VaultSource::new(env(&[
        ("VAULT_ADDR", "http://env:8200"),
        ("VAULT_TOKEN", "t"),
    ]));
    let settings = source.settings(&request("secret/x", &[])).unwrap();
    assert_eq!(settings.address, "http://env:8200");
    assert!(matches!(settings.auth, Auth::Token(ref t) if t.expose() == "t"));
    // The config wins over the environment.
    let settings = source
        .settings(&request(
            "secret/x",
            &[("address", "http://cfg"), ("mount", "/kv/")],
        ))
        .unwrap();
    assert_eq!(settings.address, "http://cfg");
    assert_eq!(settings.mount.as_deref(), Some("kv"));
}

/// A loopback HTTP server answering by path; records the requested paths and token headers.
struct Canned {
    address: String,
    seen: Arc<Mutex<Vec<String>>>,
}

fn serve(routes: BTreeMap<&'static str, (u16, &'static str)>) -> Canned {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let mut token = String::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("x-vault-token:") {
                    token = value.trim().to_owned();
                }
                if header.trim().is_empty() {
                    break;
                }
            }
            record.lock().unwrap().push(format!("{path} token={token}"));
            let (status, body) = routes
                .get(path.as_str())
                .copied()
                .unwrap_or((404, "{\"errors\":[]}"));
            // A 307 redirects to its "body", as an HA standby redirects to the active node.
            let (location, body) = match status {
                307 => (format!("Location: {body}\r\n"), ""),
                _ => (String::new(), body),
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\n{location}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).unwrap();
        }
    });
    Canned { address, seen }
}

async fn fetch(
    canned: &Canned,
    path: &str,
    config: &[(&str, &str)],
) -> Result<BTreeMap<String, String>, SecretError> {
    let mut config = config.to_vec();
    config.push(("address", &canned.address));
    let source = VaultSource::new(env(&[("VAULT_TOKEN", "tok-42")]));
    let values = source.fetch(&request(path, &config)).await?;
    Ok(values
        .into_iter()
        .map(|(k, v)| (k, v.value.into_exposed()))
        .collect())
}

#[tokio::test]
async fn without_mount_information_version_2_is_tried_then_version_1() {
    let canned = serve(BTreeMap::from([
        (
            "/v1/sys/internal/ui/mounts/kv/ci/db",
            (403, "{\"errors\":[\"permission denied\"]}"),
        ),
        (
            "/v1/kv/ci/db",
            (200, "{\"data\":{\"password\":\"p1\",\"port\":5432}}"),
        ),
    ]));
    let values = fetch(&canned, "kv/ci/db", &[]).await.unwrap();
    assert_eq!(values.get("password").map(String::as_str), Some("p1"));
    assert_eq!(values.get("port").map(String::as_str), Some("5432"));
    assert_eq!(
        *canned.seen.lock().unwrap(),
        vec![
            "/v1/sys/internal/ui/mounts/kv/ci/db token=tok-42",
            "/v1/kv/data/ci/db token=tok-42",
            "/v1/kv/ci/db token=tok-42",
        ]
    );
}

#[tokio::test]
async fn the_shape_of_a_version_2_answer_is_recognised() {
    let canned = serve(BTreeMap::from([(
        "/v1/secret/data/ci/db",
        (
            200,
            "{\"data\":{\"data\":{\"password\":\"p2\"},\"metadata\":{\"version\":1}}}",
        ),
    )]));
    let values = fetch(&canned, "secret/data/ci/db", &[]).await.unwrap();
    assert_eq!(values.get("password").map(String::as_str), Some("p2"));
    let values = fetch(&canned, "secret/ci/db", &[("kv_version", "2")])
        .await
        .unwrap();
    assert_eq!(values.get("password").map(String::as_str), Some("p2"));
}

#[tokio::test]
async fn refusals_and_missing_secrets_are_told_apart() {
    let canned = serve(BTreeMap::from([(
        "/v1/secret/data/denied",
        (
            403,
            "{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\\n\"]}",
        ),
    )]));
    let error = fetch(&canned, "secret/denied", &[("kv_version", "2")])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(
        error
            .to_string()
            .contains("HTTP 403: 1 error occurred: * permission denied"),
        "{error}"
    );
    assert!(!error.to_string().contains("tok-42"), "{error}");
    let error = fetch(&canned, "secret/missing", &[("kv_version", "2")])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(error.to_string(), "no secret at secret/missing (HTTP 404)");
}

#[tokio::test]
async fn redirects_to_another_server_are_not_followed() {
    let active = serve(BTreeMap::from([(
        "/v1/secret/data/db",
        (200, "{\"data\":{\"data\":{\"password\":\"p\"}}}"),
    )]));
    let target = format!("{}/v1/secret/data/db", active.address);
    let standby = serve(BTreeMap::from([(
        "/v1/secret/data/db",
        (307, Box::leak(target.into_boxed_str()) as &'static str),
    )]));
    let error = fetch(&standby, "secret/db", &[("kv_version", "2")])
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Vault failed to read secret/db (HTTP 307)"
    );
    assert!(active.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let source = VaultSource::new(env(&[("VAULT_TOKEN", "tok-42")]));
    let error = source
        .fetch(&request("secret/x", &[("address", &address)]))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(
        error.to_string(),
        format!("cannot reach Vault at {address}")
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_timeout() {
    let server = SilentServer::start();
    let client = Client::new(server.base_url(), None, Duration::from_millis(200)).unwrap();
    let error = client.get("secret/data/x").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(
        error.to_string(),
        format!("Vault at {} did not answer in time", server.base_url())
    );
}

#[tokio::test]
async fn dropping_a_fetch_closes_its_connection() {
    let mut server = SilentServer::start();
    let source = VaultSource::new(env(&[("VAULT_TOKEN", "tok-42")]));
    let request = request(
        "secret/x",
        &[("address", server.base_url()), ("kv_version", "2")],
    );
    tokio::select! {
        result = source.fetch(&request) => panic!("an unanswered request finished: {result:?}"),
        () = server.request_received() => {}
    }
    // The fetch was dropped with the select: its connection is closed now, not when the
    // 30-second request timeout would have ended a blocking request.
    let head = server.head_after_hang_up().await.unwrap();
    assert!(head.starts_with("GET /v1/secret/data/x "), "{head}");
}

#[test]
fn debug_output_never_shows_tokens_or_secret_data() {
    const SECRET: &str = "s.very-secret-token";
    let answer = client::Answer {
        status: 200,
        body: serde_json::json!({"auth": {"client_token": SECRET}, "data": {"password": SECRET}}),
    };
    let mut client = Client::new("https://vault.example", None, Duration::from_secs(1)).unwrap();
    client.set_token(Secret::new(SECRET));
    let env: EnvLookup = Arc::new(|name| (name == "VAULT_TOKEN").then(|| SECRET.to_owned()));
    let source = VaultSource::new(env);
    let request = request(
        SECRET,
        &[
            ("token", SECRET),
            ("role_id", SECRET),
            ("secret_id", SECRET),
        ],
    );
    for text in [
        format!("{answer:?}"),
        format!("{client:?}"),
        format!("{source:?}"),
        format!("{request:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
    }
}
