//! The messages of one outbox not published yet: a memory budget, and a spill file for what
//! does not fit.
//!
//! The queue is three segments, oldest first: `head` in memory, the spill file, `tail` in
//! memory. A message goes to `head` while the spill is empty and the budget has room, else to
//! the spill; `tail` is used only once the spill failed, so that nothing is dropped (the outbox
//! then stops the build). Publishing takes from `head`, refilled from the spill up to the
//! budget, then from `tail`: messages leave in the order they came.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::spill::{Spill, SpillError};

/// What a queue holds, readable while its outbox runs.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    memory: AtomicUsize,
    peak_memory: AtomicUsize,
    spilled: AtomicU64,
}

impl Gauge {
    /// Bytes of messages held in memory now.
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// The most bytes of messages held in memory at once.
    pub(crate) fn peak_memory(&self) -> usize {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// Bytes of messages written to the spill file so far.
    pub(crate) fn spilled(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }
}

/// The encoded messages of one outbox, in order: at most `budget` bytes in memory (one message
/// larger than the budget is held alone), the rest on disk.
#[derive(Debug)]
pub(crate) struct Queue {
    budget: usize,
    head: VecDeque<Vec<u8>>,
    spill: Spill,
    tail: VecDeque<Vec<u8>>,
    memory: usize,
    gauge: Arc<Gauge>,
}

impl Queue {
    /// A queue holding up to `budget` bytes in memory, spilling to a file in `spill_dir` whose
    /// name starts with `label`.
    pub(crate) fn new(budget: usize, spill_dir: PathBuf, label: String) -> Queue {
        Queue {
            budget,
            head: VecDeque::new(),
            spill: Spill::new(spill_dir, label),
            tail: VecDeque::new(),
            memory: 0,
            gauge: Arc::default(),
        }
    }

    /// What the queue holds, to read while another task owns it.
    pub(crate) fn gauge(&self) -> Arc<Gauge> {
        self.gauge.clone()
    }

    /// Whether every message pushed was popped.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_empty() && self.spill.is_empty() && self.tail.is_empty()
    }

    /// Queues `message` last. When the spill fails the message is kept in memory, and so is
    /// every later one; the error is returned once, by the push that failed.
    pub(crate) async fn push(&mut self, message: Vec<u8>) -> Result<(), SpillError> {
        if self.spill.is_broken() {
            self.hold(Segment::Tail, message);
            return Ok(());
        }
        if self.spill.is_empty() && self.memory + message.len() <= self.budget {
            self.hold(Segment::Head, message);
            return Ok(());
        }
        let size = message.len() as u64;
        match self.spill.append(message).await {
            Ok(()) => {
                self.gauge.spilled.fetch_add(size, Ordering::Relaxed);
                Ok(())
            }
            Err((error, message)) => {
                self.hold(Segment::Tail, message);
                Err(error)
            }
        }
    }

    /// The oldest message, if any (a copy: it stays queued until [`Queue::pop`]). A spill that
    /// cannot be read loses what it holds: the error says how many messages, and the queue goes
    /// on with the messages after them.
    pub(crate) async fn front(&mut self) -> Result<Option<Vec<u8>>, SpillError> {
        let mut failure = None;
        if self.head.is_empty() && !self.spill.is_empty() {
            let (read, error) = self.spill.read(self.budget).await;
            for message in read {
                self.hold(Segment::Head, message);
            }
            failure = error;
        }
        if self.head.is_empty() && self.spill.is_empty() {
            self.head = std::mem::take(&mut self.tail);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(self.head.front().cloned()),
        }
    }

    /// Drops the oldest message, once published.
    pub(crate) fn pop(&mut self) {
        if let Some(message) = self.head.pop_front() {
            self.memory -= message.len();
            self.gauge.memory.store(self.memory, Ordering::Relaxed);
        }
    }

    fn hold(&mut self, segment: Segment, message: Vec<u8>) {
        self.memory += message.len();
        self.gauge.memory.store(self.memory, Ordering::Relaxed);
        self.gauge
            .peak_memory
            .fetch_max(self.memory, Ordering::Relaxed);
        match segment {
            Segment::Head => self.head.push_back(message),
            Segment::Tail => self.tail.push_back(message),
        }
    }
}

enum Segment {
    Head,
    Tail,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Vec<u8> {
        format!("{n:05} {}", "m".repeat(94)).into_bytes()
    }

    async fn drain(queue: &mut Queue) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(message) = queue.front().await.unwrap() {
            out.push(message);
            queue.pop();
        }
        out
    }

    #[tokio::test]
    async fn memory_stays_within_the_budget_and_order_holds_across_the_spill() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("outbox");
        let mut queue = Queue::new(1000, dir.clone(), "build-1-1".to_owned());
        let gauge = queue.gauge();
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for n in 0..500 {
            sent.push(message(n));
            queue.push(message(n)).await.unwrap();
            // Publishing goes on, slower than the messages come.
            if n % 3 == 0
                && let Some(front) = queue.front().await.unwrap()
            {
                received.push(front);
                queue.pop();
            }
            assert!(gauge.memory() <= 1000, "{}", gauge.memory());
        }
        assert!(dir.read_dir().unwrap().next().is_some(), "a spill file");
        assert!(gauge.spilled() > 0);
        received.extend(drain(&mut queue).await);
        assert!(received == sent, "messages lost, repeated or out of order");
        assert_eq!(gauge.peak_memory(), 1000);
        assert_eq!(gauge.memory(), 0);
        assert!(queue.is_empty());
        drop(queue);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn after_a_failed_spill_messages_stay_in_memory_in_order() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("outbox");
        std::fs::write(&dir, "in the way").unwrap();
        let mut queue = Queue::new(250, dir, "build-1-1".to_owned());
        queue.push(message(0)).await.unwrap();
        queue.push(message(1)).await.unwrap();
        let error = queue.push(message(2)).await.unwrap_err();
        assert!(matches!(error, SpillError::Write { .. }), "{error}");
        // Only the push that failed reports it.
        queue.push(message(3)).await.unwrap();
        assert_eq!(queue.gauge().memory(), 400);
        assert_eq!(
            drain(&mut queue).await,
            (0..4).map(message).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_spill_that_cannot_be_read_skips_to_the_messages_after_it() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("outbox");
        let mut queue = Queue::new(100, dir.clone(), "build-1-1".to_owned());
        for n in 0..5 {
            queue.push(message(n)).await.unwrap();
        }
        let file = dir.read_dir().unwrap().next().unwrap().unwrap().path();
        crate::outbox::spill::cut_spill_file(&file, 0);
        assert_eq!(queue.front().await.unwrap(), Some(message(0)));
        queue.pop();
        let error = queue.front().await.unwrap_err();
        assert!(matches!(error, SpillError::Read { lost: 4, .. }), "{error}");
        // The spill is given up: later messages stay in memory, after the loss.
        queue.push(message(5)).await.unwrap();
        assert_eq!(drain(&mut queue).await, [message(5)]);
    }
}
