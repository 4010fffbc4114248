//! A minimal gRPC-Web client over HTTP/1.1, as a browser uses it: one
//! connection per open stream, `application/grpc-web+proto` framing (1 flag
//! byte, 4-byte big-endian length, the message; flag 0x80 marks the
//! trailers frame).

use anyhow::{Context as _, bail};
use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prost::Message as _;
use tokio::net::TcpStream;

use crate::client::{LiteEvent, User};

/// An open gRPC-Web server stream of `messaging.Event`.
pub struct WebStream {
    body: Incoming,
    buf: BytesMut,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for WebStream {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// Encodes one gRPC-Web data frame.
pub fn frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode(&mut out).expect("a BytesMut grows");
    out.freeze()
}

/// The `host:port` of a `http://host:port` server URL.
pub fn authority(server: &str) -> anyhow::Result<String> {
    let uri: http::Uri = server.parse().context("--server must be a URL")?;
    let auth = uri.authority().context("--server needs host:port")?;
    Ok(match auth.port() {
        Some(_) => auth.to_string(),
        None => format!("{}:80", auth.host()),
    })
}

/// Opens `EventsService.Subscribe` for `user` on a new HTTP/1.1 connection.
pub async fn subscribe_user(authority: &str, user: &User) -> anyhow::Result<WebStream> {
    let tcp = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let body = frame(&tidings_proto::SubscribeRequest::default());
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!(
            "http://{authority}/messaging.EventsService/Subscribe"
        ))
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/grpc-web+proto")
        .header(http::header::ACCEPT, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", user.token),
        )
        .body(Full::new(body))?;
    let resp = sender.send_request(req).await?;
    if resp.status() != http::StatusCode::OK {
        bail!("gRPC-Web Subscribe answered HTTP {}", resp.status());
    }
    // A trailers-only answer (an error before any message) carries
    // grpc-status in the headers.
    if let Some(status) = resp.headers().get("grpc-status")
        && status.as_bytes() != b"0"
    {
        let message = resp
            .headers()
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        bail!(
            "gRPC-Web Subscribe failed: grpc-status {} {message}",
            String::from_utf8_lossy(status.as_bytes())
        );
    }
    Ok(WebStream {
        body: resp.into_body(),
        buf: BytesMut::with_capacity(8 * 1024),
        conn,
    })
}

/// What one frame of a gRPC-Web body held.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Data(Bytes),
    /// The trailers frame, parsed to its grpc-status.
    Trailers {
        status: String,
        message: String,
    },
}

/// Takes the next complete frame off the front of `buf`, if there is one.
pub fn take_frame(buf: &mut BytesMut) -> anyhow::Result<Option<Frame>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let flag = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    let payload = buf.split_to(len).freeze();
    if flag & 0x80 != 0 {
        let text = String::from_utf8_lossy(&payload);
        let mut status = String::new();
        let mut message = String::new();
        for line in text.split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "grpc-status" => status = v.trim().to_owned(),
                    "grpc-message" => message = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
        return Ok(Some(Frame::Trailers { status, message }));
    }
    if flag != 0 {
        bail!("unsupported gRPC-Web frame flag {flag:#x} (compressed?)");
    }
    Ok(Some(Frame::Data(payload)))
}

impl WebStream {
    /// The next event; `None` when the stream ended with status OK.
    pub async fn next(&mut self) -> anyhow::Result<Option<LiteEvent>> {
        loop {
            match take_frame(&mut self.buf)? {
                Some(Frame::Data(payload)) => return Ok(Some(LiteEvent::decode(payload)?)),
                Some(Frame::Trailers { status, message }) => {
                    if status == "0" {
                        return Ok(None);
                    }
                    bail!("gRPC-Web stream ended: grpc-status {status} {message}");
                }
                None => {}
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    bail!("gRPC-Web body ended inside a frame");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_and_trailers() {
        let msg = tidings_proto::SubscribeRequest::default();
        let data = frame(&msg);
        assert_eq!(&data[..], &[0, 0, 0, 0, 0]);

        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 0, 3, 1]);
        assert_eq!(take_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[2, 3]);
        let trailers = b"grpc-status:0\r\ngrpc-message:\r\n";
        buf.extend_from_slice(&[0x80, 0, 0, 0, trailers.len() as u8]);
        buf.extend_from_slice(trailers);
        assert_eq!(
            take_frame(&mut buf).unwrap(),
            Some(Frame::Data(Bytes::from_static(&[1, 2, 3])))
        );
        assert_eq!(
            take_frame(&mut buf).unwrap(),
            Some(Frame::Trailers {
                status: "0".into(),
                message: String::new()
            })
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn authority_of_server_url() {
        assert_eq!(
            authority("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(authority("http://localhost").unwrap(), "localhost:80");
    }
}
