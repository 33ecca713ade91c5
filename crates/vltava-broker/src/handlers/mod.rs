//! The one api key → handler table. [`ROUTES`] says which APIs and versions this broker
//! implements; [`dispatch`] sends each decoded request to its handler, and ApiVersions answers
//! from the same table, so the broker never advertises what it cannot serve.

mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
mod sasl_handshake;
// Consumer groups (issue 5).
mod delete_groups;
mod describe_groups;
mod find_coordinator;
mod group_common;
mod heartbeat;
mod incremental_alter_configs;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod sync_group;
// Transactions (issue 6).
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod describe_transactions;
mod end_txn;
mod list_transactions;
mod txn_offset_commit;

// Idempotent producers and transaction markers (issue 6).
mod describe_producers;
mod init_producer_id;
mod write_txn_markers;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::error::ConnectionError;
use crate::wire::{encode_response, Outgoing, ParsedHeader};

/// One implemented API and the versions we serve (a subset of what kafka-protocol decodes).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub api_key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn route(api_key: ApiKey, min_version: i16, max_version: i16) -> Route {
    Route {
        api_key,
        min_version,
        max_version,
    }
}

/// What this broker implements. Versions follow Kafka 4.1 (kafka-protocol 0.18's schemas), whose
/// floors are KIP-896's. Idempotence and transactions come in later issues.
pub const ROUTES: &[Route] = &[
    route(ApiKey::Produce, 3, 13),
    route(ApiKey::Fetch, 4, 17),
    route(ApiKey::ListOffsets, 1, 10),
    route(ApiKey::Metadata, 0, 13),
    route(ApiKey::ApiVersions, 0, 4),
    route(ApiKey::CreateTopics, 2, 7),
    route(ApiKey::DeleteTopics, 1, 6),
    route(ApiKey::DeleteRecords, 0, 2),
    route(ApiKey::OffsetForLeaderEpoch, 2, 4),
    route(ApiKey::DescribeConfigs, 1, 4),
    route(ApiKey::CreatePartitions, 0, 3),
    route(ApiKey::DescribeCluster, 0, 2),
    route(ApiKey::IncrementalAlterConfigs, 0, 1),
    route(ApiKey::FindCoordinator, 0, 6),
    route(ApiKey::JoinGroup, 0, 9),
    route(ApiKey::SyncGroup, 0, 5),
    route(ApiKey::Heartbeat, 0, 4),
    route(ApiKey::LeaveGroup, 0, 5),
    route(ApiKey::OffsetCommit, 2, 9),
    route(ApiKey::OffsetFetch, 1, 9),
    route(ApiKey::ListGroups, 0, 5),
    route(ApiKey::DescribeGroups, 0, 6),
    route(ApiKey::DeleteGroups, 0, 2),
    route(ApiKey::OffsetDelete, 0, 0),
    route(ApiKey::InitProducerId, 0, 5),
    route(ApiKey::WriteTxnMarkers, 1, 1),
    route(ApiKey::DescribeProducers, 0, 0),
    // Transaction version 1 (no `transaction.version` feature is advertised): EndTxn v5 and
    // AddPartitionsToTxn v4+ belong to KIP-890's version 2 and the broker-to-broker path.
    route(ApiKey::AddPartitionsToTxn, 0, 3),
    route(ApiKey::AddOffsetsToTxn, 0, 4),
    route(ApiKey::EndTxn, 0, 5),
    route(ApiKey::TxnOffsetCommit, 0, 5),
    route(ApiKey::DescribeTransactions, 0, 0),
    route(ApiKey::ListTransactions, 0, 1),
    route(ApiKey::SaslHandshake, 0, 1),
];

/// The version range served for `api_key`, if it is implemented.
pub fn supported(api_key: ApiKey) -> Option<(i16, i16)> {
    ROUTES
        .iter()
        .find(|r| r.api_key == api_key)
        .map(|r| (r.min_version, r.max_version))
}

/// What a handler produced.
#[derive(Debug)]
pub enum Reply {
    /// The response is ready.
    Now(Outgoing),
    /// The response will be ready later (acks=all waiting for fsync, a long-polling fetch).
    /// The connection keeps reading and handling the next requests; responses still go out in
    /// request order.
    Later(JoinHandle<Result<Outgoing, ConnectionError>>),
    /// No response at all (acks=0 produce).
    Nothing,
}

/// The parts of a request header a handler needs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestContext {
    /// Encodes `body` as this request's response frame.
    pub fn respond<R: Encodable>(&self, body: &R) -> Result<Outgoing, ConnectionError> {
        Ok(Outgoing::bytes(encode_response(
            self.api_key,
            self.api_version,
            self.correlation_id,
            body,
        )?))
    }

    pub fn reply<R: Encodable>(&self, body: &R) -> Result<Reply, ConnectionError> {
        self.respond(body).map(Reply::Now)
    }

    fn decode<T: Decodable>(&self, mut body: Bytes) -> Result<T, ConnectionError> {
        T::decode(&mut body, self.api_version).map_err(|e| ConnectionError::Decode {
            api_key: self.api_key,
            version: self.api_version,
            message: format!("{e:#}"),
        })
    }
}

/// Decodes the body of a request whose header passed the table's checks and runs its handler.
pub async fn dispatch(
    broker: &Arc<Broker>,
    header: ParsedHeader,
    body: Bytes,
) -> Result<Reply, ConnectionError> {
    let ctx = RequestContext {
        api_key: header.api_key,
        api_version: header.api_version,
        correlation_id: header.header.correlation_id,
    };
    if header.api_versions_fallback {
        return api_versions::unsupported_version(&ctx);
    }
    match header.api_key {
        ApiKey::ApiVersions => api_versions::handle(&ctx, ctx.decode(body)?),
        ApiKey::Metadata => metadata::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::CreateTopics => create_topics::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::DeleteTopics => delete_topics::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::CreatePartitions => {
            create_partitions::handle(broker, &ctx, ctx.decode(body)?).await
        }
        ApiKey::Produce => produce::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::Fetch => fetch::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::ListOffsets => list_offsets::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::DescribeConfigs => describe_configs::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::IncrementalAlterConfigs => {
            incremental_alter_configs::handle(broker, &ctx, ctx.decode(body)?).await
        }
        ApiKey::DescribeCluster => describe_cluster::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::DeleteRecords => delete_records::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::handle(broker, &ctx, ctx.decode(body)?)
        }
        ApiKey::FindCoordinator => find_coordinator::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::JoinGroup => {
            let client_id = header.header.client_id.clone();
            join_group::handle(broker, &ctx, client_id, ctx.decode(body)?)
        }
        ApiKey::SyncGroup => sync_group::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::Heartbeat => heartbeat::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::LeaveGroup => leave_group::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::OffsetCommit => offset_commit::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::OffsetFetch => offset_fetch::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::ListGroups => list_groups::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::DescribeGroups => describe_groups::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::DeleteGroups => delete_groups::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::OffsetDelete => offset_delete::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::InitProducerId => init_producer_id::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::WriteTxnMarkers => write_txn_markers::handle(broker, &ctx, ctx.decode(body)?).await,
        ApiKey::DescribeProducers => describe_producers::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::AddPartitionsToTxn => {
            add_partitions_to_txn::handle(broker, &ctx, ctx.decode(body)?)
        }
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::EndTxn => end_txn::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::TxnOffsetCommit => txn_offset_commit::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::DescribeTransactions => {
            describe_transactions::handle(broker, &ctx, ctx.decode(body)?)
        }
        ApiKey::ListTransactions => list_transactions::handle(broker, &ctx, ctx.decode(body)?),
        ApiKey::SaslHandshake => sasl_handshake::handle(&ctx, ctx.decode(body)?),
        // The header check rejects keys missing from ROUTES before we get here.
        other => Err(ConnectionError::Header(
            crate::wire::HeaderError::UnknownApiKey(other as i16),
        )),
    }
}

/// Decodes a request body with the type `dispatch` would use, without handling it: for the
/// decoder property tests and fuzzing (the decode step is where client bytes meet the codec).
pub fn decode_only(api_key: ApiKey, api_version: i16, body: Bytes) -> Result<(), ConnectionError> {
    use kafka_protocol::messages as m;
    let ctx = RequestContext {
        api_key,
        api_version,
        correlation_id: 0,
    };
    match api_key {
        ApiKey::ApiVersions => ctx.decode::<m::ApiVersionsRequest>(body).map(drop),
        ApiKey::Metadata => ctx.decode::<m::MetadataRequest>(body).map(drop),
        ApiKey::CreateTopics => ctx.decode::<m::CreateTopicsRequest>(body).map(drop),
        ApiKey::DeleteTopics => ctx.decode::<m::DeleteTopicsRequest>(body).map(drop),
        ApiKey::CreatePartitions => ctx.decode::<m::CreatePartitionsRequest>(body).map(drop),
        ApiKey::Produce => ctx.decode::<m::ProduceRequest>(body).map(drop),
        ApiKey::Fetch => ctx.decode::<m::FetchRequest>(body).map(drop),
        ApiKey::ListOffsets => ctx.decode::<m::ListOffsetsRequest>(body).map(drop),
        ApiKey::DescribeConfigs => ctx.decode::<m::DescribeConfigsRequest>(body).map(drop),
        ApiKey::IncrementalAlterConfigs => ctx
            .decode::<m::IncrementalAlterConfigsRequest>(body)
            .map(drop),
        ApiKey::DescribeCluster => ctx.decode::<m::DescribeClusterRequest>(body).map(drop),
        ApiKey::DeleteRecords => ctx.decode::<m::DeleteRecordsRequest>(body).map(drop),
        ApiKey::OffsetForLeaderEpoch => {
            ctx.decode::<m::OffsetForLeaderEpochRequest>(body).map(drop)
        }
        ApiKey::FindCoordinator => ctx.decode::<m::FindCoordinatorRequest>(body).map(drop),
        ApiKey::JoinGroup => ctx.decode::<m::JoinGroupRequest>(body).map(drop),
        ApiKey::SyncGroup => ctx.decode::<m::SyncGroupRequest>(body).map(drop),
        ApiKey::Heartbeat => ctx.decode::<m::HeartbeatRequest>(body).map(drop),
        ApiKey::LeaveGroup => ctx.decode::<m::LeaveGroupRequest>(body).map(drop),
        ApiKey::OffsetCommit => ctx.decode::<m::OffsetCommitRequest>(body).map(drop),
        ApiKey::OffsetFetch => ctx.decode::<m::OffsetFetchRequest>(body).map(drop),
        ApiKey::ListGroups => ctx.decode::<m::ListGroupsRequest>(body).map(drop),
        ApiKey::DescribeGroups => ctx.decode::<m::DescribeGroupsRequest>(body).map(drop),
        ApiKey::DeleteGroups => ctx.decode::<m::DeleteGroupsRequest>(body).map(drop),
        ApiKey::OffsetDelete => ctx.decode::<m::OffsetDeleteRequest>(body).map(drop),
        ApiKey::InitProducerId => ctx.decode::<m::InitProducerIdRequest>(body).map(drop),
        ApiKey::WriteTxnMarkers => ctx.decode::<m::WriteTxnMarkersRequest>(body).map(drop),
        ApiKey::DescribeProducers => ctx.decode::<m::DescribeProducersRequest>(body).map(drop),
        ApiKey::AddPartitionsToTxn => ctx.decode::<m::AddPartitionsToTxnRequest>(body).map(drop),
        ApiKey::AddOffsetsToTxn => ctx.decode::<m::AddOffsetsToTxnRequest>(body).map(drop),
        ApiKey::EndTxn => ctx.decode::<m::EndTxnRequest>(body).map(drop),
        ApiKey::TxnOffsetCommit => ctx.decode::<m::TxnOffsetCommitRequest>(body).map(drop),
        ApiKey::DescribeTransactions => {
            ctx.decode::<m::DescribeTransactionsRequest>(body).map(drop)
        }
        ApiKey::ListTransactions => ctx.decode::<m::ListTransactionsRequest>(body).map(drop),
        ApiKey::SaslHandshake => ctx.decode::<m::SaslHandshakeRequest>(body).map(drop),
        other => Err(ConnectionError::Header(
            crate::wire::HeaderError::UnknownApiKey(other as i16),
        )),
    }
}

/// Runs blocking log I/O off the runtime threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ConnectionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectionError::Io(std::io::Error::other(e)))
}

pub use fetch::buffered_response as buffered_fetch_response;
