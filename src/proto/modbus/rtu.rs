//! Modbus RTU: CRC and frame lengths (placeholder until the full codec lands).

pub const MAX_FRAME: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameLen {
    Complete(usize),
    NeedMore(usize),
    Unknown,
}

pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for b in data {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

pub fn append_crc(frame: &mut Vec<u8>) {
    let c = crc16(frame);
    frame.extend_from_slice(&c.to_le_bytes());
}

pub fn crc_ok(frame: &[u8]) -> bool {
    frame.len() >= 4 && {
        let (body, crc) = frame.split_at(frame.len() - 2);
        crc16(body).to_le_bytes() == [crc[0], crc[1]]
    }
}

pub fn reply_len(func: u8, buf: &[u8]) -> FrameLen {
    if buf.len() < 2 {
        return FrameLen::NeedMore(2);
    }
    if buf[1] == func | 0x80 {
        return FrameLen::Complete(5);
    }
    if buf[1] != func {
        return FrameLen::Unknown;
    }
    match func {
        1..=4 => match buf.get(2) {
            Some(n) => FrameLen::Complete(5 + usize::from(*n)),
            None => FrameLen::NeedMore(3),
        },
        5 | 6 | 0x0F | 0x10 => FrameLen::Complete(8),
        _ => FrameLen::Unknown,
    }
}

pub fn request_len(buf: &[u8]) -> FrameLen {
    if buf.len() < 2 {
        return FrameLen::NeedMore(2);
    }
    match buf[1] {
        1..=6 => FrameLen::Complete(8),
        0x0F | 0x10 => match buf.get(6) {
            Some(n) => FrameLen::Complete(9 + usize::from(*n)),
            None => FrameLen::NeedMore(7),
        },
        _ => FrameLen::Unknown,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtuEvent {
    Frame(Vec<u8>),
    BadCrc(Vec<u8>),
    Truncated(Vec<u8>),
    Oversized(Vec<u8>),
}

#[derive(Debug, Default)]
pub struct RtuFramer {
    buf: Vec<u8>,
}

impl RtuFramer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<RtuEvent>) {
        for b in data {
            self.buf.push(*b);
            match request_len(&self.buf) {
                FrameLen::Complete(n) if self.buf.len() >= n => {
                    let f = std::mem::take(&mut self.buf);
                    out.push(if crc_ok(&f) {
                        RtuEvent::Frame(f)
                    } else {
                        RtuEvent::BadCrc(f)
                    });
                }
                _ if self.buf.len() >= MAX_FRAME => {
                    out.push(RtuEvent::Oversized(std::mem::take(&mut self.buf)))
                }
                _ => {}
            }
        }
    }

    pub fn flush(&mut self, out: &mut Vec<RtuEvent>) {
        if self.buf.is_empty() {
            return;
        }
        let f = std::mem::take(&mut self.buf);
        out.push(match request_len(&f) {
            FrameLen::Unknown => RtuEvent::Frame(f),
            _ => RtuEvent::Truncated(f),
        });
    }
}
