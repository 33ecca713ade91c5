//! The `vltava` client commands against a real `vltava server`: a topic's life, produce from a
//! file, consume with a group, group lag, configs, cluster info, and one-line errors.

mod common;

use common::{ok, stderr, stdout, vltava, Server};

#[test]
fn topic_produce_file_consume_with_group_then_lag_is_zero() {
    let server = Server::start(None, &[]);
    ok(server.cli(&["topic", "create", "orders", "--partitions", "3"]));
    let list = stdout(&ok(server.cli(&["topic", "list"])));
    assert!(
        list.lines()
            .any(|l| l.starts_with("orders ") && l.contains(" 3")),
        "{list}"
    );
    let describe = stdout(&ok(server.cli(&["topic", "describe", "orders"])));
    assert!(describe.contains("orders: 3 partitions"), "{describe}");

    let input: String = (0..200).map(|i| format!("k{i}:value {i}\n")).collect();
    let file = server.dir.path().join("events.txt");
    std::fs::write(&file, &input).unwrap();
    let file = file.to_str().unwrap();
    let produced = ok(server.cli(&[
        "produce",
        "orders",
        "--file",
        file,
        "--key-separator",
        ":",
        "--header",
        "src=test",
        "--compression",
        "lz4",
    ]));
    assert!(
        stderr(&produced).contains("produced 200 of 200 records"),
        "{}",
        stderr(&produced)
    );

    let consumed = ok(server.cli(&[
        "consume",
        "orders",
        "--group",
        "billing",
        "--from-beginning",
        "--count",
        "200",
        "--format",
        "%k:%s|%h\\n",
    ]));
    let mut got: Vec<String> = stdout(&consumed).lines().map(str::to_string).collect();
    let mut want: Vec<String> = (0..200)
        .map(|i| format!("k{i}:value {i}|src=test"))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let group = stdout(&ok(server.cli(&["group", "describe", "billing"])));
    let rows: Vec<&str> = group.lines().filter(|l| l.starts_with("orders ")).collect();
    assert_eq!(rows.len(), 3, "{group}");
    for row in rows {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.get(4), Some(&"0"), "lag of {row}\n{group}");
    }
    let groups = stdout(&ok(server.cli(&["group", "list"])));
    assert!(groups.contains("billing"), "{groups}");

    ok(server.cli(&["topic", "add-partitions", "orders", "--partitions", "4"]));
    let describe = stdout(&ok(server.cli(&["topic", "describe", "orders"])));
    assert!(describe.contains("orders: 4 partitions"), "{describe}");
    ok(server.cli(&["topic", "delete", "orders"]));
    let gone = server.cli(&["topic", "describe", "orders"]);
    assert!(!gone.status.success());
    assert_eq!(stderr(&gone).trim(), "error: unknown topic \"orders\"");
}

#[test]
fn produce_from_stdin_to_a_partition_and_read_it_back_by_offset() {
    let server = Server::start(None, &[]);
    ok(server.cli(&["topic", "create", "lines", "--partitions", "2"]));
    ok(server.cli_with_stdin(
        &["produce", "lines", "--partition", "1", "--acks", "1"],
        Some(b"a\nb\nc\n"),
    ));
    let out = ok(server.cli(&[
        "consume",
        "lines",
        "--partition",
        "1",
        "--offset",
        "1",
        "--count",
        "2",
        "--format",
        "%p/%o=%s\\n",
    ]));
    assert_eq!(stdout(&out), "1/1=b\n1/2=c\n");
}

#[test]
fn configs_are_read_and_an_unknown_key_is_named() {
    let server = Server::start(None, &[]);
    ok(server.cli(&["topic", "create", "conf", "--config", "retention.ms=60000"]));
    let got = stdout(&ok(server.cli(&[
        "config",
        "get",
        "--topic",
        "conf",
        "retention.ms",
    ])));
    assert!(
        got.contains("retention.ms") && got.contains("60000"),
        "{got}"
    );
    let broker = stdout(&ok(server.cli(&["config", "get", "--broker", "1"])));
    assert!(broker.contains("log.dirs"), "{broker}");

    let bad = server.cli(&["config", "get", "--topic", "conf", "retention.mss"]);
    assert!(!bad.status.success());
    assert_eq!(
        stderr(&bad).trim(),
        "error: unknown config key \"retention.mss\" for topic \"conf\""
    );

    // Setting goes through IncrementalAlterConfigs and shows up in the next get.
    ok(server.cli(&["config", "set", "--topic", "conf", "retention.ms=1000"]));
    let after = stdout(&ok(server.cli(&[
        "config",
        "get",
        "--topic",
        "conf",
        "retention.ms",
    ])));
    assert!(after.contains("1000"), "{after}");
}

#[test]
fn cluster_info_names_the_node_and_controller() {
    let server = Server::start(None, &[]);
    let info = stdout(&ok(server.cli(&["cluster", "info", "--versions"])));
    assert!(info.contains("controller: 1"), "{info}");
    assert!(
        info.contains(&format!("127.0.0.1:{}", server.port)),
        "{info}"
    );
    assert!(info.contains("Produce"), "{info}");
}

#[test]
fn unreachable_broker_is_one_line_naming_the_address() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let out = vltava(&[
        "topic",
        "list",
        "--bootstrap-server",
        &addr,
        "--timeout",
        "2",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: broker unreachable at {addr}")),
        "{err}"
    );
}

#[test]
fn produce_to_a_missing_topic_is_one_line_unless_the_broker_creates_it() {
    let strict = Server::start(None, &["--override", "auto.create.topics.enable=false"]);
    let out = strict.cli_with_stdin(&["produce", "nowhere"], Some(b"lost\n"));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "error: cannot produce to \"nowhere\": unknown topic \"nowhere\""
    );

    let creating = Server::start(None, &[]);
    let out = ok(creating.cli_with_stdin(&["produce", "fresh"], Some(b"kept\n")));
    assert!(
        stderr(&out).contains("produced 1 of 1 records"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_arguments_exit_non_zero_with_one_line() {
    for args in [
        &["topic", "create"][..],
        &["produce", "t", "--acks", "7"],
        &["consume", "t", "--no-such-flag"],
        &["frobnicate"],
    ] {
        let out = vltava(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
    }
}

#[test]
fn every_command_shows_an_example_in_help() {
    for args in [
        &["server"][..],
        &["topic", "create"],
        &["topic", "list"],
        &["topic", "describe"],
        &["topic", "delete"],
        &["topic", "add-partitions"],
        &["produce"],
        &["consume"],
        &["config", "get"],
        &["config", "set"],
        &["group", "list"],
        &["group", "describe"],
        &["group", "delete"],
        &["group", "reset-offsets"],
        &["cluster", "info"],
    ] {
        let mut full = args.to_vec();
        full.push("--help");
        let out = ok(vltava(&full));
        let help = stdout(&out);
        assert!(help.contains("Example"), "{args:?}:\n{help}");
        assert!(help.contains("vltava "), "{args:?}:\n{help}");
    }
}

#[test]
fn unknown_server_key_fails_with_its_name() {
    let out = vltava(&["server", "--override", "log.retention.hourz=1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("log.retention.hourz"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn ctrl_c_stops_consume_cleanly_with_offsets_committed() {
    use std::io::BufRead;
    let server = Server::start(None, &[]);
    ok(server.cli(&["topic", "create", "tail"]));
    ok(server.cli_with_stdin(&["produce", "tail"], Some(b"1\n2\n3\n4\n5\n")));
    let mut child = std::process::Command::new(common::BIN)
        .args(["consume", "tail", "--group", "tailers", "--from-beginning"])
        .env("VLTAVA_BOOTSTRAP_SERVER", server.bootstrap())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for want in ["1", "2", "3", "4", "5"] {
        assert_eq!(lines.next().unwrap().unwrap(), want);
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("consumed 5 records"),
        "{}",
        stderr(&out)
    );
    let group = stdout(&ok(server.cli(&["group", "describe", "tailers"])));
    let row = group
        .lines()
        .find(|l| l.starts_with("tail "))
        .unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(2..5), Some(&["5", "5", "0"][..]), "{group}");
}

/// Files the broker holds open whose path contains `needle` (deleted ones included).
fn broker_files_named(server: &Server, needle: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("the broker's /proc fd list")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.contains(needle))
        .collect()
}

#[test]
fn deleting_a_topic_gives_its_disk_space_back_at_once() {
    let server = Server::start(None, &[]);
    ok(server.cli(&[
        "bench",
        "produce",
        "--topic",
        "doomed",
        "--partitions",
        "2",
        "--records",
        "20000",
        "--record-size",
        "512",
        "--acks",
        "1",
    ]));
    // Read it back to the end, so the fetch path has the segments open too.
    ok(server.cli(&["bench", "consume", "--topic", "doomed", "--client", "wire"]));
    assert!(
        !broker_files_named(&server, "doomed-").is_empty(),
        "the broker has the topic's segments open"
    );
    ok(server.cli(&["topic", "delete", "doomed"]));
    // A deleted file that is still open keeps its blocks: none may stay open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let open = broker_files_named(&server, "doomed-");
        if open.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still open 10 s after the delete: {open:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
