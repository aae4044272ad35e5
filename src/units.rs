//! Sizes and durations as users write them (`64KiB`, `500ms`) and as
//! messages show them. A leaf module: the CLI, the config file and endpoint
//! options all parse sizes here, so none of them imports another for it.

use std::time::Duration;

/// Parses sizes like `4096`, `64KiB`, `10MiB`, `1kb`.
pub(crate) fn parse_bytes(s: &str) -> Result<usize, String> {
    let n = parse_size::parse_size(s)
        .map_err(|e| format!("{e} in {s:?} (try 4096, 64KiB or 10MiB)"))?;
    usize::try_from(n).map_err(|_| format!("{s} is too large"))
}

/// A duration as messages and help text write it: `10ms`, `1h`.
pub(crate) fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A size in bytes as messages and help text write it: `4KiB`, `64MiB`, `1000`.
pub(crate) fn size_text(n: u64) -> String {
    let unit = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
        .into_iter()
        .find(|(_, shift)| n >> shift > 0 && n.is_multiple_of(1 << shift));
    match unit {
        Some((name, shift)) => format!("{}{name}", n >> shift),
        None => n.to_string(),
    }
}

/// [`size_text`] for a `usize`.
pub(crate) fn usize_size_text(n: usize) -> String {
    size_text(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size_text(4096), "4KiB");
        assert_eq!(size_text(64 << 20), "64MiB");
        assert_eq!(size_text(1 << 40), "1TiB");
        assert_eq!(size_text(4095), "4095");
        assert_eq!(size_text(0), "0");
        assert_eq!(duration_text(Duration::from_millis(10)), "10ms");
    }
}
