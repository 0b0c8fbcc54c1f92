//! Serves an axum [`Router`] over TCP with the limits `axum::serve` leaves out.
//!
//! `axum::serve` (axum 0.8.9) builds hyper's connection without a timer, so hyper's request-head
//! deadline never runs, and it accepts every connection the kernel hands it. A client that opens
//! sockets and sends nothing, or sends a request head a byte at a time, therefore keeps each
//! socket forever; once the process runs out of file descriptors, `accept` fails for everyone
//! (docs/security-review.md, F2). [`serve`] is the same accept loop with three limits:
//!
//! - **A deadline for every request head** ([`Limits::header_read_timeout`]): from the moment
//!   the connection is ready for a request (new, or idle after a response) until the whole head
//!   has arrived. A connection that misses it is closed. The body is not covered: the handlers
//!   have their own whole-request timeouts, and archive uploads their own.
//! - **A cap on open connections** ([`Limits::max_connections`]), kept below the process's
//!   file-descriptor limit so that `accept` itself never fails for want of one.
//! - **A cap per client address** ([`Limits::max_connections_per_ip`]); IPv6 clients are counted
//!   per /64, since one host is usually given a whole /64.
//!
//! A connection over a cap is answered `503` with `Connection: close` if the socket takes the
//! few bytes at once, and closed. Only HTTP/1.1 is served (the channel and the notary are spoken
//! to by blocking HTTP/1.1 clients and browsers, or through a TLS proxy).
//!
//! What this does not do: limit request rates (the servers' own rate limiters do), read bodies
//! (the handlers' body limits do), or see through a reverse proxy (behind one, every connection
//! comes from the proxy's address; set `max_connections_per_ip` to 0 there and limit on the
//! proxy).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The limits of [`serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a whole request head once the connection is ready for one
    /// (default 10 s). Also bounds how long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Open connections at most (default 512, under the usual soft limit of 1024 file
    /// descriptors; raise `LimitNOFILE` with it).
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64) at most (default 64; 0 = no cap).
    pub max_connections_per_ip: usize,
    /// How long, after the shutdown signal, open requests may still finish (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_connections_per_ip: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What a refused connection is told, if its socket takes the bytes at once.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish for
/// at most [`Limits::shutdown_grace`].
///
/// Each request carries the peer's [`ConnectInfo<SocketAddr>`], as with
/// `into_make_service_with_connect_info`. Returns only an error of the listener that is not
/// about one connection, after the shutdown.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::new(limits.max_connections_per_ip));
    let refused = AtomicU64::new(0);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // The peer gave up before we took the connection: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: back off instead of spinning, as hyper
                // and axum do; the caps above are meant to keep this from happening.
                tracing::error!(error = %e, "accept failed; retrying in 1 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(&stream, &refused, peer, "the server's connection limit");
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip()) else {
            refuse(&stream, &refused, peer, "the per-address connection limit");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(stream, peer, router.clone(), &limits);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that breaks off or misses the head deadline ends here with an error;
            // that is the client's business, not a server fault worth logging above debug.
            if let Err(e) = watched.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                grace_secs = limits.shutdown_grace.as_secs(),
                "requests still open after the shutdown grace period; closing them"
            );
        }
    }
    Ok(())
}

/// Connections refused since start, for the log: every refusal is counted, the first and then
/// every 1024th is logged, so that a flood cannot flood the log too.
fn refuse(stream: &TcpStream, refused: &AtomicU64, peer: SocketAddr, limit: &str) {
    let _ = stream.try_write(BUSY);
    let n = refused.fetch_add(1, Ordering::Relaxed);
    if n.is_multiple_of(1024) {
        tracing::warn!(%peer, refused_so_far = n + 1, "connection refused: {limit} is reached");
    }
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &Limits,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + use<> {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        // `Router`'s error type is `Infallible`: every failure is already a response.
        router.clone().oneshot(request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.serve_connection(TokioIo::new(stream), service)
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Open connections per client address.
struct PerIp {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection counted against its address; uncounted on drop.
struct Slot {
    table: Option<(Arc<PerIp>, IpAddr)>,
}

impl PerIp {
    fn new(max: usize) -> Self {
        Self {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        if self.max == 0 {
            return Some(Slot { table: None });
        }
        let key = client_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            table: Some((self.clone(), key)),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((table, key)) = self.table.take() {
            let mut counts = table.counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn per_ip_slots_are_capped_and_returned_on_drop() {
        let table = Arc::new(PerIp::new(2));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let one = table.take(ip).expect("first");
        let two = table.take(ip).expect("second");
        assert!(
            table.take(ip).is_none(),
            "a third connection from one address"
        );
        assert!(
            table.take(other).is_some(),
            "another address has its own count"
        );
        drop(one);
        let three = table
            .take(ip)
            .expect("a slot comes back when a connection closes");
        drop((two, three));
        assert!(
            table.counts.lock().unwrap().is_empty(),
            "no entry is kept for an address without connections"
        );
    }

    #[test]
    fn zero_means_no_per_ip_cap() {
        let table = Arc::new(PerIp::new(0));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| table.take(ip).unwrap()).collect();
        assert_eq!(slots.len(), 1000);
        assert!(table.counts.lock().unwrap().is_empty());
    }
}
