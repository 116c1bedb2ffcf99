//! The outbox: reports that must reach the tier above, numbered, compacted while they wait, and
//! released only when acknowledged. Pure logic; a journal adapter makes it durable by recording
//! the [`Record`]s this type hands out and replaying them with [`Outbox::replay`].
//!
//! Guarantees:
//! - Sequence numbers increase by one per pushed entry and are never reused, across restarts too
//!   (the journal keeps the highest acknowledged one even when nothing is pending).
//! - An entry stays pending until an acknowledgement covers its sequence number.
//! - A pushed entry supersedes the pending entry with the same key (a newer status of the same
//!   deployment on the same device), so the backlog is bounded by the number of keys, not by time.
//!   Entries without a key are never compacted.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One pending report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<P> {
    pub seq: u64,
    /// Entries with the same key supersede each other; `None` is never compacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub payload: P,
}

/// What a journal records; replaying the records in order rebuilds the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record<P> {
    Push(Entry<P>),
    /// Everything up to and including this sequence number was acknowledged.
    Ack(u64),
}

#[derive(Debug, Clone)]
pub struct Outbox<P> {
    /// Highest acknowledged sequence number.
    acked: u64,
    /// Highest sequence number handed out.
    last: u64,
    pending: BTreeMap<u64, Entry<P>>,
    by_key: HashMap<String, u64>,
    /// How many entries were superseded before they were acknowledged (since start).
    compacted: u64,
}

impl<P> Default for Outbox<P> {
    fn default() -> Self {
        Self {
            acked: 0,
            last: 0,
            pending: BTreeMap::new(),
            by_key: HashMap::new(),
            compacted: 0,
        }
    }
}

impl<P: Clone> Outbox<P> {
    /// Rebuilds an outbox from journal records, in the order they were written.
    pub fn replay(records: impl IntoIterator<Item = Record<P>>) -> Self {
        let mut outbox = Self::default();
        for record in records {
            match record {
                Record::Push(entry) => outbox.insert(entry),
                Record::Ack(seq) => outbox.release(seq),
            }
        }
        outbox
    }

    /// Queues a report; returns the record the journal must write before the report is sent.
    pub fn push(&mut self, key: Option<String>, payload: P) -> Record<P> {
        let entry = Entry {
            seq: self.last + 1,
            key,
            payload,
        };
        self.insert(entry.clone());
        Record::Push(entry)
    }

    /// Releases everything up to `seq`; returns the record to journal, or `None` when the
    /// acknowledgement is old news or names a number never handed out.
    pub fn ack(&mut self, seq: u64) -> Option<Record<P>> {
        if seq <= self.acked || seq > self.last {
            return None;
        }
        self.release(seq);
        Some(Record::Ack(seq))
    }

    /// Pending entries after `seq`, oldest first (`0` for all of them).
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Entry<P>> {
        self.pending
            .range(seq.saturating_add(1)..)
            .map(|(_, entry)| entry)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The highest sequence number handed out.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Entries superseded before acknowledgement since this outbox was built.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The shortest record list that replays to this outbox: what a journal rewrites itself to.
    pub fn snapshot(&self) -> Vec<Record<P>> {
        let mut records = vec![Record::Ack(self.acked)];
        records.extend(self.pending.values().cloned().map(Record::Push));
        records
    }

    fn insert(&mut self, entry: Entry<P>) {
        if entry.seq <= self.acked {
            return;
        }
        self.last = self.last.max(entry.seq);
        if let Some(key) = &entry.key
            && let Some(old) = self.by_key.insert(key.clone(), entry.seq)
            && old != entry.seq
            && self.pending.remove(&old).is_some()
        {
            self.compacted += 1;
        }
        self.pending.insert(entry.seq, entry);
    }

    fn release(&mut self, seq: u64) {
        self.acked = self.acked.max(seq);
        self.last = self.last.max(seq);
        let kept = self.pending.split_off(&(seq + 1));
        for entry in std::mem::replace(&mut self.pending, kept).into_values() {
            if let Some(key) = entry.key
                && self.by_key.get(&key) == Some(&entry.seq)
            {
                self.by_key.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(k: u8) -> Option<String> {
        (k < 4).then(|| format!("k{k}"))
    }

    #[test]
    fn a_newer_report_with_the_same_key_supersedes_the_pending_one() {
        let mut o = Outbox::default();
        o.push(key(1), "a");
        o.push(key(2), "b");
        o.push(key(1), "c");
        let pending: Vec<_> = o.after(0).map(|e| (e.seq, e.payload)).collect();
        assert_eq!(pending, vec![(2, "b"), (3, "c")]);
        assert_eq!(o.compacted(), 1);
    }

    #[test]
    fn an_ack_releases_everything_up_to_it_and_stale_acks_change_nothing() {
        let mut o = Outbox::default();
        for p in ["a", "b", "c"] {
            o.push(None, p);
        }
        assert_eq!(o.ack(2), Some(Record::Ack(2)));
        assert_eq!(o.ack(1), None);
        assert_eq!(o.ack(9), None, "an ack beyond what was sent is ignored");
        assert_eq!(o.after(0).map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn sequence_numbers_survive_a_snapshot_with_nothing_pending() {
        let mut o = Outbox::default();
        o.push(None, 1);
        o.push(None, 2);
        o.ack(2);
        let mut again = Outbox::replay(o.snapshot());
        assert!(again.is_empty());
        assert_eq!(
            again.push(None, 3),
            Record::Push(Entry {
                seq: 3,
                key: None,
                payload: 3
            })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, u16),
        Ack(u8),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                3 => (0u8..6, any::<u16>()).prop_map(|(k, p)| Op::Push(k, p)),
                1 => (0u8..8).prop_map(Op::Ack),
            ],
            0..80,
        )
    }

    proptest! {
        /// Replaying the journal (every record, or the snapshot) rebuilds the same outbox;
        /// the pending set is bounded by the keys plus the unkeyed entries; sequence numbers
        /// only grow; the latest payload of every key is pending unless acknowledged.
        #[test]
        fn journal_replay_compaction_and_ordering_hold(ops in ops()) {
            let mut o = Outbox::default();
            let mut journal = Vec::new();
            let mut latest: HashMap<String, (u64, u16)> = HashMap::new();
            let mut unkeyed_pending = Vec::new();
            for op in ops {
                match op {
                    Op::Push(k, p) => {
                        let record = o.push(key(k), p);
                        let Record::Push(entry) = &record else { unreachable!() };
                        prop_assert_eq!(entry.seq, o.last());
                        match key(k) {
                            Some(k) => { latest.insert(k, (entry.seq, p)); }
                            None => unkeyed_pending.push(entry.seq),
                        }
                        journal.push(record);
                    }
                    Op::Ack(back) => {
                        let to = o.last().saturating_sub(u64::from(back));
                        if let Some(r) = o.ack(to) { journal.push(r); }
                    }
                }
            }
            let replayed = Outbox::replay(journal.clone());
            let from_snapshot = Outbox::replay(o.snapshot());
            let view = |x: &Outbox<u16>| x.after(0).cloned().collect::<Vec<_>>();
            prop_assert_eq!(view(&replayed), view(&o));
            prop_assert_eq!(view(&from_snapshot), view(&o));
            prop_assert_eq!(from_snapshot.last(), o.last());
            prop_assert!(o.len() <= 4 + unkeyed_pending.iter().filter(|s| **s > o.acked()).count());
            for (k, (seq, p)) in latest {
                let pending = o.after(0).find(|e| e.key.as_deref() == Some(k.as_str()));
                if seq > o.acked() {
                    prop_assert_eq!(pending.map(|e| (e.seq, e.payload)), Some((seq, p)));
                } else {
                    prop_assert!(pending.is_none());
                }
            }
            let seqs: Vec<u64> = o.after(0).map(|e| e.seq).collect();
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
