//! openraft's state machine: applies committed metadata batches to the image and publishes each
//! new image to subscribers.
//!
//! The state machine is in memory only. On restart it is rebuilt by replaying the committed log
//! (openraft re-applies up to the persisted committed id), so nothing here touches the disk.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::delta::apply_batch;
use crate::image::MetadataImage;

/// What applying one entry did: `error` is set when the batch was rejected (and not applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub error: Option<String>,
}

#[derive(Debug)]
struct SmState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<MetadataImage>,
    snapshot: Option<(SnapshotMeta, MetadataImage)>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<SmState>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
}

/// The metadata state machine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MetadataStateMachine {
    shared: Arc<Shared>,
}

fn lock(m: &Mutex<SmState>) -> io::Result<MutexGuard<'_, SmState>> {
    m.lock()
        .map_err(|_| io::Error::other("metadata state machine lock poisoned by a panic"))
}

impl MetadataStateMachine {
    pub fn new() -> Self {
        let image = Arc::new(MetadataImage::empty());
        let (image_tx, _) = watch::channel(Arc::clone(&image));
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(SmState {
                    last_applied: None,
                    membership: StoredMembership::default(),
                    image,
                    snapshot: None,
                }),
                image_tx,
            }),
        }
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.image_tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.image_tx.subscribe()
    }

    fn publish(&self, image: Arc<MetadataImage>) {
        self.shared.image_tx.send_replace(image);
    }
}

impl Default for MetadataStateMachine {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds snapshots of the image (sent to a follower that fell behind a purged log).
#[derive(Debug)]
pub struct ImageSnapshotBuilder {
    sm: MetadataStateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for ImageSnapshotBuilder {
    type SnapshotData = MetadataImage;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut state = lock(&self.sm.shared.state)?;
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        let image = (*state.image).clone();
        state.snapshot = Some((meta.clone(), image.clone()));
        Ok(Snapshot {
            meta,
            snapshot: image,
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotData = MetadataImage;
    type SnapshotBuilder = ImageSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = lock(&self.shared.state)?;
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let outcome;
            let changed = {
                let mut state = lock(&self.shared.state)?;
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {
                        outcome = ApplyOutcome::default();
                        None
                    }
                    EntryPayload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                        outcome = ApplyOutcome::default();
                        None
                    }
                    EntryPayload::Normal(batch) => {
                        match apply_batch(&state.image, &batch.records) {
                            Ok(mut image) => {
                                image.applied_index = entry.log_id.index;
                                let image = Arc::new(image);
                                state.image = Arc::clone(&image);
                                outcome = ApplyOutcome::default();
                                Some(image)
                            }
                            Err(e) => {
                                // Deterministic: every node rejects the same batch the same way.
                                tracing::warn!(log_id = %entry.log_id, error = %e, "metadata batch rejected");
                                outcome = ApplyOutcome {
                                    error: Some(e.to_string()),
                                };
                                None
                            }
                        }
                    }
                }
            };
            if let Some(image) = changed {
                self.publish(image);
            }
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        ImageSnapshotBuilder { sm: self.clone() }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: MetadataImage,
    ) -> Result<(), io::Error> {
        let image = Arc::new(snapshot.clone());
        {
            let mut state = lock(&self.shared.state)?;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.image = Arc::clone(&image);
            state.snapshot = Some((meta.clone(), snapshot));
        }
        self.publish(image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let state = lock(&self.shared.state)?;
        Ok(state.snapshot.as_ref().map(|(meta, image)| Snapshot {
            meta: meta.clone(),
            snapshot: image.clone(),
        }))
    }
}
