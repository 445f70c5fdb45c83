//! Percent-encoding of a URI's user information, keeping only RFC 3986's unreserved characters:
//! how TURN credentials go into webrtcbin's URIs (media), and so one of the spellings of a
//! secret that the log scrubs (logging).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is encoded.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn encode_userinfo(s: &str) -> String {
    utf8_percent_encode(s, USERINFO).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay() {
        assert_eq!(
            encode_userinfo("1759000000:@room:localhost a+b/c=~x-y_z.é"),
            "1759000000%3A%40room%3Alocalhost%20a%2Bb%2Fc%3D~x-y_z.%C3%A9"
        );
    }
}
