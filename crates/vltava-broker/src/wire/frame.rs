//! Frames: a big-endian i32 size, then that many bytes (request header and body).
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

/// Why a frame cannot be read; each closes the connection, as Kafka does
/// (`InvalidReceiveException` in `NetworkReceive`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid frame size {size} (socket.request.max.bytes is {max})")]
    InvalidSize { size: i64, max: usize },
}

/// Looks at buffered bytes (mini-redis's `Frame::check`): `Ok(Some(n))` when a whole frame of
/// `n` body bytes follows the 4-byte size, `Ok(None)` when more bytes are needed (the caller may
/// reserve `n` once the size is known and valid), `Err` when the size is negative or larger than
/// `max`, decided before anything is allocated.
pub fn check_frame(buf: &[u8], max: usize) -> Result<FrameStatus, FrameError> {
    let Some(size_bytes) = buf.get(..4) else {
        return Ok(FrameStatus::NeedSize);
    };
    let mut size = [0u8; 4];
    size.copy_from_slice(size_bytes);
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > max {
        return Err(FrameError::InvalidSize {
            size: i64::from(size),
            max,
        });
    }
    let size = size as usize;
    if buf.len() - 4 >= size {
        Ok(FrameStatus::Complete(size))
    } else {
        Ok(FrameStatus::NeedBody(size))
    }
}

/// What [`check_frame`] found in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Fewer than 4 bytes buffered.
    NeedSize,
    /// The size is valid; this many body bytes are expected in total.
    NeedBody(usize),
    /// A whole frame with this many body bytes is buffered after the size.
    Complete(usize),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_oversized_frames_are_rejected_before_the_body_arrives() {
        assert!(check_frame(&(-1i32).to_be_bytes(), 100).is_err());
        assert!(check_frame(&101i32.to_be_bytes(), 100).is_err());
        assert_eq!(
            check_frame(&100i32.to_be_bytes(), 100),
            Ok(FrameStatus::NeedBody(100))
        );
    }

    #[test]
    fn complete_frames_are_found() {
        let mut buf = 3i32.to_be_bytes().to_vec();
        assert_eq!(check_frame(&buf[..2], 10), Ok(FrameStatus::NeedSize));
        buf.extend_from_slice(&[1, 2]);
        assert_eq!(check_frame(&buf, 10), Ok(FrameStatus::NeedBody(3)));
        buf.push(3);
        assert_eq!(check_frame(&buf, 10), Ok(FrameStatus::Complete(3)));
    }
}
