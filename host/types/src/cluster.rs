//! `/v1/cluster`: membership, and what a node says about itself.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// `GET /v1/cluster` (and the answer to every membership change): the members, the leader,
/// and a membership change under way.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterView {
    #[cfg_attr(feature = "openapi", schema(required))]
    pub leader: Option<u64>,
    pub term: u64,
    #[cfg_attr(feature = "openapi", schema(required))]
    pub last_log_index: Option<u64>,
    pub members: Vec<MemberView>,
    /// The node that produced this view (the leader, when one is known).
    pub served_by: u64,
    /// The voter sets of the configuration in force: one, or two while a change is under way
    /// (joint consensus).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub voter_sets: Vec<BTreeSet<u64>>,
    /// The log index of that configuration.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub membership_index: Option<u64>,
    /// Whether that configuration is known to be committed. A change that stays uncommitted
    /// blocks every other change. (Absent from an older server: then `true`.)
    #[serde(default = "yes")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub membership_committed: bool,
}

fn yes() -> bool {
    true
}

/// A member as the cluster view shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    pub node_id: u64,
    /// The client API's URL.
    pub api: String,
    /// The peer endpoint's URL.
    pub peer: String,
    pub role: MemberRole,
    pub leader: bool,
    /// The last log index the leader knows this member holds (leader's view).
    #[cfg_attr(feature = "openapi", schema(required))]
    pub matched_index: Option<u64>,
    /// How many entries this member is behind the leader's last log.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub lag: Option<u64>,
    /// Whether the node that produced the view hears from this member: itself, or (on the
    /// leader, which sends every member a heartbeat each `--heartbeat`, 100 ms by default) a
    /// member that answered a Raft request within the last ten heartbeat intervals (a second
    /// at least). A member installing a large snapshot answers only at its end. `null` where
    /// the view cannot tell (another member on a follower's own view), and from an older
    /// server.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub reachable: Option<bool>,
    /// Milliseconds since this member last answered a Raft request of the node that produced
    /// the view; `null` for that node itself and for a member it never heard from.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub last_contact_ms: Option<u64>,
}

/// A member's part in the consensus.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MemberRole {
    Voter,
    Learner,
    /// A role this version does not know (never sent by a server of this version).
    #[serde(other)]
    Unknown,
}

#[cfg(feature = "openapi")]
crate::openapi::open_enum_schema!(
    MemberRole as "MemberRole",
    [Voter, Learner],
    catch_all Unknown,
    "A member's part in the consensus."
);

/// `GET /v1/cluster/self`: what a node says about itself, also before it belongs to a
/// cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SelfInfo {
    pub node_id: u64,
    pub api: String,
    pub peer: String,
    /// Whether it has Raft state (belongs to a cluster).
    pub initialized: bool,
}

/// The body of `POST /v1/cluster/members` (an operator adds a node) and
/// `POST /v1/cluster/join` (a starting node asks to join).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinRequest {
    /// From 1.
    pub node_id: u64,
    /// The node's client API URL (at most 2048 bytes).
    pub api: String,
    /// The node's peer URL (at most 2048 bytes).
    pub peer: String,
    /// Promote it to voter once caught up (the default), or keep it a learner.
    #[serde(default = "yes")]
    pub voter: bool,
    /// Sent by a node that has no Raft state (a first start or a lost data directory): it
    /// is then never taken back as the voter it may have been.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_state: bool,
}

impl JoinRequest {
    /// A node to add as a voter (promoted once it has caught up).
    pub fn new(node_id: u64, api: impl Into<String>, peer: impl Into<String>) -> Self {
        Self {
            node_id,
            api: api.into(),
            peer: peer.into(),
            voter: true,
            without_state: false,
        }
    }

    /// Keep it a learner.
    pub fn learner(mut self) -> Self {
        self.voter = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_in_a_joint_configuration() {
        let text = r#"{"leader":1,"term":3,"last_log_index":40,"members":[{"node_id":1,"api":"http://a","peer":"http://pa","role":"voter","leader":true,"matched_index":40,"lag":0,"reachable":true,"last_contact_ms":null},{"node_id":4,"api":"http://d","peer":"http://pd","role":"learner","leader":false,"matched_index":null,"lag":null,"reachable":false,"last_contact_ms":2300}],"served_by":1,"voter_sets":[[1,2,3],[1,2,4]],"membership_index":38,"membership_committed":false}"#;
        let v: ClusterView = serde_json::from_str(text).unwrap();
        assert_eq!(v.members[1].role, MemberRole::Learner);
        assert_eq!(v.voter_sets.len(), 2);
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
        let old = r#"{"leader":null,"term":3,"last_log_index":null,"members":[],"served_by":2}"#;
        let v: ClusterView = serde_json::from_str(old).unwrap();
        assert!(v.membership_committed);
        let old_member = r#"{"node_id":4,"api":"a","peer":"p","role":"voter","leader":false,"matched_index":3,"lag":0}"#;
        let m: MemberView = serde_json::from_str(old_member).unwrap();
        assert_eq!((m.reachable, m.last_contact_ms), (None, None));
    }

    #[test]
    fn join_requests() {
        let j = JoinRequest::new(4, "http://d", "http://pd").learner();
        let text = serde_json::to_string(&j).unwrap();
        assert_eq!(
            text,
            r#"{"node_id":4,"api":"http://d","peer":"http://pd","voter":false}"#
        );
        let back: JoinRequest =
            serde_json::from_str(r#"{"node_id":4,"api":"a","peer":"p"}"#).unwrap();
        assert!(back.voter && !back.without_state);
        let s = r#"{"node_id":1,"api":"a","peer":"p","initialized":true}"#;
        let info: SelfInfo = serde_json::from_str(s).unwrap();
        assert_eq!(serde_json::to_string(&info).unwrap(), s);
    }
}
