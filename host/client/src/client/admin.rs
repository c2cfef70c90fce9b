//! The audit trail, cluster membership and the node's own routes.

use super::*;

impl Client {
    // ---------------------------------------------------------------- audit

    /// `GET /v1/audit`: one page of the audit trail, newest first.
    pub async fn audit_page(&self, query: &AuditQuery) -> Result<Read<AuditPage>, Error> {
        let call = self
            .call(Method::GET, &["audit"])
            .query("prefix", &query.prefix)
            .opt_query("actor", query.actor.as_ref())
            .opt_query("action", query.action.as_ref())
            .opt_query("since", query.since.as_ref())
            .opt_query("until", query.until.as_ref())
            .opt_query("before", query.before)
            .opt_query("limit", query.limit)
            .consistency(query.consistency.unwrap_or(self.consistency));
        self.execute(&call).await?.read()
    }

    /// Every record of the audit trail that `query` selects, newest first, page after
    /// page.
    pub fn audit(
        &self,
        query: AuditQuery,
    ) -> impl futures_core::Stream<Item = Result<AuditRecord, Error>> + Send + use<> {
        let client = self.clone();
        paging::items(query, move |query| {
            let client = client.clone();
            async move {
                let page = client.audit_page(&query).await?.body;
                let next = page.next_before.map(|before| AuditQuery {
                    before: Some(before),
                    ..query
                });
                Ok(Paged {
                    items: page.items,
                    next,
                })
            }
        })
    }

    // ---------------------------------------------------------------- cluster

    /// `GET /v1/cluster`: the leader's view (with each member's matched index and lag);
    /// with a stale client, the answering node's own view.
    pub async fn cluster(&self) -> Result<ClusterView, Error> {
        let call = self
            .call(Method::GET, &["cluster"])
            .consistency(self.consistency);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/cluster/self`: what the answering node says about itself.
    pub async fn cluster_self(&self) -> Result<SelfInfo, Error> {
        let call = self
            .call(Method::GET, &["cluster", "self"])
            .idempotency(Idempotency::NodeScoped);
        self.execute(&call).await?.json()
    }

    /// `POST /v1/cluster/members`: adds a node (it must already run and answer at both
    /// URLs), as a learner promoted once caught up unless [`JoinRequest::learner`].
    pub async fn add_member(&self, member: &JoinRequest) -> Result<ClusterView, Error> {
        let call = self
            .call(Method::POST, &["cluster", "members"])
            .json(member);
        self.execute(&call).await?.json()
    }

    /// `POST /v1/cluster/join`: a starting node asks to join (the server side of
    /// `--join`; operators use [`Client::add_member`]).
    pub async fn join(&self, member: &JoinRequest) -> Result<ClusterView, Error> {
        let call = self.call(Method::POST, &["cluster", "join"]).json(member);
        self.execute(&call).await?.json()
    }

    /// `POST /v1/cluster/members/{id}/promote`: makes a learner a voter.
    pub async fn promote_member(&self, node_id: u64) -> Result<ClusterView, Error> {
        let id = node_id.to_string();
        let call = self.call(Method::POST, &["cluster", "members", &id, "promote"]);
        self.execute(&call).await?.json()
    }

    /// `DELETE /v1/cluster/members/{id}`.
    pub async fn remove_member(&self, node_id: u64) -> Result<ClusterView, Error> {
        let id = node_id.to_string();
        let call = self.call(Method::DELETE, &["cluster", "members", &id]);
        self.execute(&call).await?.json()
    }

    // ---------------------------------------------------------------- node

    /// `GET /v1/health` of the node that answers.
    pub async fn health(&self) -> Result<Health, Error> {
        let call = self
            .call(Method::GET, &["health"])
            .idempotency(Idempotency::NodeScoped);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/readyz`: whether the node that answers can serve linearizable requests now
    /// (503 `not_ready` otherwise, returned as an error).
    pub async fn ready(&self) -> Result<Ready, Error> {
        let call = self
            .call(Method::GET, &["readyz"])
            .idempotency(Idempotency::NodeScoped);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/status` of the node that answers (its `node_id` says which).
    pub async fn status(&self) -> Result<Read<Status>, Error> {
        let call = self
            .call(Method::GET, &["status"])
            .idempotency(Idempotency::NodeScoped);
        self.execute(&call).await?.read()
    }

    /// `GET /v1/settings/history`: how much history is kept.
    pub async fn history_retention(&self) -> Result<HistoryRetention, Error> {
        let call = self.call(Method::GET, &["settings", "history"]);
        self.execute(&call).await?.json()
    }

    /// `PUT /v1/settings/history`: keep `keep` revisions per key (at least 1), and none
    /// older than `max_age_seconds`.
    pub async fn set_history_retention(
        &self,
        retention: &HistoryRetention,
    ) -> Result<HistoryRetentionSet, Error> {
        let call = self
            .call(Method::PUT, &["settings", "history"])
            .json(retention);
        self.execute(&call).await?.json()
    }

    /// `GET /v1/settings/audit`: how much of the audit trail is kept.
    pub async fn audit_retention(&self) -> Result<AuditRetention, Error> {
        let call = self.call(Method::GET, &["settings", "audit"]);
        self.execute(&call).await?.json()
    }

    /// `PUT /v1/settings/audit`: keep the newest `max_records` audit records (at least 1),
    /// and none older than `max_age_seconds`.
    pub async fn set_audit_retention(
        &self,
        retention: &AuditRetention,
    ) -> Result<AuditRetentionSet, Error> {
        let call = self
            .call(Method::PUT, &["settings", "audit"])
            .json(retention);
        self.execute(&call).await?.json()
    }
}

/// A backup being received (see [`Client::backup`]).
pub struct BackupStream {
    /// The revision it was taken at: every change up to it, none after.
    pub revision: u64,
    /// Its size in bytes, when the node said.
    pub length: Option<u64>,
    endpoint: Url,
    response: reqwest::Response,
}

impl BackupStream {
    /// The next bytes of the backup; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.response
            .chunk()
            .await
            .map_err(|e| transport(&self.endpoint, true, e))
    }
}

impl Client {
    /// `GET /v1/backup`: a consistent copy of the whole state (it needs `cluster:admin`),
    /// streamed: read it with [`BackupStream::next_chunk`], and check it with
    /// `scarab backup verify` (its last line carries a checksum of the rest).
    pub async fn backup(&self) -> Result<BackupStream, Error> {
        let call = self
            .call(Method::GET, &["backup"])
            .idempotency(Idempotency::Read);
        let call = &call;
        let (endpoint, response) = self
            .failover(call.idempotency, |index| async move {
                let response = self.send_once(index, call, true).await?;
                Ok((self.inner.endpoints[index].clone(), response))
            })
            .await?;
        let revision = response
            .headers()
            .get("x-scarab-revision")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Decode {
                endpoint: endpoint.clone(),
                status: response.status().as_u16(),
                message: "a backup without X-Scarab-Revision".into(),
            })?;
        Ok(BackupStream {
            revision,
            length: response.content_length(),
            endpoint,
            response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_base_urls() {
        assert!(Client::new("http://127.0.0.1:7070").is_ok());
        assert!(Client::new("https://scarab.example/api/").is_ok());
        for bad in [
            "127.0.0.1:7070",
            "ftp://h",
            "mailto:x@y",
            "http://h/?q=1",
            "not a url",
        ] {
            assert!(
                matches!(Client::new(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Client::builder().build(),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Client::builder().endpoint("http://h").actor("é").build(),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_nothing_a_key_needs() {
        let client = Client::new("http://h:1/prefix/").unwrap();
        let call = client
            .config_call(Method::GET, "stores/orders.v1_a-b", Some("history"))
            .unwrap()
            .query("limit", 5)
            .consistency(Consistency::Stale);
        assert_eq!(
            Client::url(&client.inner.endpoints[0], &call).as_str(),
            "http://h:1/prefix/v1/configs/stores/orders.v1_a-b/history?limit=5&consistency=stale"
        );
        let client = Client::new("http://h:1").unwrap();
        let call = client.call(Method::GET, &["schemas", "a/b"]);
        assert_eq!(
            Client::url(&client.inner.endpoints[0], &call).as_str(),
            "http://h:1/v1/schemas/a%2Fb"
        );
    }

    #[test]
    fn keys_that_name_another_route_are_refused() {
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "a/../b",
            "a/.",
            "a/history",
            "a/rollback",
        ] {
            assert!(key_segments(bad).is_err(), "{bad:?}");
        }
        for good in ["history", "rollback", "a/history/b", "a"] {
            assert!(key_segments(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn write_options_become_headers() {
        let client = Client::builder()
            .endpoint("http://h")
            .actor("alice")
            .build()
            .unwrap();
        let call = client
            .write_call(
                client.call(Method::PUT, &["configs", "k"]),
                &WriteOptions::new()
                    .if_match(7)
                    .actor("bob")
                    .retry_unknown_outcome(),
            )
            .unwrap();
        let header = |n: &str| {
            call.headers
                .iter()
                .filter(|(name, _)| name.as_str() == n)
                .map(|(_, v)| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(header("x-scarab-actor"), ["bob"]);
        assert_eq!(header("if-match"), ["\"7\""]);
        assert_eq!(
            call.idempotency,
            Idempotency::Write {
                retry_unknown: true
            }
        );
        assert!(matches!(
            client.write_call(
                client.call(Method::PUT, &["configs", "k"]),
                &WriteOptions::new().retry_unknown_outcome()
            ),
            Err(Error::InvalidArgument(_))
        ));
    }
}
