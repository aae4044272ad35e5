//! The fleet's settings: `serve --fleet URL --fleet-host NAME --fleet-creds
//! FILE --fleet-ca FILE --fleet-heartbeat DURATION`, or a configuration
//! file's `[fleet]` table (`url`, `host`, `creds`, `ca`, `heartbeat`); and
//! the per-port labels (`--label KEY=VALUE`, `labels = { board = "rpi4" }`).
//!
//! As with the port settings, both sources become raw [`FleetSettings`]
//! (flags laid over the file's table), and [`FleetSettings::resolve`]
//! alone validates them, naming each setting as its source spells it.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::url::{FleetUrl, UrlError};
use crate::units::duration_text;

/// `--fleet-heartbeat`: a host is gone from listings after 3 heartbeats,
/// so this is how fast a dead host disappears; under a second would be
/// traffic for nothing, over a minute too slow to notice.
pub(crate) const HEARTBEAT: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// A fleet host name is one NATS subject token.
pub(crate) const MAX_HOST: usize = 64;
/// Labels per port, and the length of a key and of a value: a listing
/// shows them on one line.
pub(crate) const MAX_LABELS: usize = 32;
pub(crate) const MAX_LABEL_KEY: usize = 64;
pub(crate) const MAX_LABEL_VALUE: usize = 256;

/// A port's labels, ordered by key so listings and records are stable.
pub(crate) type Labels = BTreeMap<String, String>;

/// Where the broker is and how to prove who we are: what `serve`, `fleet
/// ls` and `fleet connect` all need to connect.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Broker {
    pub(crate) url: FleetUrl,
    /// A NATS `.creds` file (a user JWT and its nkey seed).
    pub(crate) creds: Option<PathBuf>,
    /// A CA bundle (PEM) that the broker's TLS certificate must chain to.
    pub(crate) ca: Option<PathBuf>,
}

/// What `serve` joins the fleet with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FleetConfig {
    pub(crate) broker: Broker,
    /// This host's fleet name: a subject token, `[A-Za-z0-9_-]{1,64}`.
    pub(crate) host: String,
    pub(crate) heartbeat: Duration,
}

/// The fleet settings as given, nothing checked yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FleetSettings {
    pub(crate) url: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) creds: Option<PathBuf>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) heartbeat: Option<Duration>,
}

/// Whether the settings came from flags or from `[fleet]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Flags,
    File,
}

impl Origin {
    fn name(self, key: &'static str) -> &'static str {
        match (self, key) {
            (Origin::Flags, "url") => "--fleet",
            (Origin::Flags, "host") => "--fleet-host",
            (Origin::Flags, "creds") => "--fleet-creds",
            (Origin::Flags, "ca") => "--fleet-ca",
            (Origin::Flags, "heartbeat") => "--fleet-heartbeat",
            (Origin::File, "url") => "fleet.url",
            (Origin::File, "host") => "fleet.host",
            (Origin::File, "creds") => "fleet.creds",
            (Origin::File, "ca") => "fleet.ca",
            (Origin::File, "heartbeat") => "fleet.heartbeat",
            (_, k) => k,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetConfigError {
    #[error("{option} {0}", option = .1)]
    Url(UrlError, &'static str),
    #[error(
        "{option} {name:?} is not a usable fleet host name: use 1 to {MAX_HOST} letters, digits, '_' or '-' (it is a NATS subject token)"
    )]
    Host { option: &'static str, name: String },
    #[error(
        "this machine's host name {0:?} is not a usable fleet host name (1 to {MAX_HOST} letters, digits, '_' or '-'); give one with --fleet-host"
    )]
    DefaultHost(String),
    #[error("{option} {value} is out of range ({range})")]
    Heartbeat {
        option: &'static str,
        value: String,
        range: String,
    },
    #[error("{option} {}: {why}", path.display())]
    File {
        option: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("{option} needs {url}: without a broker there is no fleet to join")]
    NoUrl {
        option: &'static str,
        url: &'static str,
    },
}

impl FleetSettings {
    /// These settings, with what they leave out taken from `base`.
    pub(crate) fn over(self, base: FleetSettings) -> FleetSettings {
        FleetSettings {
            url: self.url.or(base.url),
            host: self.host.or(base.host),
            creds: self.creds.or(base.creds),
            ca: self.ca.or(base.ca),
            heartbeat: self.heartbeat.or(base.heartbeat),
        }
    }

    fn is_empty(&self) -> bool {
        *self == FleetSettings::default()
    }

    /// The fleet to join, `None` when no settings are given; an error
    /// names the setting as `from` spells it.
    pub(crate) fn resolve(self, from: Origin) -> Result<Option<FleetConfig>, FleetConfigError> {
        if self.is_empty() {
            return Ok(None);
        }
        let Some(url) = &self.url else {
            let option = if self.host.is_some() {
                "host"
            } else if self.creds.is_some() {
                "creds"
            } else if self.ca.is_some() {
                "ca"
            } else {
                "heartbeat"
            };
            return Err(FleetConfigError::NoUrl {
                option: from.name(option),
                url: from.name("url"),
            });
        };
        let url = url
            .parse::<FleetUrl>()
            .map_err(|e| FleetConfigError::Url(e, from.name("url")))?;
        let host = match self.host {
            Some(name) if is_host_name(&name) => name,
            Some(name) => {
                return Err(FleetConfigError::Host {
                    option: from.name("host"),
                    name,
                });
            }
            None => default_host()?,
        };
        let heartbeat = self.heartbeat.unwrap_or(DEFAULT_HEARTBEAT);
        if !HEARTBEAT.contains(&heartbeat) {
            return Err(FleetConfigError::Heartbeat {
                option: from.name("heartbeat"),
                value: duration_text(heartbeat),
                range: format!(
                    "{} to {}",
                    duration_text(*HEARTBEAT.start()),
                    duration_text(*HEARTBEAT.end())
                ),
            });
        }
        let broker = Broker {
            url,
            creds: self.creds,
            ca: self.ca,
        };
        broker.check_files(from)?;
        Ok(Some(FleetConfig {
            broker,
            host,
            heartbeat,
        }))
    }
}

impl Broker {
    /// The broker of `fleet ls` and `fleet connect`: `--fleet URL`, else
    /// `SERIALHUB_FLEET`, with `--fleet-creds` and `--fleet-ca`.
    pub(crate) fn from_flags(
        url: Option<&str>,
        creds: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Broker, FleetConfigError> {
        let env = std::env::var("SERIALHUB_FLEET").ok();
        let (url, option) = match url {
            Some(u) => (u.to_owned(), "--fleet"),
            None => match env.filter(|e| !e.trim().is_empty()) {
                Some(e) => (e, "SERIALHUB_FLEET"),
                None => {
                    return Err(FleetConfigError::NoUrl {
                        option: "this command",
                        url: "--fleet URL or SERIALHUB_FLEET",
                    });
                }
            },
        };
        let url = url
            .parse::<FleetUrl>()
            .map_err(|e| FleetConfigError::Url(e, option))?;
        let broker = Broker { url, creds, ca };
        broker.check_files(Origin::Flags)?;
        Ok(broker)
    }

    /// The credentials and CA files can be read (and the CA holds a
    /// certificate), so a typo is a usage error at start-up, not a broker
    /// that is never reached.
    pub(crate) fn check_files(&self, from: Origin) -> Result<(), FleetConfigError> {
        if let Some(path) = &self.creds {
            let option = from.name("creds");
            let text = std::fs::read_to_string(path).map_err(|e| FleetConfigError::File {
                option,
                path: path.clone(),
                why: format!("cannot read it: {e}"),
            })?;
            if !text.contains("-----BEGIN NATS USER JWT-----") {
                return Err(FleetConfigError::File {
                    option,
                    path: path.clone(),
                    why: "not a NATS credentials file (no user JWT)".into(),
                });
            }
        }
        if let Some(path) = &self.ca {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let option = from.name("ca");
            let file = |why: String| FleetConfigError::File {
                option,
                path: path.clone(),
                why,
            };
            let data = std::fs::read(path).map_err(|e| file(format!("cannot read it: {e}")))?;
            let certs = CertificateDer::pem_slice_iter(&data)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(file("holds no certificate".into()));
            }
        }
        Ok(())
    }
}

/// Whether `name` may name a host in the fleet: it is a NATS subject token.
pub(crate) fn is_host_name(name: &str) -> bool {
    (1..=MAX_HOST).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The machine's host name up to its first dot.
fn default_host() -> Result<String, FleetConfigError> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is passed.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = if r == 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let short = name.split('.').next().unwrap_or("").to_owned();
    if is_host_name(&short) {
        Ok(short)
    } else {
        Err(FleetConfigError::DefaultHost(name))
    }
}

/// One `KEY=VALUE` label (`--label`, and `fleet ls --label` to filter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Label {
    pub(crate) key: String,
    pub(crate) value: String,
}

impl FromStr for Label {
    type Err = String;

    fn from_str(s: &str) -> Result<Label, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
        check_label(key, value)?;
        Ok(Label {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A label key is 1 to 64 letters, digits, '_', '.' or '-'; a value at
/// most 256 characters, none of them a control character.
pub(crate) fn check_label(key: &str, value: &str) -> Result<(), String> {
    let key_ok = (1..=MAX_LABEL_KEY).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !key_ok {
        return Err(format!(
            "label key {key:?}: use 1 to {MAX_LABEL_KEY} letters, digits, '_', '.' or '-'"
        ));
    }
    if value.chars().count() > MAX_LABEL_VALUE || value.chars().any(char::is_control) {
        return Err(format!(
            "label {key}: the value is at most {MAX_LABEL_VALUE} characters, none of them a control character"
        ));
    }
    Ok(())
}

/// The labels that `--label` flags give (the last of a key wins).
pub(crate) fn labels(flags: &[Label]) -> Labels {
    flags
        .iter()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect()
}

/// Checks a port's labels: each one, and how many.
pub(crate) fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels per port"));
    }
    labels.iter().try_for_each(|(k, v)| check_label(k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> FleetSettings {
        FleetSettings {
            url: Some(url.into()),
            ..FleetSettings::default()
        }
    }

    #[test]
    fn settings_resolve_with_defaults() {
        assert_eq!(
            FleetSettings::default().resolve(Origin::Flags).unwrap(),
            None
        );
        let c = FleetSettings {
            host: Some("lab1".into()),
            ..settings("nats://127.0.0.1:4222")
        }
        .resolve(Origin::Flags)
        .unwrap()
        .unwrap();
        assert_eq!(c.host, "lab1");
        assert_eq!(c.heartbeat, DEFAULT_HEARTBEAT);
        assert_eq!(c.broker.url.addresses(), ["nats://127.0.0.1:4222"]);
        // The default host name is the machine's, or a clear error.
        match settings("h").resolve(Origin::Flags) {
            Ok(Some(c)) => assert!(is_host_name(&c.host)),
            Err(e) => assert!(e.to_string().contains("--fleet-host"), "{e}"),
            Ok(None) => panic!("no fleet"),
        }
    }

    #[test]
    fn bad_settings_name_their_flag_or_key() {
        let e = |s: FleetSettings, from| s.resolve(from).unwrap_err().to_string();
        let host = |h: &str| FleetSettings {
            host: Some(h.into()),
            ..settings("h")
        };
        assert!(
            e(host("lab.1"), Origin::Flags)
                .starts_with("--fleet-host \"lab.1\" is not a usable fleet host name"),
            "{}",
            e(host("lab.1"), Origin::Flags)
        );
        assert!(e(host(""), Origin::File).starts_with("fleet.host \"\""));
        assert!(e(host(&"a".repeat(65)), Origin::Flags).contains("1 to 64"));
        let beat = |d: u64| FleetSettings {
            heartbeat: Some(Duration::from_millis(d)),
            host: Some("x".into()),
            ..settings("h")
        };
        assert_eq!(
            e(beat(999), Origin::Flags),
            "--fleet-heartbeat 999ms is out of range (1s to 1m)"
        );
        assert!(e(beat(60_001), Origin::File).starts_with("fleet.heartbeat"));
        assert!(beat(1000).resolve(Origin::Flags).is_ok());
        assert!(beat(60_000).resolve(Origin::Flags).is_ok());
        let no_url = FleetSettings {
            host: Some("x".into()),
            ..FleetSettings::default()
        };
        assert_eq!(
            e(no_url, Origin::Flags),
            "--fleet-host needs --fleet: without a broker there is no fleet to join"
        );
        assert!(e(settings("ftp://h"), Origin::Flags).starts_with("--fleet \"ftp://h\""));
        let missing = FleetSettings {
            ca: Some("/nonexistent/ca.pem".into()),
            host: Some("x".into()),
            ..settings("tls://h")
        };
        assert!(
            e(missing, Origin::Flags).starts_with("--fleet-ca /nonexistent/ca.pem: cannot read")
        );
    }

    #[test]
    fn labels_parse_and_are_checked() {
        let l: Label = "board=rpi4".parse().unwrap();
        assert_eq!((l.key.as_str(), l.value.as_str()), ("board", "rpi4"));
        let l: Label = "note=a=b".parse().unwrap();
        assert_eq!(l.value, "a=b");
        assert!("empty=".parse::<Label>().is_ok());
        assert!("board".parse::<Label>().unwrap_err().contains("KEY=VALUE"));
        assert!("=x".parse::<Label>().is_err());
        assert!("a b=x".parse::<Label>().is_err());
        assert!("k=\n".parse::<Label>().is_err());
        let many: Labels = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_labels(&many).is_err());
    }
}
