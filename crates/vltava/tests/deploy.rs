//! The shipped configuration files: the example server.properties names every key the broker
//! reads and starts a real broker; the cluster node files use only known keys.
//! (shellcheck and systemd-analyze run in scripts/check-deploy.)

mod common;

use std::collections::BTreeSet;

use common::{repo_root, Server};

/// The keys the broker reads, from the lists it checks them against.
fn supported_keys() -> BTreeSet<String> {
    let config = repo_root().join("crates/vltava-broker/src/config");
    let mut keys = BTreeSet::new();
    for (file, list) in [
        ("keys.rs", "pub const SUPPORTED"),
        ("groups.rs", "pub const KEYS"),
    ] {
        let text = std::fs::read_to_string(config.join(file)).expect("config source");
        let start = text
            .find(list)
            .unwrap_or_else(|| panic!("{list} in {file}"));
        let rest = &text[start..];
        let end = rest.find("];").expect("end of the list");
        for line in rest[..end].lines() {
            let line = line.trim();
            if let Some(key) = line.strip_prefix('"').and_then(|l| l.strip_suffix("\",")) {
                keys.insert(key.to_string());
            }
        }
    }
    assert!(keys.len() > 30, "too few keys found: {keys:?}");
    keys
}

/// Keys set in a properties file; `commented` also counts `#key=value` lines.
fn keys_in(path: &std::path::Path, commented: bool) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("properties file");
    text.lines()
        .map(str::trim)
        .filter_map(|l| match l.strip_prefix('#') {
            Some(c) if commented => Some(c),
            Some(_) => None,
            None => Some(l),
        })
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .collect()
}

#[test]
fn example_server_properties_documents_every_key_the_broker_reads() {
    let documented = keys_in(&repo_root().join("deploy/server.properties"), true);
    let missing: Vec<_> = supported_keys().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "deploy/server.properties lacks {missing:?}"
    );
}

#[test]
fn cluster_node_configs_use_only_known_keys() {
    let known = supported_keys();
    for node in 1..=3 {
        let path = repo_root().join(format!("deploy/cluster/node{node}.properties"));
        let keys = keys_in(&path, false);
        let unknown: Vec<_> = keys.difference(&known).collect();
        assert!(unknown.is_empty(), "{}: {unknown:?}", path.display());
        assert!(keys.contains("controller.quorum.voters") && keys.contains("node.id"));
    }
}

#[test]
fn example_server_properties_starts_a_broker_with_every_key_accepted() {
    let config = repo_root().join("deploy/server.properties");
    let server = Server::start(Some(&config), &[]);
    let out = common::ok(server.cli(&["cluster", "info"]));
    assert!(common::stdout(&out).contains("controller: 1"));
    let log = server.log();
    assert!(!log.contains("not supported"), "{log}");
}
