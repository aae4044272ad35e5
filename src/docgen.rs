//! `serialhub completions` and `serialhub man`: shell completion scripts and
//! man pages, generated from the clap definition in [`crate::cli`], so they
//! never disagree with the flags the binary takes.
//!
//! Both are rendered into memory first and then written out: the generators
//! panic on a write error, and a closed pipe (`serialhub man | head`) is an
//! ordinary error here.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

use crate::cli::Cli;

/// The binary's name, as completions and man pages call it.
const BIN: &str = "serialhub";

#[derive(Debug, thiserror::Error)]
pub enum DocgenError {
    #[error("no command {name:?} has a man page; commands: {known}")]
    UnknownCommand { name: String, known: String },
    #[error("cannot write {what}: {reason}")]
    Write {
        what: String,
        reason: std::io::Error,
    },
}

/// The completion script for `shell`.
pub(crate) fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut out);
    out
}

/// The top-level command, built as `serialhub` with its subcommands' names
/// (`serialhub serve`) filled in, as the man pages show them.
fn built() -> clap::Command {
    let mut cmd = Cli::command().bin_name(BIN).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The man page (roff) of `serialhub`, or of one of its subcommands
/// (`serialhub-serve(1)`).
pub(crate) fn man_page(command: Option<&str>) -> Result<Vec<u8>, DocgenError> {
    let top = built();
    let cmd = match command {
        None => top,
        Some(name) => top
            .get_subcommands()
            .find(|s| s.get_name() == name && !s.is_hide_set())
            .cloned()
            .ok_or_else(|| DocgenError::UnknownCommand {
                name: name.to_owned(),
                known: page_names(&top).join(", "),
            })?,
    };
    // A page's examples come from `after_long_help`, which clap_mangen
    // renders as EXTRA; without its "Examples:" head, and named EXAMPLES.
    let examples = cmd.get_name() == "serve";
    let cmd = if examples {
        cmd.after_long_help(crate::cli::SERVE_EXAMPLES)
    } else {
        cmd
    };
    let mut out = Vec::new();
    Man::new(cmd)
        // Subcommands have no version of their own; every page names the
        // release it documents.
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("serialhub manual")
        .render(&mut out)
        .map_err(|reason| DocgenError::Write {
            what: "the man page".into(),
            reason,
        })?;
    if examples {
        out = String::from_utf8_lossy(&out)
            .replacen("\n.SH EXTRA\n", "\n.SH EXAMPLES\n", 1)
            .into_bytes();
    }
    Ok(out)
}

fn page_names(top: &clap::Command) -> Vec<String> {
    top.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

/// Writes every man page (`serialhub.1`, `serialhub-serve.1`, ...) into
/// `dir`, which must exist, and returns their paths.
pub(crate) fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, DocgenError> {
    let top = built();
    let mut pages = vec![(format!("{BIN}.1"), None)];
    for name in page_names(&top) {
        pages.push((format!("{BIN}-{name}.1"), Some(name)));
    }
    let mut written = Vec::new();
    for (file, command) in pages {
        let page = man_page(command.as_deref())?;
        let path = dir.join(file);
        std::fs::write(&path, page).map_err(|reason| DocgenError::Write {
            what: path.display().to_string(),
            reason,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `bytes` to stdout.
pub(crate) fn print(bytes: &[u8]) -> Result<(), DocgenError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|reason| DocgenError::Write {
            what: "stdout".into(),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn every_shell_completes_the_subcommands_and_serve_flags() {
        let names = page_names(&built());
        assert!(names.iter().any(|n| n == "serve"), "{names:?}");
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let script = text(completions(shell));
            for name in &names {
                assert!(script.contains(name.as_str()), "{shell}: no {name}");
            }
            assert!(script.contains("max-inflight"), "{shell}: no serve flags");
        }
    }

    #[test]
    fn man_pages_cover_the_commands_and_their_options() {
        let top = text(man_page(None).unwrap());
        assert!(top.contains("\n.TH serialhub 1 "), "{top}");
        assert!(top.contains("serialhub\\-serve(1)"), "{top}");
        let serve = text(man_page(Some("serve")).unwrap());
        assert!(serve.contains("\n.TH serialhub-serve 1 "), "{serve}");
        assert!(serve.contains(env!("CARGO_PKG_VERSION")), "{serve}");
        for flag in [
            "\\-\\-device",
            "\\-\\-listen",
            "\\-\\-baud",
            "\\-\\-slow\\-reader",
        ] {
            assert!(serve.contains(flag), "no {flag} in\n{serve}");
        }
        assert!(serve.contains("serialhub serve"), "synopsis: {serve}");
        let err = man_page(Some("frobnicate")).unwrap_err().to_string();
        assert!(err.contains("frobnicate") && err.contains("serve"), "{err}");
    }

    #[test]
    fn man_pages_are_written_one_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(dir.path()).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"serialhub.1".to_owned()), "{names:?}");
        assert!(names.contains(&"serialhub-serve.1".to_owned()), "{names:?}");
        assert_eq!(names.len(), page_names(&built()).len() + 1);
        for p in &written {
            assert!(std::fs::read_to_string(p).unwrap().contains(".TH"));
        }
    }
}
