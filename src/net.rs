//! Serving an axum [`Router`] over TCP with the limits `axum::serve` lacks:
//! a header-read timeout, a body-read timeout, an idle timeout, a connection
//! limit, and a backoff on accept errors.
//!
//! Without them a stranger holds a connection (and a file descriptor) for as
//! long as they like by sending half a request line, half a body, or nothing
//! at all after an answer; a thousand such connections exhaust the process's
//! descriptors and the server stops answering anyone. Both the issuer
//! (`tessera serve`) and tool servers (feature `verifier-axum`) serve this way:
//!
//! ```no_run
//! # async fn run(router: axum::Router) -> std::io::Result<()> {
//! use tessera::net::{serve, ServeLimits};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! serve(listener, router, ServeLimits::default())
//!     .with_graceful_shutdown(async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await
//! # }
//! ```
//!
//! Handlers can extract `ConnectInfo<SocketAddr>` (the peer address), as
//! with `into_make_service_with_connect_info::<SocketAddr>()`.
//!
//! HTTP/1.1 only (as `axum::serve` with axum's default features).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// The largest connection limit [`ServeLimits`] accepts.
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// First and last pause after an accept error other than a refused, reset or
/// aborted connection (running out of descriptors, `EMFILE`, is the usual
/// one). The pause doubles while the errors go on.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Timeouts and the connection limit of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time to receive a whole request head (request line and headers),
    /// counted from the moment the connection is accepted or, on a kept-alive
    /// connection, from the end of the previous answer. A connection that
    /// has not sent a complete head by then is closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// Time to receive a whole request body, counted from the end of its
    /// head. A handler reading the body then gets an error (axum answers
    /// 400) and the connection is closed. Default 30 s.
    pub body_read_timeout: Duration,
    /// A connection on which no byte was read or written for this long while
    /// no request was being handled is closed: a client that never sends its
    /// next request, or never reads its answer. A handler that takes long
    /// (a long poll) is not cut. Default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once. Beyond it, new connections wait in the
    /// listen queue (they are not accepted, and cost no descriptor) until a
    /// served one closes. Default 1024; at most [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl ServeLimits {
    /// Refuses a zero timeout and a connection limit of 0 or above
    /// [`MAX_CONNECTIONS`].
    pub fn check(&self) -> Result<(), InvalidLimits> {
        let zero = [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ]
        .into_iter()
        .find(|(_, d)| d.is_zero());
        if let Some((name, _)) = zero {
            return Err(InvalidLimits(format!("{name} must not be zero")));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(InvalidLimits(format!(
                "max_connections must be between 1 and {MAX_CONNECTIONS}"
            )));
        }
        Ok(())
    }
}

/// [`ServeLimits`] that [`serve`] cannot use (the message names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLimits(String);

/// The error a handler gets from a request body that did not arrive within
/// [`ServeLimits::body_read_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body not received within the body read timeout")]
pub struct BodyReadTimeout;

/// Serves `router` on `listener` with `limits` until the future is dropped,
/// or, with [`Serve::with_graceful_shutdown`], until the signal: then it stops
/// accepting, lets each open connection finish the request it is handling,
/// and returns once all are closed.
///
/// The future fails only for limits that [`ServeLimits::check`] refuses;
/// accept errors are logged and retried after a pause.
pub fn serve(listener: TcpListener, router: Router, limits: ServeLimits) -> Serve {
    Serve {
        listener,
        router,
        limits,
        signal: Box::pin(std::future::pending()),
    }
}

/// The future of [`serve`] (await it).
#[must_use = "a server does nothing until awaited"]
pub struct Serve {
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Stops gracefully once `signal` completes.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Box::pin(signal);
        self
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self))
    }
}

async fn run(serve: Serve) -> io::Result<()> {
    let Serve {
        listener,
        router,
        limits,
        mut signal,
    } = serve;
    limits
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // check() bounds it far below u32::MAX.
    let all = u32::try_from(limits.max_connections)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "max_connections"))?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        // A slot first: beyond the limit, connections wait in the kernel's
        // listen queue instead of taking a descriptor each.
        let slot = tokio::select! {
            () = &mut signal => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let accepted = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF.0;
                conn
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                drop(slot);
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis(), "accept error");
                tokio::select! {
                    () = &mut signal => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = backoff.saturating_mul(2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            http.clone(),
            limits,
            stopping.clone(),
            slot,
        ));
    }
    // Stop accepting (new connections are refused), ask every connection to
    // finish, and wait for all slots to come back.
    drop(listener);
    let _ = stop.send(true);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Errors of one connection that the next accept does not share.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    limits: ServeLimits,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let handling = activity.clone();
    let body_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = handling.busy();
        let router = router.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let body = Body::new(DeadlineBody::new(body, body_timeout));
            let response = router
                .oneshot(hyper::Request::from_parts(parts, body))
                .await;
            drop(busy);
            Ok::<_, Infallible>(match response {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let mut conn = pin!(http.serve_connection(io, service));
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                }
                return;
            }
            _ = stopping.changed(), if !asked_to_stop => {
                asked_to_stop = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle(limits.idle_timeout) => {
                tracing::debug!(%peer, "idle connection closed");
                return;
            }
        }
    }
}

/// When bytes last moved on a connection, and how many of its requests are
/// being handled.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        }
    }

    fn millis_since_start(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms
            .store(self.millis_since_start(), Ordering::Relaxed);
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.handling.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Completes once no byte has moved for `timeout` while no request was
    /// being handled.
    async fn idle(&self, timeout: Duration) {
        let limit = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        loop {
            let quiet = self
                .millis_since_start()
                .saturating_sub(self.last_ms.load(Ordering::Relaxed));
            if quiet >= limit && self.handling.load(Ordering::Relaxed) == 0 {
                return;
            }
            // Check again when the quiet spell could reach the timeout (while
            // a request is handled past it, a full timeout later).
            let wait = if quiet >= limit { limit } else { limit - quiet };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// A request being handled; dropping it ends the handling and counts as
/// activity (the idle time starts then).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that records when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that fails with [`BodyReadTimeout`] once its deadline has
/// passed. The timer is set up only if the body is not already there.
struct DeadlineBody {
    inner: Incoming,
    /// `None`: a timeout too large for the clock, which never fires.
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Instant::now().checked_add(timeout),
            timer: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones_and_pass_the_check() {
        let d = ServeLimits::default();
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!(d.body_read_timeout, Duration::from_secs(30));
        assert_eq!(d.idle_timeout, Duration::from_secs(60));
        assert_eq!(d.max_connections, 1024);
        assert_eq!(d.check(), Ok(()));
    }

    #[test]
    fn zero_timeouts_and_impossible_connection_limits_are_refused() {
        let d = ServeLimits::default();
        for bad in [
            ServeLimits {
                header_read_timeout: Duration::ZERO,
                ..d
            },
            ServeLimits {
                body_read_timeout: Duration::ZERO,
                ..d
            },
            ServeLimits {
                idle_timeout: Duration::ZERO,
                ..d
            },
            ServeLimits {
                max_connections: 0,
                ..d
            },
            ServeLimits {
                max_connections: MAX_CONNECTIONS + 1,
                ..d
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refused_reset_and_aborted_connections_are_not_accept_failures() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(is_connection_error(&io::Error::from(kind)));
        }
        // EMFILE: back off.
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)));
    }
}
