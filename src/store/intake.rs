//! Group commit for publishes. Writing a transaction costs round trips
//! and a commit (an fsync) whatever its size, so instead of one transaction
//! per request, the publishes that arrive while a group is being written go
//! together into the next: one commit for many single-message requests. A
//! group waits at most a millisecond for as many requests as the last one
//! held (the callers just answered usually send again at once), so a lone
//! caller is written at once and busy callers are not split into a group of
//! one and a group of the rest.
//!
//! Up to `Store::writers` groups are written at once (one on SQLite, which
//! has one writer anyway; two on PostgreSQL): while one waits for the
//! database, the next forms and starts. A large group is also written as
//! several transactions at once, split by case: they never wait for each
//! other's cases, and a case's messages stay in order within one of them.
//! Each caller is answered only after every transaction holding its
//! messages has committed. Requests in different groups have no order
//! between them, as two concurrent requests never had: the store's case
//! locks and feed's turn keep each case and the feeds consistent.

use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{Candidate, Outcome, Store, StoreError};
use crate::domain::Policy;

/// At most this many messages go into one group. A request is never split
/// between groups, so a group may pass it by one request's worth.
const GROUP_MESSAGES: usize = 2_000;

/// How long a group waits for the callers of the last group to come back
/// (as PostgreSQL's `commit_delay` does for its own commits). Tokio's
/// timers tick in milliseconds; a write takes several.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Requests waiting for the next group, beyond which callers wait.
const WAITING: usize = 1_024;

type Answer = Result<Vec<Outcome>, StoreError>;

struct Request {
    candidates: Vec<Candidate>,
    now: OffsetDateTime,
    answer: oneshot::Sender<Answer>,
}

/// Where publishes enter the store.
#[derive(Clone)]
pub struct Intake {
    requests: mpsc::Sender<Request>,
}

impl Intake {
    /// Starts the writer on the current Tokio runtime; it ends when the
    /// last `Intake` is dropped, after writing what is waiting.
    pub fn start(store: Arc<dyn Store>, policy: Arc<Policy>) -> Self {
        let (requests, waiting) = mpsc::channel(WAITING);
        tokio::spawn(write_turns(store, policy, waiting));
        Intake { requests }
    }

    /// Stores a request's messages, as [`Store::publish`] would alone.
    pub async fn publish(&self, candidates: Vec<Candidate>, now: OffsetDateTime) -> Answer {
        let (answer, answered) = oneshot::channel();
        let gone = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.requests
            .send(Request {
                candidates,
                now,
                answer,
            })
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

async fn write_turns(
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    mut waiting: mpsc::Receiver<Request>,
) {
    // Requests in the last group: callers answered together tend to come
    // back together, so the next group waits briefly for as many.
    let mut expected = 1;
    // Groups being written at once (above).
    let turns = Arc::new(tokio::sync::Semaphore::new(store.writers()));
    let mut writing = tokio::task::JoinSet::new();
    loop {
        let Ok(turn) = turns.clone().acquire_owned().await else {
            break;
        };
        let Some(first) = waiting.recv().await else {
            break;
        };
        let mut size = first.candidates.len();
        let mut group = vec![first];
        let lingering_until = tokio::time::Instant::now() + LINGER;
        while size < GROUP_MESSAGES {
            let next = match waiting.try_recv() {
                Ok(next) => next,
                Err(_) if group.len() >= expected => break,
                Err(_) => match tokio::time::timeout_at(lingering_until, waiting.recv()).await {
                    Ok(Some(next)) => next,
                    Ok(None) | Err(_) => break,
                },
            };
            size += next.candidates.len();
            group.push(next);
        }
        expected = group.len();
        let (store, policy) = (store.clone(), policy.clone());
        writing.spawn(async move {
            let (requests, started) = (group.len(), std::time::Instant::now());
            let shards = write_group(&store, &policy, group).await;
            drop(turn);
            // How well commits are shared, for tuning (TWOPLACE_LOG=…intake=debug).
            tracing::debug!(
                requests,
                messages = size,
                shards,
                micros = started.elapsed().as_micros() as u64,
                "wrote a group"
            );
        });
        while writing.try_join_next().is_some() {}
    }
    while writing.join_next().await.is_some() {}
}

/// A request's place in its group.
struct Caller {
    /// Its messages, among the group's.
    messages: Range<usize>,
    now: OffsetDateTime,
    answer: oneshot::Sender<Answer>,
}

/// Part of a group, written in one transaction.
#[derive(Default)]
struct Shard {
    candidates: Vec<Candidate>,
    /// Where each came from among the group's messages, in order.
    places: Vec<usize>,
}

/// Writes a group and answers each request with its own outcomes: one
/// transaction per shard, side by side. If a shard's transaction fails,
/// each request's part of it is written again on its own, so that one
/// request's failure is not another's. Returns how many shards it wrote.
async fn write_group(store: &Arc<dyn Store>, policy: &Arc<Policy>, group: Vec<Request>) -> usize {
    let now = group
        .iter()
        .map(|r| r.now)
        .max()
        .expect("a group is never empty");
    let total: usize = group.iter().map(|r| r.candidates.len()).sum();
    // Each part at least SIDE_BY_SIDE messages.
    let count = store.writers().min(total / super::SIDE_BY_SIDE).max(1);
    let mut shards: Vec<Shard> = (0..count).map(|_| Shard::default()).collect();
    let mut callers = Vec::with_capacity(group.len());
    let mut place = 0;
    for r in group {
        callers.push(Caller {
            messages: place..place + r.candidates.len(),
            now: r.now,
            answer: r.answer,
        });
        for c in r.candidates {
            let shard = &mut shards[shard_of(&c, count)];
            shard.candidates.push(c);
            shard.places.push(place);
            place += 1;
        }
    }

    let mut writing = tokio::task::JoinSet::new();
    for shard in shards.into_iter().filter(|s| !s.candidates.is_empty()) {
        let (store, policy) = (store.clone(), policy.clone());
        writing.spawn(async move {
            let written = store.publish(&shard.candidates, &policy, now).await;
            (shard, written)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
    // Per caller, the first error of a part written on its own.
    let mut failed: Vec<Option<StoreError>> = callers.iter().map(|_| None).collect();
    while let Some(joined) = writing.join_next().await {
        let Ok((shard, written)) = joined else {
            // A writer panicked: its callers get no outcome (below).
            continue;
        };
        match written {
            Ok(got) if got.len() == shard.places.len() => {
                for (&place, outcome) in shard.places.iter().zip(got) {
                    outcomes[place] = Some(outcome);
                }
            }
            Err(e) if callers.len() == 1 => failed[0] = Some(e),
            _ => {
                for (i, caller) in callers.iter().enumerate() {
                    if let Err(e) = write_alone(store, policy, &shard, caller, &mut outcomes).await
                    {
                        failed[i].get_or_insert(e);
                    }
                }
            }
        }
    }
    for (caller, failed) in callers.into_iter().zip(failed) {
        let answer = match failed {
            Some(e) => Err(e),
            None => caller
                .messages
                .map(|p| {
                    outcomes[p]
                        .take()
                        .ok_or_else(|| super::sql::corrupt("a message without an outcome"))
                })
                .collect(),
        };
        let _ = caller.answer.send(answer);
    }
    count
}

/// Writes a caller's part of a shard in a transaction of its own, and
/// puts its outcomes in their places.
async fn write_alone(
    store: &Arc<dyn Store>,
    policy: &Policy,
    shard: &Shard,
    caller: &Caller,
    outcomes: &mut [Option<Outcome>],
) -> Result<(), StoreError> {
    // The caller's messages in this shard are contiguous: both are in group
    // order.
    let from = shard.places.partition_point(|&p| p < caller.messages.start);
    let to = shard.places.partition_point(|&p| p < caller.messages.end);
    if from == to {
        return Ok(());
    }
    let got = store
        .publish(&shard.candidates[from..to], policy, caller.now)
        .await?;
    if got.len() != to - from {
        return Err(super::sql::corrupt("outcomes miscounted"));
    }
    for (&place, outcome) in shard.places[from..to].iter().zip(got) {
        outcomes[place] = Some(outcome);
    }
    Ok(())
}

/// Which shard writes a message: by its case, so that shards never share
/// a case and a case's messages keep their order.
fn shard_of(c: &Candidate, shards: usize) -> usize {
    if shards == 1 {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    c.message.case.resident.as_str().hash(&mut hasher);
    c.message.case.origin.as_str().hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}
