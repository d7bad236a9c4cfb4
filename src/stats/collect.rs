//! From records to values: which topics are wanted, what their payloads say, and into which
//! series and groups their values go.
//!
//! The read engine's [`Reader`] classifies each line for a window; [`Collector`] turns the
//! records of one window into statistics, [`CatchUp`] those of several consecutive windows
//! from one pass.
//!
//! The per-line path is what reading history costs, so it avoids work that repeats: a topic
//! is looked up borrowed from the line in a hash map that gives an index with the filter
//! decision (filters are matched once per topic), its series' statistics sit in a vector at
//! that index, and a plain number is parsed without a UTF-8 pass. Nothing is allocated per
//! line.

use crate::energy::{Curve, Meter, inside, overlaps};
use crate::payload::{self, Extractor, Reading};
use crate::records::decisions::{Decisions, FastHash};
use crate::records::reader::{Body, Place, Reader};
use crate::statistic::{Series, Statistic, is_output};
use crate::stats::aggregate::{Group, Summary};
use crate::syslog::clock::Zone;
use crate::syslog::line::{LineError, Stamped};
use crate::syslog::source::{Lines, Split};
use crate::time::Window;
use crate::topic::Filters;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// What the statistics take: topics, groups and the payload rules.
pub struct Selection {
    /// `stats.topics`.
    pub topics: Filters,
    /// `[[stats.group]]` topics, by group index.
    pub groups: Vec<Filters>,
    /// Payloads to numbers.
    pub extractor: Extractor,
    /// `stats.summary_topic`: our own JSON summary, never an input even where a filter
    /// (`iotitan/#`) matches it.
    pub summary_topic: Option<String>,
    /// `stats.max_series`: series a window computes at most; later ones are left out.
    pub max_series: usize,
}

/// Where a topic's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Into a series of its own (`stats.topics` matches).
    pub own: bool,
    /// Into these groups.
    pub groups: std::rc::Rc<[usize]>,
}

impl Selection {
    /// Where values of `topic` go; `None` when nowhere (not asked for, or one of our outputs).
    pub fn wanted(&self, topic: &str) -> Option<Wanted> {
        let own = self.topics.matches(topic);
        let groups: Vec<usize> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.matches(topic))
            .map(|(i, _)| i)
            .collect();
        if (!own && groups.is_empty())
            || is_output(topic)
            || self.summary_topic.as_deref() == Some(topic)
        {
            return None;
        }
        Some(Wanted {
            own,
            groups: groups.into(),
        })
    }
}

/// What a collector decided about a topic.
#[derive(Debug, Clone)]
enum Route {
    /// Not wanted (not asked for, one of our outputs, or not UTF-8).
    Unwanted,
    /// Wanted, but the window holds `max_series` series already: left out.
    Full,
    /// Wanted: into its own series (`own`), into `groups`, and when no JSON rule applies,
    /// the payload is the value of series slot `plain`.
    Wanted {
        own: bool,
        groups: Box<[usize]>,
        plain: Option<usize>,
    },
}

/// One series' state in a collector.
///
/// A window may hold a million series (a device that puts a counter in its topic), so a slot
/// is kept small: its name once (the index below finds it by the name, holding no copy), its
/// statistics, and what only some series need (groups, a meter, a curve) boxed and absent
/// until used: 120 bytes and the name.
#[derive(Debug)]
struct Slot {
    name: Box<str>,
    /// The series' own statistics (values pushed while its topic is in `stats.topics`).
    series: Series,
    more: Option<Box<More>>,
}

/// What a series needs beyond its statistics when it joins groups or is followed as a meter
/// or a curve.
#[derive(Debug, Default)]
struct More {
    /// Groups it has joined as a member (indices in the summary's groups).
    joined: Vec<usize>,
    /// Configured group → the summary's group it feeds ([`GroupRules::target`]).
    targets: Vec<(usize, usize)>,
    /// Where its meter stands, when `increase` is asked for.
    meter: Meter,
    /// Its curve, when `integral`, `twmean` or `coverage` is asked for.
    curve: Option<Curve>,
}

impl Slot {
    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }
}

/// Series name → slot index, holding no copy of the names: the slots hold them. A map keyed
/// by name would keep a second copy of every name, a third of a small slot's memory.
#[derive(Debug, Default)]
struct Names {
    table: hashbrown::HashTable<u32>,
    hasher: FastHash,
}

impl Names {
    fn find(&self, slots: &[Slot], name: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&i| &*slots[i as usize].name == name)
            .map(|&i| i as usize)
    }

    /// Record that slot `i` (the last of `slots`) holds its name.
    fn insert(&mut self, slots: &[Slot], i: usize) {
        let Names { table, hasher } = self;
        let hash = hasher.hash_one(&*slots[i].name);
        table.insert_unique(hash, i as u32, |&j| {
            hasher.hash_one(&*slots[j as usize].name)
        });
    }
}

/// Collects one window's statistics from a scan.
pub struct Collector<'s, Z> {
    reader: Reader<Z>,
    selection: &'s Selection,
    /// Line counts and groups; the series are moved in from `slots` at the end.
    summary: Summary,
    keep_values: bool,
    /// Where each topic's values go.
    routes: Decisions<Route>,
    /// Series name → index into `slots`.
    names: Names,
    slots: Vec<Slot>,
    readings: Vec<Reading>,
    /// What each series follows beyond its values: meter, curve.
    follow: Follow,
    /// How the configured groups take values.
    rules: GroupRules,
}

/// What a collector follows of each series in time order, from the lookback on: its meter
/// (`increase`) and its curve (`integral`, `twmean`, `coverage`), counted in the window.
#[derive(Debug, Clone, Copy)]
struct Follow {
    meters: bool,
    /// Intervals up to this long (µs) are integrated; `None`: no curve.
    curves: Option<i64>,
    /// The window, µs.
    window: (i64, i64),
}

impl Follow {
    /// Whether lines before or after the window matter.
    fn any(self) -> bool {
        self.meters || self.curves.is_some()
    }
}

impl<'s, Z: Zone + Clone> Collector<'s, Z> {
    /// A collector for `summary`'s window.
    pub fn new(reader: Reader<Z>, selection: &'s Selection, summary: Summary) -> Self {
        Collector {
            reader,
            selection,
            keep_values: summary.keeps_values(),
            follow: Follow {
                meters: summary.statistics.contains(&Statistic::Increase),
                curves: None,
                window: (
                    summary.start.timestamp_micros(),
                    summary.end.timestamp_micros(),
                ),
            },
            summary,
            rules: GroupRules::default(),
            routes: Decisions::default(),
            names: Names::default(),
            slots: Vec::new(),
            readings: Vec::new(),
        }
    }

    /// Follow each series' curve (when a statistic of it is asked for), bridging intervals
    /// up to `max_gap`. The reader must read `max_gap` before and after the window
    /// ([`Reader::with_lookback`], [`Reader::with_after`]).
    pub fn with_curves(mut self, max_gap: chrono::Duration) -> Self {
        let wanted = self.summary.statistics.iter().any(|s| s.is_curve());
        self.follow.curves = wanted.then(|| max_gap.num_microseconds().unwrap_or(i64::MAX));
        self
    }

    /// Split and restrict the configured groups by `rules`: a `by` group's own entry then
    /// publishes nothing, its sub-groups do.
    pub fn with_groups(mut self, rules: GroupRules) -> Self {
        for (g, by) in rules.by.iter().enumerate() {
            if let (Some(_), Some((_, group))) = (by, self.summary.groups.get_mut(g)) {
                group.split = true;
            }
        }
        self.rules = rules;
        self
    }

    /// The reader (for the scan range).
    pub fn reader(&self) -> &Reader<Z> {
        &self.reader
    }

    /// The line counts so far.
    pub fn lines(&self) -> crate::stats::aggregate::LineCounts {
        self.summary.lines
    }

    /// The statistics of the window.
    pub fn into_summary(self) -> Summary {
        let mut summary = self.summary;
        // In place: the slots' memory becomes the list's (no second copy of a million).
        drop(self.names);
        let mut series: Vec<(Box<str>, Series)> = self
            .slots
            .into_iter()
            .map(|slot| (slot.name, slot.series))
            .collect();
        series.retain(|(_, s)| !s.is_empty());
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        series.shrink_to_fit();
        summary.series = series;
        summary
    }

    /// Account for one line.
    pub fn line(&mut self, raw: &[u8]) -> ControlFlow<()> {
        let stamped = self.reader.stamp(raw);
        self.stamped(stamped)
    }

    /// Account for a stamped line (or journal entry).
    fn stamped(
        &mut self,
        (time, parsed): (Option<i64>, Result<Stamped<'_>, LineError>),
    ) -> ControlFlow<()> {
        let Some(time) = time else {
            return ControlFlow::Continue(());
        };
        match self.reader.place(time) {
            Place::Past => ControlFlow::Break(()),
            Place::Outside => ControlFlow::Continue(()),
            place => {
                if self.wants(place) {
                    let body = self.reader.body(parsed);
                    self.take_line(time, &body, place);
                }
                ControlFlow::Continue(())
            }
        }
    }

    /// Whether lines of `place` (inside the window, before or after it) matter.
    fn wants(&self, place: Place) -> bool {
        match place {
            Place::Inside => true,
            Place::Before => self.follow.any(),
            Place::After => self.follow.curves.is_some(),
            Place::Outside | Place::Past => false,
        }
    }

    /// Account for a line of the window, or let one before or after it move the meters and
    /// curves (and nothing else: the window's line counts are its own lines'). Called only
    /// for a place it [`wants`](Self::wants).
    fn take_line(&mut self, time: i64, body: &Body<'_>, place: Place) {
        if place == Place::Inside {
            self.tally(time, body, place);
        } else {
            let counts = self.summary.lines;
            self.tally(time, body, place);
            self.summary.lines = counts;
        }
    }

    /// Account for a line, counting it in the window or only moving meters and curves.
    fn tally(&mut self, time: i64, body: &Body<'_>, place: Place) {
        let follow = self.follow;
        let counts = &mut self.summary.lines;
        counts.read += 1;
        let Body::Record { topic, payload } = body else {
            counts.skipped += 1;
            return;
        };
        let (selection, names, slots, keep) = (
            self.selection,
            &mut self.names,
            &mut self.slots,
            self.keep_values,
        );
        let decided = self
            .routes
            .decide(topic, |t| route(selection, names, slots, keep, t));
        let (own, groups, plain) = match decided.get() {
            Route::Wanted { own, groups, plain } => (own, groups, plain),
            Route::Full => {
                self.summary.lines.skipped += 1;
                if place == Place::Inside {
                    let topic = std::str::from_utf8(topic).unwrap_or_default();
                    self.summary.left_out.note(topic, 1);
                }
                return;
            }
            Route::Unwanted => {
                self.summary.lines.skipped += 1;
                return;
            }
        };
        let payload = match payload {
            Ok(p) => p,
            Err(_) => {
                self.summary.lines.rejected += 1;
                return;
            }
        };
        if let Some(slot) = *plain {
            match payload::parse_plain(payload) {
                Ok(value) => {
                    self.summary.lines.matched += 1;
                    push(
                        &mut self.summary,
                        &mut self.rules,
                        &mut self.slots[slot],
                        *own,
                        groups,
                        time,
                        value,
                        follow,
                        place,
                    );
                }
                Err(_) => self.summary.lines.rejected += 1,
            }
            return;
        }
        // A JSON rule applies: the general path, one series per field found.
        let topic = std::str::from_utf8(topic).unwrap_or_default();
        self.readings.clear();
        let got = self
            .selection
            .extractor
            .readings(topic, payload, &mut self.readings);
        if got.is_err() {
            self.summary.lines.rejected += 1;
            return;
        }
        self.summary.lines.matched += 1;
        for r in &self.readings {
            let Some(slot) = slot_of(
                &mut self.names,
                &mut self.slots,
                &r.series,
                self.keep_values,
                self.selection.max_series,
            ) else {
                if place == Place::Inside {
                    self.summary.left_out.note(&r.series, 1);
                }
                continue;
            };
            push(
                &mut self.summary,
                &mut self.rules,
                &mut self.slots[slot],
                *own,
                groups,
                time,
                r.value,
                follow,
                place,
            );
        }
    }

    /// An empty collector with this one's settings for the lines of a later range.
    fn fork_empty(&self, reference: DateTime<Utc>) -> Self {
        Collector::new(
            self.reader.fork(reference),
            self.selection,
            self.summary.empty_like(),
        )
    }

    /// Add the results of a collector of the lines that follow this one's.
    fn merge_later(&mut self, later: Self) {
        let summary = later.into_summary();
        let l = summary.lines;
        let counts = &mut self.summary.lines;
        counts.read += l.read;
        counts.matched += l.matched;
        counts.skipped += l.skipped;
        counts.rejected += l.rejected;
        self.summary.left_out.add(&summary.left_out);
        for (name, series) in summary.series {
            let max = self.selection.max_series;
            match slot_of(
                &mut self.names,
                &mut self.slots,
                &name,
                self.keep_values,
                max,
            ) {
                Some(slot) => self.slots[slot].series.merge(series),
                None => self.summary.left_out.note(&name, series.count()),
            }
        }
        for ((_, mine), (_, theirs)) in self.summary.groups.iter_mut().zip(summary.groups) {
            mine.values.merge(theirs.values);
            mine.members.extend(theirs.members);
        }
        // Membership decisions of this collector's slots stay valid: a name in `members`
        // is only ever added.
    }
}

/// Decide where a topic's values go (once per topic).
fn route(
    selection: &Selection,
    names: &mut Names,
    slots: &mut Vec<Slot>,
    keep_values: bool,
    topic: &[u8],
) -> Route {
    let Ok(topic) = std::str::from_utf8(topic) else {
        return Route::Unwanted;
    };
    let Some(Wanted { own, groups }) = selection.wanted(topic) else {
        return Route::Unwanted;
    };
    let plain = if selection.extractor.is_plain(topic) {
        match slot_of(names, slots, topic, keep_values, selection.max_series) {
            Some(slot) => Some(slot),
            None => return Route::Full,
        }
    } else {
        None
    };
    Route::Wanted {
        own,
        groups: groups.iter().copied().collect(),
        plain,
    }
}

/// The slot of series `name`, created empty on first use; `None` when `max` are held.
fn slot_of(
    names: &mut Names,
    slots: &mut Vec<Slot>,
    name: &str,
    keep_values: bool,
    max: usize,
) -> Option<usize> {
    if let Some(i) = names.find(slots, name) {
        return Some(i);
    }
    if slots.len() >= max.min(u32::MAX as usize) {
        return None;
    }
    slots.push(Slot {
        name: name.into(),
        series: Series::new(keep_values),
        more: None,
    });
    let i = slots.len() - 1;
    names.insert(slots, i);
    Some(i)
}

/// How a window's configured groups take their members' values: `by = N` splits a group
/// per topic prefix, a calendar restricts it to some hours of the window.
#[derive(Debug, Clone, Default)]
pub struct GroupRules {
    /// Per configured group: `by = N`.
    by: Vec<Option<usize>>,
    /// Per configured group: the time it counts (a calendar's hours in the window, or the
    /// rest), µs, sorted; `None`: the whole window.
    spans: Vec<Option<Vec<(i64, i64)>>>,
    /// (configured group, sub-group name) → index in the summary's groups.
    sub: HashMap<(usize, String), usize, FastHash>,
}

impl GroupRules {
    /// Rules for groups that each have `by` levels and `spans`, in config order.
    pub fn new(groups: impl IntoIterator<Item = (Option<usize>, Option<Vec<(i64, i64)>>)>) -> Self {
        let (by, spans) = groups.into_iter().unzip();
        GroupRules {
            by,
            spans,
            sub: HashMap::default(),
        }
    }

    /// Whether some group is split or restricted (such a window is read on one thread: the
    /// sub-groups are made as they are met).
    fn any(&self) -> bool {
        self.by.iter().any(Option::is_some) || self.spans.iter().any(Option::is_some)
    }

    /// The summary's group that series `slot` joins as a member of configured group `g`.
    fn target(&mut self, summary: &mut Summary, slot: &mut Slot, g: usize) -> usize {
        if let Some(&(_, i)) = slot
            .more
            .as_ref()
            .and_then(|m| m.targets.iter().find(|(c, _)| *c == g))
        {
            return i;
        }
        let i = match self.by.get(g).copied().flatten() {
            None => g,
            Some(n) => {
                let mut buffer = String::new();
                let name = crate::topic::group_of(&slot.name, n, &mut buffer).to_owned();
                let keep = summary.keeps_values();
                *self.sub.entry((g, name.clone())).or_insert_with(|| {
                    summary.groups.push((name, Group::new(keep)));
                    summary.groups.len() - 1
                })
            }
        };
        slot.more().targets.push((g, i));
        i
    }
}

/// Add a value of a series to itself (when `own`) and to its groups, and move its meter and
/// curve: the meter's step counts where the reading falls, the piece of curve it closes
/// counts its part inside the window (and a group's calendar). A value before or after the
/// window only moves them.
#[allow(clippy::too_many_arguments)]
fn push(
    summary: &mut Summary,
    rules: &mut GroupRules,
    slot: &mut Slot,
    own: bool,
    groups: &[usize],
    t: i64,
    v: f64,
    follow: Follow,
    place: Place,
) {
    let step = if follow.meters {
        slot.more().meter.step(t, v)
    } else {
        None
    };
    let piece = follow.curves.and_then(|gap| {
        slot.more()
            .curve
            .get_or_insert_with(|| Curve::new(gap))
            .piece(t, v)
    });
    let window = [follow.window];
    let add_piece = |series: &mut Series, spans: &[(i64, i64)]| {
        if let Some(p) = piece {
            for (s, e) in overlaps(spans, p.from.0, p.to.0) {
                series.add_curve(p.area(s, e), e - s);
            }
        }
    };
    let inside_window = place == Place::Inside;
    if own {
        add_piece(&mut slot.series, &window);
        if inside_window {
            slot.series.push_micros(t, v);
            if let Some(step) = step {
                slot.series.add_increase(step);
            }
        }
    }
    for &g in groups {
        let i = rules.target(summary, slot, g);
        let spans = match rules.spans.get(g) {
            Some(Some(spans)) => spans.as_slice(),
            _ => &window,
        };
        let Some((_, group)) = summary.groups.get_mut(i) else {
            continue;
        };
        add_piece(&mut group.values, spans);
        if !inside_window || !inside(spans, t) {
            continue;
        }
        group.values.push_micros(t, v);
        if let Some(step) = step {
            group.values.add_increase(step);
        }
        let more = slot.more.get_or_insert_with(Box::default);
        if !more.joined.contains(&i) {
            more.joined.push(i);
            if !group.members.contains(&*slot.name) {
                group.members.insert(slot.name.to_string());
            }
        }
    }
}

impl<Z: Zone + Clone> Lines for Collector<'_, Z> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reader.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        self.reader.input(reference);
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        self.line(line)
    }
    fn entry(&mut self, entry: Stamped<'_>) -> ControlFlow<()> {
        let stamped = self.reader.stamp_entry(entry);
        self.stamped(stamped)
    }
}

impl<Z: Zone + Clone + Send> Split for Collector<'_, Z> {
    fn fork(&self, start: DateTime<Utc>, reference: DateTime<Utc>) -> Option<Self> {
        // Meters and curves are followed from the lookback on, on one thread.
        (!self.follow.any() && !self.rules.any() && self.reader.can_start_at(start))
            .then(|| self.fork_empty(reference))
    }
    fn merge(&mut self, later: Self) {
        self.merge_later(later);
    }
}

/// Several consecutive windows read in one pass (catch-up after missed runs, and the only
/// way to read stdin for more than one window). Each line is parsed once, for all windows.
pub struct CatchUp<'s, Z> {
    /// Parses every line, over the union of the windows.
    reader: Option<Reader<Z>>,
    /// The collectors, in window order, and whether each is done with the current input.
    collectors: Vec<(Collector<'s, Z>, bool)>,
}

impl<'s, Z: Zone + Clone> CatchUp<'s, Z> {
    /// A batch of collectors, in window order.
    pub fn new(collectors: Vec<Collector<'s, Z>>) -> Self {
        let reader = match (collectors.first(), collectors.last()) {
            (Some(first), Some(last)) => Some(first.reader.with_window(Window {
                start: first.reader.window().start,
                end: last.reader.window().end,
            })),
            _ => None,
        };
        CatchUp {
            reader,
            collectors: collectors.into_iter().map(|c| (c, false)).collect(),
        }
    }

    /// The range to scan: from the first window's widened start to the last one's end.
    pub fn range(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let first = self.collectors.first()?.0.reader().range();
        let last = self.collectors.last()?.0.reader().range();
        Some((first.0, last.1))
    }

    /// The summaries, in window order.
    pub fn into_summaries(self) -> Vec<Summary> {
        self.collectors
            .into_iter()
            .map(|(c, _)| c.into_summary())
            .collect()
    }
}

impl<Z: Zone + Clone> Lines for CatchUp<'_, Z> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reader.as_mut()?.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        // Each input (file, source) is in time order on its own: every window reads it.
        if let Some(r) = &mut self.reader {
            r.input(reference);
        }
        for (c, done) in &mut self.collectors {
            c.reader.input(reference);
            *done = false;
        }
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        if let [(c, done)] = &mut self.collectors[..] {
            // One window (the usual run): its collector reads the line itself, without the
            // loop over windows (11 % less CPU for a whole day's file).
            if *done {
                return ControlFlow::Break(());
            }
            let flow = c.line(line);
            *done = flow.is_break();
            return flow;
        }
        let Some(reader) = &mut self.reader else {
            return ControlFlow::Break(());
        };
        let stamped = reader.stamp(line);
        self.stamped(stamped)
    }
    fn entry(&mut self, entry: Stamped<'_>) -> ControlFlow<()> {
        let Some(reader) = &mut self.reader else {
            return ControlFlow::Break(());
        };
        let stamped = reader.stamp_entry(entry);
        self.stamped(stamped)
    }
}

impl<Z: Zone + Clone> CatchUp<'_, Z> {
    /// Hand a stamped line (or journal entry) to every window still open.
    fn stamped(
        &mut self,
        (time, parsed): (Option<i64>, Result<Stamped<'_>, LineError>),
    ) -> ControlFlow<()> {
        let Some(reader) = &mut self.reader else {
            return ControlFlow::Break(());
        };
        let Some(time) = time else {
            return ControlFlow::Continue(());
        };
        let mut parsed = Some(parsed);
        let mut body = None;
        let mut open = false;
        for (c, done) in self.collectors.iter_mut().filter(|(_, d)| !*d) {
            match c.reader.place(time) {
                Place::Past => *done = true,
                Place::Outside => open = true,
                place => {
                    open = true;
                    if !c.wants(place) {
                        continue;
                    }
                    if let Some(p) = parsed.take() {
                        body = Some(reader.body(p));
                    }
                    if let Some(b) = &body {
                        c.take_line(time, b, place);
                    }
                }
            }
        }
        if open {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

impl<Z: Zone + Clone + Send> Split for CatchUp<'_, Z> {
    fn fork(&self, start: DateTime<Utc>, reference: DateTime<Utc>) -> Option<Self> {
        let reader = self.reader.as_ref()?;
        if !reader.can_start_at(start)
            || self
                .collectors
                .iter()
                .any(|(c, _)| c.follow.any() || c.rules.any())
        {
            return None;
        }
        Some(CatchUp {
            reader: Some(reader.fork(reference)),
            collectors: self
                .collectors
                .iter()
                .map(|(c, _)| (c.fork_empty(reference), false))
                .collect(),
        })
    }
    fn merge(&mut self, later: Self) {
        for ((mine, done), (theirs, later_done)) in self.collectors.iter_mut().zip(later.collectors)
        {
            // A window that was over before the later range began reads nothing of it.
            if !*done {
                mine.merge_later(theirs);
                *done = later_done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{FieldPath, JsonRule};
    use crate::record;
    use crate::statistic::Statistic;
    use crate::syslog::clock::{Ambiguity, Clock};
    use crate::syslog::line;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn collector(selection: &Selection) -> Collector<'_, Utc> {
        let w = Window {
            start: utc("2026-11-22T05:00:00Z"),
            end: utc("2026-11-22T05:05:00Z"),
        };
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        let summary = Summary::new(
            w.start,
            w.end,
            &[Statistic::Count, Statistic::Mean],
            ["house/t".to_owned()],
        );
        Collector::new(reader, selection, summary)
    }

    #[test]
    fn a_slot_is_small() {
        assert!(
            std::mem::size_of::<Slot>() <= 120,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    fn selection() -> Selection {
        Selection {
            topics: Filters::of(&["iotitan/#", "zigbee2mqtt/+"]),
            groups: vec![Filters::of(&["iotitan/+/t"])],
            extractor: Extractor::new(vec![JsonRule {
                topics: Filters::of(&["zigbee2mqtt/+"]),
                fields: vec![FieldPath::new("temperature").unwrap()],
            }]),
            summary_topic: Some("iotitan/stats/summary".into()),
            max_series: usize::MAX,
        }
    }

    fn feed(c: &mut Collector<'_, Utc>, lines: &[&str]) -> Vec<ControlFlow<()>> {
        lines.iter().map(|l| c.line(l.as_bytes())).collect()
    }

    /// A meter read in windows side by side, each from its last reading before the window
    /// (the lookback), adds up to the meter read in one window over them all; one pass over
    /// several windows (catch-up) gives the same; groups sum their members' steps. So does
    /// a curve's integral, each window closing its last interval with the reading after it.
    #[test]
    fn increases_and_integrals_of_windows_side_by_side_add_up() {
        let sel = selection();
        let line = |s: i64, topic: &str, v: f64| {
            let t = DateTime::from_timestamp(utc("2026-11-22T04:55:00Z").timestamp() + s, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            format!("{t} h iotitan-logger[1]: {topic} {v}")
        };
        // Two meters, one reading every 7 s over 25 minutes: growth, a reset, jitter.
        let mut lines = Vec::new();
        let (mut a, mut b) = (100.0, 5.0);
        for i in 0..(25 * 60 / 7) {
            // A gap of 3 minutes from 05:07:40: longer than max_gap, not integrated.
            if (95..120).contains(&i) {
                continue;
            }
            a = if i == 77 { 0.5 } else { a + (i % 5) as f64 };
            b += 0.25;
            let shown = if i % 31 == 0 { b * 0.95 } else { b };
            lines.push(line(i * 7, "iotitan/a/t", a));
            lines.push(line(i * 7 + 1, "iotitan/b/t", shown));
        }
        let window = |from: &str, to: &str| Window {
            start: utc(from),
            end: utc(to),
        };
        let collect = |w: Window| {
            let reader = Reader::new(w, chrono::Duration::seconds(5), "iotitan-logger", Utc)
                .with_lookback(chrono::Duration::minutes(5))
                .with_after(chrono::Duration::minutes(1));
            let summary = Summary::new(
                w.start,
                w.end,
                &[Statistic::Increase, Statistic::Integral, Statistic::Count],
                ["house/t".to_owned()],
            );
            Collector::new(reader, &sel, summary).with_curves(chrono::Duration::minutes(1))
        };
        let get = |st: Statistic| {
            move |s: &Summary, name: &str| {
                let series = match name {
                    "house/t" => &s.groups[0].1.values,
                    _ => s.series_of(name).unwrap(),
                };
                series.get(st).unwrap()
            }
        };
        let increase = get(Statistic::Increase);
        let integral = get(Statistic::Integral);
        let windows = [
            window("2026-11-22T05:00:00Z", "2026-11-22T05:05:00Z"),
            window("2026-11-22T05:05:00Z", "2026-11-22T05:10:00Z"),
            window("2026-11-22T05:10:00Z", "2026-11-22T05:15:00Z"),
        ];
        let mut whole = collect(window("2026-11-22T05:00:00Z", "2026-11-22T05:15:00Z"));
        for l in &lines {
            let _ = whole.line(l.as_bytes());
        }
        let whole = whole.into_summary();
        let mut parts = Vec::new();
        for w in windows {
            let mut c = collect(w);
            for l in &lines {
                let _ = c.line(l.as_bytes());
            }
            parts.push(c.into_summary());
        }
        let mut batch = CatchUp::new(windows.iter().map(|w| collect(*w)).collect());
        for l in &lines {
            let _ = batch.take(l.as_bytes());
        }
        let batch = batch.into_summaries();
        for (name, stat) in ["iotitan/a/t", "iotitan/b/t", "house/t"]
            .into_iter()
            .flat_map(|n| [(n, increase), (n, integral)])
        {
            let want = stat(&whole, name);
            let sum: f64 = parts.iter().map(|p| stat(p, name)).sum();
            let caught: f64 = batch.iter().map(|p| stat(p, name)).sum();
            assert!(want > 1.0, "{name}: {want}");
            assert!(
                (sum - want).abs() < 1e-9 * want,
                "{name}: windows {sum}, whole {want}"
            );
            assert!(
                (caught - want).abs() < 1e-9 * want,
                "{name}: catch-up {caught}"
            );
        }
        // The integral is the curve's, read in time order with what comes before and after.
        let readings: Vec<(i64, f64)> = lines
            .iter()
            .filter(|l| l.contains("iotitan/b/t"))
            .map(|l| {
                let t = DateTime::parse_from_rfc3339(&l[..20])
                    .unwrap()
                    .timestamp_micros();
                (t, l.rsplit(' ').next().unwrap().parse().unwrap())
            })
            .collect();
        let span = [(
            utc("2026-11-22T05:00:00Z").timestamp_micros(),
            utc("2026-11-22T05:15:00Z").timestamp_micros(),
        )];
        let mut totals = crate::energy::Totals::new(60_000_000);
        for (t, v) in readings {
            totals.push(&span, t, v);
        }
        let want = totals.amounts.get(Statistic::Integral, 0).unwrap();
        let got = integral(&whole, "iotitan/b/t");
        assert!((got - want).abs() < 1e-9 * want, "{got} against {want}");
        // Three minutes of gap are left out.
        let coverage = whole
            .series_of("iotitan/b/t")
            .unwrap()
            .get_over(Statistic::Coverage, 15 * 60_000_000);
        assert!(
            coverage.is_some_and(|c| c < 0.81 && c > 0.78),
            "{coverage:?}"
        );
        // The group's growth is its members'.
        let members = increase(&whole, "iotitan/a/t") + increase(&whole, "iotitan/b/t");
        assert!((increase(&whole, "house/t") - members).abs() < 1e-9 * members);
        // The lookback's lines are read, not counted.
        assert_eq!(
            whole.series_of("iotitan/a/t").unwrap().count(),
            15 * 60 / 7 + 1 - 25,
            "less the gap"
        );
    }

    #[test]
    fn lines_are_sorted_into_matched_skipped_rejected() {
        let sel = selection();
        let mut c = collector(&sel);
        let flows = feed(
            &mut c,
            &[
                "2026-11-22T04:59:59Z h iotitan-logger[1]: iotitan/a/t 100",
                "2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t 20",
                "2026-11-22T05:00:01Z h iotitan-logger[1]: iotitan/b/t 22",
                "2026-11-22T05:00:02Z h iotitan-logger[1]: iotitan/b/t junk",
                "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/b/t_mean 21",
                "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/stats/summary 3",
                "2026-11-22T05:00:04Z h iotitan-logger[1]: other/topic 1",
                "2026-11-22T05:00:05Z h sshd[9]: iotitan/a/t 1000",
                "garbage without a time",
                "2026-11-22T05:00:06Z h iotitan-logger[1]: iotitan/a/t 5\\q",
                "2026-11-22T05:00:07Z h iotitan-logger[1]: iotitan/a/t 1234\\[cut 9999]",
                "2026-11-22T05:00:08Z h iotitan-logger[1]: zigbee2mqtt/bed {\"temperature\":27.5}",
                "2026-11-22T05:00:09Z h iotitan-logger[1]: zigbee2mqtt/bed {\"battery\":3}",
                "2026-11-22T05:04:59.999Z h iotitan-logger[1]: iotitan/a/t 30",
                "2026-11-22T05:05:00Z h iotitan-logger[1]: iotitan/a/t 1000",
                "2026-11-22T05:06:00Z h iotitan-logger[1]: iotitan/a/t 1000",
            ],
        );
        assert!(flows[..15].iter().all(|f| f.is_continue()));
        assert!(flows[15].is_break());
        let l = c.lines();
        assert_eq!(
            (l.read, l.matched, l.skipped, l.rejected),
            (13, 4, 6, 3),
            "{l:?}"
        );
        let s = &c.into_summary();
        assert_eq!(
            s.series_of("iotitan/a/t").unwrap().get(Statistic::Mean),
            Some(25.0)
        );
        assert_eq!(s.series_of("iotitan/b/t").unwrap().count(), 1);
        assert_eq!(
            s.series_of("zigbee2mqtt/bed/temperature")
                .unwrap()
                .get(Statistic::Mean),
            Some(27.5)
        );
        assert!(s.series_of("iotitan/b/t_mean").is_none());
        assert!(!s.series.iter().any(|(k, _)| k.starts_with("iotitan/stats")));
        let (_, g) = &s.groups[0];
        assert_eq!(g.values.count(), 3);
        assert_eq!(g.members.len(), 2);
    }

    #[test]
    fn group_only_topics_do_not_get_series_of_their_own() {
        let sel = Selection {
            topics: Filters::of(&["none/#"]),
            ..selection()
        };
        let mut c = collector(&sel);
        feed(
            &mut c,
            &["2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t 20"],
        );
        let s = c.into_summary();
        assert!(s.series.is_empty());
        assert_eq!(s.groups[0].1.values.count(), 1);
    }

    /// The per-line path as it was before the fast path: parse, decode, decide and push
    /// with the general functions, line by line. The collector must give the same numbers,
    /// bit for bit.
    fn reference(
        sel: &Selection,
        lines: &[String],
        w: Window,
        reference: DateTime<Utc>,
    ) -> Summary {
        let disorder = chrono::Duration::seconds(60);
        let mut clock = Clock::new(Utc, reference, Ambiguity::Stream);
        let mut s = Summary::new(w.start, w.end, &all_statistics(), ["g".to_owned()]);
        let mut last = None;
        let mut readings = Vec::new();
        for raw in lines {
            let parsed = line::parse(raw.as_bytes(), &mut clock);
            let time = match &parsed {
                Ok(l) => {
                    last = Some(l.time);
                    l.time
                }
                Err(_) => match last {
                    Some(t) => t,
                    None => continue,
                },
            };
            if time >= w.end + disorder {
                break;
            }
            if time < w.start || time >= w.end {
                continue;
            }
            s.lines.read += 1;
            let c = &mut s.lines;
            let Ok(l) = parsed else {
                c.skipped += 1;
                continue;
            };
            let msg = &l.msg[l.msg.iter().take_while(|&&b| b == b' ').count()..];
            let rec = match record::decode(msg) {
                Ok(r) if &l.ident[..] == b"iotitan-logger" => r,
                _ => {
                    c.skipped += 1;
                    continue;
                }
            };
            let Some(topic) = rec.topic_str() else {
                c.skipped += 1;
                continue;
            };
            let Some(Wanted { own, groups }) = sel.wanted(topic) else {
                c.skipped += 1;
                continue;
            };
            readings.clear();
            if rec.cut_from.is_some()
                || sel
                    .extractor
                    .readings(topic, &rec.payload, &mut readings)
                    .is_err()
            {
                c.rejected += 1;
                continue;
            }
            c.matched += 1;
            for r in &readings {
                s.push(&r.series, own, groups.iter().copied(), time, r.value);
            }
        }
        s
    }

    fn all_statistics() -> Vec<Statistic> {
        [
            "count", "mean", "min", "max", "stddev", "median", "p95", "first", "last",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    }

    fn generated_line(base: i64) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let topic = prop_oneof![
            Just("iotitan/a/t"),
            Just("iotitan/b/t"),
            Just("iotitan/a\\x2Ft"),
            Just("iotitan/b/t_mean"),
            Just("iotitan/stats/summary"),
            Just("other/x"),
            Just("zigbee2mqtt/bed"),
            Just("zigbee2mqtt/bed/temperature"),
            Just("iotitan/\\xFF/t"),
        ];
        let payload = prop_oneof![
            (-300i32..300, 0u32..100).prop_map(|(a, b)| format!("{a}.{b}")),
            (-5000i32..5000).prop_map(|a| a.to_string()),
            Just("-0".to_owned()),
            Just(" 7 ".to_owned()),
            Just("on".to_owned()),
            Just("1e3".to_owned()),
            Just("junk".to_owned()),
            Just("5\\q".to_owned()),
            Just("12\\[cut 99]".to_owned()),
            Just("{\"temperature\":27.5}".to_owned()),
            Just("{\"battery\":3}".to_owned()),
        ];
        let ident = prop_oneof![
            8 => Just("iotitan-logger"),
            1 => Just("sshd"),
        ];
        let line = (
            0i64..700,
            0u32..1_000_000,
            ident,
            topic,
            payload,
            any::<bool>(),
        )
            .prop_map(move |(dt, us, ident, topic, payload, trad)| {
                let t = DateTime::from_timestamp(base + dt, us * 1000).unwrap();
                let stamp = if trad {
                    t.format("%b %e %H:%M:%S").to_string()
                } else {
                    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                };
                format!("{stamp} pi {ident}[1]: {topic} {payload}")
            });
        prop_oneof![
            20 => line,
            1 => Just("garbage without a time".to_owned()),
        ]
    }

    fn json_selection() -> Selection {
        Selection {
            topics: Filters::of(&["iotitan/#", "zigbee2mqtt/#"]),
            groups: vec![Filters::of(&["iotitan/+/t", "zigbee2mqtt/bed/temperature"])],
            ..selection()
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn the_collector_gives_what_the_general_path_gives(
            mut lines in proptest::collection::vec(generated_line(1_795_000_000), 0..300),
            sorted in proptest::prelude::any::<bool>(),
        ) {
            if sorted {
                lines.sort_by_key(|l| l.get(..26).unwrap_or_default().to_owned());
            }
            let sel = json_selection();
            let w = Window {
                start: DateTime::from_timestamp(1_795_000_100, 0).unwrap(),
                end: DateTime::from_timestamp(1_795_000_400, 0).unwrap(),
            };
            let reference_time = DateTime::from_timestamp(1_795_100_000, 0).unwrap();
            let want = reference(&sel, &lines, w, reference_time);
            let mut reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
            reader.input(reference_time);
            let summary = Summary::new(w.start, w.end, &all_statistics(), ["g".to_owned()]);
            let mut c = Collector::new(reader, &sel, summary);
            for l in &lines {
                if c.line(l.as_bytes()).is_break() {
                    break;
                }
            }
            let got = c.into_summary();
            proptest::prop_assert_eq!(got.lines, want.lines);
            proptest::prop_assert_eq!(
                got.outputs().collect::<Vec<_>>(),
                want.outputs().collect::<Vec<_>>()
            );
        }
    }

    /// The statistics of a split scan, next to one thread's.
    fn same_statistics(one: &Summary, many: &Summary) {
        assert_eq!(one.lines, many.lines);
        let pairs = one
            .series
            .iter()
            .map(|(n, s)| (n.to_string(), s, many.series_of(n).unwrap()))
            .chain(
                one.groups
                    .iter()
                    .zip(&many.groups)
                    .map(|((n, a), (_, b))| (n.clone(), &a.values, &b.values)),
            );
        assert_eq!(
            one.series.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            many.series.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
        for ((_, a), (_, b)) in one.groups.iter().zip(&many.groups) {
            assert_eq!(a.members, b.members);
        }
        for (name, a, b) in pairs {
            for st in all_statistics() {
                let (x, y) = (a.get(st), b.get(st));
                match st {
                    Statistic::Mean | Statistic::Stddev => {
                        let (x, y) = (x.unwrap_or(0.0), y.unwrap_or(0.0));
                        assert!(
                            (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                            "{name} {st}: {x} vs {y}"
                        );
                    }
                    _ => assert_eq!(x, y, "{name} {st}"),
                }
            }
        }
    }

    #[test]
    fn a_split_scan_gives_the_statistics_of_one_thread() {
        use crate::syslog::source::{Scan, Source, scan_split_min};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("syslog");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let base = 1_795_000_000i64;
        // 20 000 lines over 4000 s, some out of order by up to 3 s, timeless lines between.
        for i in 0..20_000i64 {
            let jitter = if i % 7 == 0 { -3_000_000 } else { 0 };
            let t =
                DateTime::from_timestamp_micros((base * 1_000_000) + i * 200_000 + jitter).unwrap();
            let topic =
                ["iotitan/a/t", "iotitan/b/t", "zigbee2mqtt/bed", "other/x"][(i % 4) as usize];
            let payload = if topic.starts_with("zigbee") {
                format!("{{\"temperature\":{}.{}}}", i % 30, i % 7)
            } else {
                format!("{}.{}", 1e6 as i64 + i % 41, i % 10)
            };
            writeln!(
                f,
                "{} pi iotitan-logger[1]: {topic} {payload}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            )
            .unwrap();
            if i % 1000 == 0 {
                writeln!(f, "  continuation without a time").unwrap();
            }
        }
        drop(f);
        let sel = json_selection();
        let t = |s: i64| DateTime::from_timestamp(base + s, 0).unwrap();
        // Consecutive windows (a catch-up), the last ending before the file does.
        for (from, to, n) in [
            (0, 4000, 1),
            (100, 3100, 12),
            (3000, 3900, 3),
            (500, 600, 1),
        ] {
            let step = (to - from) / n;
            let windows: Vec<_> = (0..n)
                .map(|k| Window {
                    start: t(from + k * step),
                    end: t(from + (k + 1) * step),
                })
                .collect();
            let run = |threads: usize| {
                let collectors = windows
                    .iter()
                    .map(|w| {
                        let reader =
                            Reader::new(*w, chrono::Duration::seconds(5), "iotitan-logger", Utc);
                        let summary =
                            Summary::new(w.start, w.end, &all_statistics(), ["g".to_owned()]);
                        Collector::new(reader, &sel, summary)
                    })
                    .collect();
                let mut batch = CatchUp::new(collectors);
                let (from, until) = batch.range().unwrap();
                let scan = Scan {
                    from,
                    until,
                    identifier: "iotitan-logger",
                };
                let mut bytes = 0;
                scan_split_min(
                    &Source::File(path.clone()),
                    &scan,
                    &mut batch,
                    &mut |n| bytes += n,
                    threads,
                    0,
                )
                .unwrap();
                batch.into_summaries()
            };
            let one = run(1);
            assert!(one.iter().map(|s| s.lines.matched).sum::<u64>() > 0);
            for threads in [2, 3, 7] {
                let many = run(threads);
                for (a, b) in one.iter().zip(&many) {
                    same_statistics(a, b);
                }
            }
        }
    }

    /// Rotated archives read side by side give what one thread gives, whichever archive the
    /// window starts and ends in.
    #[test]
    fn archives_read_side_by_side_give_the_statistics_of_one_thread() {
        use crate::syslog::source::{Scan, Source, scan_split_min};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let base = 1_795_000_000i64;
        // Five files of 2000 lines each, 0.2 s apart: syslog.4.gz (oldest) … syslog.
        let names = [
            "syslog.4.gz",
            "syslog.3.gz",
            "syslog.2.gz",
            "syslog.1",
            "syslog",
        ];
        for (k, name) in names.iter().enumerate() {
            let mut text = Vec::new();
            for j in 0..2000i64 {
                let i = k as i64 * 2000 + j;
                let t = DateTime::from_timestamp_micros(base * 1_000_000 + i * 200_000).unwrap();
                let topic = ["iotitan/a/t", "iotitan/b/t", "zigbee2mqtt/bed"][(i % 3) as usize];
                let payload = if topic.starts_with("zigbee") {
                    format!("{{\"temperature\":{}.{}}}", i % 30, i % 7)
                } else {
                    format!("{}.{}", i % 41, i % 10)
                };
                let stamp = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                writeln!(text, "{stamp} pi iotitan-logger[1]: {topic} {payload}").unwrap();
            }
            let path = dir.path().join(name);
            if name.ends_with(".gz") {
                let f = std::fs::File::create(&path).unwrap();
                let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                gz.write_all(&text).unwrap();
                gz.finish().unwrap();
            } else {
                std::fs::write(&path, &text).unwrap();
            }
        }
        let sel = json_selection();
        let t = |s: i64| DateTime::from_timestamp(base + s, 0).unwrap();
        // The whole range, one starting and ending inside archives, one inside a single one.
        for (from, to) in [(0, 2000), (300, 1300), (450, 700), (100, 180)] {
            let w = Window {
                start: t(from),
                end: t(to),
            };
            let run = |threads: usize| {
                let reader = Reader::new(w, chrono::Duration::seconds(5), "iotitan-logger", Utc);
                let summary = Summary::new(w.start, w.end, &all_statistics(), ["g".to_owned()]);
                let mut c = Collector::new(reader, &sel, summary);
                let (from, until) = c.reader().range();
                let scan = Scan {
                    from,
                    until,
                    identifier: "iotitan-logger",
                };
                let source = Source::File(dir.path().join("syslog"));
                let report = scan_split_min(&source, &scan, &mut c, &mut |_| {}, threads, 0);
                assert!(report.unwrap().damaged.is_empty());
                c.into_summary()
            };
            let one = run(1);
            assert!(one.lines.matched > 0, "{from}..{to}");
            for threads in [2, 3, 7] {
                let many = run(threads);
                assert_eq!(many.lines.read, one.lines.read, "{from}..{to} on {threads}");
                same_statistics(&one, &many);
            }
        }
    }

    #[test]
    fn series_merge_is_exact_where_it_must_be() {
        let values: Vec<f64> = (0..1000)
            .map(|i| 1e9 + ((i * 7919) % 101) as f64 / 10.0)
            .collect();
        for cut in [0, 1, 500, 999, 1000] {
            let mut all = Series::new(true);
            let (mut a, mut b) = (Series::new(true), Series::new(true));
            for (i, &v) in values.iter().enumerate() {
                let t = (i as i64 % 300) * 1_000_000;
                all.push_micros(t, v);
                if i < cut {
                    a.push_micros(t, v)
                } else {
                    b.push_micros(t, v)
                }
            }
            a.merge(b);
            // Mean and stddev against the exact values (computed on the small offsets), like
            // the sequential series' own.
            let offsets: Vec<f64> = values.iter().map(|v| v - 1e9).collect();
            let mean = offsets.iter().sum::<f64>() / 1000.0;
            let var = offsets.iter().map(|o| (o - mean).powi(2)).sum::<f64>() / 999.0;
            for (got, exact) in [
                (a.get(Statistic::Mean).unwrap() - 1e9, mean),
                (a.get(Statistic::Stddev).unwrap(), var.sqrt()),
                (all.get(Statistic::Mean).unwrap() - 1e9, mean),
                (all.get(Statistic::Stddev).unwrap(), var.sqrt()),
            ] {
                assert!((got - exact).abs() <= 1e-6, "{cut}: {got} vs {exact}");
            }
            for st in all_statistics() {
                if !matches!(st, Statistic::Mean | Statistic::Stddev) {
                    assert_eq!(all.get(st), a.get(st), "{cut} {st}");
                }
            }
        }
    }
}
