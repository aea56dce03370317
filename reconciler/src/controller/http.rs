//! The controller's HTTP endpoint: `/healthz`, `/readyz`, `/metrics` (OpenMetrics text) and
//! `/hook`, the webhook receiver.
//!
//! HTTP/1.1 by hyper on the controller's tokio runtime, one request per connection. The
//! request head must arrive within [`HEAD_TIMEOUT`] and fit in [`MAX_HEADER`] bytes (431
//! beyond it); a webhook body must arrive within [`BODY_TIMEOUT`] and fit in the configured
//! limit (413 beyond it). Dropping the [`Server`] stops accepting and lets requests in flight
//! finish, for at most [`SHUTDOWN_GRACE`].
//!
//! Webhooks are authenticated before anything else happens:
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - GitLab: `X-Gitlab-Token: <the secret>`;
//! - generic: `X-Ward-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! All comparisons are constant-time (hmac's own `verify_slice`, `subtle` for the token). An
//! accepted hook only wakes the controller (202); what it reconciles is always the configured
//! repository and ref, never anything in the body.

use super::metrics::{self, Metrics};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sha2::Sha256;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// The largest request head (request line and headers) accepted.
pub const MAX_HEADER: usize = 16 * 1024;
/// How long a client may take to send the request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send a webhook's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutting down waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How much of a refused body is still read (and dropped), and for how long, so that closing
/// the connection does not reset it before the client has read the answer.
const DRAIN: (usize, Duration) = (4 << 20, Duration::from_millis(500));

/// What the server needs from the controller.
pub struct Shared {
    /// Whether the controller has connected and is working (`/readyz`).
    pub ready: AtomicBool,
    /// The metrics `/metrics` shows; webhooks are counted there too.
    pub metrics: Arc<Metrics>,
    /// Wakes the controller.
    pub wake: Sender<super::Trigger>,
    /// The webhook secret; without one, `/hook` answers 404.
    pub secret: Option<Vec<u8>>,
    /// The largest webhook body accepted.
    pub max_body: usize,
}

/// The running server; dropping it shuts it down gracefully.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    stopped: std::sync::mpsc::Receiver<()>,
}

impl Server {
    /// Serves `listener` on `runtime` until the returned [`Server`] is dropped.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        listener: TcpListener,
        shared: Arc<Shared>,
    ) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stop_rx) = oneshot::channel();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            serve(listener, shared, stop_rx).await;
            let _ = stopped_tx.send(());
        });
        Ok(Server {
            addr,
            stop: Some(stop),
            stopped,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Bounded: serve() gives connections SHUTDOWN_GRACE, then ends.
        let _ = self
            .stopped
            .recv_timeout(SHUTDOWN_GRACE + Duration::from_secs(1));
    }
}

/// Accepts connections until `stop`, then waits (bounded) for those in flight.
async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEADER)
        .keep_alive(false);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: let some close.
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| respond(req, Arc::clone(&shared)));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("http: connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http: requests still in flight at shutdown were cut off");
    }
}

/// One answer: status, body and content type.
type Answer = (StatusCode, String, &'static str);

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode, body: &str) -> Answer {
    (status, body.to_owned(), TEXT)
}

async fn respond(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, content_type) = route(req, &shared).await;
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

async fn route(req: Request<Incoming>, shared: &Shared) -> Answer {
    let get = req.method() == Method::GET;
    match req.uri().path() {
        "/healthz" if get => text(StatusCode::OK, "ok\n"),
        "/readyz" if get && shared.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "ok\n"),
        "/readyz" if get => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" if get => (
            StatusCode::OK,
            shared.metrics.render(),
            metrics::CONTENT_TYPE,
        ),
        "/hook" if req.method() == Method::POST => hook(req, shared).await,
        "/hook" | "/healthz" | "/readyz" | "/metrics" => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn hook(req: Request<Incoming>, shared: &Shared) -> Answer {
    let (parts, body) = req.into_parts();
    let body = match read_body(body, shared.max_body).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            shared.metrics.hook("too_large");
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request too large\n");
        }
        Err(BodyError::Bad) => return text(StatusCode::BAD_REQUEST, "bad request\n"),
    };
    let Some(secret) = &shared.secret else {
        return text(StatusCode::NOT_FOUND, "no webhook secret configured\n");
    };
    let request = Hook {
        headers: &parts.headers,
        body: &body,
    };
    if !authentic(&request, secret) {
        shared.metrics.hook("unauthorized");
        tracing::warn!("webhook: refused a request without a valid signature or token");
        return text(StatusCode::UNAUTHORIZED, "invalid signature\n");
    }
    shared.metrics.hook("accepted");
    let _ = shared.wake.send(super::Trigger::Webhook);
    text(StatusCode::ACCEPTED, "reconcile requested\n")
}

enum BodyError {
    /// Beyond the limit.
    TooLarge,
    /// Broken off, malformed, or not sent within [`BODY_TIMEOUT`].
    Bad,
}

/// The body, up to `max` bytes.
async fn read_body(body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > max as u64 {
        // Announced too large (Content-Length): refused without keeping any of it.
        let mut rest = Limited::new(body, DRAIN.0);
        let _ = tokio::time::timeout(DRAIN.1, async {
            while let Some(Ok(_)) = rest.frame().await {}
        })
        .await;
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) | Err(_) => Err(BodyError::Bad),
    }
}

/// A webhook request as [`authentic`] reads it.
struct Hook<'a> {
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl HookRequest for Hook<'_> {
    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
    fn body_bytes(&self) -> &[u8] {
        self.body
    }
}

/// Whether the request carries a valid GitHub signature, GitLab token or generic signature.
pub fn authentic(req_headers_and_body: &impl HookRequest, secret: &[u8]) -> bool {
    if let Some(sig) = req_headers_and_body
        .header_value("X-Hub-Signature-256")
        .or_else(|| req_headers_and_body.header_value("X-Ward-Signature"))
    {
        let Some(digits) = sig.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(given) = hex::decode(digits) else {
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

/// The generic signature header's value for `body` (for clients and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// `(status, body)` of one raw request, read until the server closes the connection.
    fn ask(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(raw);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out).into_owned();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        (status, body.unwrap_or_default())
    }

    fn post(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        raw
    }

    #[test]
    fn routes_limits_timeouts_and_shutdown() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            ready: AtomicBool::new(false),
            metrics: Arc::new(Metrics::new()),
            wake: tx,
            secret: Some(b"s3cret".to_vec()),
            max_body: 64,
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::start(rt.handle(), listener, Arc::clone(&shared)).unwrap();
        let addr = server.local_addr();
        let get = |path: &str| {
            ask(
                addr,
                format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            )
        };

        assert_eq!(get("/healthz"), (200, "ok\n".into()));
        assert_eq!(get("/readyz"), (503, "not ready\n".into()));
        shared.ready.store(true, Ordering::Relaxed);
        assert_eq!(get("/readyz?verbose"), (200, "ok\n".into()));
        assert_eq!(get("/nothing"), (404, "not found\n".into()));
        assert_eq!(get("/hook"), (405, "method not allowed\n".into()));
        assert_eq!(
            ask(addr, &post("/healthz", "", b"")),
            (405, "method not allowed\n".into())
        );

        let body = br#"{"ref":"refs/heads/main"}"#;
        let signed = format!("X-Hub-Signature-256: {}\r\n", sign(b"s3cret", body));
        assert_eq!(
            ask(addr, &post("/hook", &signed, body)),
            (202, "reconcile requested\n".into())
        );
        assert_eq!(rx.try_recv(), Ok(super::super::Trigger::Webhook));
        assert_eq!(
            ask(addr, &post("/hook", "X-Gitlab-Token: nope\r\n", body)),
            (401, "invalid signature\n".into())
        );
        assert_eq!(
            ask(addr, &post("/hook", &signed, &[b'x'; 65])),
            (413, "request too large\n".into())
        );
        // Chunked, so the size is known only while reading.
        let chunked = b"POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n\
            xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n";
        assert_eq!(ask(addr, chunked), (413, "request too large\n".into()));
        assert!(rx.try_recv().is_err(), "refused hooks wake nothing");

        let (status, text) = get("/metrics");
        assert_eq!(status, 200);
        assert!(
            text.contains("ward_webhook_requests_total{outcome=\"too_large\"} 2"),
            "{text}"
        );
        assert!(text.contains("ward_webhook_requests_total{outcome=\"accepted\"} 1"));

        // A head beyond MAX_HEADER: 431 from hyper.
        let big = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "y".repeat(MAX_HEADER)
        );
        assert_eq!(ask(addr, big.as_bytes()).0, 431);

        // A head that never ends is cut off after HEAD_TIMEOUT.
        let started = Instant::now();
        let _ = ask(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        let took = started.elapsed();
        assert!(
            took >= HEAD_TIMEOUT - Duration::from_millis(500) && took < HEAD_TIMEOUT * 2,
            "{took:?}"
        );

        drop(server);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "no longer listening after shutdown"
        );
    }

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
