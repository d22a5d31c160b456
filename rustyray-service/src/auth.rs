//! Bearer tokens with a role. `read` may use every GET route, the status
//! calls and the event streams; `admin` may also submit, cancel and retry.
//! Tokens come from configuration (a file, or the environment), never from
//! the command line, and are compared in constant time.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{Result, ServiceError};

/// What a token may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: jobs, stats, active jobs, health, events, metrics.
    Read,
    /// Reads and changes: submit, cancel, retry.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(ServiceError::Config(format!("`{other}` is not a role: use `read` or `admin`"))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Admin => "admin",
        })
    }
}

/// The shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// The environment variable holding tokens, `role:token` separated by commas
/// or new lines.
pub const TOKENS_ENV: &str = "RUSTYRAY_TOKENS";
/// The environment variable naming a file of tokens, one `role:token` per line.
pub const TOKENS_FILE_ENV: &str = "RUSTYRAY_TOKENS_FILE";

/// The tokens a service accepts. `Debug` shows how many there are, never
/// the tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Box<[u8]>, Role)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

impl Tokens {
    /// No tokens: every protected route refuses.
    pub fn new() -> Self {
        Tokens::default()
    }

    /// Adds `token` with `role`. Panics on a token shorter than
    /// [`MIN_TOKEN_LEN`]: use [`Tokens::parse`] for tokens from outside.
    pub fn with(mut self, token: impl Into<String>, role: Role) -> Self {
        let token = token.into();
        assert!(token.len() >= MIN_TOKEN_LEN, "a token must be at least {MIN_TOKEN_LEN} characters");
        self.entries.push((token.into_bytes().into_boxed_slice(), role));
        self
    }

    /// Reads `role:token` entries separated by new lines or commas; blank
    /// lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self> {
        let mut tokens = Tokens::new();
        for (number, entry) in text.split(['\n', ',']).map(str::trim).enumerate() {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let Some((role, token)) = entry.split_once(':') else {
                return Err(ServiceError::Config(format!("token entry {} is not `role:token`", number + 1)));
            };
            let role: Role = role.parse()?;
            let token = token.trim();
            if token.len() < MIN_TOKEN_LEN {
                return Err(ServiceError::Config(format!(
                    "token entry {} is shorter than {MIN_TOKEN_LEN} characters",
                    number + 1
                )));
            }
            tokens.entries.push((token.as_bytes().into(), role));
        }
        Ok(tokens)
    }

    /// Reads a tokens file (see [`Tokens::parse`]).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ServiceError::Config(format!("reading tokens from {}: {error}", path.display())))?;
        Self::parse(&text)
    }

    /// Tokens from `RUSTYRAY_TOKENS` and the file `RUSTYRAY_TOKENS_FILE`
    /// names, both if both are set; none if neither is.
    pub fn from_env() -> Result<Self> {
        let mut tokens = match std::env::var(TOKENS_ENV) {
            Ok(text) => Self::parse(&text)?,
            Err(_) => Tokens::new(),
        };
        if let Ok(path) = std::env::var(TOKENS_FILE_ENV) {
            tokens.entries.extend(Self::from_file(Path::new(&path))?.entries);
        }
        Ok(tokens)
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role of `presented`, comparing against every token in constant
    /// time (only the length of a mismatch can be timed).
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let mut found: Option<Role> = None;
        for (token, role) in &self.entries {
            if bool::from(token.as_ref().ct_eq(presented)) {
                found = Some(found.map_or(*role, |r| r.max(*role)));
            }
        }
        found
    }

    /// The role the `Authorization` header value grants, or why none.
    pub fn authorize(&self, header: Option<&[u8]>, needed: Role) -> Result<Role> {
        let Some(header) = header else {
            return Err(ServiceError::Unauthenticated("no token: send `Authorization: Bearer <token>`".into()));
        };
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or_else(|| ServiceError::Unauthenticated("the Authorization header must be `Bearer <token>`".into()))?;
        let role = self
            .role_of(token.trim_ascii())
            .ok_or_else(|| ServiceError::Unauthenticated("the token is not one this service knows".into()))?;
        if role < needed {
            return Err(ServiceError::PermissionDenied(format!("this needs the {needed} role; the token has {role}")));
        }
        Ok(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "read-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";

    fn tokens() -> Tokens {
        Tokens::parse(&format!("# ops\nread:{READ}\nadmin:{ADMIN}")).unwrap()
    }

    #[test]
    fn roles_gate_what_a_token_may_do() {
        let t = tokens();
        let bearer = |s: &str| format!("Bearer {s}").into_bytes();
        assert_eq!(t.authorize(Some(&bearer(READ)), Role::Read).unwrap(), Role::Read);
        assert!(matches!(t.authorize(Some(&bearer(READ)), Role::Admin), Err(ServiceError::PermissionDenied(_))));
        assert_eq!(t.authorize(Some(&bearer(ADMIN)), Role::Admin).unwrap(), Role::Admin);
        assert!(matches!(t.authorize(Some(&bearer("x")), Role::Read), Err(ServiceError::Unauthenticated(_))));
        assert!(matches!(t.authorize(None, Role::Read), Err(ServiceError::Unauthenticated(_))));
        assert!(matches!(t.authorize(Some(READ.as_bytes()), Role::Read), Err(ServiceError::Unauthenticated(_))));
    }

    #[test]
    fn bad_configuration_is_refused_and_tokens_never_print() {
        assert!(Tokens::parse("admin:short").is_err());
        assert!(Tokens::parse("root:0123456789abcdef0").is_err());
        assert!(Tokens::parse("0123456789abcdef0").is_err());
        assert_eq!(format!("{:?}", tokens()), "Tokens(2 configured)");
    }
}
