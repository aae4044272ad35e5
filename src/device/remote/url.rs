//! A remote port's URL: `rfc2217://HOST:PORT` or `tcp://HOST:PORT`, and
//! the options after `?`, named as pyserial names them, so that a URL that
//! works with pyserial (and esptool) works as serialhub's device too.

/// Which protocol the remote port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Telnet with the COM-PORT-OPTION.
    Rfc2217,
    /// Bytes as they are; no settings.
    Raw,
}

impl Protocol {
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Protocol::Rfc2217 => "rfc2217",
            Protocol::Raw => "tcp",
        }
    }
}

/// The options of an `rfc2217://` URL (`?NAME&NAME`); `tcp://` takes none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RemoteOptions {
    /// `ign_set_control`: SET-CONTROL requests (DTR, RTS, break, flow
    /// control) are sent without waiting for the server's answers, or
    /// checking them. For servers that answer none, or not with the value
    /// asked: esptool's `esp_rfc2217_server`, sredird. Without it serialhub
    /// finds such a server out at its first unanswered request.
    pub(crate) ign_set_control: bool,
}

impl RemoteOptions {
    /// The query part of the URL, `?` included; empty without options.
    pub(crate) fn query(&self) -> &'static str {
        match self.ign_set_control {
            true => "?ign_set_control",
            false => "",
        }
    }
}

/// A remote port as its URL names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteUrl {
    pub(crate) protocol: Protocol,
    /// `HOST:PORT`.
    pub(crate) addr: String,
    pub(crate) options: RemoteOptions,
}

impl RemoteUrl {
    /// Parses `s` if it starts with a remote port's scheme: `None` if it
    /// does not, an error saying what is wrong if it does.
    pub(crate) fn parse(s: &str) -> Option<Result<RemoteUrl, String>> {
        [Protocol::Rfc2217, Protocol::Raw]
            .into_iter()
            .find_map(|protocol| {
                let rest = s.strip_prefix(protocol.scheme())?.strip_prefix("://")?;
                Some(Self::parse_rest(s, protocol, rest))
            })
    }

    fn parse_rest(s: &str, protocol: Protocol, rest: &str) -> Result<RemoteUrl, String> {
        let scheme = protocol.scheme();
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!("{s}: expected {scheme}://HOST:PORT"));
        }
        let mut options = RemoteOptions::default();
        for name in query.split('&').filter(|n| !n.is_empty()) {
            match (protocol, name) {
                (Protocol::Rfc2217, "ign_set_control") => options.ign_set_control = true,
                (Protocol::Rfc2217, _) => {
                    return Err(format!(
                        "{s}: unknown option {name:?} (rfc2217:// takes ign_set_control)"
                    ));
                }
                (Protocol::Raw, _) => return Err(format!("{s}: tcp:// takes no options")),
            }
        }
        Ok(RemoteUrl {
            protocol,
            addr: addr.to_owned(),
            options,
        })
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scheme, addr) = (self.protocol.scheme(), &self.addr);
        write!(f, "{scheme}://{addr}{}", self.options.query())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RemoteUrl, String> {
        RemoteUrl::parse(s).unwrap_or_else(|| panic!("{s} is not a remote URL"))
    }

    #[test]
    fn ign_set_control_is_taken_as_pyserial_names_it() {
        let u = parse("rfc2217://h:4000?ign_set_control").unwrap();
        assert_eq!(u.addr, "h:4000");
        assert!(u.options.ign_set_control);
        assert_eq!(u.to_string(), "rfc2217://h:4000?ign_set_control");
        let plain = parse("rfc2217://[::1]:4000").unwrap();
        assert_eq!(plain.options, RemoteOptions::default());
        assert_eq!(plain.to_string(), "rfc2217://[::1]:4000");
        assert_eq!(
            parse("rfc2217://h:1?").unwrap().options,
            RemoteOptions::default()
        );
        assert!(RemoteUrl::parse("/dev/ttyUSB0").is_none());
    }

    #[test]
    fn unknown_options_and_options_on_tcp_are_refused() {
        for (bad, why) in [
            (
                "rfc2217://h:1?logging=debug",
                "unknown option \"logging=debug\"",
            ),
            ("rfc2217://h:1?ign_set_control&x", "unknown option \"x\""),
            ("tcp://h:1?ign_set_control", "tcp:// takes no options"),
            (
                "rfc2217://h?ign_set_control",
                "expected rfc2217://HOST:PORT",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
