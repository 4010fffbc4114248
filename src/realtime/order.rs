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
    pub fn after(last_seen: i64) -> SeqTracker {
        SeqTracker {
            next: last_seen.max(0) + 1,
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
    pub fn delivered(&mut self, seq: i64) {
        if seq >= self.next {
            self.next = seq + 1;
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
