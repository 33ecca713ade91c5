//! EndTxn under transaction version 2 (KIP-890 part 2, Kafka's `endTransaction` for clients
//! sending EndTxn v5+): every commit or abort bumps the producer epoch, so a zombie of the
//! transaction just ended is fenced on every partition its marker reached, and a retry is told
//! apart from the next transaction by its epoch (one lower than the coordinator's).
//!
//! Kafka's table for the completed states (PF = PRODUCER_FENCED, ITS = INVALID_TXN_STATE, EB =
//! epoch bump; "retry" = the epoch before the last bump, "current" = the coordinator's epoch):
//!
//! | state          | abort retry | abort current | commit retry | commit current |
//! |----------------|-------------|---------------|--------------|----------------|
//! | Empty          | PF          | EB            | PF           | ITS            |
//! | CompleteAbort  | NONE        | EB            | ITS          | ITS            |
//! | CompleteCommit | ITS         | EB            | NONE         | ITS            |

use super::{epoch_exhausted, EndDecision, Transit, TxnError, TxnMetadata, TxnState};

impl TxnMetadata {
    /// EndTxn from a transaction version 2 client. `new_producer_id` is a fresh id for when the
    /// bump would exhaust the epoch (asked for with [`EndDecision::NeedProducerId`]).
    pub fn prepare_end_v2(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<EndDecision, TxnError> {
        let current = self.producer_epoch;
        // The client retried an end whose answer it lost: it still has the epoch before the
        // bump, or the last epoch of the id that was rolled over.
        let retry_on_bump = i32::from(current) == i32::from(producer_epoch) + 1;
        let retry_on_overflow = self.previous_producer_id == producer_id
            && producer_epoch == i16::MAX - 1
            && current == 0;
        let valid_epoch = match self.state {
            TxnState::Ongoing | TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => {
                producer_epoch == current
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                retry_on_bump || retry_on_overflow || producer_epoch == current
            }
        };
        if self.producer_id != producer_id && !retry_on_overflow {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let retry = retry_on_bump || retry_on_overflow;
        use TxnState::*;
        match (self.state, commit) {
            (Ongoing, _) => self.prepare_bumped_end(commit, false, new_producer_id, now_ms),
            (CompleteCommit, true) | (CompleteAbort, false) if retry => {
                Ok(EndDecision::AlreadyDone)
            }
            (CompleteCommit, false) | (CompleteAbort, false) | (Empty, false) if !retry => {
                self.prepare_bumped_end(false, true, new_producer_id, now_ms)
            }
            (PrepareCommit, true) | (PrepareAbort, false) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// PrepareCommit/PrepareAbort with the epoch bumped (`prepareAbortOrCommit` under version
    /// 2). An abort with no partitions starts and ends at `now_ms`.
    fn prepare_bumped_end(
        &mut self,
        commit: bool,
        no_partitions_added: bool,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<EndDecision, TxnError> {
        let mut t: Transit = self.current();
        if epoch_exhausted(self.producer_epoch) {
            let Some(next) = new_producer_id else {
                return Ok(EndDecision::NeedProducerId);
            };
            t.next_producer_id = next;
        }
        t.last_producer_epoch = self.producer_epoch;
        t.producer_epoch = self.producer_epoch.saturating_add(1);
        t.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if no_partitions_added {
            t.start_timestamp_ms = now_ms;
            t.partitions.clear();
        }
        t.last_update_timestamp_ms = now_ms;
        t.client_tv2 = true;
        self.begin(t).map(EndDecision::Prepare)
    }
}
