//! Wakes live subscribers when deliveries for them commit on this server.
//!
//! Each subscribed office has its own signal, so a commit wakes only the
//! subscribers of the offices it delivered to: with one signal for all,
//! every commit made every subscriber read its inbox (a hundred subscribers
//! at a hundred publishes a second were ten thousand empty reads a second,
//! and publishes waited for connections behind them). Deliveries committed
//! by another server on the same database are found by the subscribers'
//! own polling.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use crate::domain::RegionCode;

#[derive(Default)]
pub struct Feed {
    /// Per office with live subscribers (or had, until the next wake finds
    /// none), bumped after each commit that delivered to it.
    offices: Mutex<HashMap<RegionCode, watch::Sender<u64>>>,
}

impl Feed {
    /// A signal that changes after each commit that delivers to `office`.
    pub fn subscribe(&self, office: &RegionCode) -> watch::Receiver<u64> {
        self.lock()
            .entry(office.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the subscribers of these offices (a commit delivered to them).
    pub fn delivered<'a>(&self, recipients: impl IntoIterator<Item = &'a RegionCode>) {
        let mut offices = self.lock();
        for office in recipients {
            if let Some(signal) = offices.get(office) {
                if signal.receiver_count() == 0 {
                    offices.remove(office);
                } else {
                    signal.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
    }

    /// Wakes every subscriber (a commit whose recipients are not known
    /// here, such as the sweeper's reminders).
    pub fn delivered_to_all(&self) {
        self.lock().retain(|_, signal| {
            signal.send_modify(|n| *n = n.wrapping_add(1));
            signal.receiver_count() > 0
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RegionCode, watch::Sender<u64>>> {
        // The map stays whole whatever a panicking holder was doing: each
        // step leaves it a valid map of signals.
        self.offices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn offices(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(code: &str) -> RegionCode {
        RegionCode::parse(code).expect("a region code of the official list")
    }

    #[test]
    fn a_delivery_wakes_only_its_recipients_subscribers() {
        let feed = Feed::default();
        let (a, b) = (office("110101"), office("310101"));
        let (mut a1, mut a2, b1) = (feed.subscribe(&a), feed.subscribe(&a), feed.subscribe(&b));

        feed.delivered([&a]);
        assert!(a1.has_changed().unwrap() && a2.has_changed().unwrap());
        assert!(
            !b1.has_changed().unwrap(),
            "another office's delivery woke b"
        );
        a1.borrow_and_update();
        a2.borrow_and_update();

        feed.delivered_to_all();
        assert!(a1.has_changed().unwrap() && a2.has_changed().unwrap());
        assert!(b1.has_changed().unwrap());
    }

    #[test]
    fn offices_without_subscribers_are_forgotten() {
        let feed = Feed::default();
        let (a, b) = (office("110101"), office("310101"));
        let gone = feed.subscribe(&a);
        let _live = feed.subscribe(&b);
        drop(gone);
        feed.delivered([&b]);
        assert_eq!(feed.offices(), 2, "only a delivery to a finds a gone");
        feed.delivered([&a, &office("440103")]);
        assert_eq!(feed.offices(), 1);

        let gone = feed.subscribe(&a);
        drop(gone);
        feed.delivered_to_all();
        assert_eq!(feed.offices(), 1, "b's subscriber is still there");
    }
}
