//! `serialhub passwd`: prints an argon2id PHC string of a password read
//! from stdin, for a configuration file's `[[http.user]] password-hash`.
//!
//! `printf 'PASSWORD\n' | serialhub passwd` hashes the first line. At a
//! terminal it asks twice, without echo, and refuses a mismatch. An empty
//! password is refused either way: it would let anyone in.

use std::io::{self, BufRead, IsTerminal, Write};

use super::Error;
use crate::web::auth::password;

/// The longest password read: argon2 takes far longer ones, but a line of
/// this length is no typed password.
const MAX_PASSWORD: usize = 4096;

/// Runs `serialhub passwd`.
pub(crate) fn run() -> Result<(), Error> {
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        let first = ask("Password: ")?;
        let again = ask("Again: ")?;
        if first != again {
            return Err(Error::Passwd("the passwords differ".into()));
        }
        first
    } else {
        read_line(&mut stdin.lock())?
    };
    if password.is_empty() {
        return Err(Error::Passwd("an empty password is refused".into()));
    }
    let hash = password::hash(&password).map_err(Error::Passwd)?;
    println!("{hash}");
    Ok(())
}

/// One line of `input`, without its line end.
fn read_line<R: BufRead>(input: &mut R) -> Result<String, Error> {
    let mut line = Vec::new();
    std::io::Read::take(&mut *input, MAX_PASSWORD as u64 + 2)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::Passwd(format!("cannot read stdin: {e}")))?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    if line.len() > MAX_PASSWORD {
        return Err(Error::Passwd(format!(
            "the password is longer than {MAX_PASSWORD} bytes"
        )));
    }
    String::from_utf8(line).map_err(|_| Error::Passwd("the password is not UTF-8".into()))
}

/// Asks for a line at the terminal on stdin, with echo off.
fn ask(prompt: &str) -> Result<String, Error> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    eprint!("{prompt}");
    let _ = io::stderr().flush();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let line = read_line(&mut stdin.lock());
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    eprintln!();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_without_its_end() {
        assert_eq!(read_line(&mut &b"secret\r\nmore"[..]).unwrap(), "secret");
        assert_eq!(read_line(&mut &b""[..]).unwrap(), "");
        let long = vec![b'x'; MAX_PASSWORD + 10];
        assert!(read_line(&mut &long[..]).is_err());
    }
}
