//! The one place where errors become Kafka error codes, and the errors that close a connection.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

use crate::wire::response::EncodeError;
use crate::wire::{FrameError, HeaderError};

/// Why a connection is closed. Kafka closes on all of these (`SocketServer.processChannelException`,
/// docs/protocol.html); the broker logs the reason at debug and keeps serving other connections.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("undecodable {api_key:?} v{version} request: {message}")]
    Decode {
        api_key: ApiKey,
        version: i16,
        message: String,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// No complete request within `connections.max.idle.ms`.
    #[error("idle for {0:?} (connections.max.idle.ms)")]
    Idle(std::time::Duration),
    /// acks=0 produce that failed: the client gets no response, so Kafka closes the connection
    /// to make it refresh metadata and notice.
    #[error("acks=0 produce failed with error code {0}")]
    AcksZeroProduceFailed(i16),
}

/// Errors that stop the broker from starting or running (not per-request errors).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("log: {0}")]
    Log(#[from] vltava_log::LogError),
    #[error("metadata: {0}")]
    Meta(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
pub const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
pub const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
pub const MESSAGE_TOO_LARGE: i16 = ResponseError::MessageTooLarge.code();
pub const INVALID_TOPIC_EXCEPTION: i16 = ResponseError::InvalidTopicException.code();
pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();
pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
pub const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();
pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
pub const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
pub const TOPIC_DELETION_DISABLED: i16 = ResponseError::TopicDeletionDisabled.code();
pub const KAFKA_STORAGE_ERROR: i16 = ResponseError::KafkaStorageError.code();
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ResponseError::TransactionalIdAuthorizationFailed.code();
pub const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();
pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
pub const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
pub const INVALID_TIMESTAMP: i16 = ResponseError::InvalidTimestamp.code();
// Idempotent producers and transaction markers (issue 6).
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = ResponseError::OutOfOrderSequenceNumber.code();
pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
pub const TRANSACTION_COORDINATOR_FENCED: i16 = ResponseError::TransactionCoordinatorFenced.code();

/// Maps a log error to its Kafka code (see kafka-bad-input.md §4.2).
pub fn log_error_code(e: &vltava_log::LogError) -> i16 {
    e.kafka_error_code()
}

/// Maps a controller error to its Kafka code.
pub fn controller_error_code(e: &vltava_meta::ControllerError) -> i16 {
    e.kafka_error_code()
}

/// Maps a group coordinator error to its Kafka code.
pub fn group_error_code(e: &crate::group::GroupError) -> i16 {
    use crate::group::GroupError as G;
    match e {
        G::CoordinatorNotAvailable | G::Storage(_) => ResponseError::CoordinatorNotAvailable.code(),
        G::NotCoordinator => ResponseError::NotCoordinator.code(),
        G::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress.code(),
        G::UnknownMemberId => ResponseError::UnknownMemberId.code(),
        G::IllegalGeneration => ResponseError::IllegalGeneration.code(),
        G::RebalanceInProgress => ResponseError::RebalanceInProgress.code(),
        G::FencedInstanceId => ResponseError::FencedInstanceId.code(),
        G::MemberIdRequired => ResponseError::MemberIdRequired.code(),
        G::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol.code(),
        G::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout.code(),
        // More groups than `group.max.count`: Kafka has no such limit; the closest code a client
        // understands (and does not retry forever) is the group size one.
        G::GroupMaxSizeReached | G::TooManyGroups => ResponseError::GroupMaxSizeReached.code(),
        G::InvalidGroupId => ResponseError::InvalidGroupId.code(),
        G::GroupIdNotFound => ResponseError::GroupIdNotFound.code(),
        G::NonEmptyGroup => ResponseError::NonEmptyGroup.code(),
        G::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic.code(),
        G::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge.code(),
        G::UnknownTopicOrPartition => UNKNOWN_TOPIC_OR_PARTITION,
        G::Log(code) => *code,
    }
}
