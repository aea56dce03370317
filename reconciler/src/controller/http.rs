//! The controller's HTTP endpoint: `/healthz`, `/readyz`, `/metrics` (Prometheus text) and
//! `/hook`, the webhook receiver.
//!
//! A deliberately small HTTP/1.1 server on std: one request per connection, headers bounded
//! to [`MAX_HEADER`] bytes, bodies to the configured limit (413 beyond it), a read timeout so
//! a slow client cannot hold it. Webhooks are authenticated before anything else happens:
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - GitLab: `X-Gitlab-Token: <the secret>`;
//! - generic: `X-Ward-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! All comparisons are constant-time. An accepted hook only wakes the controller (202); what
//! it reconciles is always the configured repository and ref, never anything in the body.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The largest request head (request line and headers) accepted.
pub const MAX_HEADER: usize = 16 * 1024;

/// What the server needs from the controller.
pub struct Shared {
    /// Whether the controller has connected and is working (`/readyz`).
    pub ready: AtomicBool,
    /// The metrics text, rendered on request.
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
    /// Wakes the controller.
    pub wake: std::sync::Mutex<Sender<super::Trigger>>,
    /// The webhook secret; without one, `/hook` answers 404.
    pub secret: Option<Vec<u8>>,
    /// The largest webhook body accepted.
    pub max_body: usize,
    /// Counts hooks by outcome (accepted, unauthorized, too_large, bad_request).
    pub hooks: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// Serves `listener` until `stop` is set (checked between connections).
pub fn serve(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).ok();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = handle(stream, &shared);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                tracing::warn!("http: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum ReadError {
    TooLarge,
    Bad,
}

fn handle(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = stream.try_clone()?;
    let (status, body) = match read_request(stream, shared.max_body) {
        Err(ReadError::TooLarge) => {
            count(shared, "too_large");
            (413, "request too large\n".to_owned())
        }
        Err(ReadError::Bad) => (400, "bad request\n".to_owned()),
        Ok(req) => route(&req, shared),
    };
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Service Unavailable",
    };
    let content_type = if body.starts_with("# HELP") {
        "text/plain; version=0.0.4"
    } else {
        "text/plain; charset=utf-8"
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()?;
    // A refused body may still be arriving: read a bounded amount of it, so closing does not
    // reset the connection before the client has read the answer.
    out.shutdown(std::net::Shutdown::Write)?;
    out.set_read_timeout(Some(Duration::from_millis(500)))?;
    let _ = std::io::copy(&mut (&mut out).take(4 << 20), &mut std::io::sink());
    Ok(())
}

fn read_request(stream: TcpStream, max_body: usize) -> Result<Request, ReadError> {
    let mut reader = BufReader::new(stream);
    let mut head = 0usize;
    let mut line = String::new();
    let mut next_line =
        |reader: &mut BufReader<TcpStream>, line: &mut String| -> Result<(), ReadError> {
            line.clear();
            let n = reader
                .by_ref()
                .take((MAX_HEADER - head + 1) as u64)
                .read_line(line)
                .map_err(|_| ReadError::Bad)?;
            head += n;
            if head > MAX_HEADER {
                return Err(ReadError::TooLarge);
            }
            if n == 0 {
                return Err(ReadError::Bad);
            }
            Ok(())
        };
    next_line(&mut reader, &mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(ReadError::Bad);
    };
    let (method, path) = (
        method.to_owned(),
        path.split('?').next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    loop {
        next_line(&mut reader, &mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or(ReadError::Bad)?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(Ok(0), |(_, v)| v.parse().map_err(|_| ReadError::Bad))?;
    if len > max_body {
        return Err(ReadError::TooLarge);
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).map_err(|_| ReadError::Bad)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn route(req: &Request, shared: &Shared) -> (u16, String) {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => (200, "ok\n".into()),
        ("GET", "/readyz") if shared.ready.load(Ordering::Relaxed) => (200, "ok\n".into()),
        ("GET", "/readyz") => (503, "not ready\n".into()),
        ("GET", "/metrics") => (200, (shared.metrics)()),
        ("POST", "/hook") => hook(req, shared),
        (_, "/hook" | "/healthz" | "/readyz" | "/metrics") => (405, "method not allowed\n".into()),
        _ => (404, "not found\n".into()),
    }
}

fn hook(req: &Request, shared: &Shared) -> (u16, String) {
    let Some(secret) = &shared.secret else {
        return (404, "no webhook secret configured\n".into());
    };
    if !authentic(req, secret) {
        count(shared, "unauthorized");
        tracing::warn!("webhook: refused a request without a valid signature or token");
        return (401, "invalid signature\n".into());
    }
    count(shared, "accepted");
    if let Ok(tx) = shared.wake.lock() {
        let _ = tx.send(super::Trigger::Webhook);
    }
    (202, "reconcile requested\n".into())
}

fn count(shared: &Shared, outcome: &'static str) {
    if let Ok(mut h) = shared.hooks.lock() {
        *h.entry(outcome).or_default() += 1;
    }
}

/// Whether the request carries a valid GitHub signature, GitLab token or generic signature.
pub fn authentic(req_headers_and_body: &impl HookRequest, secret: &[u8]) -> bool {
    if let Some(sig) = req_headers_and_body
        .header_value("X-Hub-Signature-256")
        .or_else(|| req_headers_and_body.header_value("X-Ward-Signature"))
    {
        let Some(hex) = sig.strip_prefix("sha256=") else {
            return false;
        };
        let Some(given) = decode_hex(hex) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(req_headers_and_body.body_bytes());
        return mac.verify_slice(&given).is_ok();
    }
    if let Some(token) = req_headers_and_body.header_value("X-Gitlab-Token") {
        // The length is not secret (whoever configured the token chose it).
        return bool::from(token.as_bytes().ct_eq(secret));
    }
    false
}

/// What [`authentic`] reads from a request.
pub trait HookRequest {
    /// A header's value (case-insensitive name).
    fn header_value(&self, name: &str) -> Option<&str>;
    /// The body.
    fn body_bytes(&self) -> &[u8];
}

impl HookRequest for Request {
    fn header_value(&self, name: &str) -> Option<&str> {
        self.header(name)
    }
    fn body_bytes(&self) -> &[u8] {
        &self.body
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The generic signature header's value for `body` (for clients and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    struct R(Vec<(String, String)>, Vec<u8>);
    impl HookRequest for R {
        fn header_value(&self, name: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn body_bytes(&self) -> &[u8] {
            &self.1
        }
    }

    #[test]
    fn signatures_and_tokens() {
        let body = b"{\"ref\":\"refs/heads/main\"}".to_vec();
        let good = sign(b"s3cret", &body);
        assert!(authentic(
            &R(
                vec![("x-hub-signature-256".into(), good.clone())],
                body.clone()
            ),
            b"s3cret"
        ));
        assert!(authentic(
            &R(
                vec![("X-Ward-Signature".into(), good.clone())],
                body.clone()
            ),
            b"s3cret"
        ));
        assert!(!authentic(
            &R(
                vec![("X-Hub-Signature-256".into(), good.clone())],
                b"tampered".to_vec()
            ),
            b"s3cret"
        ));
        assert!(!authentic(
            &R(
                vec![("X-Hub-Signature-256".into(), good.replace("sha256=", ""))],
                body.clone()
            ),
            b"s3cret"
        ));
        assert!(!authentic(
            &R(
                vec![("X-Hub-Signature-256".into(), "sha256=zz".into())],
                body.clone()
            ),
            b"s3cret"
        ));
        assert!(authentic(
            &R(
                vec![("X-Gitlab-Token".into(), "s3cret".into())],
                body.clone()
            ),
            b"s3cret"
        ));
        assert!(!authentic(
            &R(
                vec![("X-Gitlab-Token".into(), "s3cre".into())],
                body.clone()
            ),
            b"s3cret"
        ));
        assert!(
            !authentic(&R(vec![], body), b"s3cret"),
            "no signature, no hook"
        );
    }
}
