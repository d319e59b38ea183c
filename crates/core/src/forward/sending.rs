//! How one batch of items reaches a receiver that may refuse part of it,
//! with no I/O: the host asks `next_call` for the items to send, sends
//! them, and hands the verdict to `handle`, which says what is settled.
//!
//! One item a receiver will never take (a field its mapping rejects, a
//! record too large for it) must not stop the feed: a payload refusal
//! (400, 413, 422) halves the call until the item is alone; an item refused
//! alone becomes a dead letter once the receiver has taken another item of
//! this batch (before it, or the one after it, sent alone as a witness).
//! Without that proof the refusal is the sink's, not the item's (a receiver
//! refusing everything), and nothing is dead-lettered: the batch waits.

use std::ops::Range;

use super::verdicts::{payload_refused, Verdict};

/// An item the receiver refused on its own: recorded and passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its index in the batch.
    pub index: usize,
    pub status: u16,
    pub reason: String,
}

/// What a call's verdict settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Every item before `upto` is settled: delivered, or in `dead`. The
    /// cursor may move past item `upto - 1`.
    Moved {
        upto: usize,
        delivered: usize,
        repeats: u32,
        dead: Vec<DeadLetter>,
    },
    /// Nothing settled; the next call is smaller or a witness.
    Narrowed,
    /// Nothing settled: the items at the cursor are refused alone and no
    /// later item is there yet to show the receiver takes others. Not the
    /// sink's failure: try again once more items are pending.
    Waiting { status: u16, reason: String },
    /// The sink failed: back off with this verdict (nothing settled).
    Failed(Verdict),
}

/// Items in a row refused alone before the refusal counts as the
/// receiver's (it refuses everything), not theirs.
pub const MAX_SUSPECTS: usize = 3;

/// What a step has learned of the receiver so far, carried from one batch
/// to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    /// A call of this many items (or more) was answered 413.
    pub too_large: usize,
    /// The receiver took a call since the last dead letter: an item it
    /// refuses alone now is the item's fault.
    pub took_any: bool,
}

impl Default for Learned {
    fn default() -> Self {
        Learned {
            too_large: usize::MAX,
            took_any: false,
        }
    }
}

/// One batch's sending.
#[derive(Clone, Debug)]
pub struct Sending {
    len: usize,
    /// Items before this are settled.
    next: usize,
    /// The most items a call carries now: halved by a refusal, doubled
    /// again by each call taken, never up to `too_large`.
    cap: usize,
    too_large: usize,
    /// The items from `next` on refused alone, in order: (status, reason).
    suspects: Vec<(u16, String)>,
    took_any: bool,
}

impl Sending {
    pub fn new(len: usize) -> Self {
        Sending {
            len,
            next: 0,
            cap: len.max(1),
            too_large: usize::MAX,
            suspects: Vec::new(),
            took_any: false,
        }
    }

    /// Starts from what earlier batches of the same step learned.
    pub fn learned_from(mut self, l: Learned) -> Self {
        self.too_large = l.too_large;
        self.took_any = l.took_any;
        self.cap = self.cap.min(l.too_large.saturating_sub(1)).max(1);
        self
    }

    /// What this batch learned, for the next.
    pub fn learned(&self) -> Learned {
        Learned {
            too_large: self.too_large,
            took_any: self.took_any,
        }
    }

    /// A call was taken: the next may be larger again (halving found the
    /// item at fault; a 413's size stays out of reach).
    fn grow(&mut self) {
        self.took_any = true;
        self.cap = self
            .cap
            .saturating_mul(2)
            .min(self.too_large.saturating_sub(1))
            .max(1);
    }

    /// The items of the next call; `fits(start)` is how many of the items
    /// from `start` one call of this receiver carries (its limits). `None`
    /// once every item is settled (or, after `Waiting`, none can be now).
    pub fn next_call(&self, fits: impl FnOnce(usize) -> usize) -> Option<Range<usize>> {
        if self.next >= self.len {
            return None;
        }
        if !self.suspects.is_empty() {
            // The witness: the item after the suspects, alone.
            let w = self.next + self.suspects.len();
            return (w < self.len).then_some(w..w + 1);
        }
        let n = fits(self.next)
            .max(1)
            .min(self.cap)
            .min(self.len - self.next);
        Some(self.next..self.next + n)
    }

    /// The suspects as dead letters, from `next` on.
    fn take_suspects(&mut self) -> Vec<DeadLetter> {
        let first = self.next;
        self.suspects
            .drain(..)
            .enumerate()
            .map(|(i, (status, reason))| DeadLetter {
                index: first + i,
                status,
                reason,
            })
            .collect()
    }

    /// The answer to the call of `range`.
    pub fn handle(&mut self, range: Range<usize>, verdict: Verdict) -> Settled {
        let n = range.len();
        match verdict {
            // Taken: any suspects before it are dead letters.
            Verdict::Accepted { repeats } => {
                self.grow();
                let dead = self.take_suspects();
                let delivered = range.end - self.next - dead.len();
                self.next = range.end;
                Settled::Moved {
                    upto: self.next,
                    delivered,
                    repeats,
                    dead,
                }
            }
            // The receiver took some items and refused others by name.
            Verdict::Partial { repeats, refused } => {
                // Most of a call refused one by one is the receiver's
                // mapping or settings, not the items: hold the cursor.
                if n > 1 && refused.len() * 2 > n {
                    let (status, why) = refused
                        .first()
                        .map(|(_, s, m)| (*s, m.clone()))
                        .unwrap_or_default();
                    return Settled::Failed(Verdict::Refused {
                        status,
                        message: format!("{} of {n} items refused; {why}", refused.len()),
                    });
                }
                self.grow();
                let mut dead = self.take_suspects();
                dead.extend(refused.into_iter().filter(|(i, ..)| *i < n).map(
                    |(i, status, reason)| DeadLetter {
                        index: range.start + i,
                        status,
                        reason,
                    },
                ));
                dead.sort_by_key(|d| d.index);
                dead.dedup_by_key(|d| d.index);
                let delivered = (range.end - self.next).saturating_sub(dead.len());
                self.next = range.end;
                // Each dead letter needs fresh proof that the receiver takes
                // other items: a dead letter spends what was learned.
                self.took_any = dead.is_empty();
                Settled::Moved {
                    upto: self.next,
                    delivered,
                    repeats,
                    dead,
                }
            }
            Verdict::Refused { status, message } if payload_refused(status) => {
                if n > 1 {
                    if status == 413 {
                        self.too_large = self.too_large.min(n);
                    }
                    self.cap = n / 2;
                    return Settled::Narrowed;
                }
                if status == 413 {
                    // One item too large: the item, not the call's size.
                    self.too_large = usize::MAX;
                }
                if self.took_any && self.suspects.is_empty() {
                    self.took_any = false;
                    let dead = vec![DeadLetter {
                        index: range.start,
                        status,
                        reason: message,
                    }];
                    self.next = range.end;
                    return Settled::Moved {
                        upto: self.next,
                        delivered: 0,
                        repeats: 0,
                        dead,
                    };
                }
                self.suspects.push((status, message.clone()));
                if self.suspects.len() > MAX_SUSPECTS {
                    self.suspects.clear();
                    return Settled::Failed(Verdict::Refused { status, message });
                }
                if self.next + self.suspects.len() >= self.len {
                    self.suspects.clear();
                    // Nothing more to try in this batch.
                    self.next = self.len;
                    return Settled::Waiting {
                        status,
                        reason: message,
                    };
                }
                Settled::Narrowed
            }
            other => {
                self.suspects.clear();
                Settled::Failed(other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver refusing some items by their index, the way a webhook
    /// does (one 400 for the whole call when any item in it is bad).
    fn webhook(poison: &[usize], range: Range<usize>) -> Verdict {
        if range.clone().any(|i| poison.contains(&i)) {
            Verdict::Refused {
                status: 400,
                message: "bad field".into(),
            }
        } else {
            Verdict::Accepted { repeats: 0 }
        }
    }

    #[derive(Debug, PartialEq)]
    enum End {
        Done,
        Waiting,
        Failed(Verdict),
    }

    /// Drives one batch; returns (delivered, dead indices, calls, how it ended).
    fn drive(
        len: usize,
        fits: usize,
        answer: impl Fn(Range<usize>) -> Verdict,
    ) -> (usize, Vec<usize>, u32, End) {
        let mut s = Sending::new(len);
        let (mut delivered, mut dead, mut calls) = (0, Vec::new(), 0);
        let mut last_upto = 0;
        while let Some(range) = s.next_call(|_| fits) {
            calls += 1;
            assert!(calls < 200, "never ends");
            match s.handle(range.clone(), answer(range)) {
                Settled::Moved {
                    upto,
                    delivered: d,
                    dead: gone,
                    ..
                } => {
                    assert!(upto > last_upto, "the cursor only moves forward");
                    last_upto = upto;
                    delivered += d;
                    dead.extend(gone.iter().map(|g| g.index));
                }
                Settled::Narrowed => {}
                Settled::Waiting { .. } => return (delivered, dead, calls, End::Waiting),
                Settled::Failed(v) => return (delivered, dead, calls, End::Failed(v)),
            }
        }
        (delivered, dead, calls, End::Done)
    }

    #[test]
    fn one_poison_item_is_isolated_and_the_rest_delivered() {
        for poison in [0, 1, 250, 498] {
            let (delivered, dead, calls, end) = drive(500, 500, |r| webhook(&[poison], r));
            assert_eq!(end, End::Done, "poison at {poison}");
            assert_eq!(dead, vec![poison]);
            assert_eq!(delivered, 499);
            assert!(calls <= 40, "{calls} calls to isolate one item of 500");
        }
    }

    #[test]
    fn poison_items_in_a_row_are_each_isolated() {
        let (delivered, dead, _, end) = drive(100, 100, |r| webhook(&[0, 1, 40, 41, 42], r));
        assert_eq!(
            (delivered, dead, end),
            (95, vec![0, 1, 40, 41, 42], End::Done)
        );
    }

    #[test]
    fn a_receiver_refusing_everything_dead_letters_nothing() {
        let (delivered, dead, _, end) = drive(64, 64, |_| Verdict::Refused {
            status: 400,
            message: "no".into(),
        });
        assert_eq!((delivered, dead.len()), (0, 0));
        assert!(matches!(
            end,
            End::Failed(Verdict::Refused { status: 400, .. })
        ));
    }

    #[test]
    fn the_last_item_refused_with_nothing_after_it_waits_without_failing_the_sink() {
        let (delivered, dead, _, end) = drive(1, 10, |r| webhook(&[0], r));
        assert_eq!((delivered, dead.len(), end), (0, 0, End::Waiting));
        // Items before it go; it waits for a witness.
        let (delivered, dead, _, end) = drive(8, 8, |r| webhook(&[7], r));
        assert_eq!(delivered, 7);
        assert_eq!(
            dead,
            vec![7],
            "the items before it were taken: proof enough"
        );
        assert_eq!(end, End::Done);
    }

    #[test]
    fn a_413_halves_the_call_until_it_fits() {
        // Calls over 100 items are too large.
        let (delivered, dead, _, end) = drive(1_000, 1_000, |r| {
            if r.len() > 100 {
                Verdict::Refused {
                    status: 413,
                    message: "too large".into(),
                }
            } else {
                Verdict::Accepted { repeats: 0 }
            }
        });
        assert_eq!((delivered, dead.len(), end), (1_000, 0, End::Done));
    }

    #[test]
    fn a_size_learned_from_a_413_carries_to_the_next_batch() {
        let mut s = Sending::new(500);
        let r = s.next_call(|_| 500).unwrap_or(0..0);
        let refused = Verdict::Refused {
            status: 413,
            message: "too large".into(),
        };
        assert_eq!(s.handle(r, refused), Settled::Narrowed);
        let mut next = Sending::new(1_000).learned_from(s.learned());
        assert_eq!(next.next_call(|_| 1_000), Some(0..499));
        let taken = Verdict::Accepted { repeats: 0 };
        assert!(matches!(next.handle(0..499, taken), Settled::Moved { .. }));
        assert_eq!(next.next_call(|_| 1_000), Some(499..998));
    }

    #[test]
    fn credentials_refused_or_a_retry_stop_the_batch_as_before() {
        for v in [
            Verdict::Refused {
                status: 401,
                message: "who".into(),
            },
            Verdict::Retry {
                after_secs: Some(1),
                status: 503,
                message: "busy".into(),
            },
        ] {
            let (delivered, dead, calls, end) = drive(10, 10, |_| v.clone());
            assert_eq!((delivered, dead.len(), calls), (0, 0, 1));
            assert_eq!(end, End::Failed(v));
        }
    }

    #[test]
    fn elastic_items_refused_by_name_are_dead_letters_unless_most_of_the_call_is() {
        let (delivered, dead, calls, end) = drive(10, 10, |r| Verdict::Partial {
            repeats: 1,
            refused: vec![(3 - r.start, 400, "mapper_parsing_exception".into())],
        });
        assert_eq!((delivered, dead, calls, end), (9, vec![3], 1, End::Done));
        let (delivered, dead, _, end) = drive(10, 10, |_| Verdict::Partial {
            repeats: 0,
            refused: (0..6).map(|i| (i, 400, "mapping".into())).collect(),
        });
        assert_eq!((delivered, dead.len()), (0, 0));
        assert!(matches!(
            end,
            End::Failed(Verdict::Refused { status: 400, .. })
        ));
    }
}
