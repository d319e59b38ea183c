//! A range replay as decisions: what a sink's replay reads next from where
//! it stands, and where it goes when a part of the range is done. The range
//! is sent again in two parts, its events in time order, then the alerts
//! whose first to last sighting meets it; the host reads and sends, and
//! stores the position between alarms.

use serde::{Deserialize, Serialize};

/// Where a replay stands between alarms. Each position names the replay it
/// belongs to (`asked`, the ask's time), so a newer ask starts again from
/// the range's beginning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplayPosition {
    /// Events sent up to (asked, occurred_at, source_table, sys_id): the
    /// array releases before alerts were replayed stored too.
    Events(i64, i64, String, String),
    /// Every event of the range sent; alerts up to (first_seen, id).
    Alerts {
        asked: i64,
        after: Option<(String, String)>,
    },
}

impl ReplayPosition {
    /// The ask this position belongs to.
    pub fn asked(&self) -> i64 {
        match self {
            ReplayPosition::Events(asked, ..) | ReplayPosition::Alerts { asked, .. } => *asked,
        }
    }

    /// A stored position (JSON); one that does not decode (written by a
    /// later release) restarts its replay: the range is sent again, which
    /// a receiver drops as repeats.
    pub fn decode(text: &str) -> Option<ReplayPosition> {
        serde_json::from_str(text).ok()
    }
}

/// What a replay reads next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayRead {
    /// The range's events after this (occurred_at, source_table, sys_id).
    Events {
        after: Option<(i64, String, String)>,
    },
    /// The range's alerts after this (first_seen, id).
    Alerts { after: Option<(String, String)> },
    /// Nothing left to send.
    Done,
}

/// One sink's replay of one ask, for the streams the sink takes now.
#[derive(Clone, Copy, Debug)]
pub struct RangeReplay {
    pub asked: i64,
    pub takes_events: bool,
    pub takes_alerts: bool,
}

impl RangeReplay {
    /// The stored position, if it belongs to this ask.
    pub fn current(&self, stored: Option<&ReplayPosition>) -> Option<ReplayPosition> {
        stored.filter(|p| p.asked() == self.asked).cloned()
    }

    /// In the alerts part: there already, or the sink takes no events (it
    /// may have stopped taking them in the middle of the replay).
    fn in_alerts(&self, position: Option<&ReplayPosition>) -> bool {
        match position {
            Some(ReplayPosition::Alerts { .. }) => true,
            Some(ReplayPosition::Events(..)) | None => !self.takes_events,
        }
    }

    /// What to read from `position` (this ask's, see `current`).
    pub fn next(&self, position: Option<&ReplayPosition>) -> ReplayRead {
        let in_alerts = self.in_alerts(position);
        match position {
            _ if in_alerts && !self.takes_alerts => ReplayRead::Done,
            Some(ReplayPosition::Alerts { after, .. }) => ReplayRead::Alerts {
                after: after.clone(),
            },
            _ if in_alerts => ReplayRead::Alerts { after: None },
            Some(ReplayPosition::Events(_, t, table, sys_id)) => ReplayRead::Events {
                after: Some((*t, table.clone(), sys_id.clone())),
            },
            None => ReplayRead::Events { after: None },
        }
    }

    /// The part read from `position` has nothing left: the alerts' start
    /// when the events are done and the sink takes alerts, else `None`, the
    /// whole replay is done.
    pub fn part_done(&self, position: Option<&ReplayPosition>) -> Option<ReplayPosition> {
        (!self.in_alerts(position) && self.takes_alerts).then_some(ReplayPosition::Alerts {
            asked: self.asked,
            after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(takes_events: bool, takes_alerts: bool) -> RangeReplay {
        RangeReplay {
            asked: 7,
            takes_events,
            takes_alerts,
        }
    }

    /// Drives a replay to its end: each part sends `per_part` calls, then
    /// reports done. Returns what was read, in order.
    fn drive(
        r: RangeReplay,
        mut position: Option<ReplayPosition>,
        per_part: i64,
    ) -> Vec<ReplayRead> {
        let mut reads = Vec::new();
        let mut sent_in_part = 0;
        for _ in 0..100 {
            let read = r.next(position.as_ref());
            reads.push(read.clone());
            match read {
                ReplayRead::Done => return reads,
                _ if sent_in_part < per_part => {
                    sent_in_part += 1;
                    position = Some(match read {
                        ReplayRead::Events { .. } => ReplayPosition::Events(
                            r.asked,
                            sent_in_part,
                            "sysevent".into(),
                            format!("{sent_in_part}"),
                        ),
                        _ => ReplayPosition::Alerts {
                            asked: r.asked,
                            after: Some((format!("{sent_in_part}"), "a".into())),
                        },
                    });
                }
                _ => {
                    sent_in_part = 0;
                    match r.part_done(position.as_ref()) {
                        Some(p) => position = Some(p),
                        None => return reads,
                    }
                }
            }
        }
        panic!("the replay never ended");
    }

    fn kinds(reads: &[ReplayRead]) -> String {
        reads
            .iter()
            .map(|r| match r {
                ReplayRead::Events { .. } => 'e',
                ReplayRead::Alerts { .. } => 'a',
                ReplayRead::Done => '.',
            })
            .collect()
    }

    #[test]
    fn events_then_alerts_each_from_where_it_stopped() {
        let reads = drive(replay(true, true), None, 2);
        assert_eq!(kinds(&reads), "eeeaaa");
        assert_eq!(reads[0], ReplayRead::Events { after: None });
        assert_eq!(
            reads[1],
            ReplayRead::Events {
                after: Some((1, "sysevent".into(), "1".into()))
            }
        );
        assert_eq!(reads[3], ReplayRead::Alerts { after: None });
        assert_eq!(kinds(&drive(replay(true, false), None, 2)), "eee");
        assert_eq!(kinds(&drive(replay(false, true), None, 2)), "aaa");
        assert_eq!(kinds(&drive(replay(false, false), None, 2)), ".");
    }

    #[test]
    fn a_sink_that_changes_its_streams_mid_replay_goes_on_with_what_it_takes() {
        let in_events = Some(ReplayPosition::Events(7, 5, "sys_audit".into(), "x".into()));
        // Stopped taking events: on to the alerts.
        assert_eq!(
            replay(false, true).next(in_events.as_ref()),
            ReplayRead::Alerts { after: None }
        );
        // Stopped taking alerts while sending them: done.
        let in_alerts = Some(ReplayPosition::Alerts {
            asked: 7,
            after: Some(("t".into(), "a1".into())),
        });
        assert_eq!(
            replay(true, false).next(in_alerts.as_ref()),
            ReplayRead::Done
        );
        assert_eq!(replay(true, false).part_done(in_alerts.as_ref()), None);
    }

    #[test]
    fn a_newer_ask_starts_again_and_positions_keep_their_stored_form() {
        let old = ReplayPosition::Events(3, 5, "sysevent".into(), "x".into());
        assert_eq!(replay(true, true).current(Some(&old)), None);
        let mine = ReplayPosition::Alerts {
            asked: 7,
            after: None,
        };
        assert_eq!(replay(true, true).current(Some(&mine)), Some(mine.clone()));
        // The stored JSON, as releases before wrote it, reads back.
        assert_eq!(
            ReplayPosition::decode(r#"[3,5,"sysevent","x"]"#),
            Some(old.clone())
        );
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"[3,5,"sysevent","x"]"#
        );
        assert_eq!(
            ReplayPosition::decode(r#"{"asked":7,"after":null}"#),
            Some(mine)
        );
        assert_eq!(ReplayPosition::decode(r#"{"later":"form"}"#), None);
    }
}
