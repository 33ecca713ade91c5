//! Errors of this crate: [`MetaError`] for starting and running the quorum, [`ControllerError`]
//! for a rejected metadata change, with its Kafka error code.

use serde::{Deserialize, Serialize};

/// Starting, replaying or running the metadata quorum failed.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata quorum config: {0}")]
    Config(String),
    #[error("metadata log I/O at {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata log at {path} is corrupt: {reason}")]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot bind the controller listener {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

/// A metadata change the controller refused or could not make. The message is what Kafka would
/// put in the response's `error_message`, so differential tests can compare them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// `reason` is Kafka's full message, e.g. `Topic name is invalid: '.' is not allowed`.
    #[error("{reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// The topic name (or id, printed) that was not found; Kafka answers with its default message.
    #[error("This server does not host this topic-partition.")]
    UnknownTopic(String),
    #[error("This server does not host this topic ID.")]
    UnknownTopicId(uuid::Uuid),
    #[error("{0}")]
    InvalidConfig(String),
    /// POLICY_VIOLATION, e.g. more partitions in one request than the controller accepts.
    #[error("{0}")]
    PolicyViolation(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("This is not the correct controller for this cluster.")]
    NotController,
    #[error("{0}")]
    Storage(String),
}

impl ControllerError {
    /// Kafka's error code for this error (`org.apache.kafka.common.protocol.Errors`).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ControllerError::UnknownTopic(_) => 3,
            ControllerError::InvalidTopicName { .. } => 17,
            ControllerError::TopicAlreadyExists(_) => 36,
            ControllerError::InvalidPartitions(_) => 37,
            ControllerError::InvalidReplicationFactor(_) => 38,
            ControllerError::InvalidReplicaAssignment(_) => 39,
            ControllerError::InvalidConfig(_) => 40,
            ControllerError::NotController => 41,
            ControllerError::InvalidRequest(_) => 42,
            ControllerError::PolicyViolation(_) => 44,
            ControllerError::Storage(_) => 56,
            ControllerError::UnknownTopicId(_) => 100,
        }
    }

    /// The message for the response's `error_message` field.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_kafka() {
        assert_eq!(
            ControllerError::TopicAlreadyExists("t".into()).kafka_error_code(),
            36
        );
        assert_eq!(ControllerError::NotController.kafka_error_code(), 41);
        assert_eq!(
            ControllerError::UnknownTopicId(uuid::Uuid::nil()).kafka_error_code(),
            100
        );
        assert_eq!(
            ControllerError::TopicAlreadyExists("orders".into()).message(),
            "Topic 'orders' already exists."
        );
    }
}
