//! What forwarding one publisher's RTP to one subscriber takes: keyframe detection (to start
//! and to switch simulcast layers cleanly), the layer choice, and the per-subscriber rewrite of
//! sequence numbers and timestamps (the SSRC is the subscriber-side stream's own).

use str0m::format::Codec;

/// Simulcast rids as livekit-client names them, lowest first.
pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// Whether this RTP payload starts a keyframe (VP8: RFC 7741; H.264: RFC 6184). Other codecs
/// (and audio) count every packet as one, so they are never held back.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_starts_keyframe(payload),
        Codec::H264 => h264_starts_keyframe(payload),
        _ => true,
    }
}

fn vp8_starts_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    // VP8 payload header: P bit (inverse key frame flag) is bit 0.
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

fn h264_starts_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let is_key = |t: u8| t == 5 || t == 7;
    match b0 & 0x1f {
        t @ 1..=23 => is_key(t),
        24 => {
            // STAP-A: 16-bit sizes, then NAL units.
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                if is_key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        _ => false,
    }
}

/// The rid index (0 = `q`) a subscriber should get: the highest layer that is flowing at or
/// below `wanted` (an index into [`RIDS`]), or else the lowest flowing one.
pub fn choose_layer(active: [bool; 3], wanted: usize) -> Option<usize> {
    (0..=wanted.min(2))
        .rev()
        .find(|&i| active[i])
        .or_else(|| (0..3).find(|&i| active[i]))
}

pub fn rid_index(rid: &str) -> Option<usize> {
    RIDS.iter().position(|r| *r == rid)
}

/// Rewrites one incoming stream (or a succession of simulcast layers) into one outgoing
/// sequence: contiguous sequence numbers and timestamps across layer switches.
#[derive(Debug, Default, Clone)]
pub struct Rewriter {
    /// (seq offset, timestamp offset) from the current incoming stream.
    offsets: Option<(u64, u32)>,
    last: Option<(u64, u32)>,
}

impl Rewriter {
    /// Starts (or restarts after a switch) from an incoming packet with `seq`/`ts`.
    pub fn rebase(&mut self, seq: u64, ts: u32) {
        let (out_seq, out_ts) = match self.last {
            // One past the last packet sent, and a frame's worth of time later.
            Some((s, t)) => (s + 1, t.wrapping_add(3000)),
            // A fresh random start, kept below 2^15 so the rollover counter starts at zero.
            None => (u64::from(rand::random::<u16>() >> 1) + 1, rand::random()),
        };
        self.offsets = Some((out_seq.wrapping_sub(seq), out_ts.wrapping_sub(ts)));
    }

    pub fn is_started(&self) -> bool {
        self.offsets.is_some()
    }

    /// The outgoing (seq, ts) for an incoming packet; `None` before [`Rewriter::rebase`].
    pub fn map(&mut self, seq: u64, ts: u32) -> Option<(u64, u32)> {
        let (ds, dt) = self.offsets?;
        let out = (seq.wrapping_add(ds), ts.wrapping_add(dt));
        if self.last.is_none_or(|(s, _)| out.0 > s) {
            self.last = Some(out);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes() {
        // X=1, S=1, PID=0; I=1 (15-bit picture id), L=1, T=1; then a key frame header.
        assert!(vp8_starts_keyframe(&[
            0x90, 0xe0, 0x80, 0x01, 0x00, 0x00, 0x10
        ]));
        // Same with the P bit set: an inter frame.
        assert!(!vp8_starts_keyframe(&[
            0x90, 0xe0, 0x80, 0x01, 0x00, 0x00, 0x11
        ]));
        // Not the start of a partition.
        assert!(!vp8_starts_keyframe(&[
            0x80, 0xe0, 0x80, 0x01, 0x00, 0x00, 0x10
        ]));
        // No extensions.
        assert!(vp8_starts_keyframe(&[0x10, 0x9c]));
        assert!(!vp8_starts_keyframe(&[]));
    }

    #[test]
    fn h264_keyframes() {
        assert!(h264_starts_keyframe(&[0x65, 0x88])); // IDR
        assert!(h264_starts_keyframe(&[0x67, 0x42])); // SPS
        assert!(!h264_starts_keyframe(&[0x41, 0x9a])); // non-IDR slice
        // STAP-A with SPS and PPS.
        assert!(h264_starts_keyframe(&[
            0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce
        ]));
        // FU-A start of an IDR, and its continuation.
        assert!(h264_starts_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!h264_starts_keyframe(&[0x7c, 0x05, 0x00]));
    }

    #[test]
    fn layer_choice() {
        assert_eq!(choose_layer([true, true, true], 2), Some(2));
        assert_eq!(choose_layer([true, true, false], 2), Some(1));
        assert_eq!(choose_layer([true, true, true], 0), Some(0));
        assert_eq!(choose_layer([false, false, true], 0), Some(2));
        assert_eq!(choose_layer([false; 3], 2), None);
    }

    #[test]
    fn rewriting_stays_contiguous_across_switches() {
        let mut r = Rewriter::default();
        assert_eq!(r.map(5, 100), None);
        r.rebase(1000, 50_000);
        let (s0, t0) = r.map(1000, 50_000).unwrap();
        assert_eq!(r.map(1001, 53_000), Some((s0 + 1, t0.wrapping_add(3000))));
        // Another layer, with its own numbering.
        r.rebase(7, 900);
        assert_eq!(r.map(7, 900), Some((s0 + 2, t0.wrapping_add(6000))));
        assert_eq!(r.map(8, 900), Some((s0 + 3, t0.wrapping_add(6000))));
    }
}
