//! The durable outbox: the domain's [`Outbox`] with every change written to a [`Journal`] before
//! it takes effect, so a report queued before a crash is still queued after it. The journal is
//! rewritten to the outbox's snapshot once it has grown well beyond it.

use crate::RecordError;
use crate::journal::Journal;
use eos_domain::outbox::{Entry, Outbox, Record};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// Rewrite once the journal holds this many records more than the pending entries.
const REWRITE_SLACK: u64 = 4096;

pub struct DurableOutbox<P> {
    outbox: Outbox<P>,
    journal: Journal<Record<P>>,
}

impl<P: Clone + Serialize + DeserializeOwned> DurableOutbox<P> {
    /// Opens the outbox journal at `path`, replaying what it holds.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RecordError> {
        let path = path.into();
        let opened = Journal::open(&path)?;
        if opened.dropped_bytes > 0 {
            tracing::warn!(path = %path.display(), bytes = opened.dropped_bytes, "dropped a torn tail from the outbox journal");
        }
        Ok(Self {
            outbox: Outbox::replay(opened.records),
            journal: opened.journal,
        })
    }

    /// Queues reports durably (one fsync for the batch); returns the new entries' sequence numbers.
    pub fn push(
        &mut self,
        reports: impl IntoIterator<Item = (Option<String>, P)>,
    ) -> Result<Vec<u64>, RecordError> {
        let records: Vec<Record<P>> = reports
            .into_iter()
            .map(|(key, payload)| self.outbox.push(key, payload))
            .collect();
        if let Err(e) = self.journal.append(&records) {
            // Memory and disk disagree now; rebuild memory from what the disk holds.
            self.outbox = Outbox::replay(self.outbox_from_disk()?);
            return Err(e);
        }
        let seqs = records
            .iter()
            .filter_map(|r| match r {
                Record::Push(e) => Some(e.seq),
                Record::Ack(_) => None,
            })
            .collect();
        self.compact_journal()?;
        Ok(seqs)
    }

    /// Releases everything up to `seq` once the acknowledgement is on disk.
    pub fn ack(&mut self, seq: u64) -> Result<(), RecordError> {
        if let Some(record) = self.outbox.ack(seq) {
            self.journal.append(&[record])?;
            self.compact_journal()?;
        }
        Ok(())
    }

    /// Pending entries after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Entry<P>> {
        self.outbox.after(seq)
    }

    pub fn len(&self) -> usize {
        self.outbox.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    pub fn acked(&self) -> u64 {
        self.outbox.acked()
    }

    pub fn last(&self) -> u64 {
        self.outbox.last()
    }

    pub fn compacted(&self) -> u64 {
        self.outbox.compacted()
    }

    fn outbox_from_disk(&self) -> Result<Vec<Record<P>>, RecordError> {
        Ok(Journal::<Record<P>>::open(self.journal.path())?.records)
    }

    fn compact_journal(&mut self) -> Result<(), RecordError> {
        if self.journal.records() > self.outbox.len() as u64 + REWRITE_SLACK {
            self.journal.rewrite(&self.outbox.snapshot())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(path: &std::path::Path) -> DurableOutbox<String> {
        DurableOutbox::open(path).unwrap()
    }

    #[test]
    fn pending_reports_and_sequence_numbers_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.journal");
        let mut o = reopen(&path);
        let seqs = o
            .push([
                (Some("status/d1/n1".into()), "installing".into()),
                (Some("status/d1/n2".into()), "installing".into()),
                (None, "event".into()),
            ])
            .unwrap();
        assert_eq!(seqs, vec![1, 2, 3]);
        o.push([(Some("status/d1/n1".into()), "installed".into())])
            .unwrap();
        o.ack(2).unwrap();
        drop(o);

        let mut o = reopen(&path);
        let pending: Vec<_> = o.after(0).map(|e| (e.seq, e.payload.clone())).collect();
        assert_eq!(
            pending,
            vec![(3, "event".to_owned()), (4, "installed".to_owned())]
        );
        o.ack(4).unwrap();
        drop(o);
        let mut o = reopen(&path);
        assert!(o.is_empty());
        assert_eq!(o.push([(None, "next".into())]).unwrap(), vec![5]);
    }

    #[test]
    fn the_journal_is_rewritten_once_it_outgrows_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.journal");
        let mut o = reopen(&path);
        for round in 0..(REWRITE_SLACK + 10) {
            o.push([(Some("status/d1/n1".into()), format!("round {round}"))])
                .unwrap();
        }
        assert_eq!(o.len(), 1, "one key, one pending report");
        assert!(
            o.journal.records() <= REWRITE_SLACK + 2,
            "journal kept {} records",
            o.journal.records()
        );
        drop(o);
        let o = reopen(&path);
        assert_eq!(
            o.after(0).map(|e| e.payload.clone()).collect::<Vec<_>>(),
            vec![format!("round {}", REWRITE_SLACK + 9)]
        );
        assert_eq!(o.last(), REWRITE_SLACK + 10);
    }
}
