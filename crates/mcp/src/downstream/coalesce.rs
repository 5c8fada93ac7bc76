//! One write per answered POST: the headers of a POST's event stream wait briefly for its
//! first event.
//!
//! rmcp answers a legacy session's POST with its event stream at once, before the call's
//! reply exists, so hyper sends the headers in one write and the reply (with the stream's
//! end) in a second, and the client wakes up twice. Most calls are answered within a few
//! milliseconds: holding the headers until the first event (at most [`HOLD`]) sends headers,
//! reply and end in one write. A slower call's headers leave at `HOLD`, and its stream goes
//! on as before: clients that time out waiting for headers never notice.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The longest a POST's event-stream headers wait for the stream's first event.
pub const HOLD: Duration = Duration::from_millis(5);

/// `response` with its first event read ahead (for up to [`HOLD`]) when it is an event
/// stream; any other response as it is.
pub async fn first_event_with_headers<B>(response: Response<B>) -> Response
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError> + Send + Unpin,
{
    let event_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (parts, mut body) = response.into_parts();
    if !event_stream {
        return Response::from_parts(parts, AxumBody::new(body));
    }
    let first = tokio::time::timeout(
        HOLD,
        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
    )
    .await;
    let body = match first {
        // Still waiting: the headers go now, the stream follows.
        Err(_) => AxumBody::new(body),
        Ok(first) => AxumBody::new(ReadAhead { first, rest: body }),
    };
    Response::from_parts(parts, body)
}

/// A body whose first frame (or its end, or its error) was read ahead.
struct ReadAhead<B: Body> {
    first: Option<Result<Frame<Bytes>, B::Error>>,
    rest: B,
}

impl<B> Body for ReadAhead<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        match this.first.take() {
            Some(first) => Poll::Ready(Some(first)),
            None => Pin::new(&mut this.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.first {
            None => self.rest.size_hint(),
            // The first frame's length would have to be added; unknown is always correct.
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    fn event_stream<B>(body: B) -> Response<B> {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap()
    }

    type Channel =
        StreamBody<futures::channel::mpsc::UnboundedReceiver<Result<Frame<Bytes>, Infallible>>>;

    fn channel() -> (
        futures::channel::mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>,
        Channel,
    ) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (tx, StreamBody::new(rx))
    }

    #[tokio::test]
    async fn an_event_ready_within_the_hold_is_read_ahead_and_kept() {
        let (tx, body) = channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"data: 1\n\n"))))
                .unwrap();
        });
        let response = first_event_with_headers(event_stream(body)).await;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"data: 1\n\n");
    }

    #[tokio::test]
    async fn a_slow_stream_gets_its_headers_after_the_hold_and_loses_nothing() {
        let (tx, body) = channel();
        let started = tokio::time::Instant::now();
        let response = first_event_with_headers(event_stream(body)).await;
        let waited = started.elapsed();
        assert!(
            waited >= HOLD && waited < Duration::from_secs(1),
            "{waited:?}"
        );
        tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .unwrap();
        tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .unwrap();
        drop(tx);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"ab");
    }

    #[tokio::test]
    async fn other_responses_are_not_held() {
        let (_tx, body) = channel();
        let started = tokio::time::Instant::now();
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = first_event_with_headers(response).await;
        assert!(started.elapsed() < HOLD);
        assert_eq!(response.headers()["content-type"], "application/json");
        // An ended stream read ahead ends the body.
        let (tx, body) = channel();
        drop(tx);
        let response = first_event_with_headers(event_stream(body)).await;
        let mut stream = response.into_body().into_data_stream();
        assert!(stream.next().await.is_none());
    }
}
