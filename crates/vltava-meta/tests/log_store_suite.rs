//! openraft's own conformance suite for log storage, run against our file-backed store.

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use vltava_meta::quorum::log_store::FileLogStore;
use vltava_meta::quorum::state_machine::MetadataStateMachine;
use vltava_meta::quorum::TypeConfig;

struct Builder;

impl StoreBuilder<TypeConfig, FileLogStore, MetadataStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, FileLogStore, MetadataStateMachine), StorageError<TypeConfig>>
    {
        let dir =
            tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let store = FileLogStore::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_string(e)))?;
        Ok((dir, store, MetadataStateMachine::new()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_log_store_passes_openraft_suite() {
    Suite::test_all(Builder)
        .await
        .expect("openraft log store suite");
}
