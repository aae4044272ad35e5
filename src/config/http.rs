//! `[http]` (and its old name `[metrics]`, and the `--http`/`--metrics`
//! flags): the one HTTP listener that serves the metrics and the web
//! console, and the console's password users (`[[http.user]]`).
//!
//! Users are checked here as the file is read: a name that is unique and
//! prints safely, an argon2id PHC string (`serialhub passwd` prints one),
//! and a role. Verifying passwords is `crate::web::auth`'s.

use crate::access::Role;
use crate::endpoint::EndpointSpec;

/// The longest user name: ample for a login, short enough for a log line.
pub(crate) const MAX_USER_NAME: usize = 64;
/// The longest `password-hash`: an argon2id PHC string is about 100
/// characters; a longer one is not one `serialhub passwd` wrote.
const MAX_HASH: usize = 512;

/// Checks `--http ADDR` (`--metrics ADDR`, named by `flag`) as a
/// configuration file's `[http] listen`.
pub(crate) fn check_metrics(addr: &str, flag: &'static str) -> Result<(), super::ConfigError> {
    check_metrics_listen(addr).map_err(|why| super::ConfigError::Metrics {
        flag,
        addr: addr.to_owned(),
        why,
    })
}

/// Why `addr` is not a `HOST:PORT` to listen on.
pub(crate) fn check_metrics_listen(addr: &str) -> Result<(), String> {
    if addr.contains(',') {
        return Err("expected HOST:PORT, with no options".into());
    }
    format!("tcp:{addr}")
        .parse::<EndpointSpec>()
        .map(|_| ())
        .map_err(|e| match e {
            crate::endpoint::EndpointParseError::Address { why, .. } => why.to_owned(),
            e => e.to_string(),
        })
}

/// Which name turned the listener on. The old one (`--metrics`,
/// `[metrics]`) keeps its old behaviour on a network address without
/// authentication: `/metrics` only, no console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HttpName {
    /// `--http`, `[http] listen`.
    Http,
    /// `--metrics`, `[metrics]`.
    Metrics,
}

/// The listener as a configuration file (or the flags) give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpConfig {
    /// `HOST:PORT`; `None` when only users are given (`--http` names it).
    pub(crate) listen: Option<String>,
    /// HTTPS with the `[tls]` files.
    pub(crate) tls: bool,
    /// Plain HTTP with password users on a network address, asked for.
    pub(crate) insecure: bool,
    pub(crate) users: Vec<HttpUser>,
    pub(crate) name: HttpName,
}

/// One `[[http.user]]`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HttpUser {
    pub(crate) name: String,
    /// An argon2id PHC string.
    pub(crate) password_hash: String,
    pub(crate) role: Role,
}

/// The hash stays out of debug output (and so out of logs).
impl std::fmt::Debug for HttpUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpUser({}, {})", self.name, self.role)
    }
}

impl HttpUser {
    /// A user from a file's strings, or why not.
    pub(crate) fn new(name: &str, password_hash: &str, role: &str) -> Result<HttpUser, String> {
        if name.is_empty() || name.len() > MAX_USER_NAME {
            return Err(format!("name: 1 to {MAX_USER_NAME} characters"));
        }
        if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("name {name:?}: no spaces or control characters"));
        }
        let role = match role {
            "rw" => Role::Rw,
            "ro" => Role::Ro,
            other => return Err(format!("role {other:?}: expected ro or rw")),
        };
        check_hash(password_hash).map_err(|why| format!("password-hash of {name:?}: {why}"))?;
        Ok(HttpUser {
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            role,
        })
    }
}

/// Whether `hash` is an argon2id PHC string argon2 can verify against.
pub(crate) fn check_hash(hash: &str) -> Result<(), String> {
    const WHAT: &str =
        "expected an argon2id PHC string ($argon2id$v=19$...), as `serialhub passwd` prints";
    if hash.len() > MAX_HASH {
        return Err(WHAT.into());
    }
    let parsed = argon2::PasswordHash::new(hash).map_err(|_| WHAT.to_owned())?;
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() || parsed.hash.is_none() {
        return Err(WHAT.into());
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("{WHAT}: {e}"))?;
    Ok(())
}

/// Checks a list of users for names given twice.
pub(crate) fn check_unique(users: &[HttpUser]) -> Result<(), String> {
    for (i, u) in users.iter().enumerate() {
        if users[..i].iter().any(|o| o.name == u.name) {
            return Err(format!("user {:?} is given twice", u.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Y8TqfdwHQXtG8S/BF5rzDn6JkKaCmyRnVs8mtCnbdq0";

    #[test]
    fn users_are_checked() {
        let u = HttpUser::new("alice", HASH, "rw").unwrap();
        assert_eq!(u.role, Role::Rw);
        assert!(!format!("{u:?}").contains("argon2"));
        assert!(HttpUser::new("", HASH, "rw").is_err());
        assert!(HttpUser::new("a b", HASH, "rw").is_err());
        assert!(HttpUser::new("alice", HASH, "admin").is_err());
        assert!(HttpUser::new("alice", "secret", "ro").is_err());
        let argon2i = HASH.replace("argon2id", "argon2i");
        assert!(HttpUser::new("alice", &argon2i, "ro").is_err());
        let twice = [u.clone(), u];
        assert!(check_unique(&twice).is_err());
    }
}
