//! The SQL both backends run, written once. `sql_store!` implements
//! [`Store`](super::Store) for a backend type that provides `pool` and
//! `begin_write` (how that backend serialises writers).
//!
//! Writers are serialised on purpose: deliveries get their sequence numbers
//! in commit order, so a reader that has seen delivery N has seen every
//! delivery before N — a feed cursor can never skip a row that commits late.

macro_rules! sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            #[tracing::instrument(skip_all, fields(batch = batch.len()))]
            async fn publish(
                &self,
                batch: Vec<$crate::store::Candidate>,
                now: time::OffsetDateTime,
            ) -> Result<Vec<$crate::store::Outcome>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::case::{self, Earlier, Standing};
                use $crate::domain::{Body, Kind, RegionCode, Violation};
                use $crate::store::{Outcome, StoreError, from_us, to_us};

                let (_guard, mut tx) = self.begin_write().await?;
                let now_us = to_us(now);
                let mut outcomes = Vec::with_capacity(batch.len());
                for c in batch {
                    let msg = &c.message;
                    let seen = sqlx::query(
                        "SELECT content_hash, accepted_us FROM messages \
                         WHERE sender = $1 AND message_id = $2",
                    )
                    .bind(msg.sender.as_str())
                    .bind(msg.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = seen {
                        let hash: Vec<u8> = row.try_get("content_hash")?;
                        let at = from_us(row.try_get("accepted_us")?)?;
                        outcomes.push(if hash == c.content_hash {
                            Outcome::Duplicate { at }
                        } else {
                            Outcome::Rejected(vec![Violation::new(
                                "message_id",
                                "CONFLICT",
                                "this message id was already used for a message with other \
                                 content; choose a new id, or send CORRECTION to change it",
                            )])
                        });
                        continue;
                    }

                    let case_row = sqlx::query(
                        "SELECT id, state FROM cases WHERE resident_id = $1 AND origin = $2",
                    )
                    .bind(msg.case.resident.as_str())
                    .bind(msg.case.origin.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let (case_id, state) = match case_row {
                        Some(row) => {
                            let id: i64 = row.try_get("id")?;
                            let json: String = row.try_get("state")?;
                            let state: case::CaseState = serde_json::from_str(&json)
                                .map_err(|e| StoreError::Corrupt(format!("case {id}: {e}")))?;
                            (Some(id), Some(state))
                        }
                        None => (None, None),
                    };

                    let target = match &msg.body {
                        Body::Void { target } | Body::Correction { target, .. } => Some(target),
                        _ => None,
                    };
                    let earlier = match target {
                        Some(target) => sqlx::query(
                            "SELECT kind, standing, case_id FROM messages \
                             WHERE sender = $1 AND message_id = $2",
                        )
                        .bind(msg.sender.as_str())
                        .bind(target.as_str())
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| -> Result<Earlier, StoreError> {
                            let kind: String = row.try_get("kind")?;
                            let standing: String = row.try_get("standing")?;
                            let target_case: i64 = row.try_get("case_id")?;
                            Ok(Earlier {
                                sender: msg.sender.clone(),
                                kind: Kind::parse(&kind)
                                    .ok_or_else(|| StoreError::Corrupt(format!("kind {kind}")))?,
                                standing: Standing::parse(&standing).ok_or_else(|| {
                                    StoreError::Corrupt(format!("standing {standing}"))
                                })?,
                                same_case: case_id == Some(target_case),
                            })
                        })
                        .transpose()?,
                        None => None,
                    };

                    let applied = match case::apply(state, msg, earlier.as_ref(), now) {
                        Ok(applied) => applied,
                        Err(violations) => {
                            outcomes.push(Outcome::Rejected(violations));
                            continue;
                        }
                    };
                    let json = serde_json::to_string(&applied.state)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let destination = applied.state.current_destination().map(RegionCode::as_str);
                    let status = applied.state.status.as_str();
                    let case_id = match case_id {
                        Some(id) => {
                            sqlx::query(
                                "UPDATE cases SET destination = $1, status = $2, state = $3, \
                                 updated_us = $4 WHERE id = $5",
                            )
                            .bind(destination)
                            .bind(status)
                            .bind(&json)
                            .bind(now_us)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                            id
                        }
                        None => sqlx::query(
                            "INSERT INTO cases (resident_id, origin, destination, status, state, \
                             created_us, updated_us) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                             RETURNING id",
                        )
                        .bind(msg.case.resident.as_str())
                        .bind(msg.case.origin.as_str())
                        .bind(destination)
                        .bind(status)
                        .bind(&json)
                        .bind(now_us)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("id")?,
                    };

                    let message_row: i64 = sqlx::query(
                        "INSERT INTO messages (sender, message_id, content_hash, kind, case_id, \
                         recipient, envelope, standing, accepted_us) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    )
                    .bind(msg.sender.as_str())
                    .bind(msg.id.as_str())
                    .bind(&c.content_hash)
                    .bind(msg.body.kind().as_str())
                    .bind(case_id)
                    .bind(msg.recipient.as_str())
                    .bind(&c.envelope)
                    .bind(Standing::Active.as_str())
                    .bind(now_us)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("id")?;

                    for recipient in &applied.recipients {
                        sqlx::query("INSERT INTO deliveries (recipient, message) VALUES ($1, $2)")
                            .bind(recipient.as_str())
                            .bind(message_row)
                            .execute(&mut *tx)
                            .await?;
                    }
                    if let Some((target, standing)) = &applied.target {
                        sqlx::query(
                            "UPDATE messages SET standing = $1 \
                             WHERE sender = $2 AND message_id = $3",
                        )
                        .bind(standing.as_str())
                        .bind(msg.sender.as_str())
                        .bind(target.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    // What is stored, to the microsecond: a duplicate later
                    // answers exactly this.
                    outcomes.push(Outcome::Accepted {
                        at: from_us(now_us)?,
                    });
                }
                tx.commit().await?;
                Ok(outcomes)
            }

            #[tracing::instrument(skip_all)]
            async fn inbox(
                &self,
                recipient: &$crate::domain::RegionCode,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::DeliveryRow>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{DeliveryRow, from_us};
                let rows = sqlx::query(
                    "SELECT d.seq, m.sender, m.accepted_us, m.envelope, d.received_us \
                     FROM deliveries d JOIN messages m ON m.id = d.message \
                     WHERE d.recipient = $1 AND d.seq > $2 ORDER BY d.seq LIMIT $3",
                )
                .bind(recipient.as_str())
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|row| {
                        Ok(DeliveryRow {
                            seq: row.try_get("seq")?,
                            sender: row.try_get("sender")?,
                            accepted_at: from_us(row.try_get("accepted_us")?)?,
                            envelope: row.try_get("envelope")?,
                            received_at: row
                                .try_get::<Option<i64>, _>("received_us")?
                                .map(from_us)
                                .transpose()?,
                        })
                    })
                    .collect()
            }

            #[tracing::instrument(skip_all)]
            async fn acknowledge(
                &self,
                recipient: &$crate::domain::RegionCode,
                up_to_seq: Option<i64>,
                messages: &[$crate::store::MessageRef],
                now: time::OffsetDateTime,
            ) -> Result<u64, $crate::store::StoreError> {
                let now_us = $crate::store::to_us(now);
                let mut tx = self.pool.begin().await?;
                let mut marked = 0;
                if let Some(seq) = up_to_seq {
                    marked += sqlx::query(
                        "UPDATE deliveries SET received_us = $1 \
                         WHERE recipient = $2 AND seq <= $3 AND received_us IS NULL",
                    )
                    .bind(now_us)
                    .bind(recipient.as_str())
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                for m in messages {
                    marked += sqlx::query(
                        "UPDATE deliveries SET received_us = $1 \
                         WHERE recipient = $2 AND received_us IS NULL AND message IN \
                         (SELECT id FROM messages WHERE sender = $3 AND message_id = $4)",
                    )
                    .bind(now_us)
                    .bind(recipient.as_str())
                    .bind(&m.sender)
                    .bind(&m.message_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(marked)
            }

            #[tracing::instrument(skip_all)]
            async fn cases_of(
                &self,
                resident_id: &str,
            ) -> Result<Vec<$crate::store::StoredCase>, $crate::store::StoreError> {
                let rows =
                    sqlx::query("SELECT id, state FROM cases WHERE resident_id = $1 ORDER BY id")
                        .bind(resident_id)
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map($crate::store::sql::stored_case).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn history(
                &self,
                case_id: i64,
            ) -> Result<Vec<$crate::store::HistoryRow>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::domain::case::Standing;
                use $crate::store::{HistoryRow, StoreError, from_us};
                let rows = sqlx::query(
                    "SELECT message_id, sender, recipient, kind, accepted_us, standing \
                     FROM messages WHERE case_id = $1 ORDER BY id",
                )
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|row| {
                        let standing: String = row.try_get("standing")?;
                        Ok(HistoryRow {
                            message_id: row.try_get("message_id")?,
                            sender: row.try_get("sender")?,
                            recipient: row.try_get("recipient")?,
                            kind: row.try_get("kind")?,
                            accepted_at: from_us(row.try_get("accepted_us")?)?,
                            standing: Standing::parse(&standing).ok_or_else(|| {
                                StoreError::Corrupt(format!("standing {standing}"))
                            })?,
                        })
                    })
                    .collect()
            }

            #[tracing::instrument(skip_all)]
            async fn record_read(
                &self,
                reader: &str,
                case_id: i64,
                purpose: &str,
                access: &str,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO case_reads (reader, case_id, purpose, access, read_us) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(reader)
                .bind(case_id)
                .bind(purpose)
                .bind(access)
                .bind($crate::store::to_us(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn list_cases(
                &self,
                q: &$crate::store::CaseQuery,
            ) -> Result<Vec<$crate::store::StoredCase>, $crate::store::StoreError> {
                use $crate::store::Role;
                // Two fixed statements, one per role: the column names are
                // never built from input.
                let sql = match q.role {
                    Role::Origin => {
                        "SELECT id, state FROM cases WHERE origin = $1 \
                         AND ($2 = '' OR status = $2) AND ($3 = '' OR destination = $3) \
                         AND id > $4 ORDER BY id LIMIT $5"
                    }
                    Role::Destination => {
                        "SELECT id, state FROM cases WHERE destination = $1 \
                         AND ($2 = '' OR status = $2) AND ($3 = '' OR origin = $3) \
                         AND id > $4 ORDER BY id LIMIT $5"
                    }
                };
                let rows = sqlx::query(sql)
                    .bind(q.office.as_str())
                    .bind(q.status.map(|s| s.as_str()).unwrap_or(""))
                    .bind(q.counterpart.as_ref().map(|c| c.as_str()).unwrap_or(""))
                    .bind(q.after_id)
                    .bind(i64::from(q.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::store::sql::stored_case).collect()
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_store;

/// Reads an `id, state` row of `cases`, on either backend.
pub(crate) fn stored_case<R>(row: &R) -> Result<super::StoredCase, super::StoreError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let id: i64 = row.try_get("id")?;
    let json: String = row.try_get("state")?;
    let state = serde_json::from_str(&json)
        .map_err(|e| super::StoreError::Corrupt(format!("case {id}: {e}")))?;
    Ok(super::StoredCase { id, state })
}
