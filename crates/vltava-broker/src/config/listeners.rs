//! `listeners`, `advertised.listeners`, `controller.listener.names`,
//! `listener.security.protocol.map` and `controller.quorum.voters`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use super::{ConfigError, Reader};

/// A host and port as clients should dial them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The broker's client listener, what it advertises, and the controller (Raft) listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Name of the client listener (`PLAINTEXT` by default).
    pub broker_name: String,
    /// Where the client listener binds.
    pub broker: SocketAddr,
    /// `advertised.listeners` entry for the client listener (defaults to the bind address).
    pub advertised: Endpoint,
    /// Where the controller listener binds.
    pub controller: SocketAddr,
}

struct Listener {
    name: String,
    host: String,
    port: u16,
}

/// `host:port` (IPv6 hosts in brackets) of a config `entry`, named in the error.
fn host_and_port<'a>(entry: &str, addr: &'a str) -> Result<(&'a str, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{entry:?} has no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("{entry:?}: port: {e}"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

fn parse_listener(entry: &str) -> Result<Listener, String> {
    let (name, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("{entry:?} is not NAME://host:port"))?;
    let (host, port) = host_and_port(entry, rest)?;
    Ok(Listener {
        name: name.trim().to_string(),
        host: host.to_string(),
        port,
    })
}

fn parse_listeners(value: &str) -> Result<Vec<Listener>, String> {
    super::split_list(value)
        .iter()
        .map(|e| parse_listener(e))
        .collect()
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

pub(super) fn parse(r: &Reader<'_>) -> Result<ListenerConfig, ConfigError> {
    let listeners = match r.get("listeners") {
        Some(v) => parse_listeners(&v.value).map_err(|e| r.invalid("listeners", &e))?,
        None => parse_listeners("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")
            .map_err(|e| r.invalid("listeners", &e))?,
    };
    let controller_names = r
        .get("controller.listener.names")
        .map(|v| super::split_list(&v.value))
        .unwrap_or_else(|| vec!["CONTROLLER".to_string()]);

    // Only plaintext for now: every listener must map to PLAINTEXT. A controller listener missing
    // from the map is PLAINTEXT, as in Kafka's KRaft mode.
    if let Some(map) = r.get("listener.security.protocol.map") {
        for pair in super::split_list(&map.value) {
            let (_, protocol) = pair.split_once(':').ok_or_else(|| {
                r.invalid("listener.security.protocol.map", "expected NAME:PROTOCOL")
            })?;
            if protocol != "PLAINTEXT" {
                return Err(r.invalid(
                    "listener.security.protocol.map",
                    &format!("security protocol {protocol} is not supported yet"),
                ));
            }
        }
    }
    for l in &listeners {
        if l.name != "PLAINTEXT" && !controller_names.contains(&l.name) {
            let mapped = r
                .get("listener.security.protocol.map")
                .is_some_and(|m| m.value.contains(&format!("{}:", l.name)));
            if !mapped {
                return Err(r.invalid(
                    "listeners",
                    &format!("listener {} has no security protocol mapping", l.name),
                ));
            }
        }
    }

    let broker = listeners
        .iter()
        .find(|l| !controller_names.contains(&l.name))
        .ok_or_else(|| r.invalid("listeners", "no broker (non-controller) listener"))?;
    let controller = listeners
        .iter()
        .find(|l| controller_names.contains(&l.name))
        .ok_or_else(|| {
            r.invalid(
                "listeners",
                "no controller listener (see controller.listener.names)",
            )
        })?;
    let broker_addr = resolve(&broker.host, broker.port).map_err(|e| r.invalid("listeners", &e))?;
    let controller_addr =
        resolve(&controller.host, controller.port).map_err(|e| r.invalid("listeners", &e))?;

    let advertised = match r.get("advertised.listeners") {
        Some(v) => {
            let all =
                parse_listeners(&v.value).map_err(|e| r.invalid("advertised.listeners", &e))?;
            match all.into_iter().find(|l| l.name == broker.name) {
                Some(l) => Endpoint {
                    host: l.host,
                    port: l.port,
                },
                None => {
                    return Err(r.invalid(
                        "advertised.listeners",
                        &format!("no entry for listener {}", broker.name),
                    ))
                }
            }
        }
        None => Endpoint {
            host: if broker.host.is_empty() || broker.host == "0.0.0.0" {
                "127.0.0.1".to_string()
            } else {
                broker.host.clone()
            },
            port: broker.port,
        },
    };
    if advertised.host == "0.0.0.0" || advertised.host.is_empty() {
        return Err(r.invalid(
            "advertised.listeners",
            "cannot advertise the non-routable address 0.0.0.0",
        ));
    }

    Ok(ListenerConfig {
        broker_name: broker.name.clone(),
        broker: broker_addr,
        advertised,
        controller: controller_addr,
    })
}

/// `1@host:9093,2@host:9094` → `[(1, addr), (2, addr)]`.
pub(super) fn parse_voters(value: &str) -> Result<Vec<(i32, SocketAddr)>, String> {
    let mut voters = Vec::new();
    for entry in super::split_list(value) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| format!("{entry:?} is not id@host:port"))?;
        let id = id
            .parse::<i32>()
            .map_err(|e| format!("{entry:?}: node id: {e}"))?;
        let (host, port) = host_and_port(&entry, addr)?;
        voters.push((id, resolve(host, port)?));
    }
    if voters.is_empty() {
        return Err("no voters".to_string());
    }
    Ok(voters)
}
