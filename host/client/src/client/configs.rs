//! `/v1/configs`, `/v1/txn` and `/v1/watch`: configs, their history, transactions and watches.

use super::*;

impl Client {
    // ---------------------------------------------------------------- configs

    /// `GET /v1/configs/{key}`: the config, linearizable unless the client says otherwise.
    pub async fn get(&self, key: &str) -> Result<Read<ConfigEntry>, Error> {
        self.get_with(key, &ReadOptions::default()).await
    }

    /// `GET /v1/configs/{key}` at a consistency, a past revision, or converted to another
    /// version of its schema.
    pub async fn get_with(
        &self,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<Read<ConfigEntry>, Error> {
        self.get_as(key, opts).await
    }

    /// [`Client::get_with`], with the value decoded as `T` (a service's own config type)
    /// straight from the response.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        key: &str,
        opts: &ReadOptions,
    ) -> Result<Read<Entry<T>>, Error> {
        let call = self
            .config_call(Method::GET, key, None)?
            .consistency(opts.consistency.unwrap_or(self.consistency))
            .opt_query("schema_version", opts.schema_version)
            .opt_query("revision", opts.revision);
        self.execute(&call).await?.read()
    }

    /// `PUT /v1/configs/{key}`: creates or replaces the config; its metadata after the
    /// write (`created` on 201).
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        body: &PutConfig<T>,
    ) -> Result<Written<ConfigMeta>, Error> {
        self.put_with(key, body, &WriteOptions::default()).await
    }

    /// `PUT /v1/configs/{key}` with a condition (`If-Match`, `If-None-Match: *`), another
    /// actor or reason.
    pub async fn put_with<T: Serialize>(
        &self,
        key: &str,
        body: &PutConfig<T>,
        opts: &WriteOptions,
    ) -> Result<Written<ConfigMeta>, Error> {
        let call = self.config_call(Method::PUT, key, None)?.json(body);
        let call = self.write_call(call, opts)?;
        self.execute(&call).await?.written()
    }

    /// `DELETE /v1/configs/{key}`: leaves a tombstone at a new revision.
    pub async fn delete(&self, key: &str) -> Result<Deleted, Error> {
        self.delete_with(key, &WriteOptions::default()).await
    }

    /// `DELETE /v1/configs/{key}` with a condition (`If-Match`), another actor or reason.
    pub async fn delete_with(&self, key: &str, opts: &WriteOptions) -> Result<Deleted, Error> {
        let call = self.config_call(Method::DELETE, key, None)?;
        let call = self.write_call(call, opts)?;
        self.execute(&call).await?.json()
    }

    /// `GET /v1/configs?prefix=…`: one page (`next` is the cursor of the next).
    pub async fn list_page(&self, opts: &ListOptions) -> Result<Read<ConfigPage>, Error> {
        let call = self
            .call(Method::GET, &["configs"])
            .query("prefix", &opts.prefix)
            .opt_query("after", opts.after.as_ref())
            .opt_query("limit", opts.limit)
            .consistency(opts.consistency.unwrap_or(self.consistency))
            .opt_query("schema", opts.schema.as_ref())
            .opt_query("schema_version", opts.schema_version);
        self.execute(&call).await?.read()
    }

    /// Every config under `opts.prefix`, in key order, page after page (each page is read
    /// at its own revision). Ends after the last page, or with the first error.
    pub fn list(
        &self,
        opts: ListOptions,
    ) -> impl futures_core::Stream<Item = Result<ConfigEntry, Error>> + Send + use<> {
        let client = self.clone();
        paging::items(opts, move |opts| {
            let client = client.clone();
            async move {
                let page = client.list_page(&opts).await?.body;
                let next = page.next.map(|after| ListOptions {
                    after: Some(after),
                    ..opts
                });
                Ok(Paged {
                    items: page.items,
                    next,
                })
            }
        })
    }

    /// `GET /v1/configs/{key}/history`: one page of the key's revisions, newest first
    /// (deletes included).
    pub async fn history(
        &self,
        key: &str,
        opts: &HistoryOptions,
    ) -> Result<Read<HistoryPage>, Error> {
        let call = self
            .config_call(Method::GET, key, Some("history"))?
            .opt_query("limit", opts.limit)
            .opt_query("before", opts.before)
            .consistency(opts.consistency.unwrap_or(self.consistency));
        self.execute(&call).await?.read()
    }

    /// Every revision of the key that the retention kept, newest first, page after page.
    pub fn history_all(
        &self,
        key: &str,
        opts: HistoryOptions,
    ) -> impl futures_core::Stream<Item = Result<HistoryEntry, Error>> + Send + use<> {
        let client = self.clone();
        let key = key.to_string();
        paging::items(opts, move |opts| {
            let (client, key) = (client.clone(), key.clone());
            async move {
                let page = client.history(&key, &opts).await?.body;
                let next = page.next_before.map(|before| HistoryOptions {
                    before: Some(before),
                    ..opts
                });
                Ok(Paged {
                    items: page.items,
                    next,
                })
            }
        })
    }

    /// `POST /v1/configs/{key}/rollback`: writes the value the key had at `revision` as a
    /// new revision, validated like a write (a compare-and-set on the revision the server
    /// read: 412 if the key changed meanwhile).
    pub async fn rollback(&self, key: &str, revision: u64) -> Result<Written<RolledBack>, Error> {
        let call = self
            .config_call(Method::POST, key, Some("rollback"))?
            .json(&RollbackRequest { revision });
        self.execute(&call).await?.written()
    }

    /// `POST /v1/txn`: the conditions, then every put and delete at one revision, or
    /// nothing (412 `condition_failed`: see [`ApiError::failed_conditions`]).
    pub async fn txn(&self, txn: &TxnRequest) -> Result<TxnResponse, Error> {
        self.txn_with(txn, &WriteOptions::default()).await
    }

    /// [`Client::txn`] with another actor or reason, or with
    /// [`WriteOptions::retry_unknown_outcome`] (which needs at least one condition; make
    /// the conditions cover what a second application would change).
    pub async fn txn_with(
        &self,
        txn: &TxnRequest,
        opts: &WriteOptions,
    ) -> Result<TxnResponse, Error> {
        if opts.conditional() {
            return Err(Error::InvalidArgument(
                "a transaction takes its conditions in its body, not as If-Match or If-None-Match"
                    .into(),
            ));
        }
        let retry = opts.retry_unknown_outcome;
        if retry && txn.conditions.is_empty() {
            return Err(Error::InvalidArgument(
                "retry_unknown_outcome needs a transaction with conditions".into(),
            ));
        }
        let opts = WriteOptions {
            retry_unknown_outcome: false,
            ..opts.clone()
        };
        let call = self
            .write_call(self.call(Method::POST, &["txn"]).json(txn), &opts)?
            .idempotency(Idempotency::Write {
                retry_unknown: retry,
            });
        self.execute(&call).await?.json()
    }

    // ---------------------------------------------------------------- watch

    /// `GET /v1/watch` as Server-Sent Events: every change under the prefix, one
    /// [`WatchEvent`](scarab_types::WatchEvent) per revision, in revision order, each
    /// exactly once — across reconnects and across nodes. See [`WatchStream`].
    pub fn watch(&self, opts: WatchOptions) -> WatchStream {
        WatchStream::new(self.clone(), opts)
    }

    /// `GET /v1/watch?wait=…`: a long poll. Answers as soon as there are changes from
    /// `opts.from_revision` on, or after `wait` with none; ask again from
    /// `next_from_revision`.
    pub async fn watch_poll(
        &self,
        opts: &WatchOptions,
        wait: Duration,
        limit: Option<u32>,
    ) -> Result<Read<WatchPoll>, Error> {
        let mut call = self
            .call(Method::GET, &["watch"])
            .query("prefix", &opts.prefix)
            .opt_query("from_revision", opts.from_revision)
            .opt_query("schema", opts.schema.as_ref())
            .opt_query("schema_version", opts.schema_version)
            .query("wait", format!("{}ms", wait.as_millis()))
            .opt_query("limit", limit);
        call.extra_time = wait;
        self.execute(&call).await?.read()
    }

    pub(crate) fn watch_call(&self, opts: &WatchOptions) -> Call {
        self.call(Method::GET, &["watch"])
            .query("prefix", &opts.prefix)
            .opt_query("schema", opts.schema.as_ref())
            .opt_query("schema_version", opts.schema_version)
            .opt_query(
                "progress",
                opts.progress.map(|p| format!("{}ms", p.as_millis())),
            )
            .header(
                reqwest::header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            )
    }
}
