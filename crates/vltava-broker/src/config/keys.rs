//! The server configuration keys we know, by Kafka's names.

/// Keys that Vltava reads and honours.
pub const SUPPORTED: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "inter.broker.listener.name",
    "controller.quorum.voters",
    "log.dirs",
    "log.dir",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.hours",
    "log.roll.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.retention.check.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "producer.id.expiration.ms",
    "log.message.timestamp.type",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms",
    "message.max.bytes",
    "socket.request.max.bytes",
    "queued.max.request.bytes",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "socket.listen.backlog.size",
    "max.connections",
    "connections.max.idle.ms",
    "delete.topic.enable",
    "metrics.listener",
    "log.page.cache.tail.bytes",
    "log.preallocate",
    "num.recovery.threads.per.data.dir",
];

/// Keys Kafka has that Vltava accepts but does not act on (yet): a warning at startup, not an
/// error, so an existing `server.properties` keeps working.
pub const UNSUPPORTED: &[&str] = &[
    "controller.quorum.bootstrap.servers",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.fetch.timeout.ms",
    "num.network.threads",
    "num.io.threads",
    "offsets.topic.replication.factor",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "log.cleaner.enable",
    "log.cleanup.policy",
    "log.cleaner.threads",
    "compression.type",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "num.replica.fetchers",
    "replica.lag.time.max.ms",
    "queued.max.requests",
    "max.connections.per.ip",
    "metadata.log.dir",
    "metadata.log.segment.bytes",
    "metadata.max.retention.bytes",
    "log.segment.delete.delay.ms",
    "auto.leader.rebalance.enable",
    "zookeeper.connect",
];

pub fn is_supported(key: &str) -> bool {
    SUPPORTED.contains(&key)
        || super::groups::KEYS.contains(&key)
        || super::transactions::KEYS.contains(&key)
}

pub fn is_unsupported(key: &str) -> bool {
    UNSUPPORTED.contains(&key)
}
