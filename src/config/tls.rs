//! The TLS part of a port's settings: the files, read and checked when
//! settings resolve.

use super::{ConfigError, Source};
use crate::endpoint::EndpointSpec;

/// The TLS files, read and checked now so that a bad file stops start-up
/// (and `check-config`) with its name and the reason; and every `tls`
/// endpoint has them.
pub(super) fn files(
    tls: Option<crate::tls::TlsFiles>,
    listen: &[EndpointSpec],
    source: Source,
) -> Result<Option<crate::tls::TlsFiles>, ConfigError> {
    match tls {
        Some(files) => {
            crate::tls::config::server_config(&files)?;
            Ok(Some(files))
        }
        None => match listen.iter().find(|s| s.options.tls) {
            Some(spec) => Err(ConfigError::TlsNeedsCert {
                spec: spec.to_string(),
                how: match source {
                    Source::Flags => "--tls-cert FILE and --tls-key FILE",
                    Source::File => "a [tls] table with cert and key",
                },
            }),
            None => Ok(None),
        },
    }
}
