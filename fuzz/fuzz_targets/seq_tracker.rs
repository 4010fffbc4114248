//! The stream ordering rule with arbitrary seqs (overflow, negatives).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::fanout::order::{Decision, SeqTracker};

fuzz_target!(|input: (i64, Vec<i64>)| {
    let (last_seen, seqs) = input;
    let mut t = SeqTracker::after(last_seen);
    assert!(t.next() >= 1);
    for seq in seqs {
        let next = t.next();
        match t.decide(seq) {
            Decision::Skip => assert!(seq < next),
            Decision::Deliver => assert_eq!(seq, next),
            Decision::Fill { from, to } => assert!(from == next && to == seq && seq > next),
        }
        t.delivered(seq);
        assert!(t.next() >= next);
    }
});
