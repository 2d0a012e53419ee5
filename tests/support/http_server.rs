//! A loopback HTTP/1.1 file server for download tests (127.0.0.1, port 0, one connection at a
//! time, `Connection: close`). It serves a folder, honours `Range: bytes=N-`, can cut a
//! response off after N body bytes (the socket is really closed), add headers, redirect, act
//! as an HTTP `CONNECT` proxy for itself, and logs every request with the body bytes it sent. Shared by the unit tests of
//! `catalog::download` and `tests/models.rs`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The request path.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
}

/// What the server does beyond serving files; change it while the server runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Path → body bytes after which the next response for that path is cut off (one-shot).
    pub cut_after: HashMap<String, u64>,
    /// Path → extra response headers.
    pub headers: HashMap<String, Vec<(String, String)>>,
    /// Path → (target path, extra headers of the redirect response): answered with 302.
    pub redirects: HashMap<String, (String, Vec<(String, String)>)>,
    /// Ignore `Range` (always answer 200 with the whole file).
    pub ignore_range: bool,
}

/// The running server; stopped when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT/`
    pub base: String,
    /// Every request so far.
    pub log: Arc<Mutex<Vec<Logged>>>,
    /// Behaviour, changeable between requests.
    pub behaviour: Arc<Mutex<Behaviour>>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `root` on a fresh loopback port.
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(vec![]));
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (root, log, behaviour, stop) = (
                root.to_path_buf(),
                log.clone(),
                behaviour.clone(),
                stop.clone(),
            );
            std::thread::Builder::new()
                .name("test-http".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Ok(s) = stream {
                            handle(s, &root, &log, &behaviour);
                        }
                    }
                })
                .unwrap()
        };
        Server {
            base: format!("http://127.0.0.1:{port}/"),
            log,
            behaviour,
            stop,
            port,
            thread: Some(thread),
        }
    }

    /// Body bytes sent so far for paths ending in `suffix`.
    pub fn bytes_served(&self, suffix: &str) -> u64 {
        self.requests(suffix).iter().map(|l| l.body_bytes).sum()
    }

    /// The requests so far for paths ending in `suffix`.
    pub fn requests(&self, suffix: &str) -> Vec<Logged> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request line and headers: (method, path without query, lower-case headers).
fn read_head(
    reader: &mut BufReader<TcpStream>,
) -> Option<(String, String, HashMap<String, String>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut headers: HashMap<String, String> = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some((method.to_string(), path, headers))
}

fn handle(
    mut stream: TcpStream,
    root: &Path,
    log: &Mutex<Vec<Logged>>,
    behaviour: &Mutex<Behaviour>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let Some((mut method, mut path, mut headers)) = read_head(&mut reader) else {
        return;
    };
    if method == "CONNECT" {
        // Acting as an HTTP proxy too: open the tunnel, then serve the tunnelled request.
        log.lock().unwrap().push(Logged {
            path: format!("CONNECT {path}"),
            range: None,
            status: 200,
            body_bytes: 0,
        });
        if stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
        let Some(next) = read_head(&mut reader) else {
            return;
        };
        (method, path, headers) = next;
    }
    let method = method.as_str();
    let range = headers.get("range").cloned();
    let mut b = behaviour.lock().unwrap();
    let mut entry = Logged {
        path: path.clone(),
        range: range.clone(),
        status: 0,
        body_bytes: 0,
    };
    if let Some((to, extra)) = b.redirects.get(&path).cloned() {
        drop(b);
        entry.status = 302;
        let mut head = format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n");
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes());
        log.lock().unwrap().push(entry);
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let file: PathBuf = root.join(path.trim_start_matches('/'));
    let data = if method == "GET" {
        std::fs::read(&file).ok()
    } else {
        None
    };
    let Some(data) = data else {
        drop(b);
        entry.status = 404;
        let _ = stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        );
        log.lock().unwrap().push(entry);
        let _ = stream.shutdown(Shutdown::Both);
        return;
    };
    let len = data.len() as u64;
    let start = range
        .as_deref()
        .filter(|_| !b.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(s, _)| s.parse::<u64>().ok());
    let mut head;
    let body: &[u8];
    match start {
        Some(s) if s >= len => {
            entry.status = 416;
            head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"
            );
            body = &[];
        }
        Some(s) => {
            entry.status = 206;
            head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
                len - 1,
                len - s
            );
            body = &data[s as usize..];
        }
        None => {
            entry.status = 200;
            head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n");
            body = &data;
        }
    }
    for (k, v) in b.headers.get(&path).cloned().unwrap_or_default() {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let cut = b.cut_after.remove(&path);
    drop(b);
    let send = cut.map_or(body.len(), |c| (c as usize).min(body.len()));
    let mut ok = stream.write_all(head.as_bytes()).is_ok();
    if ok {
        ok = stream.write_all(&body[..send]).is_ok();
    }
    entry.body_bytes = if ok { send as u64 } else { 0 };
    let _ = stream.flush();
    log.lock().unwrap().push(entry);
    // Closing both halves: a cut-off response really ends the connection mid-body.
    let _ = stream.shutdown(Shutdown::Both);
}
