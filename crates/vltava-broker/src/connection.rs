// HOT PATH: every request and response passes through here. No per-request info!, no locks
// across .await, no blocking I/O (file reads for fetch happen inside sendfile, in the kernel).
//! One client connection: read frames, decode headers, hand requests to the handlers in order,
//! write responses in request order.
//!
//! Requests are handled one after another in the order they arrive (Kafka's ordering guarantee:
//! a producer with several requests in flight must see them appended in order), but a handler may
//! answer later (acks=all waits for fsync, fetch long-polls). Those pending answers queue up, at
//! most [`MAX_IN_FLIGHT`] per connection, and a writer task sends them in order. A full queue stops
//! the reader: back-pressure on a client that pipelines faster than we answer.
//!
//! While a handler runs, the bytes of the next request are read into the buffer (up to one
//! frame of at most `WHOLE_FRAME`, 1 MiB + 64 KiB): a producer's next 1 MB batch crosses from
//! the socket while the one before is appended, instead of after it, so one connection's
//! produce rate is no longer bound by the sum of the two. The next request is still handled
//! only once this one is done.
//!
//! With `queued.max.request.bytes` set, every request holds its size in a budget shared by all
//! connections from the moment its frame size is known until its handler is done with its bytes
//! (as Kafka's memory pool does); an empty budget stops reading on every connection, so request
//! memory is bounded by configuration rather than by how many clients send at once. The budget
//! is not held while an answer waits to be written: a client that stops reading its answers
//! blocks only itself.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::error::ConnectionError;
use crate::handlers::{self, Reply};
use crate::wire::frame::FrameStatus;
use crate::wire::{check_frame, decode_request_header, Outgoing, Part};

/// Responses (ready or pending) queued per connection before the reader stops reading.
pub const MAX_IN_FLIGHT: usize = 32;

const WRITE_BUFFER: usize = 64 * 1024;

/// Most bytes the read buffer grows by at once while a frame over [`WHOLE_FRAME`] arrives.
const READ_CHUNK: usize = 256 * 1024;

/// Frames up to this size get their whole buffer at once: a producer's 1 MiB request then
/// lands without the buffer being reallocated (and copied) on the way, which cost 4.5 % of the
/// broker's CPU under 1 KiB acks=all produce. What a client can make us hold without sending
/// stays bounded by this per connection (and by queued.max.request.bytes when set).
const WHOLE_FRAME: usize = 1024 * 1024 + 64 * 1024;

/// Request bytes shared by all connections (`queued.max.request.bytes`).
#[derive(Clone)]
pub struct RequestBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl RequestBudget {
    pub fn new(total: usize) -> RequestBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        RequestBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Waits until `size` bytes are free. A request larger than the whole budget takes all of
    /// it (it was already admitted by `socket.request.max.bytes`), so it waits for an idle
    /// broker instead of forever.
    async fn reserve(&self, size: usize) -> Option<OwnedSemaphorePermit> {
        let wanted = u32::try_from(size.clamp(1, self.total)).unwrap_or(u32::MAX);
        self.bytes.clone().acquire_many_owned(wanted).await.ok()
    }
}

/// A reply on its way to the writer.
struct Queued {
    reply: Reply,
    api_key: kafka_protocol::messages::ApiKey,
    started: std::time::Instant,
}

/// Serves one connection until the client closes it, an error closes it, or shutdown is signalled
/// (then requests already read are answered and the connection closed).
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
    budget: Option<RequestBudget>,
) -> Result<(), ConnectionError> {
    let (mut reader, writer) = stream.into_split();
    let (replies, pending) = mpsc::channel::<Queued>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_replies(writer, pending));
    let max = broker.config.socket.request_max_bytes;
    let idle = broker.config.socket.connections_max_idle;
    let mut buf = BytesMut::with_capacity(4096);
    let mut end = StreamEnd::Open;

    let result = loop {
        // connections.max.idle.ms: a connection that completes no request for that long is
        // closed (this also bounds how long a slow sender can hold a half-sent frame).
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, read_frame(&mut reader, &mut buf, &mut end, max, budget.as_ref())) => match frame {
                Ok(frame) => frame,
                Err(_) => break Err(ConnectionError::Idle(idle)),
            },
            _ = shutdown.changed() => break Ok(()),
        };
        let (mut frame, held) = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let header = match decode_request_header(&mut frame, handlers::supported) {
            Ok(header) => header,
            Err(e) => break Err(e.into()),
        };
        let (api_key, started) = (header.api_key, std::time::Instant::now());
        let handling = handlers::dispatch(&broker, header, frame);
        // Reading ahead holds bytes no budget has counted, so only without a budget.
        let reply = if budget.is_none() {
            read_ahead_while(handling, &mut reader, &mut buf, &mut end, max).await
        } else {
            handling.await
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => break Err(e),
        };
        // The handler has copied what it keeps (appended batches, a fetch plan).
        drop(held);
        let queued = Queued {
            reply,
            api_key,
            started,
        };
        if replies.send(queued).await.is_err() {
            break Ok(()); // the writer failed; its error is reported below
        }
    };
    // Let the writer finish what is queued (in-flight requests are answered), then close.
    drop(replies);
    let written = writer
        .await
        .map_err(|e| ConnectionError::Io(io::Error::other(e)))?;
    result.and(written)
}

/// Whether the client's side of the stream is still open, as far as reading has got.
enum StreamEnd {
    Open,
    /// The client closed its side; what is buffered is all there is.
    Closed,
    /// Reading ahead failed; the error ends the connection once the buffer is used up.
    Failed(io::Error),
}

/// Reads one frame body (header + request), or `None` on a clean end of stream between frames.
/// With a budget, the frame's size is reserved before its body is read.
async fn read_frame(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    end: &mut StreamEnd,
    max: usize,
    budget: Option<&RequestBudget>,
) -> Result<Option<(Bytes, Option<OwnedSemaphorePermit>)>, ConnectionError> {
    let mut held = None;
    loop {
        let status = check_frame(buf, max)?;
        if let (Some(budget), None, FrameStatus::Complete(size) | FrameStatus::NeedBody(size)) =
            (budget, &held, &status)
        {
            held = budget.reserve(*size).await;
        }
        if let FrameStatus::Complete(size) = status {
            let mut frame = buf.split_to(4 + size);
            let _ = frame.split_to(4);
            return Ok(Some((frame.freeze(), held)));
        }
        match std::mem::replace(end, StreamEnd::Closed) {
            StreamEnd::Open => *end = StreamEnd::Open,
            StreamEnd::Closed => return ended(buf),
            StreamEnd::Failed(e) => return Err(e.into()),
        }
        make_room(buf, status);
        if reader.read_buf(buf).await? == 0 {
            *end = StreamEnd::Closed;
            return ended(buf);
        }
    }
}

/// The end of the stream: clean between frames, an error inside one.
fn ended<T>(buf: &BytesMut) -> Result<Option<T>, ConnectionError> {
    if buf.is_empty() {
        Ok(None)
    } else {
        Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
    }
}

/// Grows `buf` for the rest of the frame it holds the start of.
fn make_room(buf: &mut BytesMut, status: FrameStatus) {
    match status {
        FrameStatus::Complete(_) => {}
        FrameStatus::NeedBody(size) if size <= WHOLE_FRAME => buf.reserve(4 + size - buf.len()),
        // The size was checked against socket.request.max.bytes, but a larger frame's
        // buffer grows only as bytes arrive: a client that declares 100 MiB and sends a
        // trickle holds what it sent, not what it promised.
        FrameStatus::NeedBody(size) => buf.reserve((4 + size - buf.len()).min(READ_CHUNK)),
        FrameStatus::NeedSize => buf.reserve(4096),
    }
}

/// Runs `handling` to its end while reading the next frame into `buf`, as long as that frame
/// is incomplete and no larger than [`WHOLE_FRAME`]; an end of stream or a read error is kept
/// in `end` for [`read_frame`] to report after the frames before it.
async fn read_ahead_while<F: std::future::Future>(
    handling: F,
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    end: &mut StreamEnd,
    max: usize,
) -> F::Output {
    tokio::pin!(handling);
    loop {
        let status = match (&end, check_frame(buf, max)) {
            (StreamEnd::Open, Ok(FrameStatus::NeedSize)) => FrameStatus::NeedSize,
            (StreamEnd::Open, Ok(FrameStatus::NeedBody(size))) if size <= WHOLE_FRAME => {
                FrameStatus::NeedBody(size)
            }
            // A whole frame waits, the stream ended, a larger frame is left to read_frame (its
            // buffer grows only as it arrives), or the size is invalid (read_frame says so).
            _ => return handling.await,
        };
        make_room(buf, status);
        tokio::select! {
            biased;
            output = &mut handling => return output,
            read = reader.read_buf(buf) => match read {
                Ok(0) => *end = StreamEnd::Closed,
                Ok(_) => {}
                Err(e) => *end = StreamEnd::Failed(e),
            },
        }
    }
}

async fn write_replies(
    writer: OwnedWriteHalf,
    mut pending: mpsc::Receiver<Queued>,
) -> Result<(), ConnectionError> {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    while let Some(queued) = pending.recv().await {
        let outgoing = match queued.reply {
            Reply::Now(outgoing) => Some(outgoing),
            Reply::Later(handle) => {
                // The answers before this one go now: held back until it is ready (an fsync,
                // a long poll) they would wait for a request that came after them.
                if !handle.is_finished() {
                    writer.flush().await?;
                }
                Some(
                    handle
                        .await
                        .map_err(|e| ConnectionError::Io(io::Error::other(e)))??,
                )
            }
            Reply::Nothing => None,
        };
        // Latency as the client sees it: including an acks=all fsync or a long poll, and the
        // wait behind earlier answers on this connection.
        crate::metrics::request(queued.api_key, queued.started.elapsed());
        if let Some(outgoing) = outgoing {
            write_outgoing(&mut writer, &outgoing).await?;
        }
        // Coalesce pipelined responses into one write; flush when nothing else is queued (also
        // after a request with no answer: one written before it may still be buffered).
        if pending.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    writer.shutdown().await?;
    Ok(())
}

async fn write_outgoing(
    writer: &mut BufWriter<OwnedWriteHalf>,
    outgoing: &Outgoing,
) -> Result<(), ConnectionError> {
    for part in &outgoing.parts {
        match part {
            Part::Bytes(bytes) => writer.write_all(bytes).await?,
            Part::File(range) => {
                writer.flush().await?;
                let stream = writer.get_ref().as_ref();
                send_file(stream, &range.file, range.position, range.length as usize).await?;
                // Behind the page-cache tail the hand-back frees page-cache pages, a few
                // hundred µs here: on a blocking thread it overlaps the next fetch instead of
                // adding to its round trip.
                if range.beyond_tail {
                    let sent = range.clone();
                    tokio::task::spawn_blocking(move || sent.hand_back());
                }
            }
        }
    }
    Ok(())
}

/// Sends `length` bytes of `file` from `position` with sendfile(2): the kernel copies from the
/// page cache to the socket. A short file (truncated under us) is an error: the response frame
/// already promised those bytes, so the connection must close.
async fn send_file(
    stream: &TcpStream,
    file: &std::fs::File,
    mut position: u64,
    mut length: usize,
) -> io::Result<()> {
    while length > 0 {
        let sent = stream
            .async_io(Interest::WRITABLE, || {
                let mut offset = position;
                rustix::fs::sendfile(stream.as_fd(), file, Some(&mut offset), length)
                    .map_err(io::Error::from)
            })
            .await?;
        if sent == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file ended before the promised fetch range",
            ));
        }
        position += sent as u64;
        length -= sent;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn frame(body: &[u8]) -> Vec<u8> {
        [&(body.len() as i32).to_be_bytes()[..], body].concat()
    }

    /// How the client ends after sending.
    #[derive(Clone, Copy, PartialEq)]
    enum Close {
        No,
        Cleanly,
        Reset,
    }

    /// What the broker's side holds, and how its stream stands, after a handler ran for half a
    /// second while the client sent `sent` and ended as `close` says; then what `read_frame`
    /// gives, frame by frame.
    async fn read_ahead(
        sent: Vec<u8>,
        close: Close,
    ) -> (BytesMut, &'static str, Vec<Result<Option<Bytes>, String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (mut reader, _writer) = server.into_split();
        let (mut buf, mut end) = (BytesMut::new(), StreamEnd::Open);
        let handling = tokio::time::sleep(std::time::Duration::from_millis(500));
        let sending = async move {
            let mut client = client;
            client.write_all(&sent).await.unwrap();
            match close {
                Close::No => Some(client),
                Close::Cleanly => {
                    client.shutdown().await.unwrap();
                    Some(client)
                }
                // Closing with a zero linger resets the connection.
                Close::Reset => {
                    client.set_zero_linger().unwrap();
                    None
                }
            }
        };
        let (_, _client) = tokio::join!(
            read_ahead_while(handling, &mut reader, &mut buf, &mut end, 1 << 20),
            sending
        );
        let ahead = buf.clone();
        let state = match end {
            StreamEnd::Open => "open",
            StreamEnd::Closed => "closed",
            StreamEnd::Failed(_) => "failed",
        };
        let mut got = Vec::new();
        while close != Close::No || got.is_empty() {
            let next = read_frame(&mut reader, &mut buf, &mut end, 1 << 20, None).await;
            let more = matches!(next, Ok(Some(_)));
            got.push(
                next.map(|f| f.map(|(body, _)| body))
                    .map_err(|e| e.to_string()),
            );
            if !more {
                break;
            }
        }
        (ahead, state, got)
    }

    #[tokio::test]
    async fn the_next_frame_crosses_while_a_request_is_handled() {
        let next = frame(b"next");
        let (ahead, end, got) = read_ahead(next.clone(), Close::No).await;
        assert_eq!((&ahead[..], end), (&next[..], "open"));
        assert_eq!(got, vec![Ok(Some(Bytes::from_static(b"next")))]);
    }

    #[tokio::test]
    async fn an_end_of_stream_met_ahead_ends_cleanly_between_frames_and_as_an_error_inside_one() {
        let (_, end, got) = read_ahead(Vec::new(), Close::Cleanly).await;
        assert_eq!((end, got), ("closed", vec![Ok(None)]));
        let (ahead, end, got) = read_ahead(frame(b"cut off")[..6].to_vec(), Close::Cleanly).await;
        assert_eq!((ahead.len(), end, got.len()), (6, "closed", 1));
        assert!(got[0].is_err(), "{got:?}");
    }

    #[tokio::test]
    async fn a_reset_met_ahead_is_the_next_read_s_error() {
        let (_, end, got) = read_ahead(Vec::new(), Close::Reset).await;
        assert_eq!((end, got.len()), ("failed", 1));
        assert!(got[0].is_err(), "{got:?}");
    }
}
