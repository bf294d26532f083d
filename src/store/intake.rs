//! Group commit for publishes. Writers take turns anyway (feed sequence
//! numbers follow commit order), so instead of queueing for the turn one
//! request at a time, the publishes that arrive while one transaction is
//! being written go together into the next: one commit (one fsync) for
//! many single-message requests. A group waits at most a millisecond for
//! as many requests as the last one held (the callers just answered
//! usually send again at once), so a lone caller is written at once and
//! busy callers are not split into a group of one and a group of the
//! rest. Each caller is answered only after the transaction holding its
//! messages has committed.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{Candidate, Outcome, Store, StoreError};
use crate::domain::Policy;

/// At most this many messages go into one transaction. A request is never
/// split, so a group may pass it by one request's worth.
const GROUP_MESSAGES: usize = 2_000;

/// How long a group waits for the callers of the last group to come back
/// (as PostgreSQL's `commit_delay` does for its own commits). Tokio's
/// timers tick in milliseconds; a write takes several.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Requests waiting for the next write turn, beyond which callers wait.
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
    while let Some(first) = waiting.recv().await {
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
        let (requests, started) = (group.len(), std::time::Instant::now());
        write_group(store.as_ref(), &policy, group).await;
        // How well commits are shared, for tuning (TWOPLACE_LOG=…intake=debug).
        tracing::debug!(
            requests,
            messages = size,
            micros = started.elapsed().as_micros() as u64,
            "wrote a group"
        );
    }
}

/// Writes a group in one transaction and answers each request with its own
/// outcomes. If the transaction fails, each request is written again on
/// its own, so that one request's failure is not another's.
async fn write_group(store: &dyn Store, policy: &Policy, mut group: Vec<Request>) {
    if group.len() == 1 {
        let Request {
            candidates,
            now,
            answer,
        } = group.remove(0);
        let _ = answer.send(store.publish(candidates, policy, now).await);
        return;
    }
    let now = group
        .iter()
        .map(|r| r.now)
        .max()
        .expect("a group is never empty");
    let sizes: Vec<usize> = group.iter().map(|r| r.candidates.len()).collect();
    // Copied, not moved: the store takes its batch by value, and a failed
    // group is written again request by request.
    let all: Vec<Candidate> = group
        .iter()
        .flat_map(|r| r.candidates.iter().cloned())
        .collect();
    match store.publish(all, policy, now).await {
        Ok(outcomes) if outcomes.len() == sizes.iter().sum::<usize>() => {
            let mut outcomes = outcomes.into_iter();
            for (request, size) in group.into_iter().zip(sizes) {
                let _ = request
                    .answer
                    .send(Ok(outcomes.by_ref().take(size).collect()));
            }
        }
        _ => {
            for r in group {
                let _ = r
                    .answer
                    .send(store.publish(r.candidates, policy, r.now).await);
            }
        }
    }
}
