//! A small HTTP/1.1 server on loopback for the tests (one request per connection), the
//! `git http-backend` CGI behind it, and a TLS front made by `socat`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::support::{free_port, kill_group, wait_until_listening};

/// A request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// Path and query, as sent.
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The value of a header (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub(crate) fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A server answering every request with `handler`, recording the requests.
pub(crate) struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (handler, requests) = (handler.clone(), requests.clone());
                    std::thread::spawn(move || serve(stream, &*handler, &requests));
                }
            })
        };
        Server {
            addr,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream);
    let Ok(Some(request)) = read_request(&mut reader) else {
        return;
    };
    requests.lock().unwrap().push(request.clone());
    let response = handler(&request);
    let mut stream = reader.into_inner();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response.body);
    let _ = stream.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Status",
    }
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("Content-Length") {
        let length: usize = length.parse().unwrap_or(0);
        request.body = vec![0; length];
        reader.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers (none expected) up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

/// Answers a request with `git http-backend` serving the repositories under `root` (pushes
/// allowed when `user` is set, as for an authenticated user).
pub(crate) fn git_http_backend(root: &Path, request: &Request, user: Option<&str>) -> Response {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let mut env = BTreeMap::from([
        ("GIT_PROJECT_ROOT", root.display().to_string()),
        ("GIT_HTTP_EXPORT_ALL", "1".to_owned()),
        ("REQUEST_METHOD", request.method.clone()),
        ("PATH_INFO", path.to_owned()),
        ("QUERY_STRING", query.to_owned()),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
        ("CONTENT_LENGTH", request.body.len().to_string()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ]);
    for (header, variable) in [
        ("Content-Type", "CONTENT_TYPE"),
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
    ] {
        if let Some(value) = request.header(header) {
            env.insert(variable, value.to_owned());
        }
    }
    if let Some(user) = user {
        env.insert("REMOTE_USER", user.to_owned());
    }
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .envs(&env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let body = request.body.clone();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output().expect("wait for git http-backend");
    let _ = writer.join();
    cgi_response(&output.stdout)
}

/// Turns CGI output (headers, an empty line, the body) into a response.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return Response::json(500, format!("bad CGI output: {output:?}"));
    };
    let mut response = Response {
        status: 200,
        headers: Vec::new(),
        body: output[at + gap..].to_vec(),
    };
    for line in String::from_utf8_lossy(&output[..at]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("Status") {
            response.status = value
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else {
            response.headers.push((name.to_owned(), value.to_owned()));
        }
    }
    response
}

/// A TLS front (`socat`) for a plain server, with a certificate for 127.0.0.1 signed by a
/// throwaway certificate authority.
pub(crate) struct TlsProxy {
    child: Child,
    pub(crate) port: u16,
    /// The certificate authority to trust (`GIT_SSL_CAINFO`, `GitChecks::with_ca_file`).
    pub(crate) ca_file: std::path::PathBuf,
}

impl TlsProxy {
    pub(crate) fn start(dir: &Path, backend_port: u16) -> TlsProxy {
        let file = |name: &str| dir.join(name).display().to_string();
        std::fs::write(
            file("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let (ca_key, ca, key, csr, cert) = (
            file("ca.key"),
            file("ca.pem"),
            file("key.pem"),
            file("leaf.csr"),
            file("cert.pem"),
        );
        let new_key = ["-newkey", "rsa:2048", "-nodes", "-keyout"];
        let ca_subject = ["-days", "2", "-subj", "/CN=pikoci test CA", "-out", &ca];
        openssl(&[&["req", "-x509"][..], &new_key, &[&ca_key], &ca_subject]);
        openssl(&[
            &["req"][..],
            &new_key,
            &[&key, "-subj", "/CN=127.0.0.1", "-out", &csr],
        ]);
        openssl(&[
            &["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key][..],
            &[
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &file("leaf.ext"),
            ],
            &["-out", &cert],
        ]);
        let pem = [
            std::fs::read(file("key.pem")).unwrap(),
            std::fs::read(file("cert.pem")).unwrap(),
        ]
        .concat();
        std::fs::write(file("server.pem"), pem).unwrap();
        let port = free_port();
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={}",
                file("server.pem")
            ))
            .arg(format!("TCP:127.0.0.1:{backend_port}"))
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the https tests need socat (apt-get install socat)");
        let mut proxy = TlsProxy {
            child,
            port,
            ca_file: dir.join("ca.pem"),
        };
        wait_until_listening(port, &mut proxy.child, "socat");
        proxy
    }
}

/// Runs openssl with the concatenation of `args`.
fn openssl(args: &[&[&str]]) {
    let args = args.concat();
    let output = Command::new("openssl")
        .args(&args)
        .output()
        .expect("the https tests need the openssl command (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
