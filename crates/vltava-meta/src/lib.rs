//! Cluster metadata: records, the in-memory image, and the Raft quorum that orders them.
