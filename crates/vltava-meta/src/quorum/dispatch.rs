//! Controller calls: every admin operation runs on the Raft leader, here when this node leads,
//! else forwarded to the leader over the controller listener. On the leader, operations are
//! serialized: a linearizable read barrier, then decide on the latest image with
//! [`crate::controller`], then propose the records and wait until they are applied.

use std::time::{Duration, Instant};

use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ReadPolicy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::network::{self, PeerRequest, PeerResponse};
use super::{QuorumInner, REQUEST_TIMEOUT};
use crate::controller::producer_ids::{self, ProducerIdBlock};
use crate::controller::{
    brokers, configs, topics, AlterOp, ConfigResource, CreateTopicRequest, CreatedTopic,
    TopicDefaults, TopicRef,
};
use crate::error::ControllerError;
use crate::records::{MetadataBatch, MetadataRecord};

/// A controller operation, as executed on the leader (and forwarded to it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ControllerCall {
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    CreateTopics {
        requests: Vec<CreateTopicRequest>,
        validate_only: bool,
        defaults: TopicDefaults,
    },
    DeleteTopics {
        topics: Vec<TopicRef>,
    },
    CreatePartitions {
        topic: String,
        new_total: i32,
        validate_only: bool,
    },
    AlterConfigs {
        resource: ConfigResource,
        ops: Vec<(String, AlterOp)>,
        validate_only: bool,
    },
    AllocateProducerIds {
        broker_id: i32,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ControllerReply {
    Unit(Result<(), ControllerError>),
    CreateTopics(Vec<Result<CreatedTopic, ControllerError>>),
    DeleteTopics(Vec<Result<(String, Uuid), ControllerError>>),
    ProducerIds(Result<ProducerIdBlock, ControllerError>),
}

impl ControllerCall {
    /// The reply that fails every part of this call with `error`.
    fn fail(&self, error: ControllerError) -> ControllerReply {
        match self {
            ControllerCall::CreateTopics { requests, .. } => {
                ControllerReply::CreateTopics(requests.iter().map(|_| Err(error.clone())).collect())
            }
            ControllerCall::DeleteTopics { topics } => {
                ControllerReply::DeleteTopics(topics.iter().map(|_| Err(error.clone())).collect())
            }
            ControllerCall::AllocateProducerIds { .. } => ControllerReply::ProducerIds(Err(error)),
            _ => ControllerReply::Unit(Err(error)),
        }
    }
}

impl ControllerReply {
    fn is_not_controller(&self) -> bool {
        let nc = |e: Option<&ControllerError>| matches!(e, Some(ControllerError::NotController));
        match self {
            ControllerReply::Unit(r) => nc(r.as_ref().err()),
            ControllerReply::CreateTopics(v) => v.iter().any(|r| nc(r.as_ref().err())),
            ControllerReply::DeleteTopics(v) => v.iter().any(|r| nc(r.as_ref().err())),
            ControllerReply::ProducerIds(r) => nc(r.as_ref().err()),
        }
    }
}

impl QuorumInner {
    pub(super) async fn call_unit(&self, call: ControllerCall) -> Result<(), ControllerError> {
        match self.call(call).await {
            ControllerReply::Unit(r) => r,
            _ => Err(ControllerError::Storage(
                "unexpected controller reply".into(),
            )),
        }
    }

    /// Runs `call` on the leader: here if this node leads, else forwarded to it. Waits up to
    /// [`REQUEST_TIMEOUT`] for a leader to be known.
    pub(super) async fn call(&self, call: ControllerCall) -> ControllerReply {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut metrics = self.raft.metrics();
        loop {
            if self.is_shut_down() {
                return call.fail(ControllerError::NotController);
            }
            let (leader, leader_addr) = {
                let m = metrics.borrow_watched();
                let leader = m.current_leader;
                let addr = leader.and_then(|id| {
                    m.membership_config
                        .membership()
                        .get_node(&id)
                        .map(|n| n.addr.clone())
                });
                (leader, addr)
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let reply = match (leader, leader_addr) {
                (Some(id), _) if id == self.node_id => {
                    Some(self.execute_on_leader(call.clone()).await)
                }
                (Some(_), Some(addr)) => {
                    let request = PeerRequest::Controller(call.clone());
                    match network::call_once(&addr, &request, remaining).await {
                        Ok(PeerResponse::Controller(reply)) => Some(reply),
                        Ok(other) => {
                            tracing::debug!(?other, "unexpected forwarding reply");
                            None
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, %addr, "forwarding to the controller leader failed");
                            None
                        }
                    }
                }
                _ => None,
            };
            match reply {
                Some(reply) if !reply.is_not_controller() => return reply,
                Some(reply) if Instant::now() >= deadline => return reply,
                _ if Instant::now() >= deadline => {
                    return call.fail(ControllerError::NotController)
                }
                _ => {}
            }
            // No leader yet, or leadership moved: wait for a metrics change (or a short while).
            let wait = remaining.min(Duration::from_millis(100));
            let _ = tokio::time::timeout(wait, metrics.changed()).await;
        }
    }

    /// Executes `call` on this node, which must be the leader.
    pub(crate) async fn execute_on_leader(&self, call: ControllerCall) -> ControllerReply {
        let _serialized = self.controller_lock.lock().await;
        // Make sure every entry committed by earlier leaders is in the image we decide on.
        if let Err(e) = self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            tracing::debug!(error = %e, "not the controller leader");
            return call.fail(ControllerError::NotController);
        }
        let image = self.state_machine.image();
        match call {
            ControllerCall::RegisterBroker {
                node_id,
                host,
                port,
                rack,
            } => {
                let result =
                    match brokers::register_broker(&image, node_id, &host, port, rack.as_deref()) {
                        Ok(records) => self.propose(records).await,
                        Err(e) => Err(e),
                    };
                ControllerReply::Unit(result)
            }
            ControllerCall::CreateTopics {
                requests,
                validate_only,
                defaults,
            } => {
                let decided = topics::create_topics(&image, &requests, defaults, &mut Uuid::new_v4);
                let mut records = Vec::new();
                let mut results = Vec::with_capacity(decided.len());
                for d in decided {
                    match d {
                        Ok((created, topic_records)) => {
                            records.extend(topic_records);
                            results.push(Ok(created));
                        }
                        Err(e) => results.push(Err(e)),
                    }
                }
                if !validate_only {
                    if let Err(e) = self.propose(records).await {
                        for r in results.iter_mut().filter(|r| r.is_ok()) {
                            *r = Err(e.clone());
                        }
                    }
                }
                ControllerReply::CreateTopics(results)
            }
            ControllerCall::DeleteTopics { topics: refs } => {
                let decided = topics::delete_topics(&image, &refs);
                let mut records = Vec::new();
                let mut results = Vec::with_capacity(decided.len());
                for d in decided {
                    match d {
                        Ok((name, id, record)) => {
                            records.push(record);
                            results.push(Ok((name, id)));
                        }
                        Err(e) => results.push(Err(e)),
                    }
                }
                if let Err(e) = self.propose(records).await {
                    for r in results.iter_mut().filter(|r| r.is_ok()) {
                        *r = Err(e.clone());
                    }
                }
                ControllerReply::DeleteTopics(results)
            }
            ControllerCall::CreatePartitions {
                topic,
                new_total,
                validate_only,
            } => {
                let result = match topics::create_partitions(&image, &topic, new_total) {
                    Ok(_) if validate_only => Ok(()),
                    Ok(records) => self.propose(records).await,
                    Err(e) => Err(e),
                };
                ControllerReply::Unit(result)
            }
            ControllerCall::AlterConfigs {
                resource,
                ops,
                validate_only,
            } => {
                let result = match configs::alter_configs(&image, &resource, &ops) {
                    Ok(_) if validate_only => Ok(()),
                    Ok(records) => self.propose(records).await,
                    Err(e) => Err(e),
                };
                ControllerReply::Unit(result)
            }
            ControllerCall::AllocateProducerIds { broker_id } => {
                let result = match producer_ids::allocate_producer_ids(&image, broker_id) {
                    Ok((block, record)) => self.propose(vec![record]).await.map(|()| block),
                    Err(e) => Err(e),
                };
                ControllerReply::ProducerIds(result)
            }
        }
    }

    /// Appends `records` as one batch and waits until it is committed and applied.
    pub(super) async fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<(), ControllerError> {
        if records.is_empty() {
            return Ok(());
        }
        match self.raft.client_write(MetadataBatch { records }).await {
            Ok(response) => match response.data.error {
                None => Ok(()),
                Some(e) => Err(ControllerError::Storage(format!(
                    "metadata batch rejected: {e}"
                ))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))
            | Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                Err(ControllerError::NotController)
            }
            Err(e) => Err(ControllerError::Storage(e.to_string())),
        }
    }
}
