//! The Kafka broker: listeners, the wire protocol, request handlers, replicas and groups.
