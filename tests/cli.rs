//! The command line and the first run, through the real binary in a temporary directory: what
//! `--db` accepts, that nothing is created by a mistyped path or a reading command, that every
//! command (and the server, at EOF on stdio and on SIGTERM / SIGINT over HTTP) leaves no `-wal`
//! or `-shm` file behind, demo's ranges, the help text, the README's example, the query table on
//! a terminal, and `scripts/test` honouring `CARGO_TARGET_DIR`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use dashboard_mcp::cli::Cli;
use serde_json::Value;

/// Every wait on a child process ends within this, or the test fails.
const LIMIT: Duration = Duration::from_secs(120);
const NOW: &str = "2026-11-23T12:00:00Z";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary, run in `dir`, with no database or zone from the environment and a data
/// directory inside `dir` (so the default database path never reaches the user's).
fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dashboard-mcp"));
    c.current_dir(dir)
        .env_remove("DASHBOARD_MCP_DB")
        .env_remove("DASHBOARD_MCP_TZ")
        .env_remove("DASHBOARD_MCP_TOKEN")
        .env_remove("DASHBOARD_MCP_LOG")
        .env("XDG_DATA_HOME", dir.join("xdg"))
        .env("HOME", dir.join("home"));
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Out {
    let out = bin(dir).args(args).stdin(Stdio::null()).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not end within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A database of `events` demo executions (no anomalies) at `dir/usage.db`.
fn demo_db(dir: &Path, events: &str) -> PathBuf {
    let out = run(
        dir,
        &[
            "--db",
            "usage.db",
            "--now",
            NOW,
            "demo",
            "--events",
            events,
            "--days",
            "3",
            "--agents",
            "3",
            "--no-anomalies",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    dir.join("usage.db")
}

// ---------------------------------------------------------------------------------------------
// --db: what it accepts

#[test]
fn an_sqlite_uri_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["demo", "--events", "10", "--no-anomalies"][..],
        &["query", "overview"],
        &["import", "-"],
    ] {
        let mut args = vec!["--db", "file:x.db?mode=rwc"];
        args.extend_from_slice(command);
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 2, "{command:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim_end(),
            "error: --db: \"file:x.db?mode=rwc\" is an SQLite URI, which is not supported; give \
             a plain file path instead (here: \"x.db\")"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new(), "{command:?}");
    }
}

#[test]
fn an_in_memory_database_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--db", ":memory:", "query", "overview"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: --db: \":memory:\" (an in-memory database) is not supported: every \
             connection of the store would see a database of its own"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("no such table"), "{}", out.stderr);
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_url_is_refused_naming_what_is_accepted_and_a_huge_value_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["--db", "mysql://me@db/usage", "query", "overview"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        "error: --db: \"mysql://me@db/usage\" is a URL (mysql://), which is not supported; \
         give the path of a SQLite file, e.g. ./usage.db (created when its directory exists), \
         or a PostgreSQL URL (postgres://user@host:port/database)"
    );
    let huge = format!("file:{}", "y".repeat(100_000));
    let out = run(dir.path(), &["--db", &huge, "query", "overview"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.len() < 400, "{} bytes", out.stderr.len());
    assert!(out.stderr.contains("(100005 characters)"), "{}", out.stderr);
}

#[test]
fn a_mistyped_directory_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("examples/usage.jsonl");
    let out = run(
        dir.path(),
        &["--db", "dtaa/usage.db", "import", sample.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        "error: --db: cannot create the database dtaa/usage.db: the directory dtaa does not \
         exist (check the path for a typo, or create the directory first)"
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
    // In an existing directory, a writing command creates the database.
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let out = run(
        dir.path(),
        &["--db", "data/usage.db", "import", sample.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(files(&dir.path().join("data")), ["usage.db"]);
}

#[test]
fn reading_commands_do_not_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["query", "overview"][..],
        &["budget", "list"],
        &["budget", "rm", "global"],
    ] {
        let mut args = vec!["--db", "usage.bd"];
        args.extend_from_slice(command);
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 2, "{command:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim_end(),
            "error: --db: there is no database at usage.bd (nothing was created); check the \
             path for a typo, or fill one with `dashboard-mcp import FILE…` or `dashboard-mcp \
             demo`",
            "{command:?}"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new(), "{command:?}");
    }
}

#[test]
fn the_default_database_is_created_with_its_directory_but_not_read_into_being() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("xdg/dashboard-mcp/usage.db");
    let out = run(dir.path(), &["query", "overview"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "error: --db: there is no database at {} (nothing was created); this is the default",
            default.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("xdg").exists());
    let out = run(dir.path(), &["demo", "--events", "25", "--no-anomalies"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(default.is_file());
    let out = run(
        dir.path(),
        &["query", "executions", "{\"timeframe\":\"quarter\"}"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["pagination"]["total"], 25);
}

#[test]
fn a_file_that_is_not_a_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.db"), "not a database\n".repeat(200)).unwrap();
    let out = run(dir.path(), &["--db", "notes.db", "query", "overview"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        "error: notes.db is not a SQLite database (SQLite: file is not a database); check the path"
    );
}

// ---------------------------------------------------------------------------------------------
// -wal and -shm files

#[test]
fn no_wal_or_shm_file_is_left_by_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("examples/usage.jsonl");
    let db = dir.path().join("usage.db");
    let db = db.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["import", sample.to_str().unwrap()],
        &["demo", "--events", "300", "--days", "2", "--no-anomalies"],
        &["query", "overview", "{\"timeframe\":\"week\"}"],
        &["query", "anomalies", "{\"timeframe\":\"week\"}"],
        &["budget", "set", "global", "10", "--period", "week"],
        &["budget", "list"],
    ];
    for command in commands {
        let mut args = vec!["--db", db, "--now", NOW];
        args.extend_from_slice(command);
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 0, "{command:?}: {}", out.stderr);
        assert_eq!(files(dir.path()), ["usage.db"], "after {command:?}");
    }
}

#[test]
fn no_wal_or_shm_file_is_left_by_the_stdio_server_at_eof() {
    let dir = tempfile::tempdir().unwrap();
    demo_db(dir.path(), "2000");
    let mut child = bin(dir.path())
        .args(["--db", "usage.db", "--now", NOW, "serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for message in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"cli-test","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"dashboard_get_overview","arguments":{"timeframe":"week"}}}"#,
    ] {
        writeln!(stdin, "{message}").unwrap();
    }
    stdin.flush().unwrap();
    let mut answered = false;
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 2 {
            assert_eq!(
                v["result"]["structuredContent"]["summary"]["totalCalls"], 2000,
                "{line}"
            );
            answered = true;
            break;
        }
        line.clear();
    }
    assert!(answered, "no answer to the tool call");
    assert_eq!(
        files(dir.path()),
        ["usage.db", "usage.db-shm", "usage.db-wal"]
    );
    drop(stdin);
    let status = wait(&mut child);
    assert!(status.success(), "{status}");
    assert_eq!(files(dir.path()), ["usage.db"]);
}

/// Start `serve --http 127.0.0.1:0` on `dir/usage.db`, ask one REST question, stop it with
/// `signal` and check that it exits cleanly without leaving the log files.
fn http_server_stops_cleanly_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    demo_db(dir.path(), "1500");
    let mut child = bin(dir.path())
        .args([
            "--db",
            "usage.db",
            "--now",
            NOW,
            "serve",
            "--http",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(url) = line.trim().strip_prefix("listening on http://") {
            addr = Some(url.to_owned());
            break;
        }
        line.clear();
    }
    let addr = addr.expect("the server said where it listens");
    // Keep draining stderr so that the server never blocks on it.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        tcp,
        "GET /api/dashboard/overview?timeframe=week HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"totalCalls\":1500"), "{response}");
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait(&mut child);
    let log = drain.join().unwrap();
    assert!(status.success(), "{status}: {log}");
    assert_eq!(files(dir.path()), ["usage.db"], "{log}");
}

#[test]
fn no_wal_or_shm_file_is_left_by_the_http_server_on_sigterm() {
    http_server_stops_cleanly_on("-TERM");
}

#[test]
fn no_wal_or_shm_file_is_left_by_the_http_server_on_sigint() {
    http_server_stops_cleanly_on("-INT");
}

// ---------------------------------------------------------------------------------------------
// demo

#[test]
fn demo_refuses_counts_out_of_range_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["--agents", "0"][..],
            "error: invalid value '0' for '--agents <N>': 0 is not in 1..=10000",
        ),
        (
            &["--models", "0"],
            "error: invalid value '0' for '--models <N>': 0 is not in 1..=1000",
        ),
        (
            &["--days", "0"],
            "error: invalid value '0' for '--days <N>': 0 is not in 1..=3650",
        ),
        (
            &["--events", "0"],
            "error: invalid value '0' for '--events <N>': 0 is not in 1..=5000000",
        ),
        (
            &["--events", "1000000000000"],
            "error: invalid value '1000000000000' for '--events <N>': 1000000000000 is not in 1..=5000000",
        ),
    ] {
        let mut all = vec!["--db", "usage.db", "demo"];
        all.extend_from_slice(args);
        let out = run(dir.path(), &all);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().next(), Some(message), "{args:?}");
        assert_eq!(files(dir.path()), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn demo_needs_enough_events_for_its_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    // 12 agents × 30 days (the defaults) × 24 hours.
    let out = run(dir.path(), &["--db", "usage.db", "demo", "--events", "500"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        "error: --events: 500 is too few for the labelled anomalies of 12 agents over 30 days: \
         give at least 8640 (24 × agents × days, one call per agent and hour on average; the \
         detector judges hourly series), fewer agents or days, or --no-anomalies"
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
    // Without the anomalies, 500 draws are 500 executions.
    let out = run(
        dir.path(),
        &[
            "--now",
            NOW,
            "demo",
            "--events",
            "500",
            "--no-anomalies",
            "--out",
            "-",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 500);
    assert_eq!(out.stderr.trim_end(), "wrote 500 demo executions to -");
    // With them, the help's minimum is enough, and the output says what they added.
    let out = run(
        dir.path(),
        &[
            "--now", NOW, "demo", "--agents", "2", "--days", "3", "--events", "144", "--out", "-",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let n = out.stdout.lines().count();
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "wrote {n} demo executions to - (144 drawn, {:+} by the labelled anomalies: a \
             runaway loop repeats calls, a call drop removes some)",
            n as i64 - 144
        )
    );
    let out = run(
        dir.path(),
        &[
            "--db", "usage.db", "demo", "--agents", "10000", "--days", "3650",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: --agents: 10000 agents over 3650 days need at least 876000000 events"
        ),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Help

/// The help text of `path` (subcommand names), as `--help` prints it.
fn help(path: &[&str]) -> String {
    let mut c = Cli::command();
    // Building hands the global flags down to the subcommands, as parsing does.
    c.build();
    for name in path {
        c = c.find_subcommand(name).unwrap().clone();
    }
    c.render_long_help().to_string()
}

#[test]
fn every_argument_has_help_text() {
    fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in c.get_arguments() {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} {}", a.get_id()));
            }
        }
        for s in c.get_subcommands() {
            walk(s, &format!("{path} {}", s.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    let mut c = Cli::command();
    c.build();
    walk(&c, "dashboard-mcp", &mut missing);
    assert_eq!(missing, Vec::<String>::new());
}

#[test]
fn now_is_in_the_help_and_allow_writes_only_where_it_does_something() {
    assert!(help(&[]).contains("--now <RFC3339>"), "{}", help(&[]));
    assert!(help(&["query"]).contains("--now <RFC3339>"));
    let has_option = |text: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with("--allow-writes"))
    };
    for path in [&[][..], &["serve"], &["query"]] {
        assert!(has_option(&help(path)), "{path:?}");
    }
    for path in [
        &["import"][..],
        &["demo"],
        &["bench"],
        &["budget"],
        &["budget", "set"],
        &["budget", "list"],
        &["budget", "rm"],
    ] {
        assert!(!has_option(&help(path)), "{path:?}: {}", help(path));
    }
    let dir = tempfile::tempdir().unwrap();
    demo_db(dir.path(), "50");
    let budget = r#"{"scope":"global","limitUsd":5,"period":"week"}"#;
    // Before or after the subcommand.
    for args in [
        &["--allow-writes", "query", "dashboard_set_budget", budget][..],
        &["query", "dashboard_set_budget", budget, "--allow-writes"],
    ] {
        let mut all = vec!["--db", "usage.db", "--now", NOW];
        all.extend_from_slice(args);
        let out = run(dir.path(), &all);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["budget"]["limitUsd"], 5.0);
    }
    let out = run(
        dir.path(),
        &["--db", "usage.db", "--allow-writes", "budget", "list"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        "error: --allow-writes: only `serve` and `query` have write tools to allow; `import`, \
         `demo` and `budget` write without it"
    );
    let out = run(
        dir.path(),
        &["--db", "usage.db", "budget", "list", "--allow-writes"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unexpected argument '--allow-writes'"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_user_facing_text_cites_a_spec_section() {
    let mut texts = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(repo().join("README.md")).unwrap(),
    )];
    fn walk(c: &clap::Command, path: String, texts: &mut Vec<(String, String)>) {
        let mut c = c.clone();
        texts.push((path.clone(), c.render_long_help().to_string()));
        for s in c.get_subcommands() {
            walk(s, format!("{path} {}", s.get_name()), texts);
        }
    }
    let mut c = Cli::command();
    c.build();
    walk(&c, "dashboard-mcp".into(), &mut texts);
    for (name, text) in texts {
        assert!(!text.contains("SPEC"), "{name} cites the SPEC: {text}");
    }
    assert!(help(&["bench"]).contains("BENCHMARKS.md"));
}

// ---------------------------------------------------------------------------------------------
// The README's example, and query's output

/// The README's command line that starts with `prefix`, split into words (comments dropped).
fn readme_command(prefix: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the README has no line starting with {prefix:?}"));
    let code = line.split("  #").next().unwrap();
    let words = shlex::split(code).unwrap();
    assert_eq!(words[0], "dashboard-mcp");
    words[1..].to_vec()
}

#[test]
fn the_readme_example_answers_about_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let import = readme_command("dashboard-mcp import examples/usage.jsonl");
    let query = readme_command("dashboard-mcp query overview '{\"start\"");
    for args in [&import, &query] {
        assert!(
            !args.iter().any(|a| a == "--now"),
            "the example must work as written"
        );
    }
    let run_in_repo = |args: &[String]| {
        let out = bin(&repo())
            .env("DASHBOARD_MCP_DB", &db)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run_in_repo(&import);
    let answer: Value = serde_json::from_str(&run_in_repo(&query)).unwrap();
    // The sample's own totals, summed here from the file.
    let sample = std::fs::read_to_string(repo().join("examples/usage.jsonl")).unwrap();
    let (mut calls, mut tokens, mut nanos) = (0u64, 0u64, 0i64);
    for line in sample.lines().filter(|l| !l.trim().is_empty()) {
        let r: Value = serde_json::from_str(line).unwrap();
        calls += 1;
        for f in [
            "promptTokens",
            "completionTokens",
            "cacheReadTokens",
            "cacheWriteTokens",
        ] {
            tokens += r[f].as_u64().unwrap_or(0);
        }
        nanos += (r["cost"].as_f64().unwrap() * 1e9).round() as i64;
    }
    assert_eq!(calls, 40);
    let summary = &answer["summary"];
    assert_eq!(summary["totalCalls"], calls, "{answer}");
    assert_eq!(summary["totalTokens"], tokens, "{answer}");
    let cost = summary["totalCost"].as_f64().unwrap();
    assert_eq!((cost * 1e9).round() as i64, nanos, "{answer}");
}

#[test]
fn query_prints_json_when_piped_or_asked() {
    let dir = tempfile::tempdir().unwrap();
    demo_db(dir.path(), "400");
    for extra in [&[][..], &["--json"], &["--compact"]] {
        let mut args = vec!["--db", "usage.db", "--now", NOW, "query", "agents"];
        args.extend_from_slice(extra);
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 0, "{extra:?}: {}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["total"], 3, "{extra:?}");
        assert_eq!(
            out.stdout.lines().count() == 1,
            extra == ["--compact"],
            "{extra:?}"
        );
    }
}

/// Run the binary with a terminal as stdout (util-linux `script` gives it a pseudo-terminal).
fn on_a_terminal(dir: &Path, args: &str) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_dashboard-mcp"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env_remove("DASHBOARD_MCP_DB")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

#[test]
fn query_prints_a_table_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("examples/usage.jsonl");
    let out = run(
        dir.path(),
        &["--db", "usage.db", "import", sample.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let window = r#"'{"start":"2026-11-21T00:00:00Z","end":"2026-11-24T00:00:00Z","limit":1}'"#;
    let text = on_a_terminal(dir.path(), &format!("--db usage.db query agents {window}"));
    // The sample's busiest agent by cost, from its records: planner, 22 calls.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "period 2026-11-21T00:00:00Z → 2026-11-24T00:00:00Z",
        "{text}"
    );
    assert!(
        lines[1].starts_with("AGENT    NAME     COST USD  CALLS"),
        "{text}"
    );
    assert!(lines[3].starts_with("planner  Planner"), "{text}");
    assert!(lines[3].contains("     22  "), "{text}");
    assert_eq!(
        lines[4], "rows 1–1 of 4; the next page: \"offset\": 1",
        "{text}"
    );
    let json = on_a_terminal(
        dir.path(),
        &format!("--db usage.db query agents {window} --json"),
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["agents"][0]["metrics"]["totalCalls"], 22);
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    demo_db(dir.path(), "400");
    let mut child = bin(dir.path())
        .args([
            "--db",
            "usage.db",
            "--now",
            NOW,
            "query",
            "executions",
            "{\"limit\":500}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = wait(&mut child);
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(files(dir.path()), ["usage.db"]);
}

#[test]
fn the_overview_schema_states_the_p95_bound() {
    let schema =
        std::fs::read_to_string(repo().join("schemas/dashboard_get_overview.output.json")).unwrap();
    let v: Value = serde_json::from_str(&schema).unwrap();
    let text = v.pointer("/$defs/OverviewSummary/properties/p95LatencyMs/description");
    let text = text.and_then(Value::as_str).unwrap_or_default();
    // query::EXACT_P95_MAX, and the histogram's 2^(1/100) − 1.
    assert!(text.contains("20,000"), "{text}");
    assert!(text.contains("0.7 %"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// scripts/test

/// Stand-ins for cargo and the venv's python in `d` that log how they were called to `$LOG`
/// (python answers the script's import check with success); the `PATH` that finds them.
fn fake_tools(d: &Path) -> String {
    std::fs::create_dir_all(d.join("bin")).unwrap();
    std::fs::create_dir_all(d.join("venv/bin")).unwrap();
    std::fs::create_dir_all(d.join("target-elsewhere/debug")).unwrap();
    std::fs::write(d.join("target-elsewhere/debug/dashboard-mcp"), "").unwrap();
    let cargo = "#!/bin/sh\necho \"cargo $*\" >> \"$LOG\"\n";
    let python = "#!/bin/sh\n[ \"$1\" = -c ] && exit 0\necho \"python BIN=$DASHBOARD_MCP_BIN ${DASHBOARD_MCP_TEST_ENGINE:-sqlite}\" >> \"$LOG\"\n";
    for (path, text) in [("bin/cargo", cargo), ("venv/bin/python", python)] {
        std::fs::write(d.join(path), text).unwrap();
        let status = Command::new("chmod")
            .args(["+x", path])
            .current_dir(d)
            .status()
            .unwrap();
        assert!(status.success());
    }
    format!(
        "{}:{}",
        d.join("bin").display(),
        std::env::var("PATH").unwrap()
    )
}

#[test]
fn scripts_test_fails_naming_the_variable_when_no_postgres_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = Command::new("bash")
        .arg(repo().join("scripts/test"))
        .env("PATH", fake_tools(d))
        .env("LOG", d.join("log"))
        .env("DASHBOARD_MCP_VENV", d.join("venv"))
        .env("CARGO_TARGET_DIR", d.join("target-elsewhere"))
        .env(
            "DASHBOARD_MCP_TEST_POSTGRES",
            "postgres://me@127.0.0.1:1/none",
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no PostgreSQL server answers at postgres://me@127.0.0.1:1/none")
            && stderr.contains("point DASHBOARD_MCP_TEST_POSTGRES at one"),
        "{stderr}"
    );
    // The SQLite pass ran; nothing ran on PostgreSQL.
    let log = std::fs::read_to_string(d.join("log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["cargo build --locked", "cargo test --locked"]
    );
}

#[test]
fn scripts_test_runs_the_binary_of_cargo_target_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("log");
    let path = fake_tools(d);
    let out = Command::new("bash")
        .arg(repo().join("scripts/test"))
        .env("PATH", path)
        .env("LOG", &log)
        .env("DASHBOARD_MCP_VENV", d.join("venv"))
        .env("CARGO_TARGET_DIR", d.join("target-elsewhere"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let bin = d
        .join("target-elsewhere/debug/dashboard-mcp")
        .display()
        .to_string();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "cargo build --locked".to_owned(),
            "cargo test --locked".to_owned(),
            "cargo test --locked --features pg-tests --lib --test anomalies --test budgets \
             --test contracts --test crosscheck --test errors --test exactness --test fixture \
             --test hardening --test http --test http_hardening --test ingest --test jsonrpc \
             --test limits --test otlp --test replicas --test sources --test time_order \
             --test budget_check --test alerts"
                .to_owned(),
            format!("python BIN={bin} sqlite"),
            format!("python BIN={bin} postgres"),
        ]
    );
}

#[test]
fn an_import_report_into_a_closed_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..30)
        .map(|i| {
            format!(
                "{{\"timestamp\":\"2026-11-20T10:00:{i:02}Z\",\"agentId\":\"\",\"model\":\"m\"}}\n"
            )
        })
        .collect();
    std::fs::write(dir.path().join("bad.jsonl"), lines).unwrap();
    let mut child = bin(dir.path())
        .args(["--db", "usage.db", "import", "bad.jsonl"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    wait(&mut child);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `import --from`: the usual roots from $HOME and $CLAUDE_CONFIG_DIR, the report as JSON, no
/// progress output when stderr is not a terminal; a bad source named with what is allowed.
#[test]
fn import_from_claude_code_finds_the_usual_roots() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo().join("tests/fixtures/claude-code/projects");
    let copy = |to: &Path| {
        let out = Command::new("cp")
            .args(["-r", fixture.to_str().unwrap(), to.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    // ~/.claude, found with no folder given.
    std::fs::create_dir_all(dir.path().join("home/.claude")).unwrap();
    copy(&dir.path().join("home/.claude/projects"));
    let out = run(
        dir.path(),
        &["--db", "a.db", "import", "--from", "claude-code", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    // 6 executions; msg_A's streaming repeat and its sidechain copy merged into its main-chain
    // line before they reached the store; line 7 not JSON: see tests/sources.rs for the
    // hand-worked fixture.
    assert_eq!(
        (
            &report["accepted"],
            &report["duplicates"],
            &report["rejected"]
        ),
        (
            &serde_json::json!(6),
            &serde_json::json!(2),
            &serde_json::json!(1)
        )
    );
    // $CLAUDE_CONFIG_DIR, comma separated, wins over the home folders.
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    copy(&dir.path().join("other/projects"));
    let out = bin(dir.path())
        .args(["--db", "b.db", "import", "--from", "claude", "--json"])
        .env(
            "CLAUDE_CONFIG_DIR",
            format!(
                "{},{}",
                dir.path().join("nowhere").display(),
                dir.path().join("other").display()
            ),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepted"], 6);
    assert!(report["files"][0]["source"]
        .as_str()
        .unwrap()
        .contains("/other/projects/"));
    let out = run(dir.path(), &["--db", "a.db", "import", "--from", "cursor"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--from"), "{}", out.stderr);
    assert!(
        out.stderr.contains("claude-code and codex"),
        "{}",
        out.stderr
    );
}

#[test]
fn prices_shows_a_models_price_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["prices", "anthropic/claude-sonnet-4-5-20250929", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["price"]["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(v["price"]["inputUsdPerMTok"], 3.0);
    assert_eq!(v["price"]["outputUsdPerMTok"], 15.0);
    let out = run(dir.path(), &["prices", "my-local-llama"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no price"), "{}", out.stderr);
    // No database is made by looking at prices.
    assert!(!dir.path().join("xdg").exists());
}

/// "Post to this URL when planner's weekly budget passes 80 % or something critical happens",
/// in one command; then list, test against a port nobody listens on, remove.
#[test]
fn one_command_sets_an_alert_and_the_others_show_test_and_remove_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("u.db");
    let db = db.to_str().unwrap();
    let add = run(
        d,
        &[
            "--db",
            db,
            "alert",
            "add",
            "https://hooks.example.com/services/T/B/secret",
            "--id",
            "planner-oncall",
            "--agent",
            "planner",
            "--budget",
            "--anomaly",
            "critical",
            "--slack",
        ],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    assert_eq!(
        add.stdout.trim(),
        "created alert planner-oncall: budgetThreshold, anomaly ≥ critical for agent planner → https://hooks.example.com/… (slack)"
    );
    let list = run(d, &["--db", db, "alert", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.starts_with("planner-oncall "),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains("secret"));
    let bad = run(
        d,
        &[
            "--db",
            db,
            "alert",
            "add",
            "https://x.example",
            "--anomaly",
            "huge",
        ],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--anomaly"), "{}", bad.stderr);
    // Port 9 (discard) has no listener here: the test says it was not delivered, exit 1.
    let add = run(
        d,
        &[
            "--db",
            db,
            "alert",
            "add",
            "http://127.0.0.1:9/x",
            "--id",
            "t",
            "--cost",
            "5",
        ],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let test = run(d, &["--db", db, "alert", "test", "t"]);
    assert_eq!(test.code, 1);
    assert!(
        test.stderr.starts_with("error: not delivered: "),
        "{}",
        test.stderr
    );
    let rm = run(d, &["--db", db, "alert", "rm", "planner-oncall"]);
    assert_eq!(rm.stdout.trim(), "removed alert planner-oncall");
    let rm = run(d, &["--db", db, "alert", "rm", "planner-oncall"]);
    assert_eq!(
        rm.stdout.trim(),
        "there is no alert planner-oncall; nothing to remove"
    );
}
