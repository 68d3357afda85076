//! One record on disk:
//! `[u32 LE payload length][u32 LE crc32 of (position LE ++ payload)][u64 LE position][payload]`.
//!
//! The checksum covers the position as well as the payload so that a frame copied or
//! replayed at the wrong place (a stale block, a misdirected write) is caught, not just a
//! flipped bit; the position in every frame lets recovery prove that no record is missing
//! between two frames or two segments.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

/// Bytes before the payload: length, checksum, position.
pub(crate) const HEADER_LEN: usize = 16;

/// Largest payload a frame can describe (its length field is 32 bits).
pub(crate) const MAX_PAYLOAD: usize = u32::MAX as usize;

pub(crate) fn checksum(position: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&position.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the frame for `payload` at `position` to `buf`. The caller has checked
/// `payload.len() <= MAX_PAYLOAD`.
pub(crate) fn encode(buf: &mut Vec<u8>, position: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(position, payload).to_le_bytes());
    buf.extend_from_slice(&position.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The fixed-size part of a frame, not yet checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub len: u32,
    pub crc: u32,
    pub position: u64,
}

impl Header {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        let [l0, l1, l2, l3, c0, c1, c2, c3, p0, p1, p2, p3, p4, p5, p6, p7] = *bytes;
        Header {
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            position: u64::from_le_bytes([p0, p1, p2, p3, p4, p5, p6, p7]),
        }
    }

    /// Bytes of the whole frame, header included.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// A frame checked against its checksum.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub position: u64,
    pub payload: &'a [u8],
    /// Bytes the frame occupies, header included.
    pub frame_len: usize,
}

/// Decodes and verifies the frame at the start of `buf`. Used on the read path, where the
/// bytes were already verified at open; checking again costs little and turns later
/// on-disk damage into an error instead of wrong data handed to the applier.
pub(crate) fn decode(buf: &[u8]) -> Result<Decoded<'_>, String> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Err(format!("incomplete frame header ({} bytes)", buf.len()));
    };
    let header = Header::parse(head);
    let frame_len = HEADER_LEN + header.len as usize;
    let Some(payload) = buf.get(HEADER_LEN..frame_len) else {
        return Err(format!(
            "frame length {} runs past the {} bytes available",
            header.len,
            buf.len() - HEADER_LEN
        ));
    };
    let actual = checksum(header.position, payload);
    if actual != header.crc {
        return Err(format!(
            "checksum mismatch (stored {:08x}, computed {actual:08x})",
            header.crc
        ));
    }
    Ok(Decoded {
        position: header.position,
        payload,
        frame_len,
    })
}

/// What a full scan of one segment file found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Byte offset of every valid frame, in order; frame `i` holds position `base + i`.
    pub offsets: Vec<u64>,
    /// End of the last valid frame.
    pub valid_len: u64,
    /// Length of the file as scanned.
    pub file_len: u64,
    /// The first frame that failed a check, if any; nothing after it was looked at.
    pub damage: Option<Damage>,
}

#[derive(Debug)]
pub(crate) struct Damage {
    pub offset: u64,
    pub reason: String,
    /// The damage could be an interrupted group write: a frame that cannot be complete or
    /// fails its checksum (not an intact frame in the wrong place). It is cut only at the
    /// end of the newest segment and only if no intact frame follows it (see
    /// [`intact_frame_after`]): such a group's fsync never returned, so none of it was
    /// acknowledged.
    pub tail_like: bool,
}

/// Reads `file` from start to end, checking every frame's bounds, checksum and position
/// (`base`, `base + 1`, ...). Streams the file so that a large segment is not loaded whole.
pub(crate) fn scan(file: &File, base: u64) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut offsets = Vec::new();
    let mut offset = 0u64;
    let mut expected = base;
    let damage = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < HEADER_LEN as u64 {
            if zeros_from(file, offset, file_len)? {
                break None;
            }
            break Some(Damage {
                offset,
                reason: format!("incomplete frame header ({remaining} bytes before end of file)"),
                tail_like: true,
            });
        }
        let mut head = [0u8; HEADER_LEN];
        reader.read_exact(&mut head)?;
        // A frame's header is never all zero (its checksum covers a position ≥ 1), so zeros
        // to the end of the file are space not written yet: preallocated, or a file
        // extended by a write whose data never reached the disk. Either way the log ends.
        if head == [0u8; HEADER_LEN] && zeros_from(file, offset, file_len)? {
            break None;
        }
        let header = Header::parse(&head);
        let frame_end = offset + header.frame_len();
        if frame_end > file_len {
            break Some(Damage {
                offset,
                reason: format!(
                    "frame length {} runs past end of file ({} bytes left)",
                    header.len,
                    remaining - HEADER_LEN as u64
                ),
                tail_like: true,
            });
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header.position.to_le_bytes());
        let mut left = header.len as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            let part = &mut chunk[..n];
            reader.read_exact(part)?;
            hasher.update(part);
            left -= n;
        }
        let actual = hasher.finalize();
        if actual != header.crc {
            break Some(Damage {
                offset,
                reason: format!(
                    "checksum mismatch (stored {:08x}, computed {actual:08x})",
                    header.crc
                ),
                tail_like: true,
            });
        }
        if header.position != expected {
            // The frame is intact, so this is not a torn write: a record is missing or out
            // of place, and guessing which would lose data.
            break Some(Damage {
                offset,
                reason: format!(
                    "record holds position {} where {expected} was expected",
                    header.position
                ),
                tail_like: false,
            });
        }
        offsets.push(offset);
        expected += 1;
        offset = frame_end;
    };
    Ok(Scan {
        offsets,
        valid_len: offset,
        file_len,
        damage,
    })
}

/// Whether an intact frame — a header whose position is `expected` or later and whose
/// checksum holds — starts anywhere in `after + 1 .. len`. Used before cutting a tail: if one
/// does, the damage is not the last group's and cutting would drop acknowledged records.
/// Only runs when a log is damaged, and checks a checksum only where the header is
/// plausible (a position in range, a frame that fits).
pub(crate) fn intact_frame_after(
    file: &File,
    after: u64,
    len: u64,
    expected: u64,
) -> io::Result<bool> {
    let end = nonzero_end(file, after, len)?;
    if end <= after + HEADER_LEN as u64 {
        return Ok(false);
    }
    let mut bytes = vec![0u8; (end - after) as usize];
    file.read_exact_at(&mut bytes, after)?;
    for start in 1..bytes.len().saturating_sub(HEADER_LEN - 1) {
        let Ok(head) = <[u8; HEADER_LEN]>::try_from(&bytes[start..start + HEADER_LEN]) else {
            continue;
        };
        let h = Header::parse(&head);
        let body = start + HEADER_LEN;
        let plausible = h.position >= expected
            && h.position - expected < bytes.len() as u64
            && body + h.len as usize <= bytes.len();
        if plausible && checksum(h.position, &bytes[body..body + h.len as usize]) == h.crc {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One past the last non-zero byte of `file` in `from..len` (`from` if there is none).
pub(crate) fn nonzero_end(file: &File, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = from;
    let mut end = from;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        let part = &mut buf[..n];
        file.read_exact_at(part, at)?;
        if let Some(i) = part.iter().rposition(|&b| b != 0) {
            end = at + i as u64 + 1;
        }
        at += n as u64;
    }
    Ok(end)
}

/// Whether bytes `from..len` of `file` are all zero (true when the range is empty). A file
/// whose size was extended by a write whose data never reached the disk reads as zeros.
pub(crate) fn zeros_from(file: &File, from: u64, len: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        let part = &mut buf[..n];
        file.read_exact_at(part, at)?;
        if part.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_frame_encode_decode_round_trip() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, b"hello");
        encode(&mut buf, 8, b"");
        assert_eq!(buf.len(), 2 * HEADER_LEN + 5);
        let a = decode(&buf).unwrap();
        assert_eq!((a.position, a.payload, a.frame_len), (7, &b"hello"[..], 21));
        let b = decode(&buf[a.frame_len..]).unwrap();
        assert_eq!((b.position, b.payload, b.frame_len), (8, &b""[..], 16));
    }

    #[test]
    fn log_frame_checksum_covers_position_and_payload() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, b"hello");
        let mut moved = buf.clone();
        moved[8] ^= 1; // position byte
        assert!(decode(&moved).unwrap_err().contains("checksum"));
        let mut flipped = buf.clone();
        flipped[HEADER_LEN + 2] ^= 0x40; // payload byte
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
        assert!(decode(&buf[..buf.len() - 1])
            .unwrap_err()
            .contains("runs past"));
        assert!(decode(&buf[..3]).unwrap_err().contains("incomplete"));
    }
}
