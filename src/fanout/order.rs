//! The ordering rule every stream applies to a chat's live messages.
//!
//! Pure logic, no I/O: given the next seq the client needs and a seq that
//! just arrived live, decide whether to drop it (already delivered), deliver
//! it, or first fill the gap before it from storage.

/// What to do with a live message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Already delivered (or replayed): drop it.
    Skip,
    /// Exactly the next one: deliver it.
    Deliver,
    /// Messages `from..to` are missing: read them from storage, deliver them,
    /// then this one.
    Fill { from: i64, to: i64 },
}

/// Tracks, for one chat on one stream, the seq the client needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqTracker {
    next: i64,
}

impl SeqTracker {
    /// A tracker for a client that has seen everything up to `last_seen`.
    /// Saturates: `i64::MAX` (never a real seq) cannot overflow.
    pub fn after(last_seen: i64) -> SeqTracker {
        SeqTracker {
            next: last_seen.clamp(0, i64::MAX - 1) + 1,
        }
    }

    pub fn next(&self) -> i64 {
        self.next
    }

    pub fn decide(&self, seq: i64) -> Decision {
        use std::cmp::Ordering::*;
        match seq.cmp(&self.next) {
            Less => Decision::Skip,
            Equal => Decision::Deliver,
            Greater => Decision::Fill {
                from: self.next,
                to: seq,
            },
        }
    }

    /// Records that `seq` reached the client. Seqs below `next` change nothing.
    /// Saturates at `i64::MAX` rather than overflow (a panic in debug
    /// builds, a wrap to negative in release).
    pub fn delivered(&mut self, seq: i64) {
        if seq >= self.next {
            self.next = seq.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let t = SeqTracker::after(4);
        assert_eq!(t.next(), 5);
        assert_eq!(t.decide(3), Decision::Skip);
        assert_eq!(t.decide(4), Decision::Skip);
        assert_eq!(t.decide(5), Decision::Deliver);
        assert_eq!(t.decide(8), Decision::Fill { from: 5, to: 8 });
    }

    #[test]
    fn delivered_only_moves_forward() {
        let mut t = SeqTracker::after(0);
        t.delivered(1);
        t.delivered(3);
        assert_eq!(t.next(), 4);
        t.delivered(2);
        assert_eq!(t.next(), 4);
    }

    /// Found by the `tracker_algebra` property test (and the `seq_tracker`
    /// fuzz target): `delivered(i64::MAX)` and `after(i64::MAX)` overflowed.
    #[test]
    fn extreme_seqs_saturate_instead_of_overflowing() {
        let mut t = SeqTracker::after(0);
        t.delivered(i64::MAX);
        assert_eq!(t.next(), i64::MAX);
        assert_eq!(t.decide(i64::MAX), Decision::Deliver);
        assert_eq!(SeqTracker::after(i64::MAX).next(), i64::MAX);
        assert_eq!(SeqTracker::after(i64::MIN).next(), 1);
    }

    /// Any arrival order of any set of seqs, with storage filling gaps,
    /// yields 1..=n exactly once in order.
    #[test]
    fn any_arrival_order_delivers_everything_once_in_order() {
        // A small deterministic generator (no extra dependency needed).
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for round in 0..500 {
            let n = 1 + round % 40;
            let mut arrivals: Vec<i64> = (1..=n as i64).collect();
            // Shuffle, drop some (pub/sub is lossy), duplicate some.
            for i in (1..arrivals.len()).rev() {
                let j = rand(i + 1);
                arrivals.swap(i, j);
            }
            arrivals.retain(|_| rand(4) != 0);
            let dups: Vec<i64> = arrivals.iter().filter(|_| rand(5) == 0).copied().collect();
            arrivals.extend(dups);
            // The last message always arrives eventually or is found by a
            // catch-up; model that with a final arrival of n.
            arrivals.push(n as i64);

            let mut tracker = SeqTracker::after(0);
            let mut out = Vec::new();
            for seq in arrivals {
                match tracker.decide(seq) {
                    Decision::Skip => {}
                    Decision::Deliver => {
                        out.push(seq);
                        tracker.delivered(seq);
                    }
                    Decision::Fill { from, to } => {
                        for s in from..to {
                            out.push(s);
                            tracker.delivered(s);
                        }
                        out.push(seq);
                        tracker.delivered(seq);
                    }
                }
            }
            assert_eq!(out, (1..=n as i64).collect::<Vec<_>>(), "round {round}");
        }
    }
}

/// Property tests: the tracker driven exactly the way both streams drive it
/// (`streams::cursor::ChatCursor`, for every stream): a live
/// message is skipped, delivered, or preceded by a gap fill that reads
/// storage in pages from `next()` up to the message; a resync (lagged
/// receiver, lost pub/sub) catches up to the end of storage.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// What a stream sees, in the order it sees it.
    #[derive(Clone, Debug)]
    enum Step {
        /// A live message with this seq arrives (from the hub or Redis).
        Live(i64),
        /// Messages up to this seq are committed without reaching us live
        /// (pub/sub dropped them, or they are still in flight).
        Commit(i64),
        /// The receiver lagged: catch up from storage.
        Resync,
    }

    /// The stream's side: a tracker, what reached the client, and storage
    /// (seqs `1..=stored` exist; storage is read `page` rows at a time).
    struct Stream {
        tracker: SeqTracker,
        out: Vec<i64>,
        stored: i64,
        page: i64,
    }

    impl Stream {
        fn new(after: i64, page: i64) -> Stream {
            Stream {
                tracker: SeqTracker::after(after),
                out: Vec::new(),
                stored: after.max(0),
                page,
            }
        }

        fn send(&mut self, seq: i64) {
            self.out.push(seq);
            self.tracker.delivered(seq);
        }

        /// `History::page` + the streams' `catch_up` loop.
        fn catch_up(&mut self, until: i64) {
            while self.tracker.next() < until {
                let from = self.tracker.next();
                let to = until.min(from.saturating_add(self.page));
                let page: Vec<i64> = (from..to).take_while(|s| *s <= self.stored).collect();
                if page.is_empty() {
                    return;
                }
                for seq in page {
                    if self.tracker.decide(seq) != Decision::Skip {
                        self.send(seq);
                    }
                }
            }
        }

        /// The streams' `on_event` for a message.
        fn live(&mut self, seq: i64) {
            match self.tracker.decide(seq) {
                Decision::Skip => return,
                Decision::Deliver => {}
                Decision::Fill { to, .. } => self.catch_up(to),
            }
            if self.tracker.decide(seq) != Decision::Skip {
                self.send(seq);
            }
        }
    }

    /// Up to 60 messages, a resume cursor, a page size, and up to 150 steps.
    fn scenario() -> impl Strategy<Value = (i64, i64, i64, Vec<Step>)> {
        (1i64..=60, 0i64..=10, 1i64..=8).prop_flat_map(|(n, after, page)| {
            let step = prop_oneof![
                6 => (1..=n).prop_map(Step::Live),
                2 => (1..=n).prop_map(Step::Commit),
                1 => Just(Step::Resync),
            ];
            (
                Just(n),
                Just(after.min(n)),
                Just(page),
                prop::collection::vec(step, 0..150),
            )
        })
    }

    fn assert_strictly_increasing(out: &[i64], after: i64) -> Result<(), TestCaseError> {
        for w in out.windows(2) {
            prop_assert!(w[0] < w[1], "not strictly increasing: {:?}", out);
        }
        if let Some(first) = out.first() {
            prop_assert!(
                *first > after,
                "replayed {} at or below the cursor {}",
                first,
                after
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Seqs commit in order (a live seq means every lower one is
        /// stored), so whatever the arrival order, duplication or loss,
        /// the client gets every seq after its cursor up to the highest it
        /// has heard of (live, or found by a resync), once, in order.
        #[test]
        fn committed_in_order_delivers_a_gapless_prefix((_n, after, page, steps) in scenario()) {
            let mut s = Stream::new(after, page);
            let mut highest = after;
            for step in &steps {
                match *step {
                    Step::Live(seq) => {
                        s.stored = s.stored.max(seq);
                        highest = highest.max(seq);
                        s.live(seq);
                    }
                    Step::Commit(seq) => s.stored = s.stored.max(seq),
                    Step::Resync => {
                        highest = highest.max(s.stored);
                        s.catch_up(i64::MAX);
                    }
                }
                // The invariant holds after every step, not just at the end.
                let expected: Vec<i64> = (after + 1..=highest).collect();
                prop_assert_eq!(&s.out, &expected, "after {:?}", step);
                prop_assert_eq!(s.tracker.next(), highest + 1);
            }
        }

        /// Even when storage lags behind a live message (it should not, but
        /// a replica or a bug could), the stream never repeats or reorders,
        /// and never holds a live message back.
        #[test]
        fn lagging_storage_never_reorders_or_duplicates((_n, after, page, steps) in scenario()) {
            let mut s = Stream::new(after, page);
            for step in &steps {
                match *step {
                    Step::Live(seq) => {
                        let was_new = seq >= s.tracker.next();
                        s.live(seq);
                        if was_new {
                            prop_assert_eq!(s.out.last(), Some(&seq));
                        }
                    }
                    Step::Commit(seq) => s.stored = s.stored.max(seq),
                    Step::Resync => s.catch_up(i64::MAX),
                }
                assert_strictly_increasing(&s.out, after)?;
            }
        }

        /// The tracker's own algebra, for any values (including negative
        /// cursors and extremes).
        #[test]
        fn tracker_algebra(
            last_seen in prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN), -3i64..3],
            seqs in prop::collection::vec(prop_oneof![-5i64..1000, Just(i64::MAX)], 0..50),
        ) {
            let mut t = SeqTracker::after(last_seen);
            prop_assert_eq!(t.next(), last_seen.clamp(0, i64::MAX - 1) + 1);
            for seq in seqs {
                let next = t.next();
                match t.decide(seq) {
                    Decision::Skip => prop_assert!(seq < next),
                    Decision::Deliver => prop_assert_eq!(seq, next),
                    Decision::Fill { from, to } => {
                        prop_assert!(seq > next);
                        prop_assert_eq!((from, to), (next, seq));
                    }
                }
                t.delivered(seq);
                prop_assert_eq!(t.next(), next.max(seq.saturating_add(1)));
            }
        }
    }
}
