//! A request body must arrive in time. Without a bound, a client that sends
//! complete headers and then its body one byte every few seconds (or never)
//! holds a task, a connection and a file descriptor for good. Every call's
//! request message has `REQUEST_BODY_TIMEOUT` from the moment its headers
//! arrived; a body still incomplete then ends the call `DEADLINE_EXCEEDED`
//! and, on HTTP/1.1, the connection. `Session` is exempt: its request is the
//! client's side of a conversation that lasts as long as the client likes;
//! so is `UploadFile`, whose body is a file of up to the size limit (it
//! bounds the wait for each frame instead).
//! Server streams are not affected once their one request message is in.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use tokio::time::Sleep;

/// What the body reports when its time is up (read back by
/// `grpc::malformed` to answer `DEADLINE_EXCEEDED`).
pub const TIMED_OUT: &str = "the request body did not arrive in time";

/// The middleware: `timeout` zero switches it off.
pub async fn bound_body(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if timeout.is_zero() || path.ends_with("/Session") || path.ends_with("/UploadFile") {
        return next.run(req).await;
    }
    let req = req.map(|inner| {
        Body::new(Bounded {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            finished: false,
        })
    });
    next.run(req).await
}

pin_project_lite::pin_project! {
    struct Bounded {
        #[pin]
        inner: Body,
        deadline: Pin<Box<Sleep>>,
        finished: bool,
    }
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if *this.finished {
            return polled;
        }
        match polled {
            Poll::Ready(None) => {
                *this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    *this.finished = true;
                    metrics::counter!(crate::metrics::LIMITED, "limit" => "body_timeout")
                        .increment(1);
                    Poll::Ready(Some(Err(axum::Error::new(TIMED_OUT))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
