//! The little of an SDP offer the SFU reads itself: which mid carries which track (`a=msid`),
//! to tie the publisher's m-lines to the tracks announced with `add_track` (whose `cid` is the
//! browser's MediaStreamTrack id, the msid's second part).

/// One m-line: its mid, its kind (`audio`/`video`/`application`), the msid track id, and
/// whether it sends (a port of 0 or `inactive`/`recvonly` does not).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub mid: String,
    pub kind: String,
    pub track_id: Option<String>,
    pub sending: bool,
}

pub fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            let kind = f.next().unwrap_or_default().to_owned();
            let port = f.next().unwrap_or("0");
            out.push(Section {
                mid: String::new(),
                kind,
                track_id: None,
                sending: port != "0",
            });
            continue;
        }
        let Some(s) = out.last_mut() else { continue };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            s.mid = mid.to_owned();
        } else if let Some(msid) = line.strip_prefix("a=msid:") {
            s.track_id = msid.split_whitespace().nth(1).map(str::to_owned);
        } else if line == "a=inactive" || line == "a=recvonly" {
            s.sending = false;
        }
    }
    out
}

/// The answer with each m-line's payload types reordered: first those of the codec the
/// publisher asked for on that mid (`add_track`'s `simulcast_codecs`, e.g. `h264`), then in the
/// offer's order. livekit-client does not reorder its offer (Chromium lists VP8 first); a
/// LiveKit server picks the requested codec in its answer, and the offerer sends with the
/// answer's first payload type. str0m answers in its own configured order, hence this.
pub fn answer_preferring(
    offer: &str,
    answer: &str,
    preferred: &std::collections::HashMap<String, String>,
) -> String {
    let offer_order: Vec<Vec<String>> = split_sections(offer)
        .iter()
        .map(|sec| {
            sec.first()
                .and_then(|m| m.strip_prefix("m="))
                .map(|m| m.split_whitespace().skip(3).map(str::to_owned).collect())
                .unwrap_or_default()
        })
        .collect();
    let mut out = String::with_capacity(answer.len() + 64);
    for (index, sec) in split_sections(answer).iter().enumerate() {
        let Some(m) = sec.first().and_then(|m| m.strip_prefix("m=")) else {
            // The session part.
            for l in sec {
                out.push_str(l);
                out.push_str("\r\n");
            }
            continue;
        };
        let mid = sec
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .unwrap_or("");
        // Payload type -> codec name, an rtx counting as the codec it repairs.
        let mut codec: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        for l in sec {
            if let Some((pt, rest)) = l.strip_prefix("a=rtpmap:").and_then(|r| r.split_once(' ')) {
                codec.insert(
                    pt,
                    rest.split('/').next().unwrap_or("").to_ascii_lowercase(),
                );
            }
        }
        for l in sec {
            if let Some((pt, rest)) = l.strip_prefix("a=fmtp:").and_then(|r| r.split_once(' '))
                && let Some(apt) = rest.split(';').find_map(|p| p.trim().strip_prefix("apt="))
                && let Some(c) = codec.get(apt).cloned()
            {
                codec.insert(pt, c);
            }
        }
        let wanted = preferred.get(mid).map(|c| c.to_ascii_lowercase());
        let order = offer_order.get(index).cloned().unwrap_or_default();
        let fields: Vec<&str> = m.split_whitespace().collect();
        let mut pts: Vec<&str> = fields.iter().skip(3).copied().collect();
        pts.sort_by_key(|pt| {
            (
                wanted.is_some() && codec.get(pt) != wanted.as_ref(),
                order.iter().position(|o| o == pt).unwrap_or(usize::MAX),
            )
        });
        out.push_str("m=");
        out.push_str(
            &[&fields[..fields.len().min(3)], &pts[..]]
                .concat()
                .join(" "),
        );
        out.push_str("\r\n");
        for l in &sec[1..] {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out
}

/// The session part, then each m= section, as lines.
fn split_sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            out.push(Vec::new());
        }
        out.last_mut().expect("never empty").push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_requested_codec_first() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\na=mid:1\r\n";
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97\r\na=mid:1\r\n\
            a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
            a=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";
        let none = std::collections::HashMap::new();
        let plain = answer_preferring(offer, answer, &none);
        assert!(
            plain.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n"),
            "{plain}"
        );
        let h264 = [("1".to_owned(), "h264".to_owned())].into_iter().collect();
        let preferred = answer_preferring(offer, answer, &h264);
        assert!(
            preferred.contains("m=video 9 UDP/TLS/RTP/SAVPF 102 103 96 97\r\n"),
            "{preferred}"
        );
        assert!(preferred.starts_with("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"));
        assert!(preferred.ends_with("a=fmtp:103 apt=102\r\n"));
    }

    #[test]
    fn reads_mids_and_msids() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\na=msid:s1 tr-a\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:s1 tr-v\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=inactive\r\n";
        let s = sections(sdp);
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].mid, "1");
        assert_eq!(s[1].kind, "audio");
        assert_eq!(s[1].track_id.as_deref(), Some("tr-a"));
        assert!(s[1].sending);
        assert!(!s[2].sending);
        assert!(!s[3].sending);
        assert_eq!(s[3].track_id, None);
    }
}
