//! A headless Chromium driven over WebDriver (chromedriver), for the web UI's browser tests:
//! the few commands they use, over the W3C protocol's JSON.
//!
//! The programs come from `PIKOCI_CHROMEDRIVER` and `PIKOCI_CHROMIUM` (`cargo xtask it ui`
//! installs Debian's `chromium-driver` and `chromium` and sets them); screenshots go to
//! `PIKOCI_SCREENSHOTS`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// How long a lookup waits for what it looks for.
const WAIT: Duration = Duration::from_secs(30);

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn required_env(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: it names {what}; run this suite with `cargo xtask it ui`, which \
             installs Debian's chromium and chromium-driver and sets it"
        )
    })
}

/// A running chromedriver, killed when dropped.
pub(crate) struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub(crate) async fn start() -> Driver {
        let program = required_env("PIKOCI_CHROMEDRIVER", "the chromedriver program");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{program} does not start: {error}"));
        let http = pikoci_http::ClientConfig::new(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && let Ok(body) = response.text().await
                && serde_json::from_str::<Value>(&body)
                    .is_ok_and(|status| status["value"]["ready"] == json!(true))
            {
                return driver;
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver ({program}) did not get ready on port {port} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new browser: headless Chromium with an empty profile, `width` × `height`.
    pub(crate) async fn browser(&self, width: u32, height: u32) -> Browser {
        let chromium = required_env("PIKOCI_CHROMIUM", "the chromium program");
        let profile = tempfile::tempdir().expect("a profile directory");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let value = command(
            &self.http,
            "POST",
            &format!("{}/session", self.base),
            Some(capabilities),
        )
        .await
        .unwrap_or_else(|error| panic!("chromium does not start: {error}"));
        let session = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Browser {
            http: self.http.clone(),
            session: format!("{}/session/{session}", self.base),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver command: its `value`, or the error's message.
async fn command(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let request = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http
            .post(url)
            .header("content-type", "application/json")
            .body(body.unwrap_or_else(|| json!({})).to_string()),
    };
    let response = request
        .send()
        .await
        .map_err(|error| format!("{method} {url}: {error}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| format!("{method} {url}: {error}"))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|error| format!("{method} {url}: {error}: {text}"))?;
    if !status.is_success() {
        return Err(format!(
            "{method} {url}: {status}: {}",
            value["value"]["message"].as_str().unwrap_or(&text)
        ));
    }
    Ok(value["value"].clone())
}

/// A browser session; closed when dropped... by the driver's end (chromedriver kills its
/// browsers when it stops).
pub(crate) struct Browser {
    http: reqwest::Client,
    /// `<driver>/session/<id>`.
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        command(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    /// Opens `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})))
            .await
            .unwrap_or_else(|error| panic!("opening {url}: {error}"));
    }

    /// The current URL.
    pub(crate) async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .expect("the URL")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub(crate) async fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
        .unwrap_or_else(|error| panic!("running a script: {error}\n{script}"))
    }

    /// Waits until `script` returns something truthy; that value.
    pub(crate) async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let value = self.run(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > WAIT {
                let text = self
                    .run(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .await;
                panic!(
                    "waited {WAIT:?} for {what} on {}; the page says:\n{}",
                    self.url().await,
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The element `css` (waiting for it).
    pub(crate) async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            match self
                .call(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await
            {
                Ok(element) => {
                    return element[ELEMENT]
                        .as_str()
                        .unwrap_or_else(|| panic!("no element reference in {element}"))
                        .to_owned();
                }
                Err(error) if started.elapsed() > WAIT => {
                    panic!(
                        "no element {css} on {} after {WAIT:?}: {error}",
                        self.url().await
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(150)).await,
            }
        }
    }

    /// Clicks the element `css`.
    pub(crate) async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/click"), None)
            .await
            .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
    }

    /// Types `text` into the element `css` (after clearing it).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/clear"), None)
            .await
            .unwrap_or_else(|error| panic!("clearing {css}: {error}"));
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await
        .unwrap_or_else(|error| panic!("typing into {css}: {error}"));
    }

    /// Deletes every cookie (logs out for good).
    pub(crate) async fn forget_cookies(&self) {
        self.call("DELETE", "/cookie", None)
            .await
            .expect("deleting cookies");
    }

    /// Saves a screenshot of the page as `<PIKOCI_SCREENSHOTS>/<name>.png`.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(required_env(
            "PIKOCI_SCREENSHOTS",
            "the directory of the screenshots",
        ));
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let png = self
            .call("GET", "/screenshot", None)
            .await
            .expect("a screenshot");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("the screenshot is saved");
        path
    }
}
