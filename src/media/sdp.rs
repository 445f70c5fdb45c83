//! The little of an SDP offer the engine must read to answer it: per m-line, its kind, its mid
//! and the payload type of the one codec roomd sends there (H.264 packetization-mode 1, Opus).

/// One m-line of a remote offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedMedia {
    pub index: u32,
    pub kind: String,
    pub mid: Option<String>,
    /// Our codec's payload type in this m-line, if offered.
    pub payload: Option<u8>,
}

/// One m-line being read: the medium and its codec lines.
struct Section {
    media: OfferedMedia,
    rtpmaps: Vec<(u8, String)>,
    fmtps: Vec<(u8, String)>,
}

impl Section {
    fn finish(mut self) -> OfferedMedia {
        self.media.payload = choose(&self.media.kind, &self.rtpmaps, &self.fmtps);
        self.media
    }
}

/// Reads the m-lines of `sdp`. Codecs are matched as browsers offer them: the first H.264 entry
/// with `packetization-mode=1` and a baseline-family profile (42xxxx), else any H.264 with
/// mode 1; the first Opus.
pub fn offered_media(sdp: &str) -> Vec<OfferedMedia> {
    let mut out = Vec::new();
    let mut current: Option<Section> = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(rest) = line.strip_prefix("m=") {
            out.extend(current.take().map(Section::finish));
            current = Some(Section {
                media: OfferedMedia {
                    index: out.len() as u32,
                    kind: rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    mid: None,
                    payload: None,
                },
                rtpmaps: Vec::new(),
                fmtps: Vec::new(),
            });
        } else if let Some(section) = current.as_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                section.media.mid = Some(mid.to_owned());
            } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                section.rtpmaps.extend(payload_and_rest(rest));
            } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
                section.fmtps.extend(payload_and_rest(rest));
            }
        }
    }
    out.extend(current.map(Section::finish));
    out
}

fn payload_and_rest(s: &str) -> Option<(u8, String)> {
    let (pt, rest) = s.split_once(' ')?;
    Some((pt.parse().ok()?, rest.to_owned()))
}

fn choose(kind: &str, rtpmaps: &[(u8, String)], fmtps: &[(u8, String)]) -> Option<u8> {
    let fmtp = |pt: u8| {
        fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map_or("", |(_, f)| f.as_str())
    };
    let named = |name: &'static str| {
        rtpmaps
            .iter()
            .filter(move |(_, codec)| {
                codec
                    .split('/')
                    .next()
                    .is_some_and(|c| c.eq_ignore_ascii_case(name))
            })
            .map(|(pt, _)| *pt)
    };
    match kind {
        "audio" => named("opus").next(),
        "video" => {
            let mode1 = |pt: &u8| fmtp(*pt).contains("packetization-mode=1");
            let baseline = |pt: &u8| {
                fmtp(*pt)
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("profile-level-id="))
                    .is_some_and(|id| id.to_ascii_lowercase().starts_with("42"))
            };
            named("H264")
                .find(|pt| mode1(pt) && baseline(pt))
                .or_else(|| named("H264").find(mode1))
        }
        _ => None,
    }
}

/// The `a=mid` of each m-line of our own description, in order, for candidates.
pub fn mids(sdp: &str) -> Vec<Option<String>> {
    offered_media(sdp).into_iter().map(|m| m.mid).collect()
}

/// `sdp` with `a=msid:<stream_id> <track>` on every m-line that names no stream yet. webrtcbin
/// 1.22 writes the pad's msid only beside an SSRC, and an answer made before media flows has
/// none for audio: the browser then files the track under no stream, and matrix-js-sdk, which
/// finds streams by ID in `sdp_stream_metadata`, drops it.
pub fn with_msid(sdp: &str, stream_id: &str, ssrcs: &[(&str, u32)]) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.lines() {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        sections
            .last_mut()
            .expect("one section at least")
            .push(line);
    }
    let mut out = String::with_capacity(sdp.len() + 128);
    for (i, section) in sections.iter().enumerate() {
        let named = section.iter().any(|l| {
            l.starts_with("a=msid:") || (l.starts_with("a=ssrc:") && l.contains(" msid:"))
        });
        let kind = section
            .first()
            .and_then(|l| l.strip_prefix("m="))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("media");
        for line in section {
            out.push_str(line);
            out.push_str(eol);
            if i > 0 && !named && line.starts_with("a=mid:") {
                let track = format!("{kind}-{i}");
                out.push_str(&format!("a=msid:{stream_id} {track}{eol}"));
                // The SSRC we send with, so the browser binds it to the track up front.
                if let Some((_, ssrc)) = ssrcs.iter().find(|(k, _)| *k == kind) {
                    out.push_str(&format!("a=ssrc:{ssrc} cname:roomd{eol}"));
                    out.push_str(&format!("a=ssrc:{ssrc} msid:{stream_id} {track}{eol}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like Chromium 156's offer: VP8 first, several H.264 profiles.
    const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r\n\
a=mid:0\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109\r\n\
a=mid:1\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:103 H264/90000\r\n\
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032\r\n\
a=rtpmap:108 H264/90000\r\n\
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:109 rtx/90000\r\n";

    #[test]
    fn picks_opus_and_baseline_h264_with_packetization_mode_1() {
        let media = offered_media(CHROMIUM_OFFER);
        assert_eq!(media.len(), 2);
        assert_eq!(
            media[0],
            OfferedMedia {
                index: 0,
                kind: "audio".to_owned(),
                mid: Some("0".to_owned()),
                payload: Some(111)
            }
        );
        assert_eq!(media[1].kind, "video");
        assert_eq!(media[1].payload, Some(108));
        assert_eq!(
            mids(CHROMIUM_OFFER),
            vec![Some("0".to_owned()), Some("1".to_owned())]
        );
    }

    #[test]
    fn no_usable_codec_is_none_and_garbage_is_no_media() {
        let vp8_only = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(offered_media(vp8_only)[0].payload, None);
        assert!(offered_media("garbage\n\u{0}\nm").is_empty());
        assert_eq!(offered_media("m=\na=rtpmap:x\na=fmtp:999 y").len(), 1);
    }

    #[test]
    fn every_m_line_names_the_stream_once() {
        let sdp = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\na=sendrecv\r\n\
                   m=video 9 X 96\r\na=mid:1\r\na=ssrc:5 msid:s t\r\n";
        let out = with_msid(sdp, "s", &[("audio", 7)]);
        assert!(
            out.contains(
                "a=mid:0\r\na=msid:s audio-1\r\na=ssrc:7 cname:roomd\r\na=ssrc:7 msid:s audio-1\r\n"
            ),
            "{out}"
        );
        assert_eq!(out.matches("msid:").count(), 3, "{out}");
        assert!(out.ends_with("\r\n"));
    }
}
