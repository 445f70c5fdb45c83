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

#[cfg(test)]
mod tests {
    use super::*;

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
