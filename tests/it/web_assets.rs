//! Issue 23: the web console's files under `web/`, as committed. The vendored
//! xterm.js files match the SHA256SUMS that `scripts/vendor-xterm` wrote
//! after checking npm's integrity hash (so cargo never needs node, and a
//! changed vendored file cannot go unnoticed); every file a page or module
//! references exists and is local (no CDN: the console works offline); no
//! page has an inline script, style or event handler (the server's
//! `Content-Security-Policy: default-src 'self'` would block it); and the
//! terminal page stays under its 200 KiB gzipped budget.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pages: web/*.html.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(web())
        .expect("web/")
        .map(|e| e.expect("web/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    pages.sort();
    let names: Vec<_> = pages
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    for page in ["index.html", "port.html", "login.html"] {
        assert!(names.contains(&page), "web/{page} missing: {names:?}");
    }
    pages
}

/// The values of every `NAME="..."` attribute in `html`.
fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!(" {name}=\"");
    let mut values = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let end = rest.find('"').expect("an attribute value ends");
        values.push(&rest[..end]);
        rest = &rest[end..];
    }
    values
}

/// The modules a JS module imports: `from "./x.js"` and `import "./x.js"`.
fn imports(js: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for marker in ["from \"", "import \""] {
        let mut rest = js;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let end = rest.find('"').expect("an import's string ends");
            found.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    found
}

/// The file under web/ that a page's URL names: `/assets/X` is `web/X`.
/// Other local URLs are routes (`/`, `/login`, `/logout`), not files.
fn asset_file(url: &str) -> Option<PathBuf> {
    url.strip_prefix("/assets/").map(|rel| web().join(rel))
}

/// Every file under web/ that `page` loads, the page included, following
/// module imports.
fn loaded_by(page: &Path) -> BTreeSet<PathBuf> {
    let html = read(page);
    let mut files = BTreeSet::from([page.to_path_buf()]);
    let mut todo: Vec<PathBuf> = attributes(&html, "src")
        .into_iter()
        .chain(attributes(&html, "href"))
        .filter_map(asset_file)
        .collect();
    while let Some(file) = todo.pop() {
        assert!(
            file.is_file(),
            "{} references {}, which does not exist",
            page.display(),
            file.display()
        );
        if !files.insert(file.clone()) {
            continue;
        }
        if file.extension().is_some_and(|e| e == "js") {
            let js = read(&file);
            for module in imports(&js) {
                assert!(
                    module.starts_with("./"),
                    "{} imports {module:?}: only ./ modules of web/ may be loaded",
                    file.display()
                );
                let dir = file.parent().expect("a module's directory");
                todo.push(dir.join(&module[2..]));
            }
        }
    }
    files
}

#[test]
fn issue23_vendored_xterm_matches_its_sha256sums() {
    let dir = web().join("vendor/xterm");
    let sums = read(&dir.join("SHA256SUMS"));
    let mut listed = BTreeMap::new();
    for line in sums.lines() {
        let (hash, name) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("SHA256SUMS line {line:?} is not `HASH  NAME`"));
        listed.insert(name.to_owned(), hash.to_owned());
    }
    for needed in [
        "xterm.js",
        "xterm.css",
        "addon-fit.js",
        "LICENSE.xterm",
        "LICENSE.addon-fit",
    ] {
        assert!(
            listed.contains_key(needed),
            "SHA256SUMS lists no {needed}: {listed:?}"
        );
    }
    for (name, hash) in &listed {
        let data =
            std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("vendor/xterm/{name}: {e}"));
        assert_eq!(
            &sha256_hex(&data),
            hash,
            "web/vendor/xterm/{name} differs from SHA256SUMS: run scripts/vendor-xterm"
        );
    }
    // Nothing in the directory escapes the check.
    for entry in std::fs::read_dir(&dir).expect("web/vendor/xterm") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("a UTF-8 name");
        assert!(
            name == "SHA256SUMS" || listed.contains_key(&name),
            "web/vendor/xterm/{name} is not in SHA256SUMS"
        );
    }
}

#[test]
fn issue23_every_file_a_page_references_exists_and_is_local() {
    for page in pages() {
        let html = read(&page);
        for url in attributes(&html, "src")
            .into_iter()
            .chain(attributes(&html, "href"))
        {
            assert!(
                (url.starts_with('/') && !url.starts_with("//")) || url == "#",
                "{} references {url:?}: only local paths (no CDN, no other site)",
                page.display()
            );
        }
        let files = loaded_by(&page);
        assert!(
            files.len() >= 2,
            "{} loads nothing: {files:?}",
            page.display()
        );
    }
    // The terminal page loads xterm.js, its fit addon and its styles.
    let port = loaded_by(&web().join("port.html"));
    for vendored in ["xterm.js", "addon-fit.js", "xterm.css"] {
        assert!(
            port.contains(&web().join("vendor/xterm").join(vendored)),
            "port.html does not load vendor/xterm/{vendored}"
        );
    }
}

#[test]
fn issue23_pages_have_no_inline_script_style_or_handler() {
    for page in pages() {
        let html = read(&page);
        let lower = html.to_ascii_lowercase();
        let mut rest = lower.as_str();
        while let Some(at) = rest.find("<script") {
            let tag_end = rest[at..].find('>').expect("a script tag ends") + at;
            let tag = &rest[at..tag_end];
            assert!(
                tag.contains(" src=\""),
                "{}: an inline <script>",
                page.display()
            );
            rest = &rest[tag_end..];
        }
        assert!(
            !lower.contains("<style"),
            "{}: an inline <style>",
            page.display()
        );
        assert!(
            !lower.contains(" style=\""),
            "{}: a style attribute",
            page.display()
        );
        for handler in [
            "onclick", "onload", "onsubmit", "oninput", "onchange", "onerror",
        ] {
            assert!(
                !lower.contains(&format!(" {handler}=")),
                "{}: an inline {handler} handler",
                page.display()
            );
        }
        assert!(
            !lower.contains("javascript:"),
            "{}: a javascript: URL",
            page.display()
        );
    }
}

/// The terminal page, with everything it loads, gzipped one file at a time as
/// the server sends them, stays under 200 KiB (the issue's budget; xterm.js
/// is most of it).
#[test]
fn issue23_the_terminal_page_is_under_200_kib_gzipped() {
    let files = loaded_by(&web().join("port.html"));
    let mut total = 0;
    for file in &files {
        let out = Command::new("gzip")
            .args(["-6", "-c"])
            .arg(file)
            .output()
            .expect("gzip runs");
        assert!(out.status.success(), "gzip {}", file.display());
        total += out.stdout.len();
    }
    assert!(
        total > 50 * 1024,
        "xterm.js alone is more than this: {total} bytes"
    );
    assert!(
        total < 200 * 1024,
        "the terminal page is {total} bytes gzipped: {files:?}"
    );
}
