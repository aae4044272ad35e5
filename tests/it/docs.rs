//! Issue 20: the README and `docs/` are checked against the program, so they
//! cannot drift from it. Every flag of every subcommand's help, every
//! endpoint option and kind the parser knows, every key `print-config`
//! prints and the configuration parser accepts, every field of a live
//! `status --json` and every metric of a live scrape must be documented (and
//! every metric documented must exist); every relative link must lead to a
//! file and heading that exist; every `serialhub` command of a shell block
//! parses; and the configuration examples check as the docs say.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::common::{Server, command, status_found};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every Markdown file of the documentation: README.md and docs/*.md.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 5, "too few docs/*.md: {docs:?}");
    files.extend(docs);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One page of docs/.
fn doc(name: &str) -> String {
    read(&repo().join("docs").join(name))
}

/// All of the documentation, as one text.
fn all_docs() -> String {
    markdown_files().iter().map(|p| read(p)).collect()
}

/// Whether `text` has `word` not followed by more of a name (so `--log`
/// is not found in `--log-keep`).
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        !text[i + word.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// `serialhub ARGS`: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = command().args(args).output().expect("run serialhub");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The long flags a help text lists as options (`-b, --baud <BAUD>`).
fn long_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let at = l.find("--")?;
            let name: String = l[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .collect()
}

/// The subcommands `serialhub --help` lists.
fn subcommands() -> Vec<String> {
    let (_, help, _) = run(&["--help"]);
    let list = &help[help.find("Commands:").expect("a command list")..];
    let list = &list[..list.find("\n\n").unwrap_or(list.len())];
    let names: Vec<String> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 10, "{help}");
    names
}

#[test]
fn issue20_docs_name_every_subcommand_and_every_flag_of_its_help() {
    let docs = all_docs();
    let mut missing = Vec::new();
    let (_, top, _) = run(&["--help"]);
    let mut helps = vec![("serialhub".to_owned(), top)];
    for cmd in subcommands() {
        if !mentions(&docs, &format!("serialhub {cmd}")) {
            missing.push(format!("`serialhub {cmd}`"));
        }
        let (code, help, err) = run(&[&cmd, "--help"]);
        assert_eq!(code, Some(0), "{cmd} --help: {err}");
        helps.push((cmd, help));
    }
    let mut checked = 0;
    for (cmd, help) in &helps {
        for flag in long_flags(help) {
            if flag == "--help" {
                continue;
            }
            checked += 1;
            if !mentions(&docs, &flag) {
                missing.push(format!("{cmd} {flag}"));
            }
        }
    }
    assert!(checked >= 40, "only {checked} flags found in the help");
    assert!(missing.is_empty(), "not in README.md or docs/: {missing:?}");
}

/// The list after `marker` in an error of `serialhub serve -l ENDPOINT`.
fn listed_in_error(endpoint: &str, marker: &str) -> Vec<String> {
    let (code, _, err) = run(&["serve", "-d", "sim:echo", "-l", endpoint]);
    assert_eq!(code, Some(2), "{err}");
    let list = &err[err.find(marker).unwrap_or_else(|| panic!("{err}")) + marker.len()..];
    let list = list.lines().next().unwrap_or("");
    let names: Vec<String> = list.split(", ").map(|s| s.trim().to_owned()).collect();
    assert!(names.len() >= 5, "{err}");
    names
}

#[test]
fn issue20_endpoints_doc_has_a_row_for_every_option_and_kind_the_parser_knows() {
    let page = doc("endpoints.md");
    let options = listed_in_error("tcp:127.0.0.1:0,no-such-option=1", "options: ");
    let kinds = listed_in_error("no-such-kind:x", "supported: ");
    let missing: Vec<&String> = options
        .iter()
        .filter(|o| !page.contains(&format!("| `{o}` |")))
        .chain(kinds.iter().filter(|k| !page.contains(&format!("| `{k}:"))))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/endpoints.md has no row for {missing:?}"
    );
}

/// The keys a configuration file's error lists as expected where `table`
/// has an unknown key: the parser's own list.
fn accepted_keys(table: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, format!("{table}no-such-key = 1\n")).unwrap();
    let (code, _, err) = run(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    let expected = &err[err.find("expected").unwrap_or_else(|| panic!("{err}"))..];
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "{err}");
    keys
}

#[test]
fn issue20_configuration_doc_has_every_key_the_parser_and_print_config_know() {
    let page = doc("configuration.md");
    let (code, example, err) = run(&["print-config"]);
    assert_eq!(code, Some(0), "{err}");
    let mut keys = BTreeSet::new();
    let mut tables = BTreeSet::new();
    for line in example.lines() {
        // An optional setting is printed commented out: `#baud = 115200`.
        let line = line.strip_prefix('#').unwrap_or(line);
        if line.starts_with('[') {
            tables.insert(line.split_whitespace().next().unwrap_or(line).to_owned());
        } else if let Some((key, _)) = line.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        {
            keys.insert(key.to_owned());
        }
    }
    assert!(keys.len() >= 20 && tables.len() >= 4, "{keys:?} {tables:?}");
    for table in [
        "",
        "[control]\n",
        "[metrics]\n",
        "[http]\n",
        "[[http.user]]\n",
        "[[port]]\n",
        "[[port]]\n[port.log]\n",
    ] {
        keys.extend(accepted_keys(table));
    }
    // A key is a row of a table of keys, or a table of the file itself.
    let documented = |k: &String| {
        page.contains(&format!("| `{k}` |"))
            || page.contains(&format!("[{k}]"))
            || page.contains(&format!(".{k}]"))
    };
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !documented(k))
        .chain(tables.iter().filter(|t| !page.contains(t.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no row for {missing:?}"
    );
}

/// Names like `serialhub_clients` in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("serialhub_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

#[test]
fn issue20_control_and_metrics_docs_match_a_live_status_and_scrape() {
    let runtime = tempfile::tempdir().unwrap();
    let server = Server::start_found(
        &[
            "--metrics",
            "127.0.0.1:0",
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
        ],
        runtime.path(),
    );
    // A client, so that the per-client fields and series exist.
    let mut client = TcpStream::connect(server.addr()).unwrap();
    client.write_all(b"hello\n").unwrap();
    server.wait_status("one client that wrote", |p| {
        p["clients"][0]["bytes_in"].as_u64() == Some(6)
    });

    // status --json as `serialhub status` gives it, found without flags.
    let ports = status_found(runtime.path()).unwrap();
    let port = ports
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["pid"].as_u64() == Some(u64::from(server.pid())))
        .unwrap_or_else(|| panic!("our port in {ports:#}"));
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object()
            .unwrap_or_else(|| panic!("an object: {v}"))
            .keys()
            .cloned()
            .collect()
    };
    let mut fields = keys(port);
    fields.extend(keys(&port["device_state"]));
    fields.extend(keys(&port["clients"][0]));
    for needed in ["metrics", "control", "pid", "tty", "peer"] {
        assert!(fields.iter().any(|f| f == needed), "{needed}: {port:#}");
    }
    let page = doc("control.md");
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !page.contains(&format!("| `{f}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/control.md has no row for the status --json fields {missing:?}"
    );

    // Every metric scraped is documented, and every one documented exists.
    let (status, _, body) = crate::metrics::get(&server.metrics_addr(), "/metrics");
    assert!(status.contains("200"), "{status}");
    let mut samples = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in body.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            families.extend(t.split_whitespace().next().map(str::to_owned));
        } else if !line.starts_with('#') && !line.is_empty() {
            samples.extend(metric_names(line).into_iter().take(1));
        }
    }
    assert!(
        samples.iter().any(|s| s.starts_with("serialhub_client_")),
        "{body}"
    );
    let page = doc("metrics.md");
    let documented = metric_names(&page);
    let undocumented: Vec<&String> = samples.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "docs/metrics.md does not name {undocumented:?}"
    );
    let absent: Vec<&String> = documented
        .iter()
        .filter(|d| !samples.contains(*d) && !families.contains(*d))
        .collect();
    assert!(
        absent.is_empty(),
        "docs/metrics.md names metrics the program does not serve: {absent:?}"
    );
    drop(client);
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (outside code blocks), with
/// GitHub's `-1`, `-2` for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if fenced || hashes == 0 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a Markdown text's inline links, `[text](target)`.
fn links(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let end = rest.find(')')?;
            let target = &rest[..end];
            (!target.is_empty() && !target.contains(char::is_whitespace)).then(|| target.to_owned())
        })
        .collect()
}

#[test]
fn issue20_every_relative_link_leads_to_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let to = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let name = file.strip_prefix(repo()).unwrap().display().to_string();
            if !to.exists() {
                broken.push(format!("{name}: {target}: no such file"));
            } else if !anchor.is_empty()
                && to.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&to)).contains(anchor)
            {
                broken.push(format!("{name}: {target}: no such heading"));
            }
        }
    }
    assert!(checked >= 40, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn issue20_slugs_are_githubs() {
    assert_eq!(slug("Status and control"), "status-and-control");
    assert_eq!(slug("status --json"), "status---json");
    assert_eq!(
        slug("Request/response through RFC 2217"),
        "requestresponse-through-rfc-2217"
    );
    assert_eq!(
        slug("`serialhub serve`: flags and guarantees"),
        "serialhub-serve-flags-and-guarantees"
    );
    let a = anchors("# A\n```sh\n# not a heading\n```\n## B\n## B\n#nope\n");
    assert_eq!(a, ["a", "b", "b-1"].map(String::from).into());
}

/// The code block of `lang` that follows `after` in `text`.
fn block_after<'a>(text: &'a str, after: &str, lang: &str) -> &'a str {
    let from = text.find(after).unwrap_or_else(|| panic!("{after:?}"));
    let open = format!("```{lang}\n");
    let start = from + text[from..].find(&open).expect("the block") + open.len();
    let end = start + text[start..].find("```").expect("its end");
    &text[start..end]
}

/// Checks the configuration file in the ```toml block after `file_at` in
/// `doc`, with `log_dir` standing for a temporary directory, and compares
/// check-config's summary with the ```text block after `shown_at`.
fn config_example_checks_as_shown(doc: &str, file_at: &str, log_dir: &str, shown_at: &str) {
    let text = read(&repo().join(doc));
    let file = block_after(&text, file_at, "toml");
    assert!(file.contains(log_dir), "{doc}: {file}");
    let shown = block_after(&text, shown_at, "text");
    // The log directory must exist: a temporary one stands in for it.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::create_dir(&log).unwrap();
    let hub = dir.path().join("hub.toml");
    std::fs::write(&hub, file.replace(log_dir, log.to_str().unwrap())).unwrap();
    let (code, out, err) = run(&["check-config", hub.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{doc}: {err}");
    assert_eq!(out, shown, "{doc}: check-config's summary differs");
}

#[test]
fn issue20_config_examples_check_as_the_docs_show() {
    config_example_checks_as_shown(
        "README.md",
        "**3. Describe your ports",
        "/tmp/lab1-log",
        "serialhub check-config hub.toml",
    );
    config_example_checks_as_shown(
        "docs/configuration.md",
        "## An example",
        "/var/log/serialhub/lab1",
        "For the example above:",
    );
    // The tour's log example reads the directory of its file.
    let readme = read(&repo().join("README.md"));
    assert!(readme.contains("serialhub log /tmp/lab1-log"));
}

/// The `serialhub` command lines of the ```sh blocks of `text`, as
/// arguments after the program's name: continuation lines joined, and
/// comments, pipes, redirections and a trailing `&` cut off. `cargo run
/// ... --` stands for `serialhub` too; `sudo` and `VAR=value` may lead.
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let mut line = line.to_owned();
        while let Some(head) = line.trim_end().strip_suffix('\\') {
            line = format!("{head} {}", lines.next().unwrap_or(""));
        }
        let mut cut = line.as_str();
        for end in [" #", " | ", " > ", " &"] {
            if let Some(at) = cut.find(end) {
                cut = &cut[..at];
            }
        }
        let words: Vec<String> = cut
            .split_whitespace()
            .map(|w| w.trim_matches('\'').trim_matches('"').to_owned())
            .collect();
        // `sudo` and `VAR=value` may come first.
        let first = words
            .iter()
            .position(|w| w != "sudo" && !w.contains('='))
            .unwrap_or(words.len());
        let start = (words.get(first).map(String::as_str) == Some("serialhub"))
            .then_some(first + 1)
            .or_else(|| {
                (words.first().map(String::as_str) == Some("cargo")
                    && words.get(1).map(String::as_str) == Some("run"))
                .then(|| words.iter().position(|w| w == "--").map(|i| i + 1))
                .flatten()
            });
        if let Some(start) = start {
            out.push(words[start..].to_vec());
        }
    }
    out
}

#[test]
fn issue20_every_serialhub_command_in_the_docs_parses() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        for args in commands(&read(&file)) {
            checked += 1;
            let argv = std::iter::once("serialhub").chain(args.iter().map(String::as_str));
            if let Err(e) = serialhub::cli::Cli::try_parse_from(argv) {
                let name = file.strip_prefix(repo()).unwrap().display().to_string();
                bad.push(format!("{name}: serialhub {}: {e}", args.join(" ")));
            }
        }
    }
    assert!(checked >= 30, "only {checked} commands found");
    assert!(
        bad.is_empty(),
        "commands that do not parse:\n{}",
        bad.join("\n")
    );
}
