//! Forwarding from this connection's object. Each sink has a cursor over the
//! stored pages (archive objects hold only a page's new events, so a page
//! line is delivered once) and over the alerts raised here. A batch is read
//! from the archive, formatted and sent with core's wire formats, and the
//! cursor moves only once the receiver has taken it. A failing sink backs off
//! on its own clock: pulls and the other sinks go on.

use std::time::Duration;

use snc_core::forward::payload_refused;
use snc_core::forward::replay::{RangeReplay, ReplayPosition, ReplayRead};
use snc_core::forward::sending::{Learned, Sending, Settled};
use snc_core::forward::step::{SinkStep, StepOutcome, StepStart, Waiting};
use snc_core::forward::{
    self, Item, SinkKind, SinkParams, SinkSettings, SinkState, Stream, Target, Verdict,
};
use snc_core::pull::archive;
use snc_core::secret::Secret;
use worker::{console_log, Bucket, Env, Result};

use super::plane::{Plane, SinkCursor};
use crate::config::Config;
use crate::d1::alerts::AlertStore;
use crate::d1::connections::ConnectionRow;
use crate::d1::sinks::{NewDeadLetter, SinkRow, SinkStore, StepReport};
use crate::now;

/// One batch's records and where each lies (page and line, or feed seq).
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    positions: Vec<(i64, i64)>,
    /// Archive reads (R2 ranged GETs) and D1 statements it took.
    reads: u32,
    statements: u32,
    /// The last page line looked at, readable or not: a batch of nothing
    /// but unreadable lines moves the cursor here rather than stick.
    examined: Option<(i64, i64)>,
}

/// The page lines after the cursor, up to what one call can carry.
async fn event_batch(
    plane: &Plane,
    bucket: &Bucket,
    c: &SinkCursor,
    format: snc_core::forward::Format,
    max: usize,
) -> Result<Batch> {
    let mut batch = Batch::default();
    for page in plane.pages_after(c.page, c.line)? {
        let after = (page.id == c.page).then_some(c.line);
        let room = max.saturating_sub(batch.items.len());
        let Some((first, last)) = archive::next_lines(after, page.events, room) else {
            continue;
        };
        batch.examined = Some((page.id, last));
        let (Some((start, _)), Some((_, end))) = (
            archive::member_range(&page.members, first as usize),
            archive::member_range(&page.members, last as usize),
        ) else {
            console_log!(
                "forward: page {} has no member for lines {first}..{last}",
                page.id
            );
            continue;
        };
        let lines = crate::archive::member_lines(bucket, &page.key, start, end).await?;
        batch.reads += 1;
        let base = archive::member_first_line(first);
        for (i, l) in lines.iter().enumerate() {
            let line = base + i as i64;
            if line < first || line > last {
                continue;
            }
            match archive::read_line(&page.key, l) {
                Some(e) => {
                    batch.items.push(forward::event_item(&e, format));
                    batch.positions.push((page.id, line));
                }
                None => console_log!("forward: line {line} of page {} unreadable", page.id),
            }
        }
        if batch.items.len() >= max {
            break;
        }
    }
    Ok(batch)
}

async fn alert_batch(
    plane: &Plane,
    env: &Env,
    c: &SinkCursor,
    format: snc_core::forward::Format,
    instance_url: &str,
    max: usize,
) -> Result<Batch> {
    let store = AlertStore::new(env.d1("DB")?);
    let mut batch = Batch::default();
    let alerts = plane.alerts_after(c.alert_seq, max as i64)?;
    if alerts.is_empty() {
        return Ok(batch);
    }
    // The statuses as they stand now (an admin may have acknowledged one),
    // in one statement.
    let ids: Vec<&str> = alerts.iter().map(|(_, a)| a.id.as_str()).collect();
    let statuses = store.statuses(&ids).await?;
    batch.statements += 1;
    for (seq, alert) in &alerts {
        let status = statuses.get(&alert.id).map_or("open", String::as_str);
        batch
            .items
            .push(forward::alert_item(alert, status, instance_url, format));
        batch.positions.push((*seq, 0));
    }
    Ok(batch)
}

/// Sends the first of `items` that one call of the sink's kind carries (at
/// least one); returns how many that was and what the answer means.
async fn send_batch(
    target: &Target<'_>,
    stream: Stream,
    items: &[Item],
    token: Option<&str>,
    deadline: Duration,
) -> (usize, Verdict) {
    let kind = target.params.kind();
    let n = forward::batch_len(kind, items);
    let req = forward::delivery(target, stream, &items[..n], crate::now(), token);
    (n, send(&req, kind, n, deadline).await)
}

/// Sends one call of `sent` items and reads what the answer means.
async fn send(
    req: &snc_core::http::HttpRequest,
    kind: SinkKind,
    sent: usize,
    deadline: Duration,
) -> Verdict {
    match crate::transport::send_capped(req, deadline, snc_core::http::SINK_ANSWER_CAP).await {
        Ok(resp) => forward::call_verdict(kind, &resp, sent),
        Err(e) => Verdict::Retry {
            after_secs: None,
            status: 0,
            message: e.to_string(),
        },
    }
}

fn jitter() -> f64 {
    crate::random_bytes::<1>().map_or(0.5, |b| f64::from(b[0]) / 255.0)
}

/// What every sink's step in one alarm shares.
struct Forwarding<'a> {
    env: &'a Env,
    plane: &'a Plane,
    bucket: &'a Bucket,
    row: &'a ConnectionRow,
    config: &'a Config,
    store: SinkStore,
    /// Asked between calls: true once the connection is being deleted.
    stopping: &'a dyn Fn() -> bool,
}

/// Every matching sink's step; returns when a sink next wants the alarm.
pub async fn run(
    env: &Env,
    config: &Config,
    plane: &Plane,
    bucket: &Bucket,
    row: &ConnectionRow,
    stopping: &dyn Fn() -> bool,
) -> Result<Option<i64>> {
    let forwarding = Forwarding {
        env,
        plane,
        bucket,
        row,
        config,
        store: SinkStore::new(env.d1("DB")?),
        stopping,
    };
    let all = forwarding.store.list().await?;
    plane.keep_sink_cursors(&all.iter().map(|s| s.id.clone()).collect::<Vec<_>>())?;
    let mut want: Option<i64> = None;
    for sink in all
        .iter()
        .filter(|s| s.state != SinkState::Disabled && s.serves(&row.id))
    {
        if stopping() {
            return Ok(None);
        }
        let Some(settings) = sink.settings.as_ref() else {
            continue;
        };
        let mut cursor = match plane.sink_cursor(&sink.id)? {
            Some(c) => c,
            None => plane.start_sink_cursor(&sink.id, sink.created_at)?,
        };
        let next = forwarding
            .step(sink, settings, &mut cursor)
            .await
            .unwrap_or_else(|e| {
                console_log!("forward: sink {} for {}: {e}", sink.id, row.id);
                Some(now() + 60)
            });
        if let Some(at) = next {
            want = Some(want.map_or(at, |w: i64| w.min(at)));
        }
    }
    Ok(want)
}

/// What one sink's step carries through its sends: its budget and clock
/// (core's `SinkStep`), what it reports, where and how it sends, and how the
/// sending ended.
struct Delivery<'a> {
    sink_step: SinkStep,
    report: StepReport<'a>,
    target: Target<'a>,
    token: Option<Secret>,
    failure: Option<(Verdict, i64)>,
    /// An item refused alone at the end of what is pending: the sink waits
    /// for a later item to show the receiver takes others (not a failure).
    waiting: bool,
    /// A call size a 413 taught holds for the rest of the step.
    learned: Learned,
    reads: u32,
    statements: u32,
}

impl Forwarding<'_> {
    async fn step(
        &self,
        sink: &SinkRow,
        settings: &SinkSettings,
        cursor: &mut SinkCursor,
    ) -> Result<Option<i64>> {
        let Forwarding {
            env,
            plane,
            bucket,
            row,
            config,
            store,
            stopping,
        } = self;
        let (env, plane, bucket, row) = (*env, *plane, *bucket, *row);
        let deadline = config.sink_deadline;
        let now = now();
        let pending = |c: &SinkCursor| -> Result<u64> {
            let events = if settings.streams.contains(&Stream::Events) {
                plane.pending_events(c.page, c.line)?
            } else {
                0
            };
            let alerts = if settings.streams.contains(&Stream::Alerts) {
                plane.pending_alerts(c.alert_seq)?
            } else {
                0
            };
            Ok((events + alerts).max(0) as u64)
        };
        let replay_due = sink.replay_at.is_some_and(|r| r > cursor.replay_at);
        let sink_step = SinkStep::new(cursor.clock());
        // A dead-letter replay asked since the last one done (read once, and
        // only when the sink is due).
        let dead_key = format!("dead_letter_replay:{}", sink.id);
        let mut dead_due: Option<i64> = None;
        let start = sink_step.start(now, || {
            if let Some(asked) = sink.dead_letter_replay_at {
                let done = plane
                    .meta(&dead_key)?
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                dead_due = Some(asked).filter(|a| *a > done);
            }
            Ok::<_, worker::Error>(Waiting {
                pending: pending(cursor)?,
                replay: replay_due,
                dead_letters: dead_due.is_some(),
            })
        })?;
        match start {
            StepStart::NotDue(at) => return Ok(Some(at)),
            StepStart::Idle => return Ok(None),
            StepStart::Go => {}
        }
        let mut report = StepReport {
            sink_id: &sink.id,
            connection_id: &row.id,
            delivered: 0,
            repeats: 0,
            pending: 0,
            succeeded_at: None,
            failed: None,
            state: None,
        };
        let Some(secret) = config.keys.as_ref().and_then(|ring| sink.secret(ring)) else {
            let end = sink_step.unopenable(now, config.sink_backoff_max_secs);
            report.failed = end.failed.as_ref().map(|(at, s, m)| (*at, *s, m.as_str()));
            report.state = end.state;
            report.pending = pending(cursor)?;
            store.report(&report).await?;
            cursor.set_clock(end.clock);
            plane.save_sink_cursor(cursor)?;
            return Ok(end.next);
        };
        let host = row
            .instance_url
            .split("://")
            .nth(1)
            .unwrap_or(&row.instance_url)
            .to_string();
        let mut failure: Option<(Verdict, i64)> = None;
        let mut token: Option<Secret> = None;
        if matches!(settings.params, SinkParams::Sentinel { .. }) {
            match sentinel_token(&settings.params, &secret, deadline).await {
                Ok(t) => token = Some(t),
                Err(v) => failure = Some((v, now)),
            }
        }
        let mut d = Delivery {
            sink_step,
            report,
            target: Target {
                url: &settings.url,
                params: &settings.params,
                secret: &secret,
                host: &host,
            },
            token,
            failure,
            waiting: false,
            learned: Learned::default(),
            reads: 0,
            statements: 0,
        };
        self.send_new(sink, settings, cursor, &mut d).await?;
        let Delivery {
            mut sink_step,
            mut report,
            target,
            token,
            mut failure,
            waiting,
            reads,
            mut statements,
            ..
        } = d;

        if stopping() {
            return Ok(None);
        }
        if let (None, Some(asked)) = (&failure, dead_due) {
            let replay = DeadLetterReplay {
                plane,
                bucket,
                env,
                store,
                sink,
                settings,
                target: &target,
                token: token.as_ref().map(Secret::expose),
                row,
                deadline,
            };
            match replay.run().await? {
                DeadLetterOutcome::Done { delivered } => {
                    plane.set_meta(&dead_key, &asked.to_string())?;
                    report.delivered += delivered;
                }
                DeadLetterOutcome::Failed(v) => failure = Some((v, crate::now())),
            }
        }
        if failure.is_none() && replay_due && sink_step.may_replay() {
            let replay = Replay {
                plane,
                bucket,
                alerts: AlertStore::new(env.d1("DB")?),
                sink,
                settings,
                target: &target,
                token: token.as_ref().map(Secret::expose),
                connection_id: &row.id,
                instance_url: &row.instance_url,
                deadline,
                members_per_read: config.events_members_per_read,
            };
            match replay.run(cursor, &mut sink_step).await? {
                Some(v) => failure = Some((v, crate::now())),
                None => report.succeeded_at = report.succeeded_at.or(Some(crate::now())),
            }
        }
        let calls = sink_step.calls();
        let left = Waiting {
            pending: pending(cursor)?,
            replay: replay_due && sink.replay_at.is_some_and(|r| r > cursor.replay_at),
            dead_letters: false,
        };
        let before = cursor.clock();
        let end = sink_step.end(
            crate::now(),
            StepOutcome {
                failure,
                waiting_for_witness: waiting,
                left,
            },
            jitter(),
            config.sink_backoff_max_secs,
        );
        if end.clock != before {
            cursor.set_clock(end.clock);
            plane.save_sink_cursor(cursor)?;
        }
        if let Some((at, status, _)) = &end.failed {
            console_log!(
                "forward: sink {} for {} failed ({status}); again in {} s",
                sink.id,
                row.id,
                end.clock.next_at - at
            );
        }
        report.failed = end.failed.as_ref().map(|(at, s, m)| (*at, *s, m.as_str()));
        report.state = end.state;
        report.pending = left.pending;
        let next = end.next;
        store.report(&report).await?;
        statements += 1
            + u32::from(report.succeeded_at.is_some())
            + u32::from(report.failed.is_some())
            + u32::from(report.state.is_some());
        // What forwarding costs, for `make bench` (ids and counts only).
        console_log!(
        "forward: {} {}: {} records in {calls} calls, {reads} archive reads, {statements} D1 statements",
        sink.id,
        row.id,
        report.delivered
    );
        Ok(next)
    }

    /// Sends what is new on each of the sink's streams, as far as the step's
    /// calls and the receiver allow, moving the cursor as core's `Sending`
    /// settles each answer.
    async fn send_new(
        &self,
        sink: &SinkRow,
        settings: &SinkSettings,
        cursor: &mut SinkCursor,
        d: &mut Delivery<'_>,
    ) -> Result<()> {
        let (env, plane, bucket, row, store) =
            (self.env, self.plane, self.bucket, self.row, &self.store);
        let stopping = self.stopping;
        let deadline = self.config.sink_deadline;
        let kind = settings.params.kind();
        let max = kind.limits().items;
        'streams: for stream in settings.streams.iter().copied() {
            while d.failure.is_none() && d.sink_step.may_send() {
                let batch = match stream {
                    Stream::Events => {
                        event_batch(plane, bucket, cursor, settings.format, max).await?
                    }
                    Stream::Alerts => {
                        alert_batch(plane, env, cursor, settings.format, &row.instance_url, max)
                            .await?
                    }
                };
                d.reads += batch.reads;
                d.statements += batch.statements;
                if batch.items.is_empty() {
                    // Lines the archive cannot give back (a lost object, a line
                    // that does not parse) are logged and passed over: waiting
                    // would not bring them back and would hold every later event.
                    if let (Stream::Events, Some((p, l))) = (stream, batch.examined) {
                        console_log!("forward: sink {} for {} passes over unreadable lines up to page {p} line {l}", sink.id, row.id);
                        cursor.page = p;
                        cursor.line = l;
                        plane.save_sink_cursor(cursor)?;
                        continue;
                    }
                    continue 'streams;
                }
                let token = d.token.as_ref().map(Secret::expose);
                // Core's `Sending` says what each answer settles: whole calls
                // while the receiver takes them; a refused payload is halved
                // until the item at fault is alone, then kept as a dead letter
                // and passed over, so one item cannot stop the feed.
                let mut sending = Sending::new(batch.items.len()).learned_from(d.learned);
                while let Some(range) =
                    sending.next_call(|start| forward::batch_len(kind, &batch.items[start..]))
                {
                    // A delete stops the sink between two calls: none after it.
                    if !d.sink_step.may_narrow() || stopping() {
                        break 'streams;
                    }
                    let req = forward::delivery(
                        &d.target,
                        stream,
                        &batch.items[range.clone()],
                        crate::now(),
                        token,
                    );
                    let verdict = send(&req, kind, range.len(), deadline).await;
                    d.sink_step.called();
                    let settled = sending.handle(range, verdict);
                    d.learned = sending.learned();
                    match settled {
                        Settled::Moved {
                            upto,
                            delivered,
                            repeats,
                            dead,
                        } => {
                            // The dead letters are kept before the cursor passes
                            // them: a crash between sends them again, never loses.
                            if !dead.is_empty() {
                                let letters: Vec<NewDeadLetter> = dead
                                    .iter()
                                    .filter_map(|letter| {
                                        let item = batch.items.get(letter.index)?;
                                        let (page, line) = *batch.positions.get(letter.index)?;
                                        Some(NewDeadLetter {
                                            stream,
                                            item_id: &item.id,
                                            page,
                                            line,
                                            status: letter.status,
                                            reason: &letter.reason,
                                        })
                                    })
                                    .collect();
                                store
                                    .add_dead_letters(&sink.id, &row.id, &letters, crate::now())
                                    .await?;
                                d.statements += 1;
                                console_log!(
                                "forward: sink {} for {}: {} item(s) refused on their own kept as dead letters ({})",
                                sink.id,
                                row.id,
                                dead.len(),
                                dead.iter().map(|letter| letter.status.to_string()).collect::<Vec<_>>().join(", ")
                            );
                            }
                            let Some(&last) = batch.positions.get(upto - 1) else {
                                break;
                            };
                            cursor.passed(stream, last);
                            d.sink_step.delivered();
                            cursor.set_clock(d.sink_step.clock());
                            plane.save_sink_cursor(cursor)?;
                            d.report.delivered += delivered as u64;
                            d.report.repeats += u64::from(repeats);
                            d.report.succeeded_at = Some(crate::now());
                        }
                        Settled::Narrowed => {}
                        Settled::Waiting { status, reason } => {
                            console_log!(
                            "forward: sink {} for {}: the newest item is refused alone ({status}: {reason}); it waits for a later one",
                            sink.id,
                            row.id
                        );
                            d.waiting = true;
                            continue 'streams;
                        }
                        Settled::Failed(other) => {
                            d.failure = Some((other, crate::now()));
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

async fn sentinel_token(
    params: &SinkParams,
    secret: &Secret,
    deadline: Duration,
) -> std::result::Result<Secret, Verdict> {
    let Some(req) = forward::sentinel_token_request(params, secret) else {
        return Err(Verdict::Refused {
            status: 0,
            message: "not a Sentinel sink".into(),
        });
    };
    match crate::transport::send_capped(&req, deadline, snc_core::http::SINK_ANSWER_CAP).await {
        Ok(resp) => forward::sentinel_token(&resp).map(|(t, _)| t),
        Err(e) => Err(Verdict::Retry {
            after_secs: None,
            status: 0,
            message: format!("token endpoint: {e}"),
        }),
    }
}

/// Sends a connection's dead letters of one sink again, once an admin has
/// mended the receiver and asked: what it takes leaves the list, what it
/// refuses again stays.
struct DeadLetterReplay<'a> {
    plane: &'a Plane,
    bucket: &'a Bucket,
    env: &'a Env,
    store: &'a SinkStore,
    sink: &'a SinkRow,
    settings: &'a SinkSettings,
    target: &'a Target<'a>,
    token: Option<&'a str>,
    row: &'a ConnectionRow,
    deadline: Duration,
}

enum DeadLetterOutcome {
    Done { delivered: u64 },
    Failed(Verdict),
}

/// Dead letters sent again per ask, oldest first: the rest wait for the
/// next ask.
const DEAD_LETTERS_PER_REPLAY: u32 = 200;
/// Calls one dead-letter replay may make.
const DEAD_LETTER_REPLAY_CALLS: u32 = 20;

impl DeadLetterReplay<'_> {
    async fn run(&self) -> Result<DeadLetterOutcome> {
        let letters = self
            .store
            .oldest_dead_letters(&self.sink.id, &self.row.id, DEAD_LETTERS_PER_REPLAY)
            .await?;
        let mut calls = 0;
        let kind = self.settings.params.kind();
        let alerts = AlertStore::new(self.env.d1("DB")?);
        let mut delivered = 0;
        for stream in self.settings.streams.iter().copied() {
            // Each letter read back from where it lies; one that cannot be
            // (its page past the retention) leaves the list.
            let mut items = Vec::new();
            let mut ids = Vec::new();
            let mut gone = Vec::new();
            for l in letters.iter().filter(|l| l.stream == stream.as_str()) {
                let item = match stream {
                    Stream::Events => self
                        .event_at(l.page, l.line)
                        .await?
                        .map(|e| forward::event_item(&e, self.settings.format)),
                    Stream::Alerts => alerts.get(&l.item_id).await?.map(|a| {
                        forward::alert_item(
                            &a.alert,
                            a.status.as_str(),
                            &self.row.instance_url,
                            self.settings.format,
                        )
                    }),
                };
                match item {
                    Some(item) => {
                        items.push(item);
                        ids.push(l.id.clone());
                    }
                    None => gone.push(l.id.clone()),
                }
            }
            self.store.forget_dead_letters(&gone).await?;
            let mut sending = Sending::new(items.len());
            let mut taken = Vec::new();
            while let Some(range) =
                sending.next_call(|start| forward::batch_len(kind, &items[start..]))
            {
                if calls >= DEAD_LETTER_REPLAY_CALLS {
                    break;
                }
                calls += 1;
                let req = forward::delivery(
                    self.target,
                    stream,
                    &items[range.clone()],
                    crate::now(),
                    self.token,
                );
                let verdict = send(&req, kind, range.len(), self.deadline).await;
                let start = range.start;
                let end = range.end;
                match sending.handle(range, verdict) {
                    Settled::Moved { dead, .. } => {
                        let refused: Vec<usize> = dead.iter().map(|d| d.index).collect();
                        for i in start..end {
                            if !refused.contains(&i) {
                                taken.extend(ids.get(i).cloned());
                            }
                        }
                    }
                    Settled::Narrowed => {}
                    // Refused again, item by item or whole: the receiver is
                    // not mended for these; they stay, the feed goes on.
                    Settled::Waiting { .. } => break,
                    Settled::Failed(Verdict::Refused { status, .. }) if payload_refused(status) => {
                        break
                    }
                    Settled::Failed(v) => {
                        self.store.forget_dead_letters(&taken).await?;
                        return Ok(DeadLetterOutcome::Failed(v));
                    }
                }
            }
            delivered += taken.len() as u64;
            self.store.forget_dead_letters(&taken).await?;
        }
        Ok(DeadLetterOutcome::Done { delivered })
    }

    /// The event at a page's line, if the page is still kept.
    async fn event_at(
        &self,
        page: i64,
        line: i64,
    ) -> Result<Option<snc_core::pull::events::Event>> {
        let Some(p) = self.plane.page_by_id(page)? else {
            return Ok(None);
        };
        let Some((start, end)) = archive::member_range(&p.members, line.max(0) as usize) else {
            return Ok(None);
        };
        let lines = crate::archive::member_lines(self.bucket, &p.key, start, end).await?;
        Ok(lines
            .get(line.max(0) as usize % archive::LINES_PER_MEMBER)
            .and_then(|l| archive::read_line(&p.key, l)))
    }
}

/// A replay's reach: what it reads from, sends to, and for which connection.
struct Replay<'a> {
    plane: &'a Plane,
    bucket: &'a Bucket,
    alerts: AlertStore,
    sink: &'a SinkRow,
    settings: &'a SinkSettings,
    target: &'a Target<'a>,
    token: Option<&'a str>,
    connection_id: &'a str,
    instance_url: &'a str,
    deadline: Duration,
    /// Archived pages one read of the range may open.
    members_per_read: u32,
}

/// What one call of a replay did.
enum ReplayStep {
    Sent(ReplayPosition),
    Failed(Verdict),
    /// Nothing left of this part of the range.
    Done,
}

impl Replay<'_> {
    /// The replay asked for: the range's events again in time order, then
    /// the alerts whose first to last sighting meets the range, from where
    /// the last alarm stopped. `Some` when a call failed.
    async fn run(
        &self,
        cursor: &mut SinkCursor,
        sink_step: &mut SinkStep,
    ) -> Result<Option<Verdict>> {
        let (Some(from), Some(to), Some(asked)) = (
            self.sink.replay_from,
            self.sink.replay_to,
            self.sink.replay_at,
        ) else {
            return Ok(None);
        };
        let range = (from, to);
        // Core's `RangeReplay` says what comes next (a sink that stopped
        // taking events mid-replay goes on to the alerts; one that stopped
        // taking alerts is done with them).
        let replay = RangeReplay {
            asked,
            takes_events: self.settings.streams.contains(&Stream::Events),
            takes_alerts: self.settings.streams.contains(&Stream::Alerts),
        };
        for _ in 0..snc_core::forward::step::CALLS_PER_SINK {
            let position = replay.current(cursor.replay_after.as_ref());
            let step = match replay.next(position.as_ref()) {
                ReplayRead::Done => ReplayStep::Done,
                ReplayRead::Alerts { after } => self.alerts_after(range, asked, after).await?,
                ReplayRead::Events { after } => self.events_after(range, asked, after).await?,
            };
            match step {
                ReplayStep::Sent(p) => {
                    // The receiver took a call: as after any delivery, a
                    // later failure starts its backoff and its day afresh.
                    cursor.replay_after = Some(p);
                    sink_step.delivered();
                    cursor.set_clock(sink_step.clock());
                }
                ReplayStep::Failed(v) => return Ok(Some(v)),
                ReplayStep::Done => match replay.part_done(position.as_ref()) {
                    Some(alerts) => cursor.replay_after = Some(alerts),
                    None => {
                        cursor.replay_at = asked;
                        cursor.replay_after = None;
                        self.plane.save_sink_cursor(cursor)?;
                        return Ok(None);
                    }
                },
            }
            self.plane.save_sink_cursor(cursor)?;
        }
        Ok(None)
    }

    async fn events_after(
        &self,
        (from, to): (i64, i64),
        asked: i64,
        after: Option<(i64, String, String)>,
    ) -> Result<ReplayStep> {
        let kind = self.settings.params.kind();
        let q = super::IndexQuery {
            from: Some(from),
            to: Some(to),
            after,
            limit: kind.limits().items as u32,
            newest_first: false,
            ..Default::default()
        };
        let read = super::read_events(self.plane, self.bucket, &q, self.members_per_read).await?;
        let events = read.events;
        if events.is_empty() {
            // Nothing in this read's pages: on from where it stopped.
            return Ok(match read.resume {
                Some((t, table, sys_id)) => {
                    ReplayStep::Sent(ReplayPosition::Events(asked, t, table, sys_id))
                }
                None => ReplayStep::Done,
            });
        }
        let items: Vec<Item> = events
            .iter()
            .map(|e| forward::event_item(e, self.settings.format))
            .collect();
        let (n, verdict) = send_batch(
            self.target,
            Stream::Events,
            &items,
            self.token,
            self.deadline,
        )
        .await;
        Ok(match verdict {
            // A replay sends what the receiver will take again; items it
            // refuses one by one are not dead-lettered a second time.
            Verdict::Accepted { .. } | Verdict::Partial { .. } => {
                let last = &events[n - 1];
                let t = snc_core::clock::parse_rfc3339(&last.occurred_at).unwrap_or(0);
                ReplayStep::Sent(ReplayPosition::Events(
                    asked,
                    t,
                    last.source_table.clone(),
                    last.sys_id().to_string(),
                ))
            }
            other => ReplayStep::Failed(other),
        })
    }

    async fn alerts_after(
        &self,
        (from, to): (i64, i64),
        asked: i64,
        after: Option<(String, String)>,
    ) -> Result<ReplayStep> {
        let kind = self.settings.params.kind();
        let page = self
            .alerts
            .list(&crate::d1::alerts::AlertQuery {
                connection_id: Some(self.connection_id.to_string()),
                from: Some(from),
                to: Some(to),
                after,
                limit: kind.limits().items as u32,
                oldest_first: true,
                ..Default::default()
            })
            .await?;
        let alerts = page.alerts;
        if alerts.is_empty() {
            // A full page of rows this release cannot read is passed over.
            return Ok(match page.next {
                Some(after) => ReplayStep::Sent(ReplayPosition::Alerts {
                    asked,
                    after: Some(after),
                }),
                None => ReplayStep::Done,
            });
        }
        let items: Vec<Item> = alerts
            .iter()
            .map(|a| {
                forward::alert_item(
                    &a.alert,
                    a.status.as_str(),
                    self.instance_url,
                    self.settings.format,
                )
            })
            .collect();
        let (n, verdict) = send_batch(
            self.target,
            Stream::Alerts,
            &items,
            self.token,
            self.deadline,
        )
        .await;
        Ok(match verdict {
            Verdict::Accepted { .. } | Verdict::Partial { .. } => {
                let last = &alerts[n - 1].alert;
                ReplayStep::Sent(ReplayPosition::Alerts {
                    asked,
                    after: Some((last.first_seen.clone(), last.id.clone())),
                })
            }
            other => ReplayStep::Failed(other),
        })
    }
}
