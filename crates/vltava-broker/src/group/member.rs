//! One member of a classic group, as the coordinator knows it.

use bytes::Bytes;

/// A protocol a member supports (for consumers: an assignor name and its subscription bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The protocols in the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// What the leader assigned this member in the current generation.
    pub assignment: Bytes,
    /// A JoinGroup response is owed to this member (it joined and waits for the rebalance).
    pub awaiting_join: bool,
    /// A SyncGroup response is owed to this member (it waits for the leader's assignment).
    pub awaiting_sync: bool,
    /// Joined in the current rebalance and never got a JoinGroup response yet.
    pub is_new: bool,
    /// When the member is expired unless it heartbeats (or rejoins); `None` while it waits
    /// for a JoinGroup or SyncGroup response (Kafka keeps those members alive).
    pub session_deadline: Option<u64>,
}

impl Member {
    /// The first of this member's protocols that is among `candidates` (Kafka's vote).
    pub fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    /// Same protocols with the same metadata in the same order (`ClassicGroupMember.matches`).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// A rough size of what this member keeps in memory, for the per-group bound.
    pub fn footprint(&self) -> usize {
        self.member_id.len()
            + self.group_instance_id.as_ref().map_or(0, String::len)
            + self.client_id.len()
            + self.client_host.len()
            + self.assignment.len()
            + self
                .protocols
                .iter()
                .map(|p| p.name.len() + p.metadata.len())
                .sum::<usize>()
    }
}
