//! Who the allow lists name: one user, or everyone on a server.

use ruma::{OwnedServerName, OwnedUserId, UserId};
use serde::Deserialize;

/// A user, or everyone on a server: the unit of the allow lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Principal {
    User(OwnedUserId),
    Server(OwnedServerName),
}

impl Principal {
    pub fn matches(&self, user: &UserId) -> bool {
        match self {
            Principal::User(u) => u == user,
            Principal::Server(s) => s == user.server_name(),
        }
    }
}

impl TryFrom<String> for Principal {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.starts_with('@') {
            OwnedUserId::try_from(s.as_str())
                .map(Principal::User)
                .map_err(|e| format!("`{s}` is not a valid user ID: {e}"))
        } else {
            OwnedServerName::try_from(s.as_str())
                .map(Principal::Server)
                .map_err(|e| {
                    format!("`{s}` is neither a user ID (@user:server) nor a server name: {e}")
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_users_or_servers() {
        let user = Principal::try_from("@a:example.com".to_owned()).unwrap();
        let server = Principal::try_from("example.com".to_owned()).unwrap();
        let alice = ruma::user_id!("@a:example.com");
        let bob = ruma::user_id!("@b:example.com");
        let eve = ruma::user_id!("@a:evil.example");
        assert!(user.matches(alice) && !user.matches(bob));
        assert!(server.matches(alice) && server.matches(bob) && !server.matches(eve));
        assert!(Principal::try_from("@broken".to_owned()).is_err());
        assert!(Principal::try_from("not a server".to_owned()).is_err());
    }
}
