//! The accept loop: one port, HTTP/1.1 and HTTP/2 (h2c, or ALPN over TLS),
//! with the connection-level settings `axum::serve` does not expose:
//! HTTP/2 keep-alive pings for idle streams, an HTTP/1.1 header-read timeout
//! (which also closes idle keep-alive connections, and connections that send
//! nothing), a bound on request heads, a cap on the connections one client
//! address holds, and graceful shutdown that lets in-flight calls finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Connection settings.
#[derive(Clone)]
pub struct ServeOptions {
    pub tls: Option<TlsAcceptor>,
    /// HTTP/2 PING interval on idle connections (keeps long streams alive
    /// through proxies and detects dead peers).
    pub keepalive: Duration,
    /// How long an HTTP/1.1 client may take to send its request headers
    /// (from when the connection is ready for one: idle time counts), and how
    /// long any connection may stay silent before its first byte.
    pub header_read_timeout: Duration,
    /// Largest request head: HTTP/1.1 read buffer (at least 8 KiB, hyper's
    /// minimum), HTTP/2 header list.
    pub max_header_bytes: u32,
    /// Connections one client address may hold open at once (0: no cap).
    pub max_connections_per_ip: usize,
}

/// Open connections per client address (an IPv6 client's /64).
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection's place in [`Connections`], given back on drop.
struct Held {
    connections: Connections,
    key: IpAddr,
}

impl Connections {
    /// A place for a connection from `ip`, or None when it already holds `max`.
    fn take(&self, ip: IpAddr, max: usize) -> Option<Held> {
        let key = crate::limits::address_key(ip);
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_default();
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(Held {
            connections: self.clone(),
            key,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.connections.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// hyper refuses an HTTP/1.1 read buffer below this.
const MIN_H1_BUFFER: usize = 8 * 1024;

/// Builds the TLS acceptor from PEM files, offering h2 and http/1.1 by ALPN
/// (so browsers get gRPC-Web over HTTP/2).
pub fn tls_acceptor(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading the private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` until `shutdown` is cancelled, then stops accepting and
/// waits for open connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size((options.max_header_bytes as usize).max(MIN_H1_BUFFER))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(options.keepalive))
        .keep_alive_timeout(options.keepalive.max(Duration::from_secs(10)))
        .max_header_list_size(options.max_header_bytes);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let connections = Connections::default();

    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(held) = connections.take(peer.ip(), options.max_connections_per_ip) else {
            tracing::debug!(%peer, "closing a connection over the per-address cap");
            metrics::counter!(crate::metrics::LIMITED, "limit" => "connections").increment(1);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                    let ext = req.extensions_mut();
                    // The client's address, for the per-address limits
                    // (TLS or not; gRPC reads it too).
                    ext.insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                    req
                });
        let hyper_service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = options.tls.clone();
        let silence = options.header_read_timeout;
        tokio::spawn(async move {
            let _held = held;
            let heard = Arc::new(AtomicBool::new(false));
            let tcp = Heard {
                inner: tcp,
                heard: heard.clone(),
            };
            match tls {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        silence.max(Duration::from_secs(1)),
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    // The handshake was heard; the request must be too.
                    heard.store(false, Ordering::Relaxed);
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
                    let conn = watcher.watch(conn.into_owned());
                    if let Err(e) = until_silent(conn, &heard, silence, peer).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tcp), hyper_service);
                    let conn = watcher.watch(conn.into_owned());
                    if let Err(e) = until_silent(conn, &heard, silence, peer).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves `conn`, but drops it if the client has sent nothing within
/// `silence`: hyper's version detection (HTTP/1.1 or h2c) waits for the
/// first bytes without a timeout of its own, and its header-read timeout
/// only starts after that.
async fn until_silent<F, E>(
    conn: F,
    heard: &AtomicBool,
    silence: Duration,
    peer: SocketAddr,
) -> Result<(), E>
where
    F: std::future::Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return result,
        _ = tokio::time::sleep(silence) => {}
    }
    if !heard.load(Ordering::Relaxed) {
        tracing::debug!(%peer, ?silence, "closing a connection that sent nothing");
        metrics::counter!(crate::metrics::LIMITED, "limit" => "silent_connection").increment(1);
        return Ok(());
    }
    conn.await
}

pin_project_lite::pin_project! {
    /// An IO that notes whether any byte was read from it.
    struct Heard<T> {
        #[pin]
        inner: T,
        heard: Arc<AtomicBool>,
    }
}

impl<T: AsyncRead> AsyncRead for Heard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Heard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
