//! `vltava group list|describe|delete|reset-offsets`. Groups and members come from rdkafka
//! (ListGroups + DescribeGroups), deletion from its admin client, offset resets are commits by a
//! consumer that never joins; committed offsets of every topic come from OffsetFetch at the group
//! coordinator through kafka-protocol (rdkafka asks only for partitions it is told about).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, FindCoordinatorRequest, GroupId, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{ClientArgs, RawClient};
use super::output::table;
use super::topic::{admin, metadata, options};

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List consumer groups and their states.
    #[command(after_help = "Example:\n  vltava group list")]
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Members, assignments, committed offsets and lag of a group.
    #[command(after_help = "Example:\n  vltava group describe billing")]
    Describe {
        group: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a group with no members, and its committed offsets.
    #[command(after_help = "Example:\n  vltava group delete billing")]
    Delete {
        group: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Move a group's committed offsets on a topic (the group must have no members). Shows the
    /// plan unless --execute is given.
    #[command(
        after_help = "Examples:\n  vltava group reset-offsets billing --topic orders --to-earliest --execute\n  \
        vltava group reset-offsets billing --topic orders --to-offset 100"
    )]
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        target: ResetTarget,
        /// Commit the new offsets (without it, only print them).
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct ResetTarget {
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the high watermark (skip everything).
    #[arg(long)]
    to_latest: bool,
    /// To this offset on every partition (clamped to what exists).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    match args.command {
        GroupCommand::List { client } => list(&client),
        GroupCommand::Describe { group, client } => describe(&group, &client),
        GroupCommand::Delete { group, client } => {
            let admin = admin(&client)?;
            let results = admin
                .delete_groups(&[&group], &options(&client))
                .await
                .context("deleting group")?;
            for result in results {
                if let Err((_, code)) = result {
                    bail!("cannot delete group {group:?}: {code}");
                }
            }
            println!("deleted group {group}");
            Ok(())
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            target,
            execute,
            client,
        } => reset(&group, &topic, &target, execute, &client),
    }
}

fn consumer(client: &ClientArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    client.check_reachable()?;
    client
        .rdkafka()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a client")
}

fn list(client: &ClientArgs) -> anyhow::Result<()> {
    let consumer = consumer(client, "vltava-cli")?;
    let groups = consumer
        .fetch_group_list(None, client.timeout())
        .context("listing groups")?;
    let mut rows: Vec<Vec<String>> = groups
        .groups()
        .iter()
        .map(|g| {
            vec![
                g.name().to_string(),
                g.state().to_string(),
                g.members().len().to_string(),
            ]
        })
        .collect();
    rows.sort();
    print!("{}", table(&["GROUP", "STATE", "MEMBERS"], &rows));
    Ok(())
}

fn describe(group: &str, client: &ClientArgs) -> anyhow::Result<()> {
    let consumer = consumer(client, group)?;
    let groups = consumer
        .fetch_group_list(Some(group), client.timeout())
        .context("describing group")?;
    let Some(info) = groups.groups().iter().find(|g| g.name() == group) else {
        bail!("unknown group {group:?}");
    };
    let committed = committed_offsets(group, client)?;
    if info.state() == "Dead" && committed.is_empty() {
        bail!("unknown group {group:?}");
    }
    println!(
        "group {group}: {} ({} members, protocol {})",
        info.state(),
        info.members().len(),
        if info.protocol().is_empty() {
            "-"
        } else {
            info.protocol()
        }
    );
    // Who owns which partition, from the members' assignments (consumer protocol).
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in info.members() {
        let Some(mut bytes) = member.assignment().map(bytes::Bytes::copy_from_slice) else {
            continue;
        };
        if bytes.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        let _ = bytes::Buf::get_i16(&mut bytes);
        let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3))
        else {
            continue;
        };
        for tp in assignment.assigned_partitions {
            for p in tp.partitions {
                owners.insert(
                    (tp.topic.to_string(), p),
                    format!("{} ({})", member.client_id(), member.client_host()),
                );
            }
        }
    }
    let mut keys: Vec<(String, i32)> = committed.keys().cloned().collect();
    for key in owners.keys() {
        if !committed.contains_key(key) {
            keys.push(key.clone());
        }
    }
    keys.sort();
    let mut rows = Vec::new();
    for (topic, partition) in keys {
        let (_, high) = consumer
            .fetch_watermarks(&topic, partition, client.timeout())
            .with_context(|| format!("reading the end offset of {topic}/{partition}"))?;
        let offset = committed.get(&(topic.clone(), partition)).copied();
        let lag = offset.map_or("-".to_string(), |o| (high - o).max(0).to_string());
        rows.push(vec![
            topic.clone(),
            partition.to_string(),
            offset.map_or("-".to_string(), |o| o.to_string()),
            high.to_string(),
            lag,
            owners
                .get(&(topic, partition))
                .cloned()
                .unwrap_or_else(|| "-".to_string()),
        ]);
    }
    print!(
        "{}",
        table(
            &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"],
            &rows
        )
    );
    Ok(())
}

/// Every committed offset of `group`, asked of its coordinator.
fn committed_offsets(
    group: &str,
    client: &ClientArgs,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut raw = client.raw()?;
    let found = raw.send(
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
        (1, 3),
    )?;
    if found.error_code != 0 {
        bail!(
            "no coordinator for group {group:?}: error code {}",
            found.error_code
        );
    }
    let address = format!("{}:{}", found.host.as_str(), found.port);
    let mut coordinator = if address == raw.address {
        raw
    } else {
        RawClient::connect(&address, client.timeout())?
    };
    // v2-v7 with topics = null: every partition the group has an offset for.
    let response = coordinator.send(
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(None),
        (2, 7),
    )?;
    if response.error_code != 0 {
        bail!(
            "fetching offsets of group {group:?}: error code {}",
            response.error_code
        );
    }
    let mut offsets = BTreeMap::new();
    for topic in response.topics {
        for p in topic.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                offsets.insert(
                    (topic.name.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(offsets)
}

fn reset(
    group: &str,
    topic: &str,
    target: &ResetTarget,
    execute: bool,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let metadata = metadata(client)?;
    let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("unknown topic {topic:?}");
    };
    let consumer = consumer(client, group)?;
    let mut plan = TopicPartitionList::new();
    let mut rows = Vec::new();
    let mut partitions: Vec<i32> = described.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, client.timeout())
            .with_context(|| format!("reading offsets of {topic}/{partition}"))?;
        let offset = if target.to_earliest {
            low
        } else if target.to_latest {
            high
        } else {
            target.to_offset.unwrap_or(low).clamp(low, high)
        };
        plan.add_partition_offset(topic, partition, Offset::Offset(offset))
            .context("building the offsets")?;
        rows.push(vec![
            topic.to_string(),
            partition.to_string(),
            offset.to_string(),
        ]);
    }
    print!("{}", table(&["TOPIC", "PARTITION", "NEW OFFSET"], &rows));
    if !execute {
        println!("(dry run: add --execute to commit these offsets)");
        return Ok(());
    }
    consumer.commit(&plan, CommitMode::Sync).with_context(|| {
        format!("committing offsets for group {group:?} (it must have no members)")
    })?;
    println!("reset offsets of group {group} on {topic}");
    Ok(())
}
