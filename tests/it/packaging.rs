//! Issue 10.8: packaging. Shell completions and man pages come from the
//! binary and work in the real tools; the systemd unit passes systemd's own
//! checker; the install script puts every file in place and never replaces a
//! config; the example config's endpoints are valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serialhub::endpoint::EndpointSpec;

use crate::common::BIN;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("utf-8")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What bash offers for the last of `words` (typed after `serialhub`) when
/// tab is pressed, with the script from `serialhub completions bash` loaded.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = r#"source <("$0" completions bash) || exit 1
COMP_WORDS=(serialhub "$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
_serialhub serialhub "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}""#;
    stdout(Command::new("bash").args(["-c", script, BIN]).args(words))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn issue10_bash_completes_subcommands_and_flags() {
    assert_eq!(bash_completes(&["se"]), ["serve"]);
    assert_eq!(bash_completes(&["serve", "--max-in"]), ["--max-inflight"]);
    let all = bash_completes(&[""]);
    for sub in ["serve", "sim", "log", "completions", "man"] {
        assert!(all.iter().any(|w| w == sub), "no {sub} in {all:?}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout(crate::common::command().args(["completions", shell]));
        assert!(
            script.contains("serve") && script.contains("max-inflight"),
            "{shell}: {script}"
        );
    }
    let out = crate::common::command()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn issue10_man_pages_render() {
    let top = stdout(crate::common::command().arg("man"));
    assert!(top.contains("\n.TH serialhub 1 "), "{top}");
    let serve = stdout(crate::common::command().args(["man", "serve"]));
    assert!(serve.contains("\n.TH serialhub-serve 1 "), "{serve}");
    assert!(serve.contains("\\fB\\-\\-listen\\fR"), "{serve}");
    let out = crate::common::command()
        .args(["man", "no-such-command"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("commands: serve"));

    // As a reader sees it, where man is installed.
    if !have("man") {
        eprintln!("man is not installed: not rendering the page");
        return;
    }
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("LANG", "C")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut man.stdin.take().unwrap(), serve.as_bytes()).unwrap();
    let out = man.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "NAME",
        "serialhub-serve",
        "--listen <ENDPOINT>",
        "--max-inflight",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
}

#[test]
fn issue10_man_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let listed = stdout(
        crate::common::command()
            .args(["man", "--dir"])
            .arg(dir.path()),
    );
    for page in ["serialhub.1", "serialhub-serve.1", "serialhub-log.1"] {
        let path = dir.path().join(page);
        assert!(listed.contains(&path.display().to_string()), "{listed}");
        assert!(std::fs::read_to_string(path).unwrap().contains(".TH"));
    }
}

/// The unit as it would be installed, but running the binary under test
/// (systemd-analyze checks that ExecStart's program exists).
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("dist/serialhub.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/serialhub serve --config "));
    let path = dir.join("serialhub.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/serialhub", BIN)).unwrap();
    path
}

#[test]
fn issue10_systemd_unit_passes_systemd_analyze() {
    let unit = std::fs::read_to_string(repo().join("dist/serialhub.service")).unwrap();
    for line in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "RuntimeDirectory=serialhub",
        "NoNewPrivileges=yes",
        "Group=dialout",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line}");
    }
    if !have("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: not verifying the unit");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = unit_for_test(dir.path());
    // Warnings (an unknown key, a bad value) do not fail `verify`; any
    // output at all does here.
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    // The check itself catches a typo, so its silence above means something.
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ProtectHome=yes", "ProtectHoem=yes");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ProtectHoem"));
}

#[test]
fn issue10_install_script_places_every_file_and_keeps_a_config() {
    let dest = tempfile::tempdir().unwrap();
    let install = || {
        stdout(
            Command::new(repo().join("scripts/install"))
                .args(["--bin", BIN])
                .env("DESTDIR", dest.path()),
        )
    };
    install();
    let d = dest.path();
    for file in [
        "usr/local/bin/serialhub",
        "usr/local/share/man/man1/serialhub.1",
        "usr/local/share/man/man1/serialhub-serve.1",
        "usr/local/share/bash-completion/completions/serialhub",
        "usr/local/share/zsh/site-functions/_serialhub",
        "usr/local/share/fish/vendor_completions.d/serialhub.fish",
        "etc/systemd/system/serialhub.service",
        "etc/serialhub/serialhub.toml",
    ] {
        let meta = std::fs::metadata(d.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(meta.len() > 0, "{file} is empty");
    }
    let config = d.join("etc/serialhub/serialhub.toml");
    std::fs::write(&config, "# mine\n").unwrap();
    install();
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");
}

#[test]
fn issue10_example_config_endpoints_are_valid() {
    // Python's tomllib (3.11) reads the file; serialhub parses its endpoints.
    let json = stdout(Command::new("python3").args([
        "-c",
        "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
        repo().join("dist/serialhub.toml").to_str().unwrap(),
    ]));
    let config: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        config["control"]["socket"], "/run/serialhub/serialhub.sock",
        "the unit's RuntimeDirectory"
    );
    let ports = config["port"].as_array().expect("[[port]] tables");
    assert!(!ports.is_empty());
    for port in ports {
        let listen = port["listen"].as_array().expect("listen");
        assert!(!listen.is_empty());
        for l in listen {
            let l = l.as_str().unwrap();
            l.parse::<EndpointSpec>()
                .unwrap_or_else(|e| panic!("{}: {e}", port["name"]));
        }
    }
}

#[test]
fn issue20_install_script_lists_what_it_installs_and_readme_says_what_it_does() {
    let dest = tempfile::tempdir().unwrap();
    let install = || {
        stdout(
            Command::new(repo().join("scripts/install"))
                .args(["--bin", BIN])
                .env("DESTDIR", dest.path()),
        )
    };
    let d = dest.path();
    let listed = install();
    let files: Vec<&Path> = listed.lines().map(Path::new).collect();
    for file in [
        "usr/local/bin/serialhub",
        "usr/local/share/man/man1/serialhub.1",
        "usr/local/share/man/man1/serialhub-serve.1",
        "usr/local/share/bash-completion/completions/serialhub",
        "usr/local/share/zsh/site-functions/_serialhub",
        "usr/local/share/fish/vendor_completions.d/serialhub.fish",
        "etc/systemd/system/serialhub.service",
        "etc/serialhub/serialhub.toml",
    ] {
        assert!(files.contains(&d.join(file).as_path()), "{file}:\n{listed}");
    }
    for file in &files {
        assert!(file.is_file(), "listed but not there: {}", file.display());
    }
    // A config already there is kept, and so not listed.
    let again = install();
    assert!(!again.contains("serialhub.toml"), "{again}");
    let readme = std::fs::read_to_string(repo().join("docs/service.md")).unwrap();
    assert!(!readme.contains("but the last two"));
}
